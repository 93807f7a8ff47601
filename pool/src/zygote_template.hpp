// Internal: the pool's side of one zygote template (pool/ZYGOTE.md) and the workers it forks.
//
//   auto tpl = zygote_template::launch({.argv = {worker}}, 10s, 1s);  // adds --zygote
//   if (!tpl) fail(tpl.error().message);         // preload_failed, EOF, timeout: stderr quoted
//   auto w = (*tpl)->fork({{"PROCPOOL_WORKER_ID", "1"}}, 10s);
//   ... the ordinary worker protocol on w->process.stdin_fd() / stdout_fd() ...
//   w->process.stop({});                         // close stdin, SIGTERM, SIGKILL, `reap`
//   (*tpl)->close({});                           // EOF on the channel, wait, kill, reap
//
// launch() waits for `ready`; spawn() + try_ready() do the same from an event loop.
// Otherwise synchronous: each request waits for its reply (one outstanding at a time; the template
// answers in order). Nothing here is thread-safe; the supervisor thread owns a template and
// its workers. Each forked worker_process shares ownership of its template (its reaper), so
// the template lives until its last worker is reaped; once it has closed or died, their reaps
// report SIGKILL (the true status is lost with it).
#pragma once

#include <sys/types.h>

#include <chrono>
#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "procpool/clock.hpp"
#include "procpool/result.hpp"
#include "procpool/wire/control_channel.hpp"
#include "procpool/wire/fd.hpp"
#include "procpool/wire/worker_process.hpp"
#include "process_reaper.hpp"

namespace procpool {

// A worker forked by a template: a worker_process (adopt_forked) reaped through the template,
// plus the protocol's id and the template's fork stamp.
struct forked_worker {
  worker_process process;
  std::uint64_t id = 0;
  std::int64_t t_fork_ns = 0;  // the template's CLOCK_MONOTONIC just before fork()
};

class zygote_template final : public detail::process_reaper,
                              public std::enable_shared_from_this<zygote_template> {
 public:
  // Launches `worker.argv` + --zygote like a worker (own group, PR_SET_PDEATHSIG, ...) with
  // the channel on fd 0 and PROCPOOL_ZYGOTE_FD=0, and waits up to `ready_timeout` for
  // `ready`. On any failure the template is killed and reaped and the error (start_failed)
  // quotes its stderr. `reply_timeout` bounds every later reply (fork, reap).
  static result<std::shared_ptr<zygote_template>> launch(const launch_options& worker,
                                                         std::chrono::milliseconds ready_timeout,
                                                         std::chrono::milliseconds reply_timeout);
  // The first half of launch(), for an event loop: starts the template and returns at once.
  // Wait for channel_fd() to be readable, then call try_ready(); on failure, close() it.
  static result<std::shared_ptr<zygote_template>> spawn(const launch_options& worker,
                                                        std::chrono::milliseconds reply_timeout);
  // Reads `ready` without blocking: false while nothing has arrived yet. An error (preload
  // failed, EOF, a malformed message) quotes the stderr read so far; the template is then
  // unusable.
  result<bool> try_ready();
  ~zygote_template() override;  // close({}) when not closed yet
  zygote_template(const zygote_template&) = delete;
  zygote_template& operator=(const zygote_template&) = delete;

  pid_t pid() const noexcept { return process_.pid(); }
  int pidfd() const noexcept { return process_.pidfd(); }
  int stderr_fd() const noexcept { return process_.stderr_fd(); }
  int channel_fd() const noexcept { return channel_.get(); }
  // "; template stderr: ..." with what was drained so far, or "" when nothing was.
  std::string stderr_quote() const;
  // Its exit status once it exited (non-blocking), as worker_process::peek_exit.
  std::optional<exit_status> exit_status_now() { return process_.peek_exit(std::chrono::milliseconds(0)); }
  const nlohmann::json& ready_message() const noexcept { return ready_; }
  // False once the channel failed, the template misbehaved or exited (its pidfd says so;
  // nothing else watches it yet), or close() ran.
  bool usable() const noexcept;
  // What made it unusable, with the stderr read so far.
  const std::string& fault() const noexcept { return fault_; }

  // Makes the worker's three pipes, sends `fork` with `env`, waits for `forked`. The worker
  // holds a reference to this template (its reaper).
  result<forked_worker> fork(const std::map<std::string, std::string>& env,
                             std::chrono::milliseconds timeout);
  // `reap` for a worker whose pidfd is readable; the caller killpg'd its group first.
  // An empty optional: `running` (not exited yet). Errors: the template is unusable.
  result<std::optional<exit_status>> reap(std::uint64_t id) override;

  // EOF on the channel (the template kills and reaps what it still holds and exits 0), then
  // the stop plan's waits, SIGKILL of its group, reap.
  exit_status close(const stop_plan& plan);
  // Non-blocking; keeps the last 16 KiB for fault(); false once the pipe reached EOF. An idle
  // template's stderr must be drained by its owner's event loop, or a chatty one blocks.
  bool drain_stderr();

 private:
  zygote_template(worker_process process, unique_fd channel);
  result<void> await_ready(deadline until);
  result<void> accept_ready(const std::string& payload);  // `ready`, or fail() saying why
  // One datagram each way; any failure makes the template unusable (fail()).
  result<void> send(const nlohmann::json& body, std::span<const int> fds, deadline until);
  result<zygote::control_message> receive(deadline until);
  error fail(std::string what);  // marks it unusable; the error and fault_ quote its stderr

  worker_process process_;
  unique_fd channel_;
  std::uint64_t next_id_ = 1;
  nlohmann::json ready_;
  std::string stderr_text_;
  bool stderr_open_ = true;  // false once its pipe reached EOF: no longer polled (POLLHUP spins)
  std::string fault_;
  std::chrono::milliseconds reply_timeout_{1000};
};

}  // namespace procpool
