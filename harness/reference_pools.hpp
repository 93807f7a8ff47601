// Reference subjects: pools that reproduce two known flawed architectures, so that the harness
// can run them beside procpool::pool and show, from their events and timelines, what each
// flaw does under load. The diagnosis is only trustworthy if it names these two correctly.
//
// Both speak the same protocol through the same worker_connection and worker_process as
// procpool::pool, take the same pool_options and return the same typed errors; only the
// dispatch and the start-up strategy differ. They are deliberately simple: no recycling,
// pings, backoff, crash-loop guard or affinity (those pool_options fields are ignored).
//
//   auto pool = procpool::harness::serial_manager_pool::create(
//       {.worker = procpool::harness::fake_worker_launch(), .size = 4});
//   if (!pool) die(pool.error().message);
//   auto reply = pool->call("sleep", {{"ms", 30}});
//
// Thread-safe: call() from any number of threads. Destruction stops the pool as stop() does;
// workers never outlive it (each is launched from the pool's long-lived manager thread, in a
// process group of its own, and stop() kills and reaps every one).
#pragma once

#include <memory>
#include <optional>
#include <string_view>

#include <nlohmann/json.hpp>

#include "procpool/clock.hpp"
#include "procpool/message.hpp"
#include "procpool/pool.hpp"
#include "procpool/pool_options.hpp"
#include "procpool/pool_stats.hpp"
#include "procpool/result.hpp"

namespace procpool::harness {

// The first NimblePool version of DESIGN.md's story: one manager (an actor) owns every
// worker and performs every request itself. Callers only enqueue and wait, so requests are
// served one at a time however many workers sit idle: the `architectural.dispatch` verdict
// must fire on it. Workers are all spawned at creation and then handshaken in turn; a worker
// that faults is replaced on the manager thread before the next request is taken, so the
// queue also waits for restarts.
//
// checkout_timeout bounds the time a request waits in the manager's queue; once the manager
// has taken it, the reply deadline bounds the rest. max_queue bounds that queue.
class serial_manager_pool {
 public:
  static result<serial_manager_pool> create(pool_options options);

  serial_manager_pool(serial_manager_pool&&) noexcept;
  serial_manager_pool& operator=(serial_manager_pool&&) noexcept;
  ~serial_manager_pool();

  // An ok:false reply is errc::worker_error with the worker's type and message.
  result<response> call(std::string_view command, nlohmann::json args = nullptr,
                        const call_options& options = {});
  // True once every worker is ready; false at `until`, at stop, or after a failed start.
  bool wait_ready(deadline until);
  pool_stats stats() const;
  // Fails queued requests, lets the one in flight finish (up to drain_timeout, then kills its
  // worker), stops every worker and joins the manager. Idempotent.
  void stop(const stop_options& options = {});

  class impl;

 private:
  explicit serial_manager_pool(std::unique_ptr<impl> impl);
  std::unique_ptr<impl> impl_;
};

// The second version of DESIGN.md's story: callers check workers out on their own threads
// (FIFO waiters, a returned worker handed straight to the longest waiter), but workers are
// created only on demand and started one at a time, spawn then handshake then the next, on a
// single manager thread. A burst of callers on a cold pool therefore waits for the sum of
// the start times instead of the longest: the `architectural.startup_serialization` verdict
// must fire on it even though every single start looks normal.
//
// A failed start fails the longest-waiting caller with start_failed (no retry loop). A
// worker that faults is killed by the caller that saw the fault; its replacement is started
// when a later caller finds no free worker.
class sequential_init_pool {
 public:
  static result<sequential_init_pool> create(pool_options options);

  sequential_init_pool(sequential_init_pool&&) noexcept;
  sequential_init_pool& operator=(sequential_init_pool&&) noexcept;
  ~sequential_init_pool();

  // An ok:false reply is errc::worker_error with the worker's type and message.
  result<response> call(std::string_view command, nlohmann::json args = nullptr,
                        const call_options& options = {});
  // Workers start on demand, so there is nothing to warm: true as soon as no start is queued
  // or under way; false at `until` or at stop.
  bool wait_ready(deadline until);
  pool_stats stats() const;
  // Fails waiting callers, lets in-flight calls finish (up to drain_timeout, then kills their
  // workers), stops every worker and joins the manager. Idempotent.
  void stop(const stop_options& options = {});

  class impl;

 private:
  explicit sequential_init_pool(std::unique_ptr<impl> impl);
  std::unique_ptr<impl> impl_;
};

namespace internal {

// The pool_options checks both reference pools share (the fields they use); the message
// names the field, as pool::create's does.
std::optional<error> validate_reference_options(const pool_options& options);

}  // namespace internal

}  // namespace procpool::harness
