// One spawned worker process: its pid, its pipes, its process group and its exit.
//
// Each worker runs in a process group of its own and receives SIGKILL if the thread that
// launched it dies (PR_SET_PDEATHSIG), so neither the worker nor anything it forks can
// outlive the pool. Launch from a long-lived thread: PDEATHSIG follows the launching
// thread, not the process.
//
//   auto proc = procpool::worker_process::launch({.argv = {"procpool-fake-worker"}});
//   if (!proc) fail(proc.error().message);   // names the missing binary, errno text
//   ...
//   auto status = proc->stop({});             // close stdin, SIGTERM, SIGKILL, reap
//
// Destruction: a worker_process that was not stopped or reaped is killed (SIGKILL to its
// whole group) and reaped by its destructor, which may therefore block for as long as the
// kernel takes to deliver SIGKILL. It never leaves a zombie or an orphan.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "procpool/result.hpp"
#include "procpool/wire/fd.hpp"

namespace procpool {

namespace detail {
class process_reaper;  // pool/src/process_reaper.hpp: reaps a process that is not our child
}  // namespace detail

// How the pool starts its workers (pool/ZYGOTE.md). worker_process::launch ignores it.
enum class start_mode {
  spawn,   // each worker is a fresh fork+exec of argv
  zygote,  // one template (argv + --zygote) per pool runs the preload and forks each worker
};

struct launch_options {
  // argv[0] is a path or a name looked up in PATH. No shell is involved.
  std::vector<std::string> argv;
  // Variables set (or overriding) in the worker's environment.
  std::map<std::string, std::string> env = {};
  // When false the worker sees only `env`.
  bool inherit_environment = true;
  // Empty: the pool's working directory.
  std::string working_directory = {};
  // Read by the pool only: see pool/ZYGOTE.md.
  procpool::start_mode start_mode = procpool::start_mode::spawn;
};

struct exit_status {
  int code = -1;    // exit code when the process exited, else -1
  int signal = 0;   // terminating signal when the process was killed, else 0
  // peek_exit of a forked worker (zygote mode): it exited, but only its template can say how
  // until it is reaped.
  bool pending = false;

  bool exited_cleanly() const noexcept { return code == 0 && signal == 0; }
  std::string describe() const;  // "exited with code 3", "killed by SIGSEGV"
};

// The graceful-then-forceful stop sequence.
struct stop_plan {
  std::chrono::milliseconds after_stdin_close = std::chrono::milliseconds(200);
  std::chrono::milliseconds after_sigterm = std::chrono::milliseconds(500);
};

class worker_process {
 public:
  static result<worker_process> launch(const launch_options& options);
  // A zygote template's launch (pool/src/zygote_template.cpp): as launch(), but the child's
  // fd 0 is `channel` (not closed here) and its fds 1 and 2 share one pipe, whose read end is
  // stderr_fd(); stdin_fd() and stdout_fd() are -1.
  static result<worker_process> launch_template(const launch_options& options, int channel);
  // A worker forked by a zygote template (pool/src/zygote_template.cpp) from the pool's pipe
  // ends and the pidfd the template sent. It is not our child: try_wait/kill/stop reap it
  // through `reaper` (after the pidfd turned readable and its group was SIGKILLed), on the
  // thread that owns the template; peek_exit says `pending` once it exited.
  static worker_process adopt_forked(pid_t pid, unique_fd pidfd, unique_fd stdin_fd,
                                     unique_fd stdout_fd, unique_fd stderr_fd,
                                     std::int64_t t_spawn_ns,
                                     std::shared_ptr<detail::process_reaper> reaper,
                                     std::uint64_t reaper_id);

  worker_process(worker_process&& other) noexcept;
  worker_process& operator=(worker_process&& other) noexcept;
  worker_process(const worker_process&) = delete;
  worker_process& operator=(const worker_process&) = delete;
  ~worker_process();

  pid_t pid() const noexcept { return pid_; }
  // CLOCK_MONOTONIC just before the fork: the start of the worker's start-up latency.
  std::int64_t t_spawn_ns() const noexcept { return t_spawn_ns_; }

  // Pipe ends held by the pool, all non-blocking and close-on-exec; -1 once closed.
  int stdin_fd() const noexcept { return stdin_fd_.get(); }
  int stdout_fd() const noexcept { return stdout_fd_.get(); }
  int stderr_fd() const noexcept { return stderr_fd_.get(); }
  // A pidfd that becomes readable when the process exits; -1 once reaped.
  int pidfd() const noexcept { return pidfd_.get(); }

  void close_stdin() noexcept;

  // Sends `sig` to the worker's whole process group (grandchildren included); a no-op once
  // the worker is reaped.
  void signal_group(int sig) noexcept;

  // Reaps the process if it has exited; never blocks. Reaping first SIGKILLs whatever is
  // left in the worker's process group: nothing a worker forked outlives it.
  std::optional<exit_status> try_wait();
  // Waits up to `timeout` for the process to exit and reaps it.
  std::optional<exit_status> wait_for(std::chrono::milliseconds timeout);
  std::optional<exit_status> status() const noexcept { return status_; }
  // Waits up to `timeout` for the process to exit and reports how, without reaping it: the
  // pid stays reserved, so its group can still be signalled safely. Only reads state, so a
  // caller doing I/O with the worker may use it while another thread owns the reaping.
  std::optional<exit_status> peek_exit(std::chrono::milliseconds timeout) const;

  // Closes stdin, waits, SIGTERMs the group, waits, SIGKILLs the group; reaps.
  exit_status stop(const stop_plan& plan);
  // SIGKILLs the group and reaps.
  exit_status kill();

 private:
  worker_process() = default;
  void release() noexcept;
  static result<worker_process> launch_with(const launch_options& options, int channel);
  std::optional<exit_status> try_wait_forked();

  pid_t pid_ = -1;
  unique_fd pidfd_;
  unique_fd stdin_fd_;
  unique_fd stdout_fd_;
  unique_fd stderr_fd_;
  std::int64_t t_spawn_ns_ = 0;
  std::optional<exit_status> status_;
  std::shared_ptr<detail::process_reaper> reaper_;  // forked workers only
  std::uint64_t reaper_id_ = 0;
};

}  // namespace procpool
