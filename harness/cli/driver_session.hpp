// A session with one external-pool driver, for `procpool driver-check`
// (driver_check_command.cpp): the launched driver's pipes, and its lines filed as they come
// in, done lines in a ledger by id (with their stamps checked), worker and pool lines counted,
// lines that are not protocol kept to be quoted. The contract is harness/subjects/DRIVERS.md.
//
//   session s(options);
//   s.check("echo", [&]() -> check_result {
//     auto id = s.submit("echo", {{"x", 1}});
//     if (!id) return std::move(id).error();     // a failed step fails the check
//     auto done = s.await_done(*id);
//     ...
//   });
//   s.finish({"echo"});                          // kills and reaps the driver's process group
#pragma once

#include <fmt/format.h>

#include <chrono>
#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "procpool/clock.hpp"
#include "procpool/result.hpp"
#include "procpool/wire/stderr_tail.hpp"
#include "procpool/wire/worker_process.hpp"
#include "subjects/driver_line.hpp"

namespace procpool::harness::driver_check {

using json = nlohmann::json;

struct check_options {
  std::vector<std::string> command;
  unsigned timeout_ms = 10'000;
  unsigned jobs = 4;
};

// Nanoseconds as milliseconds.
double ms(std::int64_t ns);
// Text the driver wrote, made printable: control bytes escaped, cut after 300 bytes.
std::string printable(std::string_view text);
// A line the driver wrote, as the FAIL lines quote it: in backquotes, printable.
std::string quote(std::string_view line);

// --- one launched driver's pipes -----------------------------------------------------------------

struct stdout_line {
  std::string text;
  bool overlong = false;      // longer than the harness's 16 MiB limit: text holds its start
  bool unterminated = false;  // the output ended before this line's newline
};

// One launched driver: its stdin, its stdout cut into lines, the tail of its stderr, its exit.
// Every wait polls stdout, stderr and the pidfd together, so stderr is drained whatever is
// awaited, and an exited driver is reaped at once, which kills what is left of its process
// group (worker_process::try_wait). Destroying it SIGKILLs the group and reaps the driver.
class driver_pipe {
 public:
  explicit driver_pipe(worker_process proc) : proc_(std::move(proc)) {}

  // Writes `line` and its newline whole by `until`; otherwise why not.
  std::optional<std::string> write_line(std::string_view line, deadline until);
  void close_stdin() { proc_.close_stdin(); }

  enum class got { line, end_of_output, timed_out };
  // The next line of stdout. A passed `until` still returns the lines already read.
  got read_line(stdout_line& out, deadline until);
  // Waits by `until` for the driver to exit and its pipes to close (their lines are kept for
  // read_line); nullopt when it is still running then.
  std::optional<exit_status> wait_exit(deadline until);

  std::string stderr_lines(std::size_t n) const { return stderr_.last_lines(n); }

 private:
  void pump(deadline until);
  void read_stdout();
  void read_stderr();
  void take(std::string_view chunk);

  worker_process proc_;
  stderr_tail stderr_;
  std::vector<char> buffer_ = std::vector<char>(64 * 1024);
  std::string partial_;
  bool overlong_ = false;  // discarding the rest of an overlong line
  std::deque<stdout_line> lines_;
  bool stdout_open_ = true;
  bool stderr_open_ = true;
};

// --- outcomes ------------------------------------------------------------------------------------

// What went wrong in a step. fatal: the driver cannot be used further (it timed out, exited
// or answered out of turn), and the rest of its session's checks are skipped.
struct problem {
  std::string why;
  std::vector<std::string> notes = {};  // printed indented under the FAIL line: stderr
  bool fatal = false;
};

template <class T>
using step = result<T, problem>;

enum class verdict { pass, warn, fail, skip };

struct check_result {
  verdict outcome = verdict::pass;
  std::string detail;
  std::vector<std::string> notes;
  bool fatal = false;

  check_result() = default;
  // A step that failed fails its check.
  check_result(problem p)  // NOLINT(google-explicit-constructor)
      : outcome(verdict::fail),
        detail(std::move(p.why)),
        notes(std::move(p.notes)),
        fatal(p.fatal) {}
};

// --- a session: one driver, its lines filed ------------------------------------------------------

// A protocol line the driver wrote, parsed twice: checked by parse_driver_line, and as JSON
// for the fields the harness itself does not read.
struct received_line {
  driver_line line;
  json raw;
  std::string text;
  std::int64_t t_read = 0;
};

// One submitted task and the done lines that answered it.
struct task {
  std::string command;
  bool answerable = true;     // false: a submit the driver must refuse (before start)
  std::int64_t t_sent = 0;    // just before its submit line was written; also its t_intended_ns
  int answers = 0;            // done lines for it, well-formed or not
  std::uint64_t arrival = 0;  // the order of its first done line among the session's
  std::optional<received_line> done;     // the first done line, when well-formed
  std::optional<std::string> malformed;  // else why it was not, quoting it
};

// What a session found over all its done lines, for the checks that span every session.
struct done_tally {
  std::size_t stamps_checked = 0;
  std::vector<std::string> stamp_faults;
  std::vector<std::string> id_faults;  // a done for an id never submitted, a second done
  std::size_t submitted = 0;
  std::size_t answered = 0;
};

class session {
 public:
  explicit session(const check_options& options) : options_(options) {}

  // Runs `body` (returning a check_result) as check `name`, launching the driver first if none
  // runs yet; does nothing once an earlier check broke the session.
  template <class Body>
  void check(std::string_view name, Body&& body);
  // Marks the checks of `names` that did not run as skipped, and kills and reaps the driver's
  // process group if anything is left of it.
  void finish(const std::vector<std::string_view>& names);

  step<void> send(const json& op, std::string_view what);
  step<void> send_text(std::string_view line, std::string_view what);
  // Writes a submit with a fresh id and t_intended_ns, and books the id; an id not
  // `answerable` is left out of "one done per id".
  step<std::uint64_t> submit(std::string_view command, json args, bool answerable = true);
  // Writes start and awaits "started".
  step<received_line> start(bool warm, json config);
  // Reads up to the next `kind` line. Done lines on the way are booked (or, unless
  // `dones_expected`, break the session), other events break it.
  step<received_line> await_event(driver_event kind, std::string_view what,
                                  bool dones_expected = true);
  // Reads until task `id` has its done line; fails at once when that line is malformed.
  step<received_line> await_done(std::uint64_t id);

  struct ending {
    exit_status status;
    std::vector<std::string> lines;  // the non-blank lines read while waiting for the exit
  };
  // Waits for the driver to exit; `when` finishes "did not exit within N ms ...".
  step<ending> await_exit(std::string_view when);
  void close_stdin() { pipe_->close_stdin(); }

  const task& task_of(std::uint64_t id) const { return tasks_.at(id); }
  std::size_t done_lines() const { return done_lines_; }
  std::size_t worker_lines() const { return worker_lines_; }
  std::size_t pool_lines() const { return pool_lines_; }
  std::vector<std::string> stderr_notes() const;
  done_tally tally() const;
  const std::map<std::string, check_result, std::less<>>& results() const { return results_; }

 private:
  deadline step_deadline() const {
    return deadline_after(std::chrono::milliseconds(options_.timeout_ms));
  }
  step<std::optional<received_line>> next_event(std::string_view what, deadline until);
  std::optional<received_line> file(stdout_line line);
  void book_done(const received_line& done);
  void book_malformed_done(std::uint64_t id, std::string why);
  void check_stamps(const task& t, const received_line& done);
  std::optional<problem> junk_problem() const;
  std::string junk_suffix() const;
  problem timed_out(std::string_view what) const;
  problem ended(std::string_view what);
  problem out_of_turn(const received_line& event, std::string_view what) const;

  const check_options& options_;
  std::optional<driver_pipe> pipe_;
  std::string broken_in_;  // the check that broke the session
  std::uint64_t next_id_ = 1;
  std::map<std::uint64_t, task> tasks_;
  std::uint64_t arrivals_ = 0;
  std::size_t done_lines_ = 0;
  std::size_t worker_lines_ = 0;
  std::size_t pool_lines_ = 0;
  std::vector<std::string> junk_;  // lines that are not protocol, read during this await
  done_tally tally_;
  std::map<std::string, check_result, std::less<>> results_;
};

template <class Body>
void session::check(std::string_view name, Body&& body) {
  if (!broken_in_.empty()) return;
  check_result r;
  if (!pipe_) {
    auto launched = worker_process::launch({.argv = options_.command});
    if (launched) {
      pipe_.emplace(std::move(*launched));
    } else {
      r = problem{fmt::format("cannot launch the driver: {}", launched.error().message), {}, true};
    }
  }
  if (pipe_) r = body();
  if (r.outcome == verdict::fail && r.fatal) broken_in_ = std::string(name);
  results_.emplace(std::string(name), std::move(r));
}

}  // namespace procpool::harness::driver_check
