// procpool::pool: a pool of long-lived worker processes spoken to over stdin/stdout.
//
// The caller's thread checks a worker out and does the request's I/O itself: there is no
// manager hop on the request path. Waiting callers are served first come, first served; a
// returned worker is handed straight to the longest waiter. One supervisor thread owns the
// processes: it spawns them (at most max_concurrent_starts at once), completes their
// handshakes, drains their stderr, notices their exits, and replaces the lost ones with
// backoff.
//
//   auto pool = procpool::pool::create({.worker = {.argv = {"procpool-fake-worker"}}});
//   if (!pool) die(pool.error().message);
//   auto reply = pool->call("echo", {{"hello", "world"}});
//   if (!reply) log(procpool::to_string(reply.error().code), reply.error().message);
//   else use(reply->value);
//
// Every call returns a value or a typed error and never waits past its deadline plus a
// bounded grace. Thread-safe: call() from any number of threads.
//
// Destruction: stops the pool as stop() does. Workers never outlive the pool (each has its
// own process group, killed at stop, and PR_SET_PDEATHSIG tied to the supervisor thread). A
// worker_lease still held is waited for up to the drain timeout, then revoked: its later
// calls fail with errc::pool_stopped, and releasing it does nothing.
//
// Process-wide side effects, made once and never undone:
// - SIGPIPE is ignored (SIG_IGN) from the first worker start, so that a worker dying while
//   a request is written to it is an error returned by the call rather than a signal that
//   kills the program. Workers themselves start with SIGPIPE at its default.
// - pool::create raises the soft RLIMIT_NOFILE when it is below about 7 descriptors per
//   worker plus 64; it fails with errc::invalid_options when the hard limit is lower.
// - pool::create forks one small guard process that kills the workers' process groups if
//   the program dies without stopping the pool.
//
// Observers (pool_options::observer) run synchronously:
// - on_worker_event runs on the thread that changed the worker's state (the supervisor
//   thread, or a caller's thread at checkout and give-back) while it holds the pool's lock,
//   in order per worker. It must not call into the pool (call, checkout, stats, wait_ready,
//   stop, nor release or destroy a worker_lease): the lock is not recursive and it would
//   deadlock. Keep it short and non-blocking: every checkout and the supervisor wait on it.
// - on_request runs on the calling thread once the request is over (after the worker went
//   back to the pool, for pool::call), without the pool's lock; its time adds to the call's.
#pragma once

#include <chrono>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "procpool/clock.hpp"
#include "procpool/pool_options.hpp"
#include "procpool/pool_stats.hpp"
#include "procpool/reply.hpp"
#include "procpool/result.hpp"

namespace procpool {

struct call_options {
  // Give up waiting for a worker at this time (default: now + checkout_timeout).
  std::optional<deadline> checkout_deadline = std::nullopt;
  // Give up on the reply at this time (default: checkout + request_timeout). A worker that
  // misses it is killed and replaced.
  std::optional<deadline> reply_deadline = std::nullopt;
  // Session affinity: calls with the same key go to the same worker (see affinity_mode).
  std::string affinity_key = {};
};

class worker_lease;

// Why wait_ready returned.
enum class ready_state {
  ready,      // every configured worker is up
  timed_out,  // the deadline passed first
  degraded,   // starts keep failing (see pool_options::crash_loop_failures)
  stopped,    // the pool is stopping or stopped, or was moved from
};

std::string_view to_string(ready_state s) noexcept;

struct stop_options {
  // How long in-flight calls may finish before their workers are killed.
  std::chrono::milliseconds drain_timeout{5'000};
};

class pool {
 public:
  static result<pool> create(pool_options options);

  pool(pool&&) noexcept;
  pool& operator=(pool&&) noexcept;
  ~pool();

  // Checks out a worker, sends `command` with `args`, waits for the reply: the worker's
  // result with the request's stamps. An ok:false reply is errc::worker_error with the
  // worker's type and message.
  result<reply> call(std::string_view command, nlohmann::json args = nullptr,
                     const call_options& options = {});

  // Checks a worker out for several calls in a row (see worker_lease.hpp). Errors as for
  // call()'s checkout: checkout_timeout, queue_full, pool_stopped, start_failed.
  result<worker_lease> checkout(const call_options& options = {});

  // Waits until every configured worker is ready, the pool is degraded or stopping, or
  // `until`, and says which.
  ready_state wait_ready(deadline until);

  pool_stats stats() const;

  // Each live worker's memory from /proc/PID/smaps_rollup, read now: USS against PSS shows
  // what the workers of a zygote share. A file read per worker, so not part of stats(); a
  // worker that exits meanwhile, or a kernel without the file (before 4.14), is left out.
  std::vector<worker_memory> workers_memory() const;

  // Refuses new calls, lets in-flight calls and held leases finish (up to drain_timeout),
  // revokes the leases still held, stops every worker gracefully then forcefully, and joins
  // the supervisor. Idempotent.
  void stop(const stop_options& options = {});

 private:
  class impl;
  friend class worker_lease;
  friend class supervisor;  // the pool's internal process supervisor

  explicit pool(std::unique_ptr<impl> impl);
  std::unique_ptr<impl> impl_;
};

}  // namespace procpool
