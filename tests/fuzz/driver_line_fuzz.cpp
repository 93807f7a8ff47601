// The external driver's line parser on any line: never throws or crashes, refuses with a
// protocol_error, and a done line it accepts is consistent with itself.
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "fuzz_check.hpp"
#include "subjects/driver_line.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  using procpool::fuzz::check;
  using procpool::harness::driver_event;
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  const auto line = procpool::harness::parse_driver_line(text);
  if (!line) {
    check(line.error().code == procpool::errc::protocol_error,
          "a bad line is not a protocol_error", line.error().message);
    check(!line.error().message.empty(), "a protocol error without a message");
    return 0;
  }
  if (line->event == driver_event::blank) {
    check(text.empty() || text == "\r", "a line with content parsed as blank");
  }
  if (line->event == driver_event::done) {
    const auto& done = line->done;
    check(done.reply.id == done.id, "a done line's reply carries another id");
    if (done.reply.ok) {
      check(done.reply.failure.type.empty() && done.reply.failure.message.empty(),
            "an ok done line carries a failure");
    } else {
      check(done.reply.result.is_null(), "a failed done line carries a result");
    }
  }
  if (line->event == driver_event::worker) {
    check(line->worker.pid > 0, "a worker line with pid 0");
  }
  for (const auto pid : line->pids) check(pid > 0, "a started line lists pid 0");
  return 0;
}
