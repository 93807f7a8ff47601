// procpool::pool under stress: a crash storm, where every worker crashes on every request;
// and callers parking workers while others wait, submit, and the pool stops under them.
#include <atomic>
#include <condition_variable>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include <gtest/gtest.h>

#include "procpool/pool.hpp"
#include "procpool/worker_lease.hpp"
#include "support/pool_recorder.hpp"
#include "support/process_audit.hpp"
#include "support/workers.hpp"

namespace procpool {
namespace {

using namespace std::chrono_literals;
using json = nlohmann::json;
using PoolStress = testing::leak_checked_test;

TEST_F(PoolStress, CrashStormNeitherHangsNorSpins) {
  testing::pool_recorder recorder;
  auto o = testing::fake_pool_options({{"crash_probability", 1.0}}, 4);
  o.observer = recorder.observer();
  o.restart_backoff_initial = 10ms;
  o.restart_backoff_max = 400ms;
  auto p = pool::create(o);
  ASSERT_TRUE(p) << p.error().message;
  ASSERT_EQ(p->wait_ready(deadline_after(20s)), ready_state::ready);

  const auto storm = 1500ms;
  const auto t0 = std::chrono::steady_clock::now();
  std::atomic<int> calls{0};
  std::vector<std::thread> callers;
  for (int c = 0; c < 4; ++c) {
    callers.emplace_back([&] {
      while (std::chrono::steady_clock::now() - t0 < storm) {
        auto reply = p->call("echo", 1, {.checkout_deadline = deadline_after(50ms)});
        EXPECT_FALSE(reply) << "a crashing worker answered";
        ++calls;
      }
    });
  }
  for (auto& t : callers) t.join();  // a hang would stop here, and CTest's timeout report it
  const double elapsed_ms =
      std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();

  // Each slot restarts after 10, 20, 40, ... 400 ms: within the storm at most
  // 1 + 6 + elapsed/400 starts per slot. A pool without backoff would start thousands.
  const std::size_t starts = recorder.count(worker_state::starting);
  const std::size_t bound = 4 * static_cast<std::size_t>(1 + 6 + elapsed_ms / 400 + 1);
  EXPECT_LE(starts, bound) << "after " << calls << " calls in " << elapsed_ms << " ms";
  EXPECT_GT(calls.load(), 0);
}

// More callers than workers, parking and recalling all the time: plain callers (who park),
// callers with affinity keys (who never park, and wait for their worker), a caller on
// leases, and a submitter (the dispatcher waits in the pool too), until a stop lands in the
// middle. At depth 4 the plain callers queue with the submitter when no worker is free.
// Every call ends with a reply or pool_stopped, nothing is lost or killed, and no thread
// hangs. Run under the thread sanitizer, this is the test of the parking protocol's races.
class PoolStressAtDepth : public PoolStress, public ::testing::WithParamInterface<std::size_t> {};

TEST_P(PoolStressAtDepth, ParkingCallersWaitersLeasesSubmittersAndAStopAgree) {
  auto o = testing::fake_pool_options(json::object(), 2);
  o.pipeline_depth = GetParam();
  auto p = pool::create(o);
  ASSERT_TRUE(p) << p.error().message;
  ASSERT_EQ(p->wait_ready(deadline_after(20s)), ready_state::ready);

  constexpr int calls_before_stop = 3000;
  std::atomic<int> ok{0};
  std::mutex mutex;
  std::condition_variable enough;
  auto count_ok = [&] {
    if (++ok == calls_before_stop) {
      std::lock_guard lock(mutex);
      enough.notify_all();
    }
  };
  auto ok_or_stopped = [](const auto& r) {
    if (!r) {
      EXPECT_EQ(r.error().code, errc::pool_stopped) << r.error().message;
    }
    return r.has_value();
  };
  std::vector<std::thread> threads;
  for (int c = 0; c < 5; ++c) {
    threads.emplace_back([&, c] {
      call_options co;
      if (c >= 3) co.affinity_key = "key-" + std::to_string(c);
      while (ok_or_stopped(p->call("echo", c, co))) count_ok();
    });
  }
  threads.emplace_back([&] {
    while (ok_or_stopped(p->submit("echo", "submitted").get())) count_ok();
  });
  threads.emplace_back([&] {
    while (true) {
      auto lease = p->checkout();
      if (!ok_or_stopped(lease) || !ok_or_stopped(lease->call("echo", "leased"))) break;
      count_ok();
    }
  });
  {
    std::unique_lock lock(mutex);
    enough.wait(lock, [&] { return ok >= calls_before_stop; });
  }
  p->stop({.drain_timeout = 30s});
  for (auto& t : threads) t.join();  // a hang would stop here, and CTest's timeout report it
  const auto s = p->stats();
  EXPECT_EQ(s.busy, 0u);
  EXPECT_EQ(s.workers_lost, 0u);
  EXPECT_EQ(s.calls_ok, static_cast<std::uint64_t>(ok.load()));
}

INSTANTIATE_TEST_SUITE_P(Depths, PoolStressAtDepth, ::testing::Values(1, 4),
                         [](const auto& info) { return "depth_" + std::to_string(info.param); });

}  // namespace
}  // namespace procpool
