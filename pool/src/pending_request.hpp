// Internal: what one submitted request shares between its reply_future (or map stream) and
// the pool's dispatcher. One allocation per submit; two references at first (the caller's
// handle and the pool's), the last one to let go frees it.
//
// The phase decides who may deliver the outcome, exactly once: the dispatcher moves a
// request from queued to written when it hands it to a worker, and whoever moves it to done
// (the dispatcher, or cancel() while it is still queued) delivers. Delivery hands the
// outcome to the callback, or stores it and wakes a waiter with a futex, so a future nobody
// waits on costs no system call.
#pragma once

#include <atomic>
#include <cstdint>
#include <mutex>
#include <optional>
#include <string>

#include "procpool/pool_events.hpp"
#include "procpool/reply_future.hpp"

namespace procpool::detail {

enum class request_phase : std::uint8_t { queued, written, done };

// True on the dispatcher thread of any pool: where waiting for a future would never end.
bool on_dispatcher_thread() noexcept;
void mark_dispatcher_thread() noexcept;

class pending_request {
 public:
  pending_request() = default;
  pending_request(const pending_request&) = delete;
  pending_request& operator=(const pending_request&) = delete;

  void add_ref() noexcept { refs_.fetch_add(1, std::memory_order_relaxed); }
  void release() noexcept {
    if (refs_.fetch_sub(1, std::memory_order_acq_rel) == 1) delete this;
  }

  // The dispatcher takes a queued request for a worker. False: it was cancelled meanwhile.
  bool claim_for_write() noexcept {
    auto expected = request_phase::queued;
    return phase_.compare_exchange_strong(expected, request_phase::written);
  }
  // Whoever gets true delivers the outcome; any later caller gets false.
  bool claim_outcome() noexcept {
    return phase_.exchange(request_phase::done) != request_phase::done;
  }
  // Only from queued: a written request cannot be taken back without killing its worker.
  bool claim_cancel() noexcept {
    auto expected = request_phase::queued;
    return phase_.compare_exchange_strong(expected, request_phase::done);
  }
  request_phase phase() const noexcept { return phase_.load(std::memory_order_acquire); }

  // After a successful claim: hands `outcome` to the callback, or keeps it for get().
  void deliver(result<reply> outcome) {
    if (publish(std::move(outcome))) wake_waiters();
  }
  // deliver() in two steps, for a batch: publish each outcome, then wake whoever sleeps on
  // them. A consumer woken by the first then finds the rest ready instead of sleeping again
  // on each. True when a waiter sleeps and wake_waiters() is owed.
  bool publish(result<reply> outcome);
  void wake_waiters();

  bool ready() const noexcept { return ready_.load(std::memory_order_acquire) == 1; }
  // Returns once ready, or when `until` passes (false); nullopt waits for ever.
  bool wait(std::optional<deadline> until) const;
  result<reply> take();
  void then(completion done);

  // Written by the submitting thread before the request is queued, then the dispatcher's.
  std::string frame;  // the request, framed
  request_timeline timeline;
  std::int64_t checkout_deadline_ns = 0;
  std::int64_t reply_deadline_ns = 0;  // 0: request_timeout from the write
  // The dispatcher's, while the request is on a worker.
  std::int64_t own_deadline_ns = 0;    // this request's reply deadline
  bool abandoned = false;  // timed out behind others; its late reply is read and dropped

 private:
  std::atomic<int> refs_{2};
  std::atomic<request_phase> phase_{request_phase::queued};
  // 0 not ready, 1 ready, 2 not ready and someone sleeps on it (a FUTEX_WAKE is owed).
  mutable std::atomic<std::uint32_t> ready_{0};
  std::mutex mutex_;  // orders the outcome against then()
  std::optional<result<reply>> outcome_;
  completion callback_;
};

}  // namespace procpool::detail
