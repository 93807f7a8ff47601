// decode_init_reply on any payload: never throws or crashes, refuses with a protocol_error,
// and what it accepts survives encode and decode unchanged.
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "fuzz_check.hpp"
#include "procpool/wire/message.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  using procpool::fuzz::check;
  const std::string_view payload(reinterpret_cast<const char*>(data), size);
  const auto reply = procpool::decode_init_reply(payload);
  if (!reply) {
    check(reply.error().code == procpool::errc::protocol_error,
          "a malformed init reply is not a protocol_error", reply.error().message);
    return 0;
  }
  const auto again = procpool::decode_init_reply(procpool::encode(*reply));
  check(static_cast<bool>(again), "an encoded init reply does not decode",
        again ? "" : again.error().message);
  const auto& a = again->base;
  const auto& b = reply->base;
  check(a.id == b.id && a.ok == b.ok && a.result == b.result && a.failure.type == b.failure.type &&
            a.failure.message == b.failure.message && a.t_recv_ns == b.t_recv_ns &&
            a.t_done_ns == b.t_done_ns,
        "an init reply's envelope does not survive encode and decode");
  if (b.ok) {
    check(again->pid == reply->pid && again->t_main_ns == reply->t_main_ns &&
              again->t_init_done_ns == reply->t_init_done_ns,
          "an init reply's process facts do not survive encode and decode");
  }
  return 0;
}
