// What the runner reads off a case's worker events: ready_ms and the live workers' pids, on
// hand-built events.
#include <gtest/gtest.h>

#include "run/worker_states.hpp"

namespace procpool::harness {
namespace {

worker_event event(std::int64_t t_ms, std::uint64_t worker, worker_state to, std::int64_t pid = 0) {
  worker_event e;
  e.t_ns = t_ms * 1'000'000;
  e.worker = worker;
  e.to = to;
  e.pid = pid;
  return e;
}

constexpr std::int64_t created_ns = 10'000'000;  // 10 ms

TEST(ReadyMs, IsWhenTheLastConfiguredWorkerFirstBecameReady) {
  const std::vector<worker_event> events = {
      event(11, 1, worker_state::starting), event(12, 2, worker_state::starting),
      event(40, 2, worker_state::idle),     event(45, 2, worker_state::busy),  // still ready
      event(70, 1, worker_state::idle),     event(80, 2, worker_state::idle)};
  EXPECT_EQ(ready_ms(events, created_ns, 2), 60.0);  // 70 ms - 10 ms
}

TEST(ReadyMs, EventsOutOfStampOrderAreReplayedInTimeOrder) {
  const std::vector<worker_event> events = {
      event(70, 1, worker_state::idle), event(11, 1, worker_state::starting),
      event(40, 2, worker_state::idle), event(12, 2, worker_state::starting)};
  EXPECT_EQ(ready_ms(events, created_ns, 2), 60.0);
}

TEST(ReadyMs, AWorkerThatLeftDoesNotCountAndItsReplacementDoes) {
  const std::vector<worker_event> events = {
      event(20, 1, worker_state::idle),   event(30, 1, worker_state::exited),
      event(40, 2, worker_state::idle),   event(50, 3, worker_state::starting),
      event(90, 3, worker_state::pinging)};  // pinging: idle, being health-checked
  EXPECT_EQ(ready_ms(events, created_ns, 2), 80.0);
}

TEST(ReadyMs, IsNulloptWhenTheWorkersWereNeverAllReady) {
  const std::vector<worker_event> events = {event(20, 1, worker_state::idle),
                                            event(30, 2, worker_state::starting),
                                            event(40, 2, worker_state::exited)};
  EXPECT_EQ(ready_ms(events, created_ns, 2), std::nullopt);
  EXPECT_EQ(ready_ms({}, created_ns, 1), std::nullopt);
  EXPECT_EQ(ready_ms(events, created_ns, 0), std::nullopt);
}

worker_event template_event(std::int64_t t_ms, std::uint64_t worker, worker_state to, std::int64_t pid = 0) {
  worker_event e = event(t_ms, worker, to, pid);
  e.role = worker_role::zygote_template;
  e.slot = 2;  // the pool's size: one past the workers' slots
  return e;
}

// A pool of 2 whose template is ready at 30 ms: counted as a worker, the template and the
// first worker would make 2 ready at 40 ms, before the second worker was.
TEST(ReadyMs, AZygoteTemplateIsNotOneOfThePoolsWorkers) {
  const std::vector<worker_event> events = {
      template_event(11, 9, worker_state::starting), template_event(30, 9, worker_state::idle),
      event(31, 1, worker_state::starting),          event(31, 2, worker_state::starting),
      event(40, 1, worker_state::idle),              event(70, 2, worker_state::idle)};
  EXPECT_EQ(ready_ms(events, created_ns, 2), 60.0);  // 70 ms - 10 ms
  // With only the template ready, a pool of one is not ready either.
  EXPECT_EQ(ready_ms(std::span(events).first(2), created_ns, 1), std::nullopt);
}

TEST(LiveWorkerPids, LeaveOutTheZygoteTemplate) {
  const std::vector<worker_event> events = {template_event(10, 9, worker_state::idle, 900),
                                            event(11, 1, worker_state::idle, 101)};
  EXPECT_EQ(live_worker_pids(events), (std::vector<std::int64_t>{101}));
}

TEST(LiveWorkerPids, AreTheWorkersNotExitedThatHaveAPid) {
  const std::vector<worker_event> events = {
      event(10, 1, worker_state::starting, 101), event(11, 2, worker_state::starting, 102),
      event(12, 3, worker_state::idle, 0),  // an external driver's anonymous worker
      event(20, 1, worker_state::idle),     // no pid on this event: the earlier one holds
      event(30, 2, worker_state::exited, 102), event(40, 4, worker_state::stopping, 104)};
  EXPECT_EQ(live_worker_pids(events), (std::vector<std::int64_t>{101, 104}));
}

}  // namespace
}  // namespace procpool::harness
