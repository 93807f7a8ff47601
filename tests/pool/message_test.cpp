#include "procpool/wire/message.hpp"

#include <fmt/format.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <cstdint>
#include <limits>
#include <optional>
#include <random>
#include <string>
#include <utility>
#include <vector>

// The library's private header, which is not on the include path of its users.
#include "message_fast_path.hpp"  // private: pool/src

namespace procpool {
namespace {

void expect_protocol_error(const result<response>& r, std::string_view mentions) {
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code, errc::protocol_error);
  EXPECT_NE(r.error().message.find(mentions), std::string::npos) << r.error().message;
}

TEST(Message, RequestRoundTrips) {
  request req{.id = 42, .command = "echo", .args = {{"k", {1, 2, 3}}}};
  auto back = decode_request(encode(req));
  ASSERT_TRUE(back) << back.error().message;
  EXPECT_EQ(back->id, 42u);
  EXPECT_EQ(back->command, "echo");
  EXPECT_EQ(back->args, req.args);
}

TEST(Message, RequestWithoutArgsHasNullArgs) {
  auto r = decode_request(R"({"id": 3, "command": "ping"})");
  ASSERT_TRUE(r);
  EXPECT_TRUE(r->args.is_null());
}

TEST(Message, OkResponseRoundTrips) {
  response resp{.id = 9, .ok = true, .result = "hi", .t_recv_ns = 10, .t_done_ns = 20};
  auto back = decode_response(encode(resp));
  ASSERT_TRUE(back) << back.error().message;
  EXPECT_EQ(back->id, 9u);
  EXPECT_TRUE(back->ok);
  EXPECT_EQ(back->result, "hi");
  EXPECT_EQ(back->t_recv_ns, 10);
  EXPECT_EQ(back->t_done_ns, 20);
}

TEST(Message, ErrorResponseRoundTrips) {
  response resp{.id = 5, .ok = false, .failure = {"ValueError", "bad input"}};
  const auto doc = nlohmann::json::parse(encode(resp));
  EXPECT_EQ(doc["error"]["type"], "ValueError");
  EXPECT_FALSE(doc.contains("result"));
  auto back = decode_response(encode(resp));
  ASSERT_TRUE(back);
  EXPECT_FALSE(back->ok);
  EXPECT_EQ(back->failure.type, "ValueError");
  EXPECT_EQ(back->failure.message, "bad input");
}

TEST(Message, InitRequestIsIdZeroCommandInit) {
  const auto doc = nlohmann::json::parse(encode(make_init_request({{"init_ms", 5}})));
  EXPECT_EQ(doc["id"], 0);
  EXPECT_EQ(doc["command"], "init");
  EXPECT_EQ(doc["args"]["init_ms"], 5);
}

TEST(Message, InitReplyCarriesProcessFacts) {
  init_reply reply{.base = {.id = 0}, .pid = 123, .t_main_ns = 5, .t_init_done_ns = 8};
  auto back = decode_init_reply(encode(reply));
  ASSERT_TRUE(back) << back.error().message;
  EXPECT_EQ(back->pid, 123);
  EXPECT_EQ(back->t_main_ns, 5);
  EXPECT_EQ(back->t_init_done_ns, 8);
}

TEST(Message, InitReplyWithoutPidIsAProtocolError) {
  auto r = decode_init_reply(R"({"id":0,"ok":true,"t_main_ns":1,"t_init_done_ns":2})");
  ASSERT_FALSE(r);
  EXPECT_NE(r.error().message.find("'pid'"), std::string::npos);
}

// json reads a non-negative integer as unsigned; one above INT64_MAX must not wrap to a
// negative stamp or pid (18446744073709551615 read as -1).
TEST(Message, IntegersAboveInt64MaxAreProtocolErrorsNotNegative) {
  expect_protocol_error(decode_response(R"({"id":1,"ok":true,"t_recv_ns":18446744073709551615})"),
                        "field 't_recv_ns' is out of range: 18446744073709551615 is above "
                        "9223372036854775807");
  expect_protocol_error(decode_response(R"({"id":1,"ok":true,"t_done_ns":9223372036854775808})"),
                        "field 't_done_ns' is out of range");
  auto max = decode_response(R"({"id":1,"ok":true,"t_recv_ns":9223372036854775807})");
  ASSERT_TRUE(max) << max.error().message;
  EXPECT_EQ(max->t_recv_ns, std::numeric_limits<std::int64_t>::max());

  const std::string facts = R"("t_main_ns":1,"t_init_done_ns":2)";
  const std::vector<std::pair<std::string, std::string>> cases = {
      {R"({"id":0,"ok":true,"pid":18446744073709551615,)" + facts + "}", "'pid'"},
      {R"({"id":0,"ok":true,"pid":1,"t_main_ns":9223372036854775808,"t_init_done_ns":2})",
       "'t_main_ns'"},
      {R"({"id":0,"ok":true,"pid":1,"t_main_ns":1,"t_init_done_ns":18446744073709551615})",
       "'t_init_done_ns'"},
      {R"({"id":0,"ok":true,"pid":1,"t_recv_ns":18446744073709551615,)" + facts + "}",
       "'t_recv_ns'"}};
  for (const auto& [payload, field] : cases) {
    SCOPED_TRACE(payload);
    const auto r = decode_init_reply(payload);
    ASSERT_FALSE(r) << "pid decoded as " << r->pid;
    EXPECT_EQ(r.error().code, errc::protocol_error);
    EXPECT_NE(r.error().message.find(std::string("field ") + field + " is out of range"),
              std::string::npos)
        << r.error().message;
  }
  auto largest =
      decode_init_reply(R"({"id":0,"ok":true,"pid":9223372036854775807,)" + facts + "}");
  ASSERT_TRUE(largest) << largest.error().message;
  EXPECT_EQ(largest->pid, std::numeric_limits<std::int64_t>::max());
}

TEST(Message, NonJsonPayloadIsAProtocolErrorQuotingIt) {
  expect_protocol_error(decode_response("\x01garbage {"), "not JSON: \"\\x01garbage {\"");
}

TEST(Message, NonObjectPayloadIsAProtocolError) {
  expect_protocol_error(decode_response("[1,2]"), "not a JSON object");
}

TEST(Message, MissingOrMistypedFieldsAreNamed) {
  expect_protocol_error(decode_response(R"({"ok":true})"), "missing field 'id'");
  expect_protocol_error(decode_response(R"({"id":-1,"ok":true})"), "'id' must be an unsigned");
  expect_protocol_error(decode_response(R"({"id":"1","ok":true})"), "'id' must be an unsigned");
  expect_protocol_error(decode_response(R"({"id":1})"), "missing field 'ok'");
  expect_protocol_error(decode_response(R"({"id":1,"ok":"yes"})"), "'ok' must be a boolean");
  expect_protocol_error(decode_response(R"({"id":1,"ok":false})"), "'error' is missing");
  expect_protocol_error(decode_response(R"({"id":1,"ok":false,"error":{"message":"m"}})"),
                        "'error.type'");
  expect_protocol_error(decode_response(R"({"id":1,"ok":true,"t_recv_ns":"x"})"),
                        "'t_recv_ns' must be an integer");
  auto req = decode_request(R"({"id":1,"command":7})");
  ASSERT_FALSE(req);
  EXPECT_NE(req.error().message.find("'command' must be a string"), std::string::npos);
}

TEST(Message, MissingStampsReadAsZero) {
  auto r = decode_response(R"({"id":1,"ok":true,"result":null})");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->t_recv_ns, 0);
  EXPECT_EQ(r->t_done_ns, 0);
}

// The direct request encoder and the hand-read response decoder against the nlohmann-based
// paths that define the format.

using nlohmann::json;
using namespace std::string_literals;

// Stricter than json's operator==, which equates 1, 1u and 1.0: what a caller sees of a
// decoded result includes the number types.
void expect_identical_json(const json& actual, const json& expected) {
  ASSERT_EQ(actual.type(), expected.type()) << actual.dump() << " vs " << expected.dump();
  if (expected.is_object()) {
    ASSERT_EQ(actual.size(), expected.size());
    for (auto a = actual.begin(), e = expected.begin(); e != expected.end(); ++a, ++e) {
      ASSERT_EQ(a.key(), e.key());
      expect_identical_json(*a, *e);
    }
  } else if (expected.is_array()) {
    ASSERT_EQ(actual.size(), expected.size());
    for (std::size_t i = 0; i < expected.size(); ++i) expect_identical_json(actual[i], expected[i]);
  } else {
    EXPECT_EQ(actual, expected);
  }
}

// Against the general decoder the result must be identical; against a response built in the
// test, json equality is what a round trip preserves (a positive integer comes back unsigned).
enum class result_match { identical, equal };

void expect_same_response(const response& actual, const response& expected,
                          result_match match = result_match::identical) {
  EXPECT_EQ(actual.id, expected.id);
  EXPECT_EQ(actual.ok, expected.ok);
  if (match == result_match::identical) {
    expect_identical_json(actual.result, expected.result);
  } else {
    EXPECT_EQ(actual.result, expected.result);
  }
  EXPECT_EQ(actual.failure.type, expected.failure.type);
  EXPECT_EQ(actual.failure.message, expected.failure.message);
  EXPECT_EQ(actual.t_recv_ns, expected.t_recv_ns);
  EXPECT_EQ(actual.t_done_ns, expected.t_done_ns);
}

// decode_response must answer exactly as the whole-payload parse does: the same response,
// or the same error.
void expect_decodes_as_json_does(const std::string& payload) {
  SCOPED_TRACE("payload: " + json(payload).dump(-1, ' ', true, json::error_handler_t::replace));
  const auto actual = decode_response(payload);
  const auto expected = message_internals::decode_response_as_json(payload);
  ASSERT_EQ(static_cast<bool>(actual), static_cast<bool>(expected))
      << (expected ? actual.error().message : expected.error().message);
  if (expected) {
    expect_same_response(*actual, *expected);
  } else {
    EXPECT_EQ(actual.error().code, expected.error().code);
    EXPECT_EQ(actual.error().message, expected.error().message);
  }
}

bool takes_plain_path(const std::string& payload) {
  return message_internals::try_decode_plain_response(payload).has_value();
}

std::string nested_arrays(int depth) {
  return std::string(static_cast<std::size_t>(depth), '[') + "1" +
         std::string(static_cast<std::size_t>(depth), ']');
}

// Envelopes that workers send: each must be read by hand.
std::vector<std::string> plain_envelopes() {
  std::vector<std::string> corpus = {
      R"({"id":1,"ok":true})",
      R"({"id":0,"ok":true,"result":null})",
      R"({"id":18446744073709551615,"ok":true,"result":1})",
      R"({"id":12345678901234567890,"ok":true,"result":1})",
      R"({"id":1234567890123456789,"ok":true,"result":"sixteen bytes!!!"})",
      R"({"id":1,"ok":true,"result":"a plain string longer than two blocks, then"})",
      R"({"id":1,"ok":true,"result":"a plain string longer than one block \\ then"})",
      R"({"id":123,"ok":true,"result":{"payload":"xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"},)"
      R"("t_done_ns":123456999,"t_recv_ns":123456789})",
      R"({"ok":true,"id":7,"result":{"a":1},"t_recv_ns":5,"t_done_ns":6})",
      R"({"t_done_ns":6,"t_recv_ns":5,"result":[1,2,{"b":[]}],"ok":true,"id":9})",
      R"({"result":"first","id":2,"ok":true})",
      " \t\r\n{ \"id\" : 3 ,\n \"ok\" :true , \"result\" : { \"k\" : [ 1 , 2 ] } ,"
      "\r\n\t\"t_recv_ns\"\t:\t1\t} \n",
      R"({"id": 3, "ok": true, "result": "pong", "t_recv_ns": 1, "t_done_ns": 2})",
      R"({"id":1,"ok":true,"result":"}{]["})",
      R"({"id":1,"ok":true,"result":"say \"hi\" \\"})",
      R"({"id":1,"ok":true,"result":"\\"})",
      R"({"id":1,"ok":true,"result":"\""})",
      R"({"id":1,"ok":true,"result":{"k}":"v{\"}\"","arr":["]","[",{}],"\\":"\\\""}})",
      R"({"id":1,"ok":true,"result":["\"]", "\\\\", "{", {"\"}": "]"}]})",
      "{\"id\":1,\"ok\":true,\"result\":\"caf\xc3\xa9 \xf0\x9f\x98\x80\"}",
      "{\"id\":1,\"ok\":true,\"result\":{\"\xc3\xa9\":\"\xe2\x82\xac\"}}",
      R"({"id":1,"ok":true,"result":"\u00e9\ud83d\ude00\n\t\/"})",
      "{\"id\":1,\"ok\":true,\"result\":\"del \x7f\"}",
      R"({"id":1,"ok":true,"result":""})",
      R"({"id":1,"ok":true,"result":{}})",
      R"({"id":1,"ok":true,"result":[]})",
      R"({"id":1,"ok":true,"result":true})",
      R"({"id":1,"ok":true,"result":false})",
      R"({"id":1,"ok":true,"result":0})",
      R"({"id":1,"ok":true,"result":-0})",
      R"({"id":1,"ok":true,"result":-12})",
      R"({"id":1,"ok":true,"result":1.5})",
      R"({"id":1,"ok":true,"result":-0.0})",
      R"({"id":1,"ok":true,"result":1e3})",
      R"({"id":1,"ok":true,"result":-1.25E-2})",
      R"({"id":1,"ok":true,"result":18446744073709551615})",
      R"({"id":1,"ok":true,"result":18446744073709551616})",
      R"({"id":1,"ok":true,"result":-9223372036854775809})",
      R"({"id":1,"ok":true,"result":12,"t_recv_ns":null,"t_done_ns":null})",
      R"({"id":1,"ok":true,"t_recv_ns":-5,"t_done_ns":0})",
      R"({"id":1,"ok":true,"t_recv_ns":-0,"t_done_ns":-0})",
      R"({"id":1,"ok":true,"t_recv_ns":9223372036854775807,"t_done_ns":-9223372036854775808})",
      "{\"id\":1,\"ok\":true,\"result\":" + nested_arrays(500) + "}",
  };
  corpus.push_back(encode(response{.id = 5, .result = "pong", .t_recv_ns = 1, .t_done_ns = 2}));
  corpus.push_back(encode(response{.id = 6, .result = {{"slept_ms", 1.5}}}));
  // Numbers of every length up to twenty digits, on both sides of each power of ten: the
  // reader takes eight digits at a time where it can.
  std::uint64_t power = 1;
  for (int digits = 1; digits <= 20; ++digits, power *= 10) {
    const std::uint64_t high =
        digits == 20 ? std::numeric_limits<std::uint64_t>::max() : power * 10 - 1;
    for (const std::uint64_t n : {power, high}) {
      const auto stamp = std::min<std::uint64_t>(n, std::numeric_limits<std::int64_t>::max());
      corpus.push_back(fmt::format(R"({{"id":{},"ok":true,"t_recv_ns":{},"t_done_ns":-{}}})", n,
                                   stamp, stamp));
    }
  }
  return corpus;
}

// Valid envelopes that the hand reader leaves to the general path.
std::vector<std::string> valid_but_not_plain() {
  return {
      R"({"id":1,"ok":false,"error":{"type":"ValueError","message":"bad"}})",
      R"({"id":1,"ok":false,"error":{"type":"t","message":"m"},"t_recv_ns":1,"t_done_ns":2})",
      R"({"id":1,"ok":true,"error":{"type":"t","message":"m"}})",
      R"({"id":1,"ok":true,"result":1,"error":null})",
      R"({"id":1,"ok":true,"pid":5})",
      R"({"id":0,"ok":true,"pid":5,"t_main_ns":1,"t_init_done_ns":2})",
      R"({"id":1,"id":2,"ok":true})",
      R"({"id":1,"ok":true,"result":1,"result":2})",
      R"({"\u0069d":1,"ok":true})",
      R"({"id":1,"\u006fk":true})",
      R"({"id":1,"ok":true,"":0})",
      "\xef\xbb\xbf{\"id\":1,\"ok\":true}",
      // json stops reading at a NUL byte, whatever follows it.
      "{\"id\":1,\"ok\":true}\0"s,
      "{\"id\":1,\"ok\":true}\0trailing garbage"s,
  };
}

// Payloads that decode_response must refuse, each with the general path's message.
// Long on purpose: a flat list of test data, one case per entry, best read as one list.
std::vector<std::string> malformed_envelopes() {
  return {
      "",
      " ",
      "{",
      "}",
      "[1,2]",
      "null",
      "1",
      R"("string")",
      "{}",
      "\x01garbage {",
      R"({"ok":true})",
      R"({"id":1})",
      R"({"id":1,"ok":true,})",
      R"({"id":1,"ok":true}})",
      R"({"id":1,"ok":true} x)",
      R"({"id":1,"ok":true}{})",
      "{\"id\":1,\"ok\":true\0}"s,
      R"({,"id":1,"ok":true})",
      R"({"id":1,,"ok":true})",
      R"({"id" 1,"ok":true})",
      R"({"id":1 "ok":true})",
      R"({"id"::1,"ok":true})",
      R"({id:1,"ok":true})",
      R"({'id':1,"ok":true})",
      R"({"id)",
      R"({"id":1,"ok)",
      R"({"id":01,"ok":true})",
      R"({"id":00,"ok":true})",
      R"({"id":1.0,"ok":true})",
      R"({"id":1.,"ok":true})",
      R"({"id":1e2,"ok":true})",
      R"({"id":1E2,"ok":true})",
      R"({"id":-0,"ok":true})",
      R"({"id":+1,"ok":true})",
      R"({"id":-1,"ok":true})",
      R"({"id":18446744073709551616,"ok":true})",
      R"({"id":1234567890123456789.5,"ok":true})",
      R"({"id":99999999999999999999999,"ok":true})",
      R"({"id":"1","ok":true})",
      R"({"id":null,"ok":true})",
      R"({"id":true,"ok":true})",
      R"({"id":[1],"ok":true})",
      R"({"id":1x,"ok":true})",
      R"({"id":0x1,"ok":true})",
      R"({"id":,"ok":true})",
      R"({"id":1,"ok":tru})",
      R"({"id":1,"ok":True})",
      R"({"id":1,"ok":truex})",
      R"({"id":1,"ok":true1})",
      R"({"id":1,"ok":1})",
      R"({"id":1,"ok":"true"})",
      R"({"id":1,"ok":null})",
      R"({"id":1,"ok":false})",
      R"({"id":1,"ok":false,"error":"boom"})",
      R"({"id":1,"ok":false,"error":{"message":"m"}})",
      R"({"id":1,"ok":false,"error":{"type":"t"}})",
      R"({"id":1,"ok":false,"error":{"type":1,"message":"m"}})",
      R"({"id":1,"ok":true,"result":})",
      R"({"id":1,"ok":true,"result"})",
      R"({"id":1,"ok":true,"result":tru})",
      R"({"id":1,"ok":true,"result":nul})",
      R"({"id":1,"ok":true,"result":nullx})",
      R"({"id":1,"ok":true,"result":NaN})",
      R"({"id":1,"ok":true,"result":Infinity})",
      R"({"id":1,"ok":true,"result":-Infinity})",
      R"({"id":1,"ok":true,"result":1e999})",
      R"({"id":1,"ok":true,"result":01})",
      R"({"id":1,"ok":true,"result":1.})",
      R"({"id":1,"ok":true,"result":.5})",
      R"({"id":1,"ok":true,"result":+1})",
      R"({"id":1,"ok":true,"result":1e})",
      R"({"id":1,"ok":true,"result":--1})",
      R"({"id":1,"ok":true,"result":1 2})",
      R"({"id":1,"ok":true,"result":"a""b"})",
      R"({"id":1,"ok":true,"result":"a" "b"})",
      R"({"id":1,"ok":true,"result":"unterminated})",
      R"({"id":1,"ok":true,"result":"ends in a backslash\"})",
      R"({"id":1,"ok":true,"result":"bad \x escape"})",
      R"({"id":1,"ok":true,"result":"\u12"})",
      R"({"id":1,"ok":true,"result":"\ud83d"})",
      R"({"id":1,"ok":true,"result":'single'})",
      "{\"id\":1,\"ok\":true,\"result\":\"control \x01 byte\"}",
      "{\"id\":1,\"ok\":true,\"result\":\"raw\nnewline\"}",
      "{\"id\":1,\"ok\":true,\"result\":\"\xff invalid utf-8\"}",
      "{\"id\":1,\"ok\":true,\"result\":\"truncated \xc3\"}",
      "{\"id\":1,\"ok\":true,\"result\":\"overlong \xc0\xaf\"}",
      "{\"id\":1,\"ok\":true,\"result\":{\"\xff\":1}}",
      R"({"id":1,"ok":true,"result":{"a":1]})",
      R"({"id":1,"ok":true,"result":[1,2})",
      R"({"id":1,"ok":true,"result":{"a" 1}})",
      R"({"id":1,"ok":true,"result":{"a":1,}})",
      R"({"id":1,"ok":true,"result":[1,]})",
      R"({"id":1,"ok":true,"result":{a:1}})",
      R"({"id":1,"ok":true,"result":[1 2]})",
      R"({"id":1,"ok":true,"result":{"a":1}})})",
      R"({"id":1,"ok":true,"result":[[1]})",
      R"({"id":1,"ok":true,"result":{"a":"}"})",
      R"({"id":1,"ok":true,"result":["]"})",
      R"({"id":1,"ok":true,"result":["\"]})",
      R"({"id":1,"ok":true,"t_recv_ns":"x"})",
      R"({"id":1,"ok":true,"t_recv_ns":1.5})",
      R"({"id":1,"ok":true,"t_recv_ns":1e3})",
      R"({"id":1,"ok":true,"t_recv_ns":01})",
      R"({"id":1,"ok":true,"t_recv_ns":-01})",
      R"({"id":1,"ok":true,"t_recv_ns":--1})",
      R"({"id":1,"ok":true,"t_recv_ns":-})",
      R"({"id":1,"ok":true,"t_recv_ns":- 1})",
      R"({"id":1,"ok":true,"t_recv_ns":+1})",
      R"({"id":1,"ok":true,"t_recv_ns":-9223372036854775809})",
      R"({"id":1,"ok":true,"t_recv_ns":9223372036854775808})",
      R"({"id":1,"ok":true,"t_done_ns":18446744073709551615})",
      R"({"id":1,"ok":true,"t_recv_ns":18446744073709551616})",
      R"({"id":1,"ok":true,"t_recv_ns":true})",
      R"({"id":1,"ok":true,"t_recv_ns":nul})",
      R"({"id":1,"ok":true,"t_done_ns":nullx})",
      R"({"id":1,"ok":true,"t_done_ns":[1]})",
      "{\f\"id\":1,\"ok\":true}",
      "{\"id\":1,\v\"ok\":true}",
      "{\"id\":1,\"ok\":true}\f",
      "{\"id\":1,\xc2\xa0\"ok\":true}",
      "\xef\xbb{\"id\":1,\"ok\":true}",
  };
}

// The word-at-a-time digits against a digit at a time: every byte value at every position
// of an eight-digit string, then a second non-digit after it: the bytes on either side of
// the digits ('/', ':') and bytes that carry into the next one when 6 is added (0xfa, 0xff).
TEST(MessageFastPath, EightDigitsAreReadAsTheirValueAndAnythingElseIsRefused) {
  const auto reference = [](const std::string& s) -> std::optional<std::uint32_t> {
    std::uint32_t n = 0;
    for (char c : s) {
      if (c < '0' || c > '9') return std::nullopt;
      n = n * 10 + static_cast<std::uint32_t>(c - '0');
    }
    return n;
  };
  const auto eight_digits = [](const std::string& s) -> std::optional<std::uint32_t> {
    std::uint32_t value = 0;
    if (!message_internals::read_eight_digits(s.data(), value)) return std::nullopt;
    return value;
  };
  for (const std::string digits : {"00000000", "12345678", "99999999", "90817263", "00000001"}) {
    ASSERT_EQ(eight_digits(digits), reference(digits)) << digits;
    for (std::size_t at = 0; at < 8; ++at) {
      for (int b = 0; b < 256; ++b) {
        std::string s = digits;
        s[at] = static_cast<char>(b);
        ASSERT_EQ(eight_digits(s), reference(s))
            << "byte 0x" << std::hex << b << std::dec << " at " << at << " of " << digits;
        for (std::size_t next = at + 1; next < 8; ++next) {
          for (char edge : {'/', ':', '\xff', '\xfa'}) {
            s[next] = edge;
            ASSERT_EQ(eight_digits(s), std::nullopt)
                << "byte 0x" << std::hex << b << " at " << std::dec << at << ", then 0x"
                << std::hex << (edge & 0xff) << " at " << std::dec << next;
            s[next] = digits[next];
          }
        }
      }
    }
  }
}

// The block-at-a-time scan against the rule it implements, one byte at a time: every byte
// value, at every position of strings long enough to cover short strings, whole blocks and
// the overlapping last block; and a second odd byte after the first, which must not hide it.
TEST(MessageFastPath, PlainStringsAreThoseOfPrintableAsciiWithoutQuoteOrBackslash) {
  const auto plain_byte = [](unsigned char b) {
    return b >= 0x20 && b < 0x7f && b != '"' && b != '\\';
  };
  EXPECT_TRUE(message_internals::is_plain_string(""));
  EXPECT_EQ(message_internals::plain_prefix_length(""), 0u);
  for (std::size_t length = 1; length <= 50; ++length) {
    for (std::size_t at = 0; at < length; ++at) {
      for (int b = 0; b < 256; ++b) {
        std::string s(length, 'x');
        s[at] = static_cast<char>(b);
        const bool plain = plain_byte(static_cast<unsigned char>(b));
        ASSERT_EQ(message_internals::is_plain_string(s), plain)
            << "byte 0x" << std::hex << b << std::dec << " at " << at << " of " << length;
        ASSERT_EQ(message_internals::plain_prefix_length(s), plain ? length : at)
            << "byte 0x" << std::hex << b << std::dec << " at " << at << " of " << length;
      }
      std::string two(length, 'x');
      two[at] = '"';
      for (std::size_t later = at + 1; later < length; ++later) {
        two[later] = '\x01';
        ASSERT_EQ(message_internals::plain_prefix_length(two), at)
            << "quote at " << at << ", control byte at " << later << " of " << length;
        two[later] = 'x';
      }
    }
  }
  // Bytes at both edges of the plain range side by side.
  EXPECT_TRUE(message_internals::is_plain_string("\x20\x7e\x21\x23\x5b\x5d\x20\x7e\x20"));
  EXPECT_FALSE(message_internals::is_plain_string("\x20\x7e\x21\x23\x5b\x5d\x1f\x7e\x20"));
  EXPECT_FALSE(message_internals::is_plain_string("\x7e\x7e\x7e\x7e\x7e\x7e\x7e\x7f"));
  EXPECT_FALSE(
      message_internals::is_plain_string(std::string_view("\x20\x20\x20\x20\x20\x20\x20\x00", 8)));
}

TEST(MessageFastPath, EncodesRequestsByteForByteAsJsonDoes) {
  const std::vector<std::string> commands = {
      "", "echo", "init", "with space", "quote\"d", "back\\slash", "tab\t", "new\nline",
      "\x01", "\x1f", "\x7f", "/slash", "{\"braces\"}", "caf\xc3\xa9", "\xf0\x9f\x98\x80",
      "\xe2\x80\xa8"};
  const std::vector<json> args = {
      nullptr, std::string(64, 'x'), "", "esc\"aped\\", "\x7f", "\x01", "\xc3\xa9",
      1, -1, 18446744073709551615u, 1.5, -0.0, true, false,
      json::object(), json::array(),
      {{"k", {1, 2, 3}}, {"nested", {{"s", "v\"}"}, {"n", nullptr}}}},
      {1, "two", {{"three", 3}}}};
  for (const std::uint64_t id : {std::uint64_t{0}, std::uint64_t{1}, std::uint64_t{42},
                                 std::uint64_t{1'000'000'007},
                                 std::numeric_limits<std::uint64_t>::max()}) {
    for (const auto& command : commands) {
      for (const auto& arg : args) {
        const request req{.id = id, .command = command, .args = arg};
        EXPECT_EQ(encode(req), message_internals::encode_request_as_json(req));
      }
    }
  }
  EXPECT_EQ(encode(request{.id = 1, .command = "echo", .args = "x"}),
            R"({"args":"x","command":"echo","id":1})");
  // encode_into appends, for a frame written in place behind its header.
  std::string out = "head";
  const json x = "x";
  encode_into(out, {1, "echo", x});
  EXPECT_EQ(out, R"(head{"args":"x","command":"echo","id":1})");
}

TEST(MessageFastPath, RequestWithInvalidUtf8ThrowsAsJsonDoes) {
  for (const request& req : {request{.id = 1, .command = "\xff"},
                             request{.id = 1, .command = "ok", .args = "\xc3"},
                             request{.id = 1, .command = "ok", .args = {{"k", "\xc0\xaf"}}}}) {
    std::string expected_what;
    try {
      (void)message_internals::encode_request_as_json(req);
    } catch (const json::type_error& e) {
      expected_what = e.what();
    }
    ASSERT_FALSE(expected_what.empty());
    try {
      (void)encode(req);
      ADD_FAILURE() << "encode accepted invalid UTF-8";
    } catch (const json::type_error& e) {
      EXPECT_EQ(e.what(), expected_what);
    }
  }
}

TEST(MessageFastPath, PlainEnvelopesAreReadByHandAndDecodeAsJsonDoes) {
  for (const auto& payload : plain_envelopes()) {
    EXPECT_TRUE(takes_plain_path(payload)) << payload;
    ASSERT_TRUE(message_internals::decode_response_as_json(payload)) << payload;
    expect_decodes_as_json_does(payload);
  }
}

TEST(MessageFastPath, OtherValidEnvelopesFallBackAndDecodeAsJsonDoes) {
  for (const auto& payload : valid_but_not_plain()) {
    EXPECT_FALSE(takes_plain_path(payload)) << payload;
    ASSERT_TRUE(message_internals::decode_response_as_json(payload)) << payload;
    expect_decodes_as_json_does(payload);
  }
}

TEST(MessageFastPath, MalformedEnvelopesFailWithTheSameErrors) {
  for (const auto& payload : malformed_envelopes()) {
    EXPECT_FALSE(takes_plain_path(payload)) << payload;
    EXPECT_FALSE(message_internals::decode_response_as_json(payload)) << payload;
    expect_decodes_as_json_does(payload);
  }
}

// Cutting a valid envelope anywhere, or dropping any one byte, must not produce a payload
// that the hand reader accepts and the general path refuses.
TEST(MessageFastPath, TruncationsAndDeletionsDecodeAsJsonDoes) {
  for (const auto& payload : plain_envelopes()) {
    if (payload.size() > 400) continue;  // the deep nesting: quadratic here and adds nothing
    for (std::size_t n = 0; n < payload.size(); ++n) {
      expect_decodes_as_json_does(payload.substr(0, n));
      expect_decodes_as_json_does(payload.substr(0, n) + payload.substr(n + 1));
      if (::testing::Test::HasFatalFailure()) return;
    }
  }
}

// Seeded, so that a failure reproduces.
class random_envelopes {
 public:
  explicit random_envelopes(std::uint64_t seed) : rng_(seed) {}

  std::size_t below(std::size_t n) {
    return std::uniform_int_distribution<std::size_t>(0, n - 1)(rng_);
  }
  bool chance(double p) { return std::bernoulli_distribution(p)(rng_); }

  std::string text() {
    // Bytes that matter to a scanner (quotes, escapes, brackets, separators), control
    // characters that json must escape, and multi-byte UTF-8.
    static const std::vector<std::string> pieces = {
        "a", "Z", "0", " ", "\"", "\\", "{", "}", "[", "]", ",", ":", "/", "\n", "\t",
        "\x01", "\x7f", "\xc3\xa9", "\xe2\x82\xac", "\xf0\x9f\x98\x80", "\\\"", "\"}"};
    std::string s;
    for (std::size_t n = below(12); n > 0; --n) s += pieces[below(pieces.size())];
    return s;
  }

  std::int64_t stamp() {
    switch (below(5)) {
      case 0: return 0;
      case 1: return std::numeric_limits<std::int64_t>::min();
      case 2: return std::numeric_limits<std::int64_t>::max();
      default: return std::uniform_int_distribution<std::int64_t>()(rng_);
    }
  }

  std::uint64_t id() {
    switch (below(4)) {
      case 0: return below(10);
      case 1: return std::numeric_limits<std::uint64_t>::max();
      default: return std::uniform_int_distribution<std::uint64_t>()(rng_);
    }
  }

  json value(int depth = 0) {
    switch (below(depth < 4 ? 10 : 7)) {
      case 0: return nullptr;
      case 1: return chance(0.5);
      case 2: return std::uniform_int_distribution<std::int64_t>()(rng_);
      case 3: return std::uniform_int_distribution<std::uint64_t>()(rng_);
      case 4: return std::uniform_real_distribution<double>(-1e6, 1e6)(rng_);
      case 5:
      case 6: return text();
      case 7:
      case 8: {
        json object = json::object();
        for (std::size_t n = below(4); n > 0; --n) object[text()] = value(depth + 1);
        return object;
      }
      default: {
        json array = json::array();
        for (std::size_t n = below(4); n > 0; --n) array.push_back(value(depth + 1));
        return array;
      }
    }
  }

  response make_response() {
    response r{.id = id(), .ok = chance(0.8), .t_recv_ns = stamp(), .t_done_ns = stamp()};
    if (r.ok) {
      r.result = value();
    } else {
      r.failure = {text(), text()};
    }
    return r;
  }

  std::string space() {
    static const std::vector<std::string> spaces = {"", "", "", " ", "\n", "\t", "\r\n  "};
    return spaces[below(spaces.size())];
  }

  // An ok:true envelope as another worker might write it: fields in any order, whitespace
  // between tokens, optional fields left out; `expected` is what it must decode to.
  std::string render_shuffled(response& expected) {
    expected = make_response();
    expected.ok = true;
    expected.failure = {};
    std::vector<std::pair<std::string, json>> fields = {{"id", expected.id}, {"ok", true}};
    if (chance(0.8)) {
      fields.emplace_back("result", expected.result);
    } else {
      expected.result = nullptr;
    }
    for (auto [name, stamp] : {std::pair{"t_recv_ns", &expected.t_recv_ns},
                               std::pair{"t_done_ns", &expected.t_done_ns}}) {
      if (chance(0.7)) {
        fields.emplace_back(name, *stamp);
      } else if (chance(0.5)) {
        fields.emplace_back(name, nullptr);
        *stamp = 0;
      } else {
        *stamp = 0;
      }
    }
    std::shuffle(fields.begin(), fields.end(), rng_);
    std::string out = space() + "{";
    for (std::size_t i = 0; i < fields.size(); ++i) {
      if (i > 0) out += space() + ",";
      out += space() + json(fields[i].first).dump() + space() + ":" + space();
      out += chance(0.3) ? fields[i].second.dump(2) : fields[i].second.dump();
    }
    return out + space() + "}" + space();
  }

  std::string mutate(std::string payload) {
    static const std::string bytes = "{}[]\\\",: \t\n0123456789-+.eEtrufalsn\"\x01\x7f\xc3\xff";
    for (std::size_t n = 1 + below(3); n > 0 && !payload.empty(); --n) {
      const std::size_t at = below(payload.size());
      switch (below(4)) {
        case 0: payload.erase(at, 1); break;
        case 1: payload.insert(at, 1, bytes[below(bytes.size())]); break;
        case 2: payload[at] = bytes[below(bytes.size())]; break;
        default: payload.insert(at, payload.substr(below(payload.size()), 1 + below(8))); break;
      }
    }
    return payload;
  }

 private:
  std::mt19937_64 rng_;
};

TEST(MessageFastPath, RandomResponsesRoundTrip) {
  random_envelopes random(20240611);
  for (int i = 0; i < 3000; ++i) {
    const response sent = random.make_response();
    const std::string payload = encode(sent);
    SCOPED_TRACE(payload);
    EXPECT_EQ(takes_plain_path(payload), sent.ok);
    const auto back = decode_response(payload);
    ASSERT_TRUE(back) << back.error().message;
    response expected = sent;
    if (!expected.ok) expected.result = nullptr;
    expect_same_response(*back, expected, result_match::equal);
    expect_decodes_as_json_does(payload);
    if (HasFatalFailure()) return;
  }
}

TEST(MessageFastPath, RandomlyLaidOutEnvelopesDecode) {
  random_envelopes random(7);
  for (int i = 0; i < 3000; ++i) {
    response expected;
    const std::string payload = random.render_shuffled(expected);
    SCOPED_TRACE(payload);
    EXPECT_TRUE(takes_plain_path(payload));
    const auto back = decode_response(payload);
    ASSERT_TRUE(back) << back.error().message;
    expect_same_response(*back, expected, result_match::equal);
    expect_decodes_as_json_does(payload);
    if (HasFatalFailure()) return;
  }
}

TEST(MessageFastPath, RandomlyDamagedEnvelopesDecodeAsJsonDoes) {
  random_envelopes random(99);
  int plain_accepted = 0;
  for (int i = 0; i < 20000; ++i) {
    response unused;
    const std::string original =
        random.chance(0.5) ? random.render_shuffled(unused) : encode(random.make_response());
    const std::string payload = random.mutate(original);
    if (takes_plain_path(payload)) ++plain_accepted;
    expect_decodes_as_json_does(payload);
    if (HasFatalFailure()) return;
  }
  // Some damage leaves a valid envelope (a digit changed, a space added): make sure those
  // were compared too, not only refusals.
  EXPECT_GT(plain_accepted, 100);
}

}  // namespace
}  // namespace procpool
