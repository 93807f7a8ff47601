// procpool::pool with the fake worker: the request path, lifecycle and failure handling,
// asserted from worker events, request timelines and worker-side stamps.
#include <csignal>
#include <fstream>
#include <mutex>
#include <optional>
#include <set>
#include <thread>
#include <vector>

#include <gtest/gtest.h>

#include "procpool/pool.hpp"
#include "procpool/worker_lease.hpp"
#include "support/pool_fixture.hpp"

namespace procpool {
namespace {

using namespace std::chrono_literals;
using json = nlohmann::json;

class Pool : public testing::recorded_pool_test {};

TEST_F(Pool, EchoesThroughACheckedOutWorker) {
  auto p = make(fake_options());
  auto reply = p.call("echo", {{"hello", "pool"}});
  ASSERT_TRUE(reply) << reply.error().message;
  EXPECT_EQ(reply->value, (json{{"hello", "pool"}}));
  EXPECT_LE(reply->timing.t_worker_recv, reply->timing.t_worker_done);
  const auto timelines = recorder.timelines();
  ASSERT_EQ(timelines.size(), 1u);
  testing::expect_ordered_success(timelines[0]);
  // The reply carries the same stamps the observer saw.
  const request_timeline& t = timelines[0];
  EXPECT_EQ(reply->worker, t.worker);
  EXPECT_EQ(reply->request_id, t.request_id);
  EXPECT_EQ(reply->timing.t_submit, t.t_submit);
  EXPECT_EQ(reply->timing.t_checkout, t.t_checkout);
  EXPECT_EQ(reply->timing.t_sent, t.t_sent);
  EXPECT_EQ(reply->timing.t_worker_recv, t.t_worker_recv);
  EXPECT_EQ(reply->timing.t_worker_done, t.t_worker_done);
  EXPECT_EQ(reply->timing.t_reply, t.t_reply);
}

TEST_F(Pool, CallsOnDifferentWorkersRunInParallel) {
  auto p = make(fake_options(json::object(), 2));
  ready(p);
  std::vector<std::thread> callers;
  for (int c = 0; c < 2; ++c) {
    callers.emplace_back([&] {
      for (int i = 0; i < 3; ++i) EXPECT_TRUE(p.call("sleep", {{"ms", 40}}));
    });
  }
  for (auto& t : callers) t.join();
  std::vector<std::pair<std::int64_t, std::int64_t>> executions;
  for (const auto& t : recorder.timelines()) executions.emplace_back(t.t_worker_recv, t.t_worker_done);
  EXPECT_EQ(testing::max_overlap(executions), 2u);
}

// Threads take request ids in blocks (and count outcomes in cells of their own): ids must stay
// unique in each pool, also for a thread whose block came from a pool now gone, whose
// successor may live at the same address, and the totals must add up.
TEST_F(Pool, RequestIdsStayUniqueAcrossThreadsAndPools) {
  {
    auto before = make(fake_options(json::object(), 1));
    ASSERT_TRUE(before.call("echo", 1));  // this thread takes a block of ids from `before`
  }
  std::mutex ids_mutex;
  std::multiset<std::uint64_t> ids_a, ids_b;
  auto recording_into = [&](std::multiset<std::uint64_t>& ids) {
    pool_options o = fake_options(json::object(), 2);
    o.observer.on_request = [&](const request_timeline& t) {
      std::lock_guard lock(ids_mutex);
      ids.insert(t.request_id);
    };
    return o;
  };
  auto a = make(recording_into(ids_a));
  auto b = make(recording_into(ids_b));
  ready(a);
  ready(b);
  constexpr int threads = 3, calls_each = 100;
  std::vector<std::thread> callers;
  for (int c = 0; c < threads; ++c) {
    callers.emplace_back([&] {
      for (int i = 0; i < calls_each; ++i) {
        EXPECT_TRUE(a.call("echo", i));
        EXPECT_TRUE(i % 2 == 0 ? b.call("echo", i) : b.submit("echo", i).get());
      }
    });
  }
  for (auto& t : callers) t.join();
  for (int i = 0; i < calls_each; ++i) ASSERT_TRUE(a.call("echo", i));  // the old block's thread

  for (auto* p : {&a, &b}) {
    const auto s = p->stats();
    const std::uint64_t expected = p == &a ? (threads + 1) * calls_each : threads * calls_each;
    EXPECT_EQ(s.calls, expected);
    EXPECT_EQ(s.calls_ok, expected);
  }
  std::lock_guard lock(ids_mutex);
  for (const auto* ids : {&ids_a, &ids_b}) {
    EXPECT_EQ(std::set<std::uint64_t>(ids->begin(), ids->end()).size(), ids->size())
        << "a request id was handed out twice";
  }
  EXPECT_EQ(ids_a.size(), std::size_t{(threads + 1) * calls_each});
}

// A caller's worker is parked after its call, busy in the pool's books, and taken again by
// its next call without the lock. Worker events must be reported under the lock, so these
// pools observe requests only: with an on_worker_event observer nothing is parked.
class PoolParking : public testing::recorded_pool_test {
 protected:
  pool_options parking_options(std::size_t size = 1) {
    pool_options o = fake_options(json::object(), size);
    o.observer.on_worker_event = nullptr;
    return o;
  }

  // The pool's only fake worker, among this process's children.
  static pid_t fake_worker_pid() {
    for (const pid_t pid : testing::child_pids()) {
      std::ifstream comm("/proc/" + std::to_string(pid) + "/comm");
      std::string name;
      if (std::getline(comm, name) && name.starts_with("procpool-fake")) return pid;
    }
    return 0;
  }

  // Awaits a condition the pool reaches on its supervisor thread.
  template <class Condition>
  static bool eventually(Condition reached) {
    const auto until = std::chrono::steady_clock::now() + 20s;
    while (!reached()) {
      if (std::chrono::steady_clock::now() > until) return false;
      std::this_thread::yield();
    }
    return true;
  }
};

TEST_F(PoolParking, AParkedWorkerCountsAsIdleAndServesTheNextCall) {
  auto p = make(parking_options());
  ready(p);
  auto first = p.call("echo", 1);
  ASSERT_TRUE(first) << first.error().message;
  const auto s = p.stats();
  EXPECT_EQ(s.idle, 1u);
  EXPECT_EQ(s.busy, 0u);
  auto second = p.call("echo", 2);
  ASSERT_TRUE(second) << second.error().message;
  EXPECT_EQ(second->worker, first->worker);
  EXPECT_EQ(p.stats().calls_ok, 2u);
}

// Without the recall, the second caller would wait for a worker nobody gives back.
TEST_F(PoolParking, AnotherCallerTakesAParkedWorkerBack) {
  auto p = make(parking_options());
  ready(p);
  ASSERT_TRUE(p.call("echo", 1));
  std::optional<result<reply>> other;
  std::thread([&] {
    other = p.call("echo", 2, {.checkout_deadline = deadline_after(10s)});
  }).join();
  ASSERT_TRUE(*other) << other->error().message;
  ASSERT_TRUE(p.call("echo", 3));
  EXPECT_EQ(p.stats().calls_ok, 3u);
}

TEST_F(PoolParking, TheDispatcherTakesAParkedWorkerBack) {
  auto p = make(parking_options());
  ready(p);
  ASSERT_TRUE(p.call("echo", 1));
  auto submitted = p.submit("echo", 2, {.checkout_deadline = deadline_after(10s)}).get();
  ASSERT_TRUE(submitted) << submitted.error().message;
  ASSERT_TRUE(p.call("echo", 3));
}

// Without the recall, the stop would wait out its drain for a worker nobody gives back, then
// kill it and wait for ever for its caller.
TEST_F(PoolParking, StopTakesAParkedWorkerBackAndStopsItGracefully) {
  auto p = make(parking_options(2));
  ready(p);
  ASSERT_TRUE(p.call("echo", 1));
  p.stop({.drain_timeout = 60s});
  const auto s = p.stats();
  EXPECT_EQ(s.busy, 0u);
  EXPECT_EQ(s.workers_lost, 0u);
  EXPECT_EQ(p.call("echo", 2).error().code, errc::pool_stopped);
}

// The supervisor sees the exit and gives the parked worker back as lost, so that the next
// call gets its replacement instead of a dead pipe.
TEST_F(PoolParking, AParkedWorkerThatDiesIsReplacedBeforeTheNextCall) {
  auto p = make(parking_options());
  ready(p);
  ASSERT_TRUE(p.call("echo", 1));
  const pid_t pid = fake_worker_pid();
  ASSERT_GT(pid, 0);
  ASSERT_EQ(::kill(pid, SIGKILL), 0);
  ASSERT_TRUE(eventually([&] { return p.stats().workers_lost == 1; }))
      << "the parked worker's exit was not noticed";
  auto next = p.call("echo", 2, {.checkout_deadline = deadline_after(20s)});
  ASSERT_TRUE(next) << next.error().message;
  EXPECT_EQ(p.stats().failures, 0u);
}

TEST_F(Pool, StartCapBoundsConcurrentStarts) {
  auto o = fake_options({{"init_ms", 50}}, 6);
  o.max_concurrent_starts = 2;
  auto p = make(o);
  ready(p);
  const auto starts = recorder.start_intervals();
  ASSERT_EQ(starts.size(), 6u);
  EXPECT_EQ(testing::max_overlap(starts), 2u);
}

TEST_F(Pool, ParallelPrewarmStartsWorkersTogether) {
  auto o = fake_options({{"init_ms", 50}}, 4);
  o.max_concurrent_starts = 4;
  auto p = make(o);
  ready(p);
  EXPECT_EQ(testing::max_overlap(recorder.start_intervals()), 4u);
}

TEST_F(Pool, SequentialPrewarmStartsOneAtATime) {
  auto o = fake_options({{"init_ms", 20}}, 4);
  o.prewarm = prewarm_mode::sequential;
  o.max_concurrent_starts = 4;
  auto p = make(o);
  ready(p);
  const auto starts = recorder.start_intervals();
  ASSERT_EQ(starts.size(), 4u);
  EXPECT_EQ(testing::max_overlap(starts), 1u);
}

TEST_F(Pool, NoPrewarmStartsWorkersOnDemand) {
  auto o = fake_options(json::object(), 4);
  o.prewarm = prewarm_mode::none;
  auto p = make(o);
  EXPECT_EQ(p.stats().ready() + p.stats().starting, 0u);
  ASSERT_TRUE(p.call("echo", 1));
  EXPECT_EQ(recorder.count(worker_state::starting), 1u);
  ASSERT_TRUE(p.call("echo", 2));
  EXPECT_EQ(recorder.count(worker_state::starting), 1u) << "a free worker was reused";
}

TEST_F(Pool, WaitersAreServedInArrivalOrder) {
  auto p = make(fake_options(json::object(), 1));
  ready(p);
  std::thread holder([&] { EXPECT_TRUE(p.call("sleep", {{"ms", 200}})); });
  while (p.stats().busy == 0) std::this_thread::yield();
  std::vector<std::thread> waiters;
  for (int i = 0; i < 5; ++i) {
    waiters.emplace_back([&, i] { EXPECT_TRUE(p.call("echo", i)); });
    // Each caller must be queued before the next one arrives.
    while (p.stats().waiting_callers < static_cast<std::size_t>(i + 1)) std::this_thread::yield();
  }
  holder.join();
  for (auto& t : waiters) t.join();
  std::vector<request_timeline> echoes;
  for (const auto& t : recorder.timelines()) {
    if (t.t_worker_done - t.t_worker_recv < 100'000'000) echoes.push_back(t);
  }
  ASSERT_EQ(echoes.size(), 5u);
  std::sort(echoes.begin(), echoes.end(), [](auto& a, auto& b) { return a.t_submit < b.t_submit; });
  for (std::size_t i = 1; i < echoes.size(); ++i) {
    EXPECT_LT(echoes[i - 1].t_checkout, echoes[i].t_checkout) << "grant order broke at " << i;
  }
}

TEST_F(Pool, CheckoutTimesOutWhenNoWorkerFrees) {
  auto p = make(fake_options(json::object(), 1));
  ready(p);
  std::thread holder([&] { EXPECT_TRUE(p.call("sleep", {{"ms", 300}})); });
  while (p.stats().busy == 0) std::this_thread::yield();
  auto reply = p.call("echo", 1, {.checkout_deadline = deadline_after(30ms)});
  holder.join();
  ASSERT_FALSE(reply);
  EXPECT_EQ(reply.error().code, errc::checkout_timeout);
}

TEST_F(Pool, BoundedQueueRejectsWhenFull) {
  auto o = fake_options(json::object(), 1);
  o.max_queue = 1;
  auto p = make(o);
  ready(p);
  std::thread holder([&] { EXPECT_TRUE(p.call("sleep", {{"ms", 300}})); });
  while (p.stats().busy == 0) std::this_thread::yield();
  std::thread queued([&] { EXPECT_TRUE(p.call("echo", 1)); });
  while (p.stats().waiting_callers == 0) std::this_thread::yield();
  auto reply = p.call("echo", 2);
  holder.join();
  queued.join();
  ASSERT_FALSE(reply);
  EXPECT_EQ(reply.error().code, errc::queue_full);
}

TEST_F(Pool, RequestTimeoutKillsTheWorkerAndReplacesIt) {
  auto p = make(fake_options({{"hang_probability", 1.0}}, 1));
  ready(p);
  auto reply = p.call("echo", 1, {.reply_deadline = deadline_after(100ms)});
  ASSERT_FALSE(reply);
  EXPECT_EQ(reply.error().code, errc::request_timeout);
  ASSERT_TRUE(recorder.wait_for([](const auto& events) {
    return std::count_if(events.begin(), events.end(),
                         [](auto& e) { return e.from == worker_state::starting && e.to == worker_state::idle; }) == 2;
  })) << "no replacement became ready";
  EXPECT_EQ(recorder.count(worker_state::exited, "request_timeout"), 1u);
}

TEST_F(Pool, CrashGivesWorkerCrashedOnceAndTheWorkerIsReplaced) {
  auto p = make(fake_options({{"crash_after", 1}}, 1));
  ready(p);
  ASSERT_TRUE(p.call("echo", 1));
  auto reply = p.call("echo", 2);
  ASSERT_FALSE(reply);
  EXPECT_EQ(reply.error().code, errc::worker_crashed);
  EXPECT_NE(reply.error().message.find("exited with code 3"), std::string::npos) << reply.error().message;
  auto after = p.call("echo", 3);
  ASSERT_TRUE(after) << after.error().message;
  EXPECT_EQ(recorder.count(worker_state::exited), 1u);
}

TEST_F(Pool, GarbageReplyIsAProtocolErrorAndTheWorkerIsReplaced) {
  auto p = make(fake_options({{"garbage_probability", 1.0}}, 1));
  ready(p);
  auto reply = p.call("echo", 1);
  ASSERT_FALSE(reply);
  EXPECT_EQ(reply.error().code, errc::protocol_error);
  EXPECT_TRUE(recorder.wait_for([](const auto& events) {
    return std::any_of(events.begin(), events.end(), [](auto& e) { return e.to == worker_state::exited; });
  }));
}

TEST_F(Pool, WorkerErrorReplyKeepsTheWorker) {
  auto p = make(fake_options(json::object(), 1));
  auto reply = p.call("no-such-command");
  ASSERT_FALSE(reply);
  EXPECT_EQ(reply.error().code, errc::worker_error);
  EXPECT_EQ(reply.error().worker_type, "unknown_command");
  ASSERT_TRUE(p.call("echo", 1));
  EXPECT_EQ(recorder.count(worker_state::exited), 0u);
}

TEST_F(Pool, FailedStartsDegradeThePoolWhichThenFailsFast) {
  pool_options o = fake_options();
  o.worker = {.argv = {"/bin/sh", "-c", "echo 'cannot load model' >&2; exit 3"}};
  o.crash_loop_failures = 3;
  o.restart_backoff_initial = 1ms;
  auto p = make(o);
  EXPECT_EQ(p.wait_ready(deadline_after(20s)), ready_state::degraded);
  EXPECT_TRUE(p.stats().degraded);
  auto reply = p.call("echo", 1, {.checkout_deadline = deadline_after(20s)});
  ASSERT_FALSE(reply);
  EXPECT_EQ(reply.error().code, errc::start_failed);
  EXPECT_NE(reply.error().message.find("cannot load model"), std::string::npos) << reply.error().message;
}

TEST_F(Pool, RestartBackoffGrowsBetweenFailedStarts) {
  pool_options o = fake_options({{"exit_during_init", true}}, 1);
  o.restart_backoff_initial = 20ms;
  o.restart_backoff_max = 80ms;
  o.crash_loop_failures = 100;
  auto p = make(o);
  ASSERT_TRUE(recorder.wait_for([](const auto& events) {
    return std::count_if(events.begin(), events.end(),
                         [](auto& e) { return e.to == worker_state::starting; }) >= 5;
  }));
  std::vector<std::int64_t> spawns, exits;
  for (const auto& e : recorder.events()) {
    if (e.to == worker_state::starting) spawns.push_back(e.t_ns);
    if (e.to == worker_state::exited) exits.push_back(e.t_ns);
  }
  // The gap between a failed start and the next spawn is at least the backoff: 20, 40, 80, 80.
  const std::int64_t expected_ms[] = {20, 40, 80, 80};
  for (std::size_t i = 0; i < 4; ++i) {
    EXPECT_GE(spawns[i + 1] - exits[i], expected_ms[i] * 1'000'000) << "restart " << i + 1;
  }
}

TEST_F(Pool, RecyclesAfterRequestsWithoutLosingOne) {
  auto o = fake_options(json::object(), 1);
  o.recycle_after_requests = 3;
  auto p = make(o);
  for (int i = 0; i < 10; ++i) ASSERT_TRUE(p.call("echo", i)) << "call " << i;
  EXPECT_EQ(recorder.count(worker_state::stopping, "recycled after 3 requests"), 3u);
  EXPECT_EQ(p.stats().recycled, 3u);
}

TEST_F(Pool, RecycleJitterSpreadsRecycling) {
  auto o = fake_options(json::object(), 1);
  o.recycle_after_requests = 2;
  o.recycle_jitter = 3;
  auto p = make(o);
  for (int i = 0; i < 40; ++i) ASSERT_TRUE(p.call("echo", i));
  std::set<std::string> causes;
  for (const auto& e : recorder.events()) {
    if (e.to == worker_state::stopping) causes.insert(e.cause);
  }
  EXPECT_GE(causes.size(), 2u) << "every worker recycled at the same count";
}

TEST_F(Pool, RecyclesAboveTheRssLimit) {
  auto o = fake_options({{"memory_growth_kb", 4096}}, 1);
  o.recycle_above_rss_kib = 16 * 1024;
  o.rss_check_every = 1;
  auto p = make(o);
  for (int i = 0; i < 8; ++i) ASSERT_TRUE(p.call("echo", i));
  EXPECT_GE(recorder.count(worker_state::stopping, "KiB resident"), 1u);
}

TEST_F(Pool, RecyclesIdleWorkersAtTheirMaximumAge) {
  auto o = fake_options(json::object(), 1);
  o.recycle_after_age = 50ms;
  auto p = make(o);
  ready(p);
  EXPECT_TRUE(recorder.wait_for([](const auto& events) {
    return std::any_of(events.begin(), events.end(),
                       [](auto& e) { return e.cause.find("maximum age") != std::string::npos; });
  }));
}

TEST_F(Pool, IdlePingsKeepHealthyWorkersAndReplaceStoppedOnes) {
  auto o = fake_options(json::object(), 1);
  o.idle_ping_interval = 20ms;
  o.ping_timeout = 100ms;
  auto p = make(o);
  ready(p);
  ASSERT_TRUE(recorder.wait_for([](const auto& events) {
    return std::any_of(events.begin(), events.end(), [](auto& e) { return e.cause == "ping answered"; });
  }));
  // A stopped process cannot answer: the next ping must time out and the worker be replaced.
  const auto events = recorder.events();
  const auto pid = events.back().pid;
  ::kill(static_cast<pid_t>(pid), SIGSTOP);
  EXPECT_TRUE(recorder.wait_for([](const auto& evs) {
    return std::any_of(evs.begin(), evs.end(), [](auto& e) {
      return e.to == worker_state::exited && e.cause.find("health ping") != std::string::npos;
    });
  }));
  EXPECT_EQ(p.wait_ready(deadline_after(20s)), ready_state::ready);
}

TEST_F(Pool, HintAffinityReusesTheSameWorker) {
  auto p = make(fake_options(json::object(), 3));
  ready(p);
  for (int i = 0; i < 6; ++i) {
    ASSERT_TRUE(p.call("echo", i, {.affinity_key = "session-a"}));
    ASSERT_TRUE(p.call("echo", i, {.affinity_key = "session-b"}));
  }
  std::set<std::uint64_t> workers;
  const auto timelines = recorder.timelines();
  for (std::size_t i = 0; i < timelines.size(); i += 2) workers.insert(timelines[i].worker);
  EXPECT_EQ(workers.size(), 1u);
}

TEST_F(Pool, StrictAffinityWaitsForItsWorker) {
  auto o = fake_options(json::object(), 2);
  o.affinity = affinity_mode::strict;
  auto p = make(o);
  ready(p);
  ASSERT_TRUE(p.call("echo", 0, {.affinity_key = "k"}));
  const std::uint64_t owner = recorder.timelines().back().worker;
  std::thread holder([&] { EXPECT_TRUE(p.call("sleep", {{"ms", 150}}, {.affinity_key = "k"})); });
  while (p.stats().busy == 0) std::this_thread::yield();
  ASSERT_TRUE(p.call("echo", 1, {.affinity_key = "k"}));
  holder.join();
  const auto timelines = recorder.timelines();
  const auto& sleeper = timelines[1].t_worker_done - timelines[1].t_worker_recv > 100'000'000 ? timelines[1] : timelines[2];
  const auto& waiter = &sleeper == &timelines[1] ? timelines[2] : timelines[1];
  EXPECT_EQ(waiter.worker, owner);
  EXPECT_GE(waiter.t_checkout, sleeper.t_worker_done) << "the other, idle worker was used";
}

TEST_F(Pool, StopIsGracefulAndLaterCallsAreRefused) {
  auto p = make(fake_options(json::object(), 3));
  ready(p);
  ASSERT_TRUE(p.call("echo", 1));
  p.stop();
  EXPECT_EQ(recorder.count(worker_state::exited, "exited with code 0"), 3u);
  auto reply = p.call("echo", 2);
  ASSERT_FALSE(reply);
  EXPECT_EQ(reply.error().code, errc::pool_stopped);
}

TEST_F(Pool, StopKillsCallsStillRunningAfterTheDrainTimeout) {
  auto p = make(fake_options(json::object(), 1));
  ready(p);
  result<reply> outcome = error{errc::worker_error, "not run"};
  std::thread caller([&] { outcome = p.call("sleep", {{"ms", 60'000}}); });
  while (p.stats().busy == 0) std::this_thread::yield();
  p.stop({.drain_timeout = 50ms});
  caller.join();
  ASSERT_FALSE(outcome);
  EXPECT_EQ(outcome.error().code, errc::pool_stopped) << outcome.error().message;
}

TEST_F(Pool, InvalidOptionsAreRejectedByName) {
  auto o = fake_options();
  o.size = 0;
  auto p = pool::create(o);
  ASSERT_FALSE(p);
  EXPECT_EQ(p.error().code, errc::invalid_options);
  EXPECT_NE(p.error().message.find("size"), std::string::npos);
  // validate() makes the same check without creating anything.
  auto checked = validate(o);
  ASSERT_FALSE(checked);
  EXPECT_EQ(checked.error().message, p.error().message);
  EXPECT_TRUE(validate(fake_options()));
}

TEST_F(Pool, WaitReadySaysWhyItReturned) {
  auto o = fake_options({{"init_ms", 60'000}}, 1);
  auto p = make(o);
  EXPECT_EQ(p.wait_ready(deadline_after(10ms)), ready_state::timed_out);
  p.stop({.drain_timeout = 0ms});
  EXPECT_EQ(p.wait_ready(deadline_after(20s)), ready_state::stopped);
  pool moved = std::move(p);
  EXPECT_EQ(p.wait_ready(deadline_after(20s)), ready_state::stopped);
  EXPECT_EQ(to_string(ready_state::degraded), "degraded");
}

TEST_F(Pool, MissingWorkerBinaryFailsStartsWithItsName) {
  auto o = fake_options();
  o.worker = {.argv = {"procpool-no-such-worker"}};
  o.crash_loop_failures = 2;
  auto p = make(o);
  auto reply = p.call("echo", 1, {.checkout_deadline = deadline_after(20s)});
  ASSERT_FALSE(reply);
  EXPECT_EQ(reply.error().code, errc::start_failed);
  EXPECT_NE(reply.error().message.find("procpool-no-such-worker"), std::string::npos);
}

TEST_F(Pool, LeaseKeepsOneWorkerForSeveralCalls) {
  auto p = make(fake_options(json::object(), 3));
  ready(p);
  {
    auto lease = p.checkout();
    ASSERT_TRUE(lease) << lease.error().message;
    for (int i = 0; i < 5; ++i) ASSERT_TRUE(lease->call("echo", i));
    EXPECT_EQ(p.stats().busy, 1u);
  }
  EXPECT_EQ(p.stats().busy, 0u);
  std::set<std::uint64_t> workers;
  for (const auto& t : recorder.timelines()) workers.insert(t.worker);
  EXPECT_EQ(workers.size(), 1u);
}

TEST_F(Pool, BrokenLeaseKillsItsWorkerOnRelease) {
  auto p = make(fake_options({{"crash_after", 1}}, 1));
  ready(p);
  auto lease = p.checkout();
  ASSERT_TRUE(lease) << lease.error().message;
  ASSERT_TRUE(lease->call("echo", 1));
  auto crashed = lease->call("echo", 2);
  ASSERT_FALSE(crashed);
  EXPECT_EQ(crashed.error().code, errc::worker_crashed);
  auto again = lease->call("echo", 3);
  ASSERT_FALSE(again);
  EXPECT_EQ(again.error().code, errc::worker_crashed) << "a broken lease must not be reused";
  lease->release();
  EXPECT_EQ(p.wait_ready(deadline_after(20s)), ready_state::ready);
  EXPECT_EQ(recorder.count(worker_state::exited), 1u);
}

TEST_F(Pool, LeaseCallReportsItsWorkerAndCheckoutTime) {
  auto p = make(fake_options(json::object(), 1));
  ready(p);
  auto lease = p.checkout();
  ASSERT_TRUE(lease) << lease.error().message;
  auto first = lease->call("echo", 1);
  auto second = lease->call("echo", 2);
  ASSERT_TRUE(first && second);
  EXPECT_EQ(second->value, 2);
  EXPECT_EQ(first->worker, lease->worker_id());
  EXPECT_EQ(first->timing.t_checkout, second->timing.t_checkout) << "the lease's checkout";
  EXPECT_LE(first->timing.t_reply, second->timing.t_submit);
}

TEST_F(Pool, LeaseOutlivingItsPoolFailsSafely) {
  std::optional<worker_lease> lease;
  {
    auto p = make(fake_options(json::object(), 1));
    ready(p);
    auto taken = p.checkout();
    ASSERT_TRUE(taken) << taken.error().message;
    lease.emplace(std::move(*taken));
    ASSERT_TRUE(lease->call("echo", 1));
    // Not waiting for the lease: the pool revokes it and stops its worker.
    p.stop({.drain_timeout = 0ms});
    EXPECT_FALSE(lease->held());
    EXPECT_EQ(recorder.count(worker_state::exited), 1u);
  }
  auto after = lease->call("echo", 2);
  ASSERT_FALSE(after);
  EXPECT_EQ(after.error().code, errc::pool_stopped) << after.error().message;
  EXPECT_FALSE(lease->held());
  lease->release();  // does nothing: the pool is gone
  lease->release();
  EXPECT_EQ(lease->call("echo", 3).error().code, errc::pool_stopped);
  lease.reset();
  EXPECT_EQ(recorder.timelines().size(), 1u) << "no request was made after the pool stopped";
}

// Whether the stop finds the lease in its call or just before it, the call ends with
// pool_stopped and the stop neither hangs nor leaves the worker behind.
TEST_F(Pool, LeaseCallingWhenThePoolStopsEndsWithPoolStopped) {
  std::optional<pool> p(make(fake_options(json::object(), 1)));
  ready(*p);
  auto lease = p->checkout();
  ASSERT_TRUE(lease) << lease.error().message;
  result<reply> outcome = error{errc::worker_error, "not run"};
  std::thread caller([&] { outcome = lease->call("sleep", {{"ms", 60'000}}); });
  p->stop({.drain_timeout = 50ms});
  caller.join();
  p.reset();
  ASSERT_FALSE(outcome);
  EXPECT_EQ(outcome.error().code, errc::pool_stopped) << outcome.error().message;
  EXPECT_FALSE(lease->held());
  EXPECT_EQ(lease->call("echo", 1).error().code, errc::pool_stopped);
}

TEST_F(Pool, GrandchildrenDieWithThePool) {
  auto o = fake_options(json::object(), 2);
  o.worker.argv.push_back("--grandchild");
  {
    auto p = make(o);
    ready(p);
  }
  // The fixture's audit fails the test if any grandchild was re-parented here and left alive.
}

}  // namespace
}  // namespace procpool
