// procpool::pool under a crash storm: every worker crashes on every request.
#include <atomic>
#include <thread>
#include <vector>

#include <gtest/gtest.h>

#include "procpool/pool.hpp"
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

}  // namespace
}  // namespace procpool
