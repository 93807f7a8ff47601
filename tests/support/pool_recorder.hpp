// Test support: collects a pool's worker events and request timelines, thread-safely, and
// lets a test wait for an event instead of sleeping.
#pragma once

#include <algorithm>
#include <chrono>
#include <condition_variable>
#include <functional>
#include <mutex>
#include <string>
#include <utility>
#include <vector>

#include <gtest/gtest.h>

#include "procpool/pool_events.hpp"

namespace procpool::testing {

class pool_recorder {
 public:
  pool_observer observer() {
    return {.on_worker_event =
                [this](const worker_event& e) {
                  std::lock_guard lock(mutex_);
                  events_.push_back(e);
                  changed_.notify_all();
                },
            .on_request =
                [this](const request_timeline& t) {
                  std::lock_guard lock(mutex_);
                  timelines_.push_back(t);
                  changed_.notify_all();
                }};
  }

  std::vector<worker_event> events() const {
    std::lock_guard lock(mutex_);
    return events_;
  }
  std::vector<request_timeline> timelines() const {
    std::lock_guard lock(mutex_);
    return timelines_;
  }
  // Forgets what was recorded, for a test that makes several pools in turn.
  void clear() {
    std::lock_guard lock(mutex_);
    events_.clear();
    timelines_.clear();
  }

  // Waits until `pred(events)` holds; false after `timeout`.
  bool wait_for(const std::function<bool(const std::vector<worker_event>&)>& pred,
                std::chrono::milliseconds timeout = std::chrono::seconds(20)) {
    std::unique_lock lock(mutex_);
    return changed_.wait_for(lock, timeout, [&] { return pred(events_); });
  }

  std::size_t count(worker_state to, std::string_view cause_part = "") const {
    std::lock_guard lock(mutex_);
    return static_cast<std::size_t>(std::count_if(events_.begin(), events_.end(), [&](const auto& e) {
      return e.to == to && e.cause.find(cause_part) != std::string::npos;
    }));
  }

  // [spawned, init done] of every worker that became ready.
  std::vector<std::pair<std::int64_t, std::int64_t>> start_intervals() const;

 private:
  mutable std::mutex mutex_;
  std::condition_variable changed_;
  std::vector<worker_event> events_;
  std::vector<request_timeline> timelines_;
};

// Checks that a successful request's stamps follow each other: submit, checkout, send, the
// worker's receipt and completion, reply.
inline void expect_ordered_success(const request_timeline& t) {
  EXPECT_FALSE(t.outcome.has_value());
  EXPECT_NE(t.worker, 0u);
  EXPECT_LE(t.t_submit, t.t_checkout);
  EXPECT_LE(t.t_checkout, t.t_sent);
  EXPECT_LE(t.t_sent, t.t_worker_recv);
  EXPECT_LE(t.t_worker_recv, t.t_worker_done);
  EXPECT_LE(t.t_worker_done, t.t_reply);
}

// The most intervals that contain one instant.
std::size_t max_overlap(std::vector<std::pair<std::int64_t, std::int64_t>> intervals);

}  // namespace procpool::testing
