// pool::submit, reply_future, pool::map and pipelining, with the fake worker: each request
// gets exactly one outcome, on time, with a timeline that says where it waited; requests
// behind a fault on the same worker fail naming their cause.
#include <atomic>
#include <map>
#include <mutex>
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

class PoolSubmit : public testing::recorded_pool_test {
 protected:
  pool_options options(json init_args = json::object(), std::size_t size = 2,
                       std::size_t depth = 1) {
    pool_options o = fake_options(std::move(init_args), size);
    o.pipeline_depth = depth;
    return o;
  }

  // Every request the observer saw, by id; fails the test on an id seen twice.
  std::map<std::uint64_t, request_timeline> timelines_by_id() {
    std::map<std::uint64_t, request_timeline> by_id;
    for (const auto& t : recorder.timelines()) {
      EXPECT_TRUE(by_id.emplace(t.request_id, t).second) << "two outcomes for " << t.request_id;
    }
    return by_id;
  }
};

TEST_F(PoolSubmit, GetReturnsEachRequestsOwnReplyWithItsTimeline) {
  auto p = make(options());
  std::vector<reply_future> futures;
  for (int i = 0; i < 200; ++i) futures.push_back(p.submit("echo", {{"n", i}}));
  for (int i = 0; i < 200; ++i) {
    ASSERT_TRUE(futures[i].valid());
    const auto id = futures[i].request_id();
    auto r = futures[i].get();
    ASSERT_TRUE(r) << r.error().message;
    EXPECT_EQ(r->value, (json{{"n", i}}));
    EXPECT_EQ(r->request_id, id);
    EXPECT_FALSE(futures[i].valid());
    const auto& t = r->timing;
    EXPECT_LE(t.t_submit, t.t_checkout);
    EXPECT_LE(t.t_checkout, t.t_sent);
    EXPECT_EQ(t.t_head, t.t_sent);  // depth 1: nothing is ever ahead
    EXPECT_LE(t.t_sent, t.t_worker_recv);
    EXPECT_LE(t.t_worker_done, t.t_reply);
  }
  const auto by_id = timelines_by_id();
  EXPECT_EQ(by_id.size(), 200u);
  for (const auto& [id, t] : by_id) {
    EXPECT_FALSE(t.outcome.has_value());
    EXPECT_EQ(t.ahead, 0u);
  }
  EXPECT_EQ(p.stats().calls_ok, 200u);
}

TEST_F(PoolSubmit, ThenRunsOnceOnTheDispatcherOrAtOnceWhenReady) {
  auto p = make(options());
  ready(p);
  const auto caller = std::this_thread::get_id();

  std::atomic<int> runs{0};
  std::atomic<bool> on_caller{true};
  std::atomic<bool> done{false};
  auto pending = p.submit("sleep", {{"ms", 50}});
  pending.then([&](result<reply> r) {
    EXPECT_TRUE(r) << r.error().message;
    on_caller = std::this_thread::get_id() == caller;
    ++runs;
    done = true;
    done.notify_all();
  });
  EXPECT_FALSE(pending.valid());
  done.wait(false);
  EXPECT_EQ(runs, 1);
  EXPECT_FALSE(on_caller) << "a callback set before the reply runs on the dispatcher";

  auto finished = p.submit("echo", 7);
  finished.wait();
  EXPECT_TRUE(finished.ready());
  bool ran_here = false;
  finished.then([&](result<reply> r) {
    ASSERT_TRUE(r);
    EXPECT_EQ(r->value, 7);
    ran_here = std::this_thread::get_id() == caller;
  });
  EXPECT_TRUE(ran_here) << "then() on a ready future runs before returning";
}

TEST_F(PoolSubmit, WaitUntilReturnsAtItsDeadlineWhileTheRequestRuns) {
  auto p = make(options());
  ready(p);
  auto f = p.submit("sleep", {{"ms", 300}});
  EXPECT_FALSE(f.wait_until(deadline_after(20ms)));
  EXPECT_FALSE(f.ready());
  EXPECT_TRUE(f.wait_until(deadline_after(10s)));
  auto r = f.get();
  EXPECT_TRUE(r) << r.error().message;
}

TEST_F(PoolSubmit, CallbackFormReturnsTheIdItsTimelineCarries) {
  auto p = make(options());
  std::atomic<std::uint64_t> seen{0};
  const auto id = p.submit("echo", 1, {}, [&](result<reply> r) {
    ASSERT_TRUE(r);
    seen = r->request_id;
    seen.notify_all();
  });
  EXPECT_NE(id, 0u);
  seen.wait(0);
  EXPECT_EQ(seen, id);
}

TEST_F(PoolSubmit, FailsAtOnceOnTheSubmittingThreadOnceStopped) {
  auto p = make(options());
  p.stop();
  auto f = p.submit("echo", 1);
  EXPECT_TRUE(f.ready());
  auto r = f.get();
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code, errc::pool_stopped);

  const auto caller = std::this_thread::get_id();
  bool ran = false;
  p.submit("echo", 1, {}, [&](result<reply> r2) {
    ran = true;
    EXPECT_EQ(std::this_thread::get_id(), caller);
    ASSERT_FALSE(r2);
    EXPECT_EQ(r2.error().code, errc::pool_stopped);
  });
  EXPECT_TRUE(ran);
}

TEST_F(PoolSubmit, StopCompletesEveryQueuedRequestExactlyOnceBeforeReturning) {
  auto p = make(options(json::object(), 1));
  ready(p);
  std::atomic<int> callbacks{0};
  std::vector<reply_future> futures;
  for (int i = 0; i < 1000; ++i) {
    if (i % 2 == 0) {
      futures.push_back(p.submit("sleep", {{"ms", 2}}));
    } else {
      p.submit("sleep", {{"ms", 2}}, {}, [&](result<reply>) { ++callbacks; });
    }
  }
  p.stop({.drain_timeout = 100ms});
  EXPECT_EQ(callbacks, 500);
  std::size_t ok = 0, stopped = 0;
  for (auto& f : futures) {
    ASSERT_TRUE(f.ready());
    auto r = f.get();
    if (r) {
      ++ok;
    } else {
      EXPECT_EQ(r.error().code, errc::pool_stopped) << r.error().message;
      ++stopped;
    }
  }
  EXPECT_GT(stopped, 0u);
  EXPECT_EQ(ok + stopped, 500u);
  EXPECT_EQ(timelines_by_id().size(), 1000u);
}

TEST_F(PoolSubmit, ADroppedFutureStillRunsAndReachesTheObserver) {
  auto p = make(options());
  { auto dropped = p.submit("echo", 5); }
  auto after = p.submit("echo", 6);
  ASSERT_TRUE(after.get());
  p.stop();
  EXPECT_EQ(timelines_by_id().size(), 2u);
  EXPECT_EQ(p.stats().calls_ok, 2u);
}

TEST_F(PoolSubmit, CancelTakesBackOnlyWhatNoWorkerHas) {
  auto p = make(options(json::object(), 1));
  ready(p);
  auto busy = p.submit("sleep", {{"ms", 300}});
  auto waiting = p.submit("echo", 1);
  // The sleep is written at once; the echo waits for the only worker.
  while (p.stats().in_flight == 0) std::this_thread::yield();
  EXPECT_FALSE(busy.cancel());
  EXPECT_TRUE(waiting.cancel());
  auto r = waiting.get();
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code, errc::cancelled);
  EXPECT_TRUE(busy.get());
  p.stop();
  const auto by_id = timelines_by_id();
  ASSERT_EQ(by_id.size(), 2u);
  std::size_t cancelled = 0;
  for (const auto& [id, t] : by_id) cancelled += t.outcome == errc::cancelled;
  EXPECT_EQ(cancelled, 1u);
}

TEST_F(PoolSubmit, GetFromACallbackOnAnUnansweredRequestRefusesRatherThanDeadlock) {
  auto p = make(options(json::object(), 1));
  ready(p);
  std::atomic<bool> done{false};
  errc code = errc::io_error;
  p.submit("echo", 1, {}, [&](result<reply>) {
    auto inner = p.submit("sleep", {{"ms", 50}});
    auto r = inner.get();
    code = r ? errc::io_error : r.error().code;
    done = true;
    done.notify_all();
  });
  done.wait(false);
  EXPECT_EQ(code, errc::invalid_options);
}

TEST_F(PoolSubmit, ACheckoutDeadlineBoundsTheTimeQueued) {
  auto p = make(options(json::object(), 1));
  ready(p);
  auto busy = p.submit("sleep", {{"ms", 500}});
  auto late = p.submit("echo", 1, {.checkout_deadline = deadline_after(50ms)});
  auto r = late.get();
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code, errc::checkout_timeout) << r.error().message;
  EXPECT_TRUE(busy.get());
}

TEST_F(PoolSubmit, AHangTimesOutWithinItsDeadlineAndTheWorkerIsReplaced) {
  auto p = make(options(json::object(), 1));
  ready(p);
  auto f = p.submit("sleep", {{"ms", 60'000}}, {.reply_deadline = deadline_after(200ms)});
  auto r = f.get();
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code, errc::request_timeout);
  const auto t = timelines_by_id().begin()->second;
  EXPECT_LT(t.t_reply - t.t_submit, std::chrono::nanoseconds(1200ms).count());
  auto again = p.submit("echo", 2).get();
  EXPECT_TRUE(again) << again.error().message;
}

TEST_F(PoolSubmit, PipelinedEchoesFromFourThreadsEachGetTheirOwnValue) {
  auto p = make(options(json::object(), 2, 8));
  ready(p);
  std::vector<std::thread> threads;
  std::atomic<int> wrong{0};
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&, t] {
      std::vector<reply_future> futures;
      for (int i = 0; i < 2500; ++i) futures.push_back(p.submit("echo", {{"t", t}, {"i", i}}));
      for (int i = 0; i < 2500; ++i) {
        auto r = futures[i].get();
        if (!r || r->value != json{{"t", t}, {"i", i}}) ++wrong;
      }
    });
  }
  for (auto& th : threads) th.join();
  EXPECT_EQ(wrong, 0);
  const auto by_id = timelines_by_id();
  EXPECT_EQ(by_id.size(), 10'000u);
  std::uint32_t deepest = 0;
  for (const auto& [id, t] : by_id) {
    deepest = std::max(deepest, t.ahead);
    EXPECT_GE(t.t_head, t.t_sent);
    EXPECT_LE(t.t_head, t.t_reply);
  }
  EXPECT_GT(deepest, 0u) << "10,000 echoes from 4 threads never pipelined";
  EXPECT_LT(deepest, 8u);
}

TEST_F(PoolSubmit, NothingIsPipelinedBehindAnotherWhileAWorkerIsFree) {
  auto p = make(options(json::object(), 4, 8));
  ready(p);
  // A trickle, one request at a time: four workers are always free.
  for (int i = 0; i < 50; ++i) ASSERT_TRUE(p.submit("echo", i).get());
  for (const auto& [id, t] : timelines_by_id()) EXPECT_EQ(t.ahead, 0u);
}

// Eight closed-loop callers on two workers, depth 4: a call that finds no worker free joins
// the submitted requests' queue and is pipelined behind another, and each caller still gets
// its own values, each request one outcome.
TEST_F(PoolSubmit, ClosedLoopCallersPipelineWhenNoWorkerIsFree) {
  auto p = make(options(json::object(), 2, 4));
  ready(p);
  constexpr int callers = 8, calls_each = 300;
  std::atomic<int> wrong{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < callers; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < calls_each; ++i) {
        auto r = p.call("echo", {{"t", t}, {"i", i}});
        if (!r || r->value != json{{"t", t}, {"i", i}}) ++wrong;
      }
    });
  }
  for (auto& th : threads) th.join();
  EXPECT_EQ(wrong, 0);
  const auto by_id = timelines_by_id();
  EXPECT_EQ(by_id.size(), std::size_t{callers * calls_each});
  std::uint32_t deepest = 0;
  for (const auto& [id, t] : by_id) deepest = std::max(deepest, t.ahead);
  EXPECT_GT(deepest, 0u) << "8 callers on 2 workers at depth 4 never pipelined";
  EXPECT_LT(deepest, 4u);
  EXPECT_EQ(p.stats().calls_ok, std::uint64_t{callers * calls_each});
}

// A queued call keeps call()'s checkout deadline and its error.
TEST_F(PoolSubmit, AQueuedCallTimesOutAtItsCheckoutDeadline) {
  auto p = make(options(json::object(), 1, 4));
  ready(p);
  auto lease = p.checkout();
  ASSERT_TRUE(lease) << lease.error().message;
  auto r = p.call("echo", 1, {.checkout_deadline = deadline_after(200ms)});
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code, errc::checkout_timeout) << r.error().message;
  EXPECT_TRUE(lease->call("echo", 2)) << "the leased worker was disturbed";
}

TEST_F(PoolSubmit, RequestsBehindAHangFailNamingItAndTheWorkerIsReplacedOnce) {
  // Whether echoes land behind the sleep depends on one dispatcher turn seeing them before
  // the sleep has been the head for 2 ms; a few attempts make it certain in practice.
  bool collateral_seen = false;
  for (int attempt = 0; attempt < 5 && !collateral_seen; ++attempt) {
    recorder.clear();
    auto p = make(options(json::object(), 1, 4));
    ready(p);
    for (int i = 0; i < 20; ++i) ASSERT_TRUE(p.submit("echo", i).get());  // learns: tiny tasks
    auto hang = p.submit("sleep", {{"ms", 60'000}}, {.reply_deadline = deadline_after(300ms)});
    std::vector<reply_future> behind;
    for (int i = 0; i < 3; ++i) behind.push_back(p.submit("echo", i));
    const auto hang_id = hang.request_id();
    auto h = hang.get();
    ASSERT_FALSE(h);
    EXPECT_EQ(h.error().code, errc::request_timeout);
    for (auto& f : behind) {
      auto r = f.get();
      if (r) continue;  // it waited in the queue and went to the replacement
      collateral_seen = true;
      EXPECT_EQ(r.error().code, errc::queued_behind_fault) << r.error().message;
      EXPECT_NE(r.error().message.find("behind request " + std::to_string(hang_id)),
                std::string::npos) << r.error().message;
    }
    p.stop();
    std::size_t collateral = 0;
    for (const auto& [id, t] : timelines_by_id()) {
      if (t.outcome != errc::queued_behind_fault) continue;
      ++collateral;
      EXPECT_EQ(t.caused_by, hang_id);
      EXPECT_EQ(t.cause, errc::request_timeout);
      EXPECT_GT(t.ahead, 0u);
      EXPECT_EQ(t.t_head, 0);  // never reached the front
    }
    std::size_t fault_exits = 0;
    for (const auto& e : recorder.events()) {
      fault_exits += e.to == worker_state::exited && e.exit == exit_kind::fault;
    }
    EXPECT_EQ(fault_exits, 1u) << "one hang is one lost worker, however deep the pipeline";
    EXPECT_EQ(collateral_seen, collateral > 0);
  }
  EXPECT_TRUE(collateral_seen) << "no echo was ever written behind the sleep";
}

// Every fault the fake worker can inject, at depth 8 under a stream from 2 threads: each
// request has one outcome, none later than its deadline plus a grace, every collateral
// failure names a request that failed with that cause on the same worker, and the pool
// comes back to full size.
struct fault_case {
  const char* name;
  json knobs;
};

class PoolSubmitFaults : public PoolSubmit, public ::testing::WithParamInterface<fault_case> {};

TEST_P(PoolSubmitFaults, EachRequestHasOneTimelyOutcomeAndCollateralNamesItsCause) {
  auto o = options(GetParam().knobs, 2, 8);
  o.request_timeout = 300ms;
  o.checkout_timeout = 2s;
  o.restart_backoff_initial = 0ms;
  o.restart_backoff_max = 0ms;
  o.crash_loop_failures = 1000;
  auto p = make(std::move(o));
  ready(p);
  // The load ends once the fault has fired a few times over enough requests, or after 1 s:
  // the assertions below need faults, not a fixed duration.
  std::atomic<int> submitted{0}, failures{0};
  const auto enough = [&] { return submitted >= 2048 && failures >= 3; };
  std::vector<std::thread> threads;
  for (int t = 0; t < 2; ++t) {
    threads.emplace_back([&] {
      const auto until = deadline_after(1s);
      while (std::chrono::steady_clock::now() < until && !enough()) {
        std::vector<reply_future> batch;
        for (int i = 0; i < 32; ++i) batch.push_back(p.submit("echo", i));
        submitted += 32;
        for (auto& f : batch) failures += !f.get();
      }
    });
  }
  for (auto& th : threads) th.join();
  ASSERT_EQ(p.wait_ready(deadline_after(20s)), ready_state::ready);
  p.stop();

  const auto by_id = timelines_by_id();
  ASSERT_GT(by_id.size(), 64u);
  std::size_t failed = 0;
  const auto ns = [](auto d) { return std::chrono::nanoseconds(d).count(); };
  for (const auto& [id, t] : by_id) {
    // Deadlines plus a grace: the reply's counts from the write, the queue's from submit.
    if (t.t_sent != 0) {
      EXPECT_LT(t.t_reply - t.t_sent, ns(300ms + 1s)) << "request " << id;
    } else {
      EXPECT_LT(t.t_reply - t.t_submit, ns(2s + 1s)) << "request " << id;
    }
    if (!t.outcome) continue;
    ++failed;
    if (t.outcome != errc::queued_behind_fault) continue;
    auto cause = by_id.find(t.caused_by);
    ASSERT_NE(cause, by_id.end()) << "request " << id << " names an unknown cause";
    EXPECT_EQ(cause->second.outcome, t.cause);
    EXPECT_EQ(cause->second.worker, t.worker);
    EXPECT_TRUE(t.cause && is_worker_fault(*t.cause));
  }
  EXPECT_GT(failed, 0u) << "the fault never fired";
}

INSTANTIATE_TEST_SUITE_P(
    Knobs, PoolSubmitFaults,
    ::testing::Values(fault_case{"crash_after", {{"crash_after", 37}}},
                      fault_case{"crash_exit", {{"crash_probability", 0.01}}},
                      fault_case{"crash_kill", {{"crash_probability", 0.01}, {"crash_mode", "kill"}}},
                      fault_case{"hang", {{"hang_probability", 0.002}}},
                      fault_case{"garbage", {{"garbage_probability", 0.005}}},
                      fault_case{"truncated", {{"truncated_probability", 0.005}}},
                      fault_case{"oversize", {{"oversize_probability", 0.005}}},
                      fault_case{"wrong_id", {{"wrong_id_probability", 0.005}}},
                      fault_case{"slow", {{"slow_probability", 0.002}, {"slow_ms", 2000}}}),
    [](const auto& info) { return std::string(info.param.name); });

TEST_F(PoolSubmit, RecyclesByCountUnderAStream) {
  auto o = options(json::object(), 2, 4);
  o.recycle_after_requests = 5;
  auto p = make(std::move(o));
  ready(p);
  std::vector<reply_future> futures;
  for (int i = 0; i < 300; ++i) futures.push_back(p.submit("echo", i));
  for (auto& f : futures) {
    auto r = f.get();
    EXPECT_TRUE(r) << r.error().message;
  }
  p.stop();
  std::map<std::uint64_t, int> served;
  for (const auto& [id, t] : timelines_by_id()) ++served[t.worker];
  for (const auto& [worker, n] : served) EXPECT_LE(n, 5) << "worker " << worker;
  EXPECT_GE(p.stats().recycled, 50u);
}

TEST_F(PoolSubmit, ADegradedPoolFailsSubmitsWithStartFailed) {
  pool_options o = options();
  o.worker.argv = {"/nonexistent/worker"};
  o.crash_loop_failures = 2;
  o.restart_backoff_initial = 0ms;
  auto p = make(std::move(o));
  ASSERT_EQ(p.wait_ready(deadline_after(20s)), ready_state::degraded);
  auto r = p.submit("echo", 1).get();
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code, errc::start_failed) << r.error().message;
}

TEST_F(PoolSubmit, BlockingCallersAreServedWhileAStreamHoldsTheWorkers) {
  auto p = make(options(json::object(), 2, 8));
  ready(p);
  std::atomic<bool> streaming{true};
  std::thread stream([&] {
    auto it = p.map("echo", [n = 0]() mutable -> std::optional<json> {
      return n < 20'000 ? std::optional<json>(n++) : std::nullopt;
    });
    for (auto r : it) {
      if (!streaming) break;
    }
  });
  for (int i = 0; i < 20; ++i) {
    auto r = p.call("echo", i, {.checkout_deadline = deadline_after(5s)});
    EXPECT_TRUE(r) << r.error().message;
  }
  streaming = false;
  stream.join();
}

// --- map -----------------------------------------------------------------------------------------

TEST_F(PoolSubmit, MapYieldsInInputOrderWithinItsWindow) {
  auto p = make(options(json::object(), 2, 4));
  std::size_t pulled = 0, yielded = 0, widest = 0;
  const auto consumer = std::this_thread::get_id();
  bool pulled_elsewhere = false;
  arg_source source = [&]() -> std::optional<json> {
    if (std::this_thread::get_id() != consumer) pulled_elsewhere = true;
    if (pulled == 1000) return std::nullopt;
    return json{{"n", pulled++}};
  };
  for (auto r : p.map("echo", source, {.window = 16})) {
    ASSERT_TRUE(r) << r.error().message;
    EXPECT_EQ(r->value, (json{{"n", yielded}}));
    ++yielded;
    widest = std::max(widest, pulled - yielded);
  }
  EXPECT_EQ(yielded, 1000u);
  EXPECT_LE(widest, 16u);
  EXPECT_FALSE(pulled_elsewhere);
}

TEST_F(PoolSubmit, MapOverARangeAndMapUnorderedCoverEveryIndexOnce) {
  auto p = make(options(json::object(), 2, 4));
  std::vector<int> inputs(500);
  for (int i = 0; i < 500; ++i) inputs[i] = i;
  std::size_t n = 0;
  for (auto r : p.map("echo", inputs)) {
    ASSERT_TRUE(r);
    EXPECT_EQ(r->value, static_cast<int>(n++));
  }
  EXPECT_EQ(n, 500u);

  std::set<std::size_t> seen;
  for (auto item : p.map_unordered("echo", std::vector<int>(inputs))) {
    ASSERT_TRUE(item.outcome);
    EXPECT_EQ(item.outcome->value, static_cast<int>(item.index));
    EXPECT_TRUE(seen.insert(item.index).second);
  }
  EXPECT_EQ(seen.size(), 500u);
}

TEST_F(PoolSubmit, EndingAMapEarlySendsNothingMore) {
  auto p = make(options(json::object(), 1, 1));
  ready(p);
  std::size_t pulled = 0;
  {
    auto results = p.map("sleep", [&]() -> std::optional<json> {
      ++pulled;
      return json{{"ms", 5}};
    }, {.window = 8});
    for (int i = 0; i < 3; ++i) ASSERT_TRUE(results.next());
  }
  EXPECT_LE(pulled, 3u + 8u);
  p.stop();
  const auto by_id = timelines_by_id();
  EXPECT_EQ(by_id.size(), pulled);
  std::size_t cancelled = 0;
  for (const auto& [id, t] : by_id) cancelled += t.outcome == errc::cancelled;
  EXPECT_GT(cancelled, 0u) << "the unsent items were not taken back";
}

TEST_F(PoolSubmit, MapStopsOnTheFirstErrorWhenAsked) {
  auto o = options(json::object(), 1, 1);
  o.request_timeout = 100ms;
  auto p = make(std::move(o));
  int n = 0;
  std::size_t yielded = 0;
  bool failure_seen = false;
  for (auto r : p.map("sleep", [&]() -> std::optional<json> {
         if (n == 100) return std::nullopt;
         return json{{"ms", n++ == 3 ? 5000 : 1}};
       }, {.window = 2, .stop_on_error = true})) {
    ++yielded;
    if (!r) failure_seen = true;
  }
  EXPECT_TRUE(failure_seen);
  EXPECT_LE(yielded, 3u + 1u + 2u);
  EXPECT_LT(n, 10);
}

TEST_F(PoolSubmit, AStoppedPoolEndsAMapWithPoolStopped) {
  auto p = make(options(json::object(), 1, 1));
  ready(p);
  auto results = p.map("sleep", [] { return std::optional<json>(json{{"ms", 2}}); },
                       {.window = 4});
  ASSERT_TRUE(results.next());
  std::thread stopper([&] { p.stop({.drain_timeout = 0ms}); });
  stopper.join();
  std::size_t after = 0;
  bool stopped_seen = false;
  while (auto r = results.next()) {
    ++after;
    if (!*r) {
      EXPECT_EQ(r->error().code, errc::pool_stopped) << r->error().message;
      stopped_seen = true;
    }
  }
  EXPECT_TRUE(stopped_seen);
  EXPECT_LE(after, 4u + 1u);
}

}  // namespace
}  // namespace procpool
