#include "procpool/message.hpp"

#include <gtest/gtest.h>

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

}  // namespace
}  // namespace procpool
