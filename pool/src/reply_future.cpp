// reply_future and the pending request behind it: delivery, waiting with a futex, cancel.
#include <linux/futex.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cerrno>
#include <climits>
#include <ctime>
#include <utility>

#include "pending_request.hpp"
#include "procpool/error.hpp"

namespace procpool {
namespace detail {
namespace {

thread_local bool dispatcher_thread = false;

// FUTEX_WAIT_BITSET takes an absolute CLOCK_MONOTONIC time, the clock deadlines use.
void futex_wait(const std::atomic<std::uint32_t>& word, std::uint32_t expected,
                const timespec* until) {
  ::syscall(SYS_futex, reinterpret_cast<const std::uint32_t*>(&word),
            FUTEX_WAIT_BITSET | FUTEX_PRIVATE_FLAG, expected, until, nullptr,
            FUTEX_BITSET_MATCH_ANY);
}

void futex_wake_all(std::atomic<std::uint32_t>& word) {
  ::syscall(SYS_futex, reinterpret_cast<std::uint32_t*>(&word), FUTEX_WAKE | FUTEX_PRIVATE_FLAG,
            INT_MAX, nullptr, nullptr, 0);
}

}  // namespace

bool on_dispatcher_thread() noexcept { return dispatcher_thread; }
void mark_dispatcher_thread() noexcept { dispatcher_thread = true; }

bool pending_request::publish(result<reply> outcome) {
  std::unique_lock lock(mutex_);
  if (callback_) {
    completion done = std::move(callback_);
    ready_.store(1, std::memory_order_release);
    lock.unlock();
    done(std::move(outcome));
    return false;
  }
  outcome_.emplace(std::move(outcome));
  return ready_.exchange(1, std::memory_order_acq_rel) == 2;
}

void pending_request::wake_waiters() { futex_wake_all(ready_); }

bool pending_request::wait(std::optional<deadline> until) const {
  timespec at{};
  if (until) {
    const auto ns = std::chrono::duration_cast<std::chrono::nanoseconds>(
                        until->time_since_epoch()).count();
    at.tv_sec = ns / 1'000'000'000;
    at.tv_nsec = ns % 1'000'000'000;
  }
  while (true) {
    std::uint32_t seen = ready_.load(std::memory_order_acquire);
    if (seen == 1) return true;
    if (until && std::chrono::steady_clock::now() >= *until) return false;
    if (seen == 0 && !ready_.compare_exchange_weak(seen, 2, std::memory_order_acq_rel)) continue;
    futex_wait(ready_, 2, until ? &at : nullptr);
  }
}

result<reply> pending_request::take() {
  std::lock_guard lock(mutex_);
  result<reply> out = std::move(*outcome_);
  outcome_.reset();
  return out;
}

void pending_request::then(completion done) {
  std::unique_lock lock(mutex_);
  if (ready_.load(std::memory_order_acquire) == 1) {
    result<reply> out = std::move(*outcome_);
    outcome_.reset();
    lock.unlock();
    done(std::move(out));
    return;
  }
  callback_ = std::move(done);
}

}  // namespace detail

reply_future::reply_future(reply_future&& other) noexcept
    : state_(std::exchange(other.state_, nullptr)) {}

reply_future& reply_future::operator=(reply_future&& other) noexcept {
  if (this != &other) {
    if (state_) state_->release();
    state_ = std::exchange(other.state_, nullptr);
  }
  return *this;
}

reply_future::~reply_future() {
  if (state_) state_->release();
}

std::uint64_t reply_future::request_id() const noexcept {
  return state_ ? state_->timeline.request_id : 0;
}

bool reply_future::ready() const noexcept { return state_ && state_->ready(); }

void reply_future::wait() const {
  if (!state_ || state_->ready() || detail::on_dispatcher_thread()) return;
  state_->wait(std::nullopt);
}

bool reply_future::wait_until(deadline until) const {
  if (!state_) return false;
  if (state_->ready()) return true;
  if (detail::on_dispatcher_thread()) return false;
  return state_->wait(until);
}

result<reply> reply_future::get() {
  if (!state_) return error{errc::invalid_options, "get() on a reply_future with no state"};
  if (!state_->ready() && detail::on_dispatcher_thread()) {
    return error{errc::invalid_options,
                 "get() from a completion callback on a request not yet answered: it would "
                 "wait for the thread it runs on"};
  }
  state_->wait(std::nullopt);
  auto out = state_->take();
  std::exchange(state_, nullptr)->release();
  return out;
}

void reply_future::then(completion done) {
  if (!state_) return;
  // The pool's reference keeps the state alive until the callback has run.
  auto* state = std::exchange(state_, nullptr);
  state->then(std::move(done));
  state->release();
}

bool reply_future::cancel() {
  if (!state_ || !state_->claim_cancel()) return false;
  // Delivered here; the dispatcher reports it to the observer when it drops the request
  // from its queue (it cannot be told now: it may be stopping).
  state_->deliver(error{errc::cancelled, "cancelled before any worker had it"});
  return true;
}

}  // namespace procpool
