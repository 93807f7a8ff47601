// driver_workers on its own: the reports an external pool's driver sends (the pids of
// "started", "worker" lifecycle events, the pid and worker stamps of done lines) become the
// worker events procpool's own pool emits, stamped with the driver's times. No process runs:
// each test feeds reports in and reads the events out.
#include <gtest/gtest.h>

#include <cstdint>
#include <string>
#include <vector>

#include "subjects/driver_workers.hpp"

namespace procpool::harness {
namespace {

// Stamps far from any monotonic_ns() this test could read: an event stamped "now" instead of
// with the driver's time would show.
constexpr std::int64_t t0 = 1'000;

class DriverWorkers : public ::testing::Test {
 protected:
  std::vector<worker_event> events;
  driver_workers workers{[this](const worker_event& e) { events.push_back(e); }};

  static driver_worker report(std::uint64_t pid, driver_worker_state state, std::int64_t t_ns) {
    driver_worker w;
    w.pid = pid;
    w.state = state;
    w.t_ns = t_ns;
    return w;
  }

  // The events of one worker, in the order they were emitted.
  std::vector<worker_event> of(std::uint64_t pid) const {
    std::vector<worker_event> out;
    for (const auto& e : events) {
      if (e.worker == pid) out.push_back(e);
    }
    return out;
  }
};

void expect_change(const worker_event& e, std::int64_t t, worker_state from, worker_state to,
                   const std::string& cause, exit_kind exit = exit_kind::none) {
  EXPECT_EQ(e.t_ns, t);
  EXPECT_EQ(e.from, from) << to_string(e.from);
  EXPECT_EQ(e.to, to) << to_string(e.to);
  EXPECT_EQ(e.cause, cause);
  EXPECT_EQ(e.exit, exit) << to_string(e.exit);
}

TEST_F(DriverWorkers, StartedPidsAreIdleFromTheStartedStamp) {
  workers.started(t0, {4242, 0, 4243});
  ASSERT_EQ(events.size(), 2u);  // pid 0 is no worker
  expect_change(events[0], t0, worker_state::pending, worker_state::idle, "ready at started");
  EXPECT_EQ(events[0].worker, 4242u);
  EXPECT_EQ(events[0].pid, 4242);
  EXPECT_EQ(events[0].slot, 0u);
  EXPECT_EQ(events[1].worker, 4243u);
  EXPECT_EQ(events[1].slot, 1u);
  EXPECT_EQ(events[1].t_spawn_ns, 0);  // no stamps were reported
  EXPECT_EQ(workers.known(), 2u);

  // A pid already known is not started again.
  workers.started(t0 + 5, {4242});
  EXPECT_EQ(events.size(), 2u);
}

TEST_F(DriverWorkers, SpawnedThenReadyIsAStartWithTheDriversStamps) {
  driver_worker spawned = report(7, driver_worker_state::spawned, t0 + 50);
  spawned.t_spawn_ns = t0 + 40;
  workers.lifecycle(spawned);
  driver_worker ready = report(7, driver_worker_state::ready, t0 + 90);
  ready.t_main_ns = t0 + 60;
  ready.t_init_done_ns = t0 + 80;
  workers.lifecycle(ready);

  ASSERT_EQ(events.size(), 2u);
  // Each change at the stamp that says when it happened, not when the driver reported it.
  expect_change(events[0], t0 + 40, worker_state::pending, worker_state::starting, "spawned");
  EXPECT_EQ(events[0].t_spawn_ns, t0 + 40);
  EXPECT_EQ(events[0].t_main_ns, 0);
  expect_change(events[1], t0 + 80, worker_state::starting, worker_state::idle, "init done");
  EXPECT_EQ(events[1].t_spawn_ns, t0 + 40);  // the spawn stamp stays with the worker
  EXPECT_EQ(events[1].t_main_ns, t0 + 60);
  EXPECT_EQ(events[1].t_init_done_ns, t0 + 80);
  EXPECT_EQ(events[1].pid, 7);
  EXPECT_EQ(events[1].slot, 0u);
}

TEST_F(DriverWorkers, WithoutStampsTheEventTimeIsUsed) {
  workers.lifecycle(report(7, driver_worker_state::spawned, t0 + 50));
  workers.lifecycle(report(7, driver_worker_state::ready, t0 + 90));
  ASSERT_EQ(events.size(), 2u);
  expect_change(events[0], t0 + 50, worker_state::pending, worker_state::starting, "spawned");
  EXPECT_EQ(events[0].t_spawn_ns, t0 + 50);  // the spawn is when the driver saw it
  expect_change(events[1], t0 + 90, worker_state::starting, worker_state::idle, "init done");
  EXPECT_EQ(events[1].t_init_done_ns, 0);
}

TEST_F(DriverWorkers, ReadyAloneIsAWorkerReadyFromItsInitDone) {
  driver_worker ready = report(9, driver_worker_state::ready, t0 + 90);
  ready.t_spawn_ns = t0 + 10;
  ready.t_main_ns = t0 + 20;
  ready.t_init_done_ns = t0 + 30;
  workers.lifecycle(ready);
  ASSERT_EQ(events.size(), 1u);
  expect_change(events[0], t0 + 30, worker_state::pending, worker_state::idle, "init done");
  EXPECT_EQ(events[0].t_spawn_ns, t0 + 10);
  EXPECT_EQ(events[0].t_main_ns, t0 + 20);

  // A second ready, or a spawned after it, changes nothing.
  workers.lifecycle(report(9, driver_worker_state::ready, t0 + 95));
  workers.lifecycle(report(9, driver_worker_state::spawned, t0 + 96));
  EXPECT_EQ(events.size(), 1u);
}

TEST_F(DriverWorkers, ExitsAreFaultsUnlessPlanned) {
  workers.started(t0, {1, 2, 3});
  events.clear();
  driver_worker crashed = report(1, driver_worker_state::exited, t0 + 10);
  crashed.cause = "killed by SIGKILL";
  workers.lifecycle(crashed);
  driver_worker retired = report(2, driver_worker_state::exited, t0 + 20);
  retired.cause = "maxtasksperchild";
  retired.planned = true;
  workers.lifecycle(retired);
  workers.lifecycle(report(3, driver_worker_state::exited, t0 + 30));  // no cause

  ASSERT_EQ(events.size(), 3u);
  expect_change(events[0], t0 + 10, worker_state::idle, worker_state::exited, "killed by SIGKILL",
                exit_kind::fault);
  expect_change(events[1], t0 + 20, worker_state::idle, worker_state::exited, "retired: maxtasksperchild",
                exit_kind::recycled);
  expect_change(events[2], t0 + 30, worker_state::idle, worker_state::exited, "exited", exit_kind::fault);
  EXPECT_EQ(workers.known(), 0u);
}

TEST_F(DriverWorkers, ADoneLineIsABusySpanAtTheWorkersOwnStamps) {
  workers.started(t0, {4242});
  events.clear();
  workers.ran(4242, t0 + 100, t0 + 150);
  ASSERT_EQ(events.size(), 2u);
  expect_change(events[0], t0 + 100, worker_state::idle, worker_state::busy, "task");
  expect_change(events[1], t0 + 150, worker_state::busy, worker_state::idle, "task done");
  EXPECT_EQ(events[0].slot, 0u);

  // Lines that do not place a task on a worker add nothing: no pid, no receive stamp, or a
  // task that ended before it began.
  workers.ran(0, t0 + 200, t0 + 210);
  workers.ran(4242, 0, t0 + 210);
  workers.ran(4242, t0 + 300, t0 + 299);
  EXPECT_EQ(events.size(), 2u);
  // A zero-length task is a task.
  workers.ran(4242, t0 + 400, t0 + 400);
  EXPECT_EQ(events.size(), 4u);
}

TEST_F(DriverWorkers, APidSeenOnlyInADoneLineIsAWorkerFirstSeenBusy) {
  workers.ran(555, t0 + 100, t0 + 150);
  ASSERT_EQ(events.size(), 2u);
  expect_change(events[0], t0 + 100, worker_state::pending, worker_state::busy, "task");
  expect_change(events[1], t0 + 150, worker_state::busy, worker_state::idle, "task done");
  EXPECT_EQ(events[0].worker, 555u);
  EXPECT_EQ(events[0].pid, 555);
  EXPECT_EQ(workers.known(), 1u);
  // Its ready event, arriving after the done line, does not start it again.
  workers.lifecycle(report(555, driver_worker_state::ready, t0 + 50));
  EXPECT_EQ(events.size(), 2u);
}

TEST_F(DriverWorkers, ACrashReportedByADoneLineIsAFaultExit) {
  workers.started(t0, {4242});
  events.clear();
  workers.crashed(4242, t0 + 70, "BrokenProcessPool");
  ASSERT_EQ(events.size(), 1u);
  expect_change(events[0], t0 + 70, worker_state::idle, worker_state::exited, "crashed: BrokenProcessPool",
                exit_kind::fault);
  workers.crashed(0, t0 + 80, "no pid");
  EXPECT_EQ(events.size(), 1u);
  EXPECT_EQ(workers.known(), 0u);
}

TEST_F(DriverWorkers, AnExitedPidIsNeverRevived) {
  workers.started(t0, {4242});
  workers.lifecycle(report(4242, driver_worker_state::exited, t0 + 10));
  const std::size_t before = events.size();
  // A late done line, a stray lifecycle event, a second started or crash for the pid: its
  // exit closed its lane.
  workers.ran(4242, t0 + 20, t0 + 30);
  workers.lifecycle(report(4242, driver_worker_state::ready, t0 + 40));
  workers.lifecycle(report(4242, driver_worker_state::exited, t0 + 45));
  workers.started(t0 + 50, {4242});
  workers.crashed(4242, t0 + 60, "late");
  workers.pool_stopped(t0 + 70);
  EXPECT_EQ(events.size(), before);
  EXPECT_EQ(workers.known(), 0u);
}

TEST_F(DriverWorkers, AnExitFreesItsSlotForTheNextWorker) {
  workers.started(t0, {10, 20, 30});
  workers.lifecycle(report(20, driver_worker_state::exited, t0 + 1));
  workers.crashed(10, t0 + 2, "gone");
  // The lowest free slot first, then the next never used.
  workers.lifecycle(report(40, driver_worker_state::spawned, t0 + 3));
  workers.ran(50, t0 + 4, t0 + 5);
  workers.lifecycle(report(60, driver_worker_state::ready, t0 + 6));
  ASSERT_FALSE(of(40).empty());
  ASSERT_FALSE(of(50).empty());
  ASSERT_FALSE(of(60).empty());
  EXPECT_EQ(of(40).front().slot, 0u);
  EXPECT_EQ(of(50).front().slot, 1u);
  EXPECT_EQ(of(60).front().slot, 3u);
  EXPECT_EQ(of(30).front().slot, 2u);
  EXPECT_EQ(workers.known(), 4u);  // 30, 40, 50 and 60
}

TEST_F(DriverWorkers, PoolStoppedRetiresEveryLiveWorkerAsPlanned) {
  workers.started(t0, {1});
  workers.lifecycle(report(2, driver_worker_state::spawned, t0 + 1));  // still starting
  workers.ran(3, t0 + 2, t0 + 3);
  workers.lifecycle(report(4, driver_worker_state::exited, t0 + 4));  // gone before the stop
  events.clear();
  workers.pool_stopped(t0 + 100);
  ASSERT_EQ(events.size(), 3u);
  const worker_state from[] = {worker_state::idle, worker_state::starting, worker_state::idle};
  for (std::size_t i = 0; i < events.size(); ++i) {
    SCOPED_TRACE(i);
    EXPECT_EQ(events[i].worker, i + 1);
    expect_change(events[i], t0 + 100, from[i], worker_state::exited, "pool stopping",
                  exit_kind::planned_stop);
  }
  EXPECT_EQ(workers.known(), 0u);
  // Nothing is left to stop, and the stopped pids stay gone.
  workers.pool_stopped(t0 + 200);
  workers.ran(1, t0 + 150, t0 + 160);
  EXPECT_EQ(events.size(), 3u);
}

constexpr std::uint64_t anonymous = std::uint64_t{1} << 32;

driver_pool_sample counts(std::int64_t t, std::uint64_t busy, std::uint64_t alive) {
  return {.t_ns = t, .queued = 0, .busy = busy, .alive = alive};
}

TEST_F(DriverWorkers, PoolSamplesAloneGiveAnonymousWorkersBusyAsCounted) {
  workers.sampled(counts(t0, 1, 3));
  ASSERT_EQ(events.size(), 3u);
  expect_change(events[0], t0, worker_state::pending, worker_state::busy, "counted busy");
  expect_change(events[1], t0, worker_state::pending, worker_state::idle, "counted idle");
  expect_change(events[2], t0, worker_state::pending, worker_state::idle, "counted idle");
  EXPECT_EQ(events[0].worker, anonymous);
  EXPECT_EQ(events[2].worker, anonymous + 2);
  EXPECT_EQ(events[2].pid, 0);
  events.clear();
  workers.sampled(counts(t0 + 10, 2, 2));  // one more busy, one fewer alive
  ASSERT_EQ(events.size(), 2u);
  expect_change(events[0], t0 + 10, worker_state::idle, worker_state::busy, "counted busy");
  EXPECT_EQ(events[0].worker, anonymous + 1);
  expect_change(events[1], t0 + 10, worker_state::idle, worker_state::exited, "no longer counted alive",
                exit_kind::recycled);
  events.clear();
  workers.sampled(counts(t0 + 20, 2, 2));  // no change, no event
  EXPECT_TRUE(events.empty());
}

TEST_F(DriverWorkers, TheFirstNamedWorkerRetiresTheAnonymousOnesAndLaterSamplesAreIgnored) {
  workers.sampled(counts(t0, 0, 2));
  events.clear();
  workers.ran(4242, t0 + 5, t0 + 8);
  ASSERT_EQ(events.size(), 4u);
  expect_change(events[0], t0 + 5, worker_state::idle, worker_state::exited, "the driver named its workers",
                exit_kind::planned_stop);
  expect_change(events[1], t0 + 5, worker_state::idle, worker_state::exited, "the driver named its workers",
                exit_kind::planned_stop);
  EXPECT_EQ(events[2].worker, 4242u);
  events.clear();
  workers.sampled(counts(t0 + 20, 1, 4));
  EXPECT_TRUE(events.empty());
}

TEST(DriverWorkersWithoutObserver, TracksWorkersWithoutEmitting) {
  driver_workers workers(nullptr);
  workers.started(t0, {1, 2});
  workers.ran(3, t0 + 1, t0 + 2);
  EXPECT_EQ(workers.known(), 3u);
  workers.crashed(1, t0 + 3, "gone");
  workers.pool_stopped(t0 + 4);
  EXPECT_EQ(workers.known(), 0u);
}

}  // namespace
}  // namespace procpool::harness
