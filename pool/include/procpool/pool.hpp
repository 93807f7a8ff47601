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
//
// Every call returns a value or a typed error and never waits past its deadline plus a
// bounded grace. Thread-safe: call() from any number of threads.
//
// Destruction: stops the pool as stop() does. Workers never outlive the pool (each has its
// own process group, killed at stop, and PR_SET_PDEATHSIG tied to the supervisor thread).
#pragma once

#include <chrono>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include <nlohmann/json.hpp>

#include "procpool/clock.hpp"
#include "procpool/wire/message.hpp"
#include "procpool/pool_options.hpp"
#include "procpool/pool_stats.hpp"
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

  // Checks out a worker, sends `command` with `args`, waits for the reply. An ok:false reply
  // is errc::worker_error with the worker's type and message.
  result<response> call(std::string_view command, nlohmann::json args = nullptr,
                        const call_options& options = {});

  // Checks a worker out for several calls in a row (see worker_lease.hpp). Errors as for
  // call()'s checkout: checkout_timeout, queue_full, pool_stopped, start_failed.
  result<worker_lease> checkout(const call_options& options = {});

  // Waits until every configured worker is ready, or `until`. False when the deadline
  // passed first or the pool is degraded.
  bool wait_ready(deadline until);

  pool_stats stats() const;

  // Refuses new calls, lets in-flight calls finish (up to drain_timeout), stops every
  // worker gracefully then forcefully, and joins the supervisor. Idempotent.
  void stop(const stop_options& options = {});

  class impl;

 private:
  explicit pool(std::unique_ptr<impl> impl);
  std::unique_ptr<impl> impl_;
};

}  // namespace procpool
