// Internal: the dispatcher thread that serves pool::submit and pool::map.
//
// One thread per pool, started at the first submit, with a plain epoll loop: it takes
// submitted requests from a queue, checks workers out of the pool as an ordinary waiter
// ("attaches" them), writes up to pipeline_depth requests to each back to back, reads the
// replies in order, keeps the deadlines, and gives a worker back when its pipeline empties.
// While a worker is attached no request takes the pool's lock. pool/ASYNC.md is the design.
#pragma once

#include <atomic>
#include <memory>
#include <mutex>
#include <thread>
#include <vector>

#include "pending_request.hpp"
#include "pool_impl.hpp"

namespace procpool {

class dispatcher {
 public:
  explicit dispatcher(pool::impl& pool);
  ~dispatcher();  // after stop(): joins the thread
  dispatcher(const dispatcher&) = delete;
  dispatcher& operator=(const dispatcher&) = delete;

  // Queues a request (the pool's reference to it passes to the dispatcher). False when the
  // dispatcher has closed for a stop: the caller completes the request itself. `wake` false
  // leaves a sleeping dispatcher asleep, for a caller queueing a batch that wakes it once
  // with wake_if_parked() at the end.
  bool enqueue(detail::pending_request* request, bool wake = true);
  void wake_if_parked();
  // The pool is stopping: fail what is queued, let what is written finish until `drain`, then
  // kill those workers; the thread ends once it holds no worker.
  void begin_stop(deadline drain);
  void join();
  // A worker the dispatcher waited for was granted, or the wait failed (pool.mutex held).
  void wake() noexcept;
  // Called with pool.mutex held, as the pool hands its waiters workers or failures.
  waiter& pool_waiter() noexcept;

  std::size_t queued() const noexcept { return queued_count_.load(std::memory_order_relaxed); }
  std::size_t in_flight() const noexcept {
    return in_flight_count_.load(std::memory_order_relaxed);
  }

 private:
  using pool_impl = pool::impl;
  struct loop;
  std::unique_ptr<loop> loop_;
  std::atomic<std::size_t> queued_count_{0};
  std::atomic<std::size_t> in_flight_count_{0};
  std::thread thread_;
};

}  // namespace procpool
