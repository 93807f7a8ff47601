// One line of an external pool driver's stdout (harness/subjects/DRIVERS.md), parsed on its
// own: which event it is and its checked fields, or the protocol error it is. What the event
// means at this point of the session (a second "started", a done line for an id never
// submitted) is the external subject's to judge.
//
//   auto line = parse_driver_line(R"({"event":"started","t_ns":1})");
//   if (!line) kill_driver(line.error());
//   else if (line->event == driver_event::done) complete(line->done);
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "procpool/result.hpp"
#include "procpool/wire/message.hpp"

namespace procpool::harness {

// A "done" event's fields.
struct driver_done {
  std::uint64_t id = 0;
  response reply;  // id, ok, result or failure; t_recv_ns and t_done_ns: the worker's stamps
  std::int64_t t_start_ns = 0;
  std::int64_t t_done_ns = 0;
  std::uint64_t worker_pid = 0;  // 0: no worker ran the task
};

// A "worker" event: one of the pool's processes was spawned, became ready, or exited.
enum class driver_worker_state { spawned, ready, exited };

struct driver_worker {
  std::uint64_t pid = 0;
  driver_worker_state state = driver_worker_state::spawned;
  std::int64_t t_ns = 0;
  std::int64_t t_spawn_ns = 0;  // the stamps the driver has; 0 when it has none
  std::int64_t t_main_ns = 0;
  std::int64_t t_init_done_ns = 0;
  std::string cause;     // exited: why, in the driver's words
  bool planned = false;  // exited: retired by the pool on purpose, not a fault
};

// A "pool" event: the pool's own counts at t_ns, sent on the driver's initiative.
struct driver_pool_sample {
  std::int64_t t_ns = 0;
  std::uint64_t queued = 0;
  std::uint64_t busy = 0;
  std::uint64_t alive = 0;
};

enum class driver_event { blank, started, error, done, stats, stopped, worker, pool };

struct driver_line {
  driver_event event = driver_event::blank;
  std::string message;  // error: its message, or the whole line when it has none
  driver_done done;     // done: its fields
  driver_worker worker;      // worker: its fields
  driver_pool_sample pool;   // pool: its fields
  bool cold = false;         // started: the driver answered "warm": false (it did not warm)
  std::int64_t t_ns = 0;     // started: when the pool was ready (or created, when cold)
  std::vector<std::uint64_t> pids;  // started: the worker pids it listed, if any
};

// Parses one line without its newline; a trailing '\r' is dropped, and an empty line is
// driver_event::blank. A line that is not a JSON object, has no 'event' string, names an
// event the protocol does not have, or is a done, worker or pool line with a field missing,
// mistyped or out of its range (stamps are signed 64-bit), is a protocol_error saying which.
// Never throws.
result<driver_line> parse_driver_line(std::string_view text);

}  // namespace procpool::harness
