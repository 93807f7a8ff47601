// decode_response, which reads plain ok:true envelopes by hand, against the whole-payload
// parse that defines the format (as MessageFastPath's tests in tests/pool/message_test.cpp
// do): for every payload both must give the same response, number types included, or the
// same error. A payload the hand reader accepts must be one the general path accepts. Any
// difference aborts.
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include <fmt/format.h>

#include "fuzz_check.hpp"
#include "message_fast_path.hpp"  // private: pool/src
#include "procpool/wire/message.hpp"

namespace {

using nlohmann::json;
using procpool::fuzz::check;
using procpool::fuzz::fail;

std::string shown(const json& value) {
  return value.dump(-1, ' ', false, json::error_handler_t::replace);
}

// Stricter than json's operator==, which equates 1, 1u and 1.0: what a caller sees of a
// decoded result includes the number types.
bool identical(const json& a, const json& b) {
  if (a.type() != b.type()) return false;
  if (b.is_object()) {
    if (a.size() != b.size()) return false;
    for (auto x = a.begin(), y = b.begin(); y != b.end(); ++x, ++y) {
      if (x.key() != y.key() || !identical(*x, *y)) return false;
    }
    return true;
  }
  if (b.is_array()) {
    if (a.size() != b.size()) return false;
    for (std::size_t i = 0; i < b.size(); ++i) {
      if (!identical(a[i], b[i])) return false;
    }
    return true;
  }
  return a == b;
}

void check_same(const procpool::response& a, const procpool::response& b, std::string_view what,
                std::string_view payload) {
  if (a.id == b.id && a.ok == b.ok && a.failure.type == b.failure.type &&
      a.failure.message == b.failure.message && a.t_recv_ns == b.t_recv_ns &&
      a.t_done_ns == b.t_done_ns && identical(a.result, b.result)) {
    return;
  }
  fail(what, fmt::format("payload: {}\nfirst: {}\nsecond: {}", shown(json(std::string(payload))),
                         shown(a.result), shown(b.result)));
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  namespace internals = procpool::message_internals;
  const std::string_view payload(reinterpret_cast<const char*>(data), size);
  const auto plain = internals::try_decode_plain_response(payload);
  const auto general = internals::decode_response_as_json(payload);
  const auto decoded = procpool::decode_response(payload);
  const auto quoted = [&] { return shown(json(std::string(payload))); };

  if (plain) {
    if (!general) {
      fail("the hand reader accepted what the general path refuses",
           fmt::format("payload: {}\nerror: {}", quoted(), general.error().message));
    }
    check(plain->ok, "the hand reader accepted an ok:false envelope");
    check_same(*plain, *general, "the hand reader and the general path differ", payload);
  }
  if (static_cast<bool>(decoded) != static_cast<bool>(general)) {
    fail("decode_response and the general path disagree on success",
         fmt::format("payload: {}\nerror: {}", quoted(),
                     decoded ? general.error().message : decoded.error().message));
  }
  if (!general) {
    if (decoded.error().code != general.error().code ||
        decoded.error().message != general.error().message) {
      fail("decode_response and the general path fail differently",
           fmt::format("payload: {}\n{}\n{}", quoted(), decoded.error().message,
                       general.error().message));
    }
    check(general.error().code == procpool::errc::protocol_error,
          "a malformed response is not a protocol_error", general.error().message);
    return 0;
  }
  check_same(*decoded, *general, "decode_response and the general path differ", payload);

  // What decodes, encodes and decodes again to an equal response.
  const auto again = procpool::decode_response(procpool::encode(*decoded));
  check(static_cast<bool>(again), "an encoded response does not decode",
        again ? "" : again.error().message);
  check(again->id == decoded->id && again->ok == decoded->ok &&
            again->result == decoded->result && again->failure.type == decoded->failure.type &&
            again->failure.message == decoded->failure.message &&
            again->t_recv_ns == decoded->t_recv_ns && again->t_done_ns == decoded->t_done_ns,
        "a response does not survive encode and decode");
  return 0;
}
