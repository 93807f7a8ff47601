// procpool::pool: a pool of long-lived worker processes spoken to over stdin/stdout.
//
// The caller's thread checks a worker out and does the request's I/O itself: there is no
// manager hop on the request path. Waiting callers are served first come, first served; a
// returned worker is handed straight to the longest waiter. With no one waiting, a caller
// keeps its worker for its next call, taken again without the pool's lock (unless worker
// events are observed or the call has an affinity key); whoever needs a worker takes a kept
// one back. One supervisor thread owns the
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
// Many small tasks: submit() returns at once with a reply_future, and map() streams a batch
// in order (map_unordered as each completes). Both go through one dispatcher thread per pool,
// started at the first of them, which writes requests to workers and reads their replies
// with no thread of the caller's waiting; with pipeline_depth > 1 it writes several requests
// to a worker back to back, and a call() that finds no worker free joins that queue instead
// of waiting for a whole worker. Completion callbacks and a submitted or queued request's
// on_request run on that thread. See pool/ASYNC.md.
//
//   std::vector<procpool::reply_future> futures;
//   for (int i = 0; i < 1000; ++i) futures.push_back(pool->submit("echo", i));
//   for (auto& f : futures) use(f.get());
//   for (auto r : pool->map("echo", inputs)) use(r);
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
//   For submit and map it runs on the dispatcher thread, before the outcome is delivered.
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <ranges>
#include <string>
#include <type_traits>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "procpool/clock.hpp"
#include "procpool/map_results.hpp"
#include "procpool/pool_options.hpp"
#include "procpool/pool_stats.hpp"
#include "procpool/reply.hpp"
#include "procpool/reply_future.hpp"
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
class dispatcher;

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
  result<reply> call(std::string_view command, const nlohmann::json& args = nullptr,
                     const call_options& options = {});

  // Queues the request and returns at once; the pool's dispatcher thread writes it to the
  // first worker with room and completes the future. The same typed errors, deadlines and
  // observer timeline as call(): checkout_deadline bounds the time queued (unwritten then:
  // checkout_timeout), reply_deadline defaults to the write plus request_timeout, max_queue
  // bounds the queued requests (queue_full). A request failing before it is queued (pool
  // stopped, queue full, pool degraded) returns a future that is ready at once.
  reply_future submit(std::string_view command, const nlohmann::json& args = nullptr,
                      const call_options& options = {});
  // The callback form: `done` receives the outcome on the dispatcher thread (on this one,
  // before submit returns, when the request fails before it is queued). Returns the
  // request's id.
  std::uint64_t submit(std::string_view command, const nlohmann::json& args,
                       const call_options& options, completion done);

  // Streams `command` over every argument `next` yields, at most `window` under way (see
  // map_results.hpp): results in input order, or as they complete.
  map_results map(std::string_view command, arg_source next, const map_options& options = {});
  map_completions map_unordered(std::string_view command, arg_source next,
                                const map_options& options = {});
  // The same over a range whose elements convert to nlohmann::json. An lvalue range must
  // outlive the stream; an rvalue one is moved into it.
  template <std::ranges::input_range R>
    requires(!std::is_convertible_v<R, arg_source>)
  map_results map(std::string_view command, R&& args, const map_options& options = {}) {
    return map(command, range_source(std::forward<R>(args)), options);
  }
  template <std::ranges::input_range R>
    requires(!std::is_convertible_v<R, arg_source>)
  map_completions map_unordered(std::string_view command, R&& args,
                                const map_options& options = {}) {
    return map_unordered(command, range_source(std::forward<R>(args)), options);
  }

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
  template <class R>
  static arg_source range_source(R&& args) {
    // shared_ptr: arg_source is a std::function, which must be copyable.
    struct walk {
      std::remove_cvref_t<R> owned;  // an rvalue range, moved in
      std::ranges::iterator_t<std::remove_cvref_t<R>> it;
    };
    if constexpr (std::is_lvalue_reference_v<R>) {
      return [first = std::ranges::begin(args), last = std::ranges::end(args)]() mutable
                 -> std::optional<nlohmann::json> {
        if (first == last) return std::nullopt;
        nlohmann::json value = *first;
        ++first;
        return value;
      };
    } else {
      auto state = std::make_shared<walk>(walk{std::move(args), {}});
      state->it = std::ranges::begin(state->owned);
      return [state]() -> std::optional<nlohmann::json> {
        if (state->it == std::ranges::end(state->owned)) return std::nullopt;
        nlohmann::json value = *state->it;
        ++state->it;
        return value;
      };
    }
  }

  class impl;
  friend class worker_lease;
  friend class supervisor;  // the pool's internal process supervisor
  friend class dispatcher;  // the pool's internal thread serving submit and map
  friend class detail::map_stream;

  explicit pool(std::unique_ptr<impl> impl);
  std::unique_ptr<impl> impl_;
};

}  // namespace procpool
