// The reference subjects: serial_manager_pool and sequential_init_pool must behave as pools
// (echo, typed errors, recovery, clean stop) and must show their flaw in their own events
// and in the workers' stamps: serialised requests, serialised starts. Assertions read those
// stamps, never wall-clock limits, so a slow machine cannot fail them.
#include <algorithm>
#include <condition_variable>
#include <latch>
#include <map>
#include <mutex>
#include <set>
#include <thread>
#include <utility>
#include <vector>

#include <gtest/gtest.h>

#include "subjects/reference_pools.hpp"
#include "support/pool_recorder.hpp"
#include "support/process_audit.hpp"
#include "support/workers.hpp"

namespace procpool {
namespace {

using namespace std::chrono_literals;
using harness::subject;
using harness::subject_type;

struct serial_manager_pool {
  static constexpr subject_type kind = subject_type::serial_manager;
};
struct sequential_init_pool {
  static constexpr subject_type kind = subject_type::sequential_init;
};
struct procpool_pool {
  static constexpr subject_type kind = subject_type::procpool;
};
using json = nlohmann::json;

using recorder = testing::pool_recorder;

using interval = std::pair<std::int64_t, std::int64_t>;

// The first pair of intervals that overlap, as text; empty when none do.
std::string first_overlap(std::vector<interval> intervals) {
  std::sort(intervals.begin(), intervals.end());
  for (std::size_t i = 1; i < intervals.size(); ++i) {
    if (intervals[i].first < intervals[i - 1].second) {
      return ::testing::PrintToString(intervals[i - 1]) + " and " +
             ::testing::PrintToString(intervals[i]);
    }
  }
  return "";
}


std::set<pid_t> worker_pids(const std::vector<worker_event>& events) {
  std::set<pid_t> pids;
  for (const auto& e : events) pids.insert(static_cast<pid_t>(e.pid));
  return pids;
}

// Waits, by polling the pool's own stats, until `pred` holds.
template <class Pred>
bool wait_for_stats(const subject& pool, Pred pred) {
  const auto until = std::chrono::steady_clock::now() + 20s;
  while (std::chrono::steady_clock::now() < until) {
    if (pred(pool.stats())) return true;
    std::this_thread::sleep_for(1ms);
  }
  return false;
}

void expect_error(const result<response>& r, errc code) {
  ASSERT_FALSE(r) << "expected " << to_string(code) << ", got a reply";
  EXPECT_EQ(r.error().code, code) << to_string(r.error().code) << ": " << r.error().message;
}

template <class Pool>
class ReferencePool : public testing::leak_checked_test {
 protected:
  pool_options options(std::size_t size, json init_args = json::object()) {
    pool_options o = testing::fake_pool_options(std::move(init_args), size);
    o.observer = recorder_.observer();
    return o;
  }

  std::unique_ptr<subject> make(pool_options o) {
    auto pool = harness::make_subject({.kind = Pool::kind}, std::move(o));
    EXPECT_TRUE(pool) << pool.error().message;
    return std::move(*pool);
  }

  recorder recorder_;  // declared before any pool in a test body, so it outlives them
};

using pool_types = ::testing::Types<serial_manager_pool, sequential_init_pool>;

class pool_type_names {
 public:
  template <class T>
  static std::string GetName(int) {
    return std::is_same_v<T, serial_manager_pool> ? "SerialManager" : "SequentialInit";
  }
};

TYPED_TEST_SUITE(ReferencePool, pool_types, pool_type_names);

TYPED_TEST(ReferencePool, EchoRoundTripsWithOrderedTimelines) {
  auto pool = this->make(this->options(2));
  for (int i = 0; i < 20; ++i) {
    const json args = {{"n", i}, {"text", std::string(i, 'x')}};
    auto reply = pool->call("echo", args);
    ASSERT_TRUE(reply) << reply.error().message;
    EXPECT_EQ(reply->result, args);
  }
  const auto timelines = this->recorder_.timelines();
  ASSERT_EQ(timelines.size(), 20u);
  for (const auto& t : timelines) testing::expect_ordered_success(t);
  const auto stats = pool->stats();
  EXPECT_EQ(stats.calls, 20u);
  EXPECT_EQ(stats.calls_ok, 20u);
  EXPECT_EQ(stats.failures, 0u);
}

TYPED_TEST(ReferencePool, ErrorReplyIsWorkerErrorAndKeepsTheWorker) {
  auto pool = this->make(this->options(1));
  auto reply = pool->call("no-such-command");
  expect_error(reply, errc::worker_error);
  EXPECT_EQ(reply.error().worker_type, "unknown_command");
  ASSERT_TRUE(pool->call("echo", 1));
  EXPECT_EQ(pool->stats().workers_lost, 0u);
  EXPECT_EQ(pool->stats().worker_errors, 1u);
}

TYPED_TEST(ReferencePool, CrashIsWorkerCrashedThenANewWorkerServes) {
  auto pool = this->make(this->options(1, {{"crash_after", 1}}));
  ASSERT_TRUE(pool->call("echo", 1));
  expect_error(pool->call("echo", 2), errc::worker_crashed);
  auto reply = pool->call("echo", 3);
  ASSERT_TRUE(reply) << reply.error().message;

  const auto timelines = this->recorder_.timelines();
  ASSERT_EQ(timelines.size(), 3u);
  EXPECT_EQ(timelines[0].worker, timelines[1].worker);
  EXPECT_NE(timelines[1].worker, timelines[2].worker);
  EXPECT_EQ(timelines[1].outcome, errc::worker_crashed);
  const auto events = this->recorder_.events();
  EXPECT_TRUE(std::any_of(events.begin(), events.end(), [&](const worker_event& e) {
    return e.worker == timelines[1].worker && e.to == worker_state::exited &&
           e.cause.starts_with("worker_crashed");
  }));
  const auto stats = pool->stats();
  EXPECT_EQ(stats.workers_lost, 1u);
  EXPECT_EQ(stats.starts, 2u);
}

TYPED_TEST(ReferencePool, MissedReplyDeadlineKillsTheWorkerThenANewWorkerServes) {
  auto o = this->options(1);
  o.request_timeout = 200ms;
  auto pool = this->make(std::move(o));
  expect_error(pool->call("sleep", {{"ms", 60'000}}), errc::request_timeout);
  ASSERT_TRUE(pool->call("echo", 1));
  EXPECT_EQ(pool->stats().workers_lost, 1u);
}

TYPED_TEST(ReferencePool, CheckoutTimesOutWhileTheOnlyWorkerIsBusy) {
  auto pool = this->make(this->options(1));
  std::thread holder([&] { EXPECT_TRUE(pool->call("sleep", {{"ms", 500}})); });
  ASSERT_TRUE(wait_for_stats(*pool, [](const pool_stats& s) { return s.busy == 1; }));
  expect_error(pool->call("echo", 1, {.checkout_deadline = deadline_after(50ms)}),
               errc::checkout_timeout);
  holder.join();
  const auto timelines = this->recorder_.timelines();
  ASSERT_EQ(timelines.size(), 2u);
  EXPECT_EQ(timelines[0].outcome, errc::checkout_timeout);
  EXPECT_EQ(timelines[0].worker, 0u);
}

TYPED_TEST(ReferencePool, FullQueueRejectsTheNextCaller) {
  auto o = this->options(1);
  o.max_queue = 1;
  auto pool = this->make(std::move(o));
  std::thread holder([&] { EXPECT_TRUE(pool->call("sleep", {{"ms", 500}})); });
  ASSERT_TRUE(wait_for_stats(*pool, [](const pool_stats& s) { return s.busy == 1; }));
  std::thread queued([&] { EXPECT_TRUE(pool->call("echo", 1)); });
  ASSERT_TRUE(wait_for_stats(*pool, [](const pool_stats& s) { return s.waiting_callers == 1; }));
  expect_error(pool->call("echo", 2), errc::queue_full);
  holder.join();
  queued.join();
}

TYPED_TEST(ReferencePool, RefusedInitIsStartFailed) {
  auto pool = this->make(this->options(2, {{"no_such_knob", 1}}));
  auto reply = pool->call("echo", 1);
  expect_error(reply, errc::start_failed);
  EXPECT_NE(reply.error().message.find("no_such_knob"), std::string::npos)
      << reply.error().message;
  EXPECT_GE(pool->stats().failed_starts, 1u);
  EXPECT_EQ(pool->stats().starts, 0u);
}

TYPED_TEST(ReferencePool, InvalidOptionsAreRejected) {
  auto o = this->options(0);
  auto pool = harness::make_subject({.kind = TypeParam::kind}, std::move(o));
  ASSERT_FALSE(pool);
  EXPECT_EQ(pool.error().code, errc::invalid_options);
  EXPECT_NE(pool.error().message.find("size"), std::string::npos) << pool.error().message;
}

TYPED_TEST(ReferencePool, StopEndsEveryWorkerAndRefusesLaterCalls) {
  auto pool = this->make(this->options(3));
  std::vector<std::thread> callers;
  for (int i = 0; i < 3; ++i) {
    callers.emplace_back([&] { EXPECT_TRUE(pool->call("sleep", {{"ms", 20}})); });
  }
  for (auto& c : callers) c.join();
  pool->stop();
  expect_error(pool->call("echo", 1), errc::pool_stopped);
  pool->stop();  // idempotent

  const auto events = this->recorder_.events();
  const auto stats = pool->stats();
  EXPECT_EQ(stats.ready() + stats.starting, 0u);
  // Every worker spawned also exited, including one still starting when stop came.
  auto count = [&](worker_state to) {
    return std::count_if(events.begin(), events.end(),
                         [&](const worker_event& e) { return e.to == to; });
  };
  EXPECT_GE(count(worker_state::starting), 1);
  EXPECT_EQ(count(worker_state::exited), count(worker_state::starting));
  for (pid_t pid : worker_pids(events)) EXPECT_FALSE(testing::process_exists(pid)) << pid;
}

TYPED_TEST(ReferencePool, StopPastTheDrainTimeoutKillsTheInFlightCall) {
  auto pool = this->make(this->options(1));
  std::thread caller([&] { expect_error(pool->call("sleep", {{"ms", 60'000}}), errc::pool_stopped); });
  ASSERT_TRUE(wait_for_stats(*pool, [](const pool_stats& s) { return s.busy == 1; }));
  pool->stop({.drain_timeout = 100ms});
  caller.join();
  const auto timelines = this->recorder_.timelines();
  ASSERT_EQ(timelines.size(), 1u);
  EXPECT_EQ(timelines[0].outcome, errc::pool_stopped);
}

// --- serial_manager_pool --------------------------------------------------------------------

using SerialManager = ReferencePool<serial_manager_pool>;

TEST_F(SerialManager, StartsEveryWorkerAtCreation) {
  auto pool = make(options(3));
  ASSERT_TRUE(pool->wait_ready(deadline_after(20s)));
  const auto stats = pool->stats();
  EXPECT_EQ(stats.idle, 3u);
  EXPECT_EQ(stats.starts, 3u);
  EXPECT_EQ(recorder_.start_intervals().size(), 3u);
}

TEST_F(SerialManager, TwoCallersAndTwoWorkersAreServedOneAtATime) {
  auto pool = make(options(2));
  ASSERT_TRUE(pool->wait_ready(deadline_after(20s)));
  constexpr int calls_per_caller = 4;
  std::latch go(2);
  std::vector<std::thread> callers;
  for (int c = 0; c < 2; ++c) {
    callers.emplace_back([&] {
      go.arrive_and_wait();
      for (int i = 0; i < calls_per_caller; ++i) {
        auto reply = pool->call("sleep", {{"ms", 30}});
        EXPECT_TRUE(reply) << reply.error().message;
      }
    });
  }
  for (auto& c : callers) c.join();

  const auto timelines = recorder_.timelines();
  ASSERT_EQ(timelines.size(), 2u * calls_per_caller);
  std::vector<interval> on_worker;
  std::set<std::uint64_t> workers;
  for (const auto& t : timelines) {
    on_worker.emplace_back(t.t_worker_recv, t.t_worker_done);
    workers.insert(t.worker);
  }
  // Both workers served, yet never at the same time: the manager is the bottleneck.
  EXPECT_EQ(workers.size(), 2u);
  EXPECT_EQ(first_overlap(on_worker), "") << "requests overlapped on the workers' clocks";
}

// --- sequential_init_pool -------------------------------------------------------------------

using SequentialInit = ReferencePool<sequential_init_pool>;

TEST_F(SequentialInit, StartsNothingUntilACallerAsks) {
  auto pool = make(options(4));
  ASSERT_TRUE(pool->wait_ready(deadline_after(20s)));
  EXPECT_EQ(pool->stats().starts, 0u);
  EXPECT_TRUE(recorder_.events().empty());
  ASSERT_TRUE(pool->call("echo", 1));
  EXPECT_EQ(pool->stats().starts, 1u);
}

TEST_F(SequentialInit, FourConcurrentCallersGetWorkersStartedOneAtATime) {
  auto pool = make(options(4, {{"init_ms", 30}}));
  std::latch go(4);
  std::vector<std::thread> callers;
  for (int c = 0; c < 4; ++c) {
    callers.emplace_back([&] {
      go.arrive_and_wait();
      // Held long enough that a caller the scheduler delays still finds every worker busy
      // and asks for its own; how many starts happen is not what this test is about.
      auto reply = pool->call("sleep", {{"ms", 200}});
      EXPECT_TRUE(reply) << reply.error().message;
    });
  }
  for (auto& c : callers) c.join();

  const auto events = recorder_.events();
  const auto starts = recorder_.start_intervals();
  // Several callers found no free worker, so several starts were wanted at once...
  ASSERT_GE(starts.size(), 2u);
  EXPECT_EQ(static_cast<std::size_t>(std::count_if(
                events.begin(), events.end(),
                [](const worker_event& e) { return e.cause == "init done"; })),
            starts.size());
  // ...yet they ran back to back, though none depended on another.
  EXPECT_EQ(first_overlap(starts), "") << "two workers were starting at once";
  for (const auto& e : events) {
    if (e.cause != "init done") continue;
    EXPECT_GE(e.t_init_done_ns - e.t_main_ns, 30'000'000) << "worker " << e.worker;
  }
}

// --- controls: the same loads on procpool::pool overlap, so the checks above can fail -------

class ProcpoolControl : public ReferencePool<procpool_pool> {};

TEST_F(ProcpoolControl, TwoCallersAndTwoWorkersOverlapOnTheWorkers) {
  auto pool = make(options(2));
  ASSERT_TRUE(pool->wait_ready(deadline_after(20s)));
  std::latch go(2);
  std::vector<std::thread> callers;
  for (int c = 0; c < 2; ++c) {
    callers.emplace_back([&] {
      go.arrive_and_wait();
      for (int i = 0; i < 4; ++i) EXPECT_TRUE(pool->call("sleep", {{"ms", 30}}));
    });
  }
  for (auto& c : callers) c.join();
  std::vector<interval> on_worker;
  for (const auto& t : recorder_.timelines()) on_worker.emplace_back(t.t_worker_recv, t.t_worker_done);
  EXPECT_NE(first_overlap(on_worker), "");
}

TEST_F(ProcpoolControl, OnDemandStartsOverlap) {
  // A long init, so that the overlap does not depend on how promptly the callers run.
  auto o = options(4, {{"init_ms", 200}});
  o.prewarm = prewarm_mode::none;
  o.max_concurrent_starts = 4;
  auto pool = make(std::move(o));
  std::latch go(4);
  std::vector<std::thread> callers;
  for (int c = 0; c < 4; ++c) {
    callers.emplace_back([&] {
      go.arrive_and_wait();
      EXPECT_TRUE(pool->call("sleep", {{"ms", 50}}));
    });
  }
  for (auto& c : callers) c.join();
  EXPECT_NE(first_overlap(recorder_.start_intervals()), "");
}

}  // namespace
}  // namespace procpool
