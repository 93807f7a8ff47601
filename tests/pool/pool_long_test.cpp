// procpool::pool under sustained load: many calls with mixed faults, and thousands of
// worker restarts. CTest label "long": CI runs them in the release build only.
#include <unistd.h>

#include <atomic>
#include <thread>
#include <vector>

#include <gtest/gtest.h>

#include "procpool/pool.hpp"
#include "support/process_audit.hpp"
#include "support/workers.hpp"

namespace procpool {
namespace {

using namespace std::chrono_literals;
using json = nlohmann::json;
using PoolLong = testing::leak_checked_test;

TEST_F(PoolLong, TwentyThousandCallsWithMixedFaultsEachGetOneTimelyOutcome) {
  auto o = testing::fake_pool_options({{"crash_probability", 0.05}, {"hang_probability", 0.01},
                      {"garbage_probability", 0.01}}, 4);
  o.restart_backoff_max = 100ms;
  o.crash_loop_failures = 1000;
  auto p = pool::create(o);
  ASSERT_TRUE(p) << p.error().message;
  ASSERT_EQ(p->wait_ready(deadline_after(20s)), ready_state::ready);

  constexpr int callers = 8;
  constexpr int calls_per_caller = 2500;
  const auto patience = 150ms;
  // A call may overrun its deadline by the time to notice the fault and reap: bounded.
  const auto grace = 1000ms;
  std::atomic<int> outcomes{0}, ok{0}, late{0};
  std::vector<std::thread> threads;
  for (int c = 0; c < callers; ++c) {
    threads.emplace_back([&, c] {
      for (int i = 0; i < calls_per_caller; ++i) {
        const auto submitted = std::chrono::steady_clock::now();
        const call_options co{.checkout_deadline = submitted + patience,
                              .reply_deadline = submitted + 2 * patience};
        auto reply = p->call("echo", json{{"c", c}, {"i", i}}, co);
        ++outcomes;
        if (reply) {
          ++ok;
          EXPECT_EQ(reply->value, (json{{"c", c}, {"i", i}}));
        } else {
          EXPECT_TRUE(reply.error().code == errc::worker_crashed ||
                      reply.error().code == errc::request_timeout ||
                      reply.error().code == errc::protocol_error ||
                      reply.error().code == errc::checkout_timeout)
              << to_string(reply.error().code) << ": " << reply.error().message;
        }
        if (std::chrono::steady_clock::now() > *co.reply_deadline + grace) ++late;
      }
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_EQ(outcomes.load(), callers * calls_per_caller);
  EXPECT_EQ(late.load(), 0);
  EXPECT_GT(ok.load(), callers * calls_per_caller / 2);
  EXPECT_EQ(p->wait_ready(deadline_after(20s)), ready_state::ready)
      << "the pool did not return to full size";
  EXPECT_EQ(p->stats().ready(), 4u);
}

TEST_F(PoolLong, DescriptorsAndMemoryAreFlatAcrossTenThousandRestarts) {
  auto o = testing::fake_pool_options(json::object(), 4);
  o.recycle_after_requests = 1;  // every call ends its worker: one restart per call
  o.max_concurrent_starts = 4;
  auto p = pool::create(o);
  ASSERT_TRUE(p) << p.error().message;
  // Two callers keep both cores busy with starts; each call retires the worker it used.
  auto restart = [&](int n) {
    std::vector<std::thread> callers;
    for (int c = 0; c < 2; ++c) {
      callers.emplace_back([&] {
        for (int i = 0; i < n / 2; ++i) {
          ASSERT_TRUE(p->call("echo", i, {.checkout_deadline = deadline_after(20s)}));
        }
      });
    }
    for (auto& t : callers) t.join();
  };
  // Compare like with like: every slot ready, nothing starting or stopping. Between calls a
  // recycled worker may still be stopping, holding its descriptors for a moment.
  auto settle = [&] {
    const auto until = std::chrono::steady_clock::now() + 20s;
    while (std::chrono::steady_clock::now() < until) {
      const auto s = p->stats();
      if (s.ready() == 4 && s.starting == 0 && s.pending == 0 && s.other == 0) return true;
      std::this_thread::yield();
    }
    return false;
  };
  restart(100);
  ASSERT_TRUE(settle());
  const std::size_t fds_after_100 = testing::open_fd_count();
  const long rss_after_100 = testing::rss_kib(::getpid());
  restart(9'900);
  ASSERT_TRUE(settle());
  EXPECT_GE(p->stats().recycled, 10'000u);
  EXPECT_LE(testing::open_fd_count(), fds_after_100);
  // Allocator caches may settle a little; a leak of even 100 bytes a restart would be 1 MiB.
  EXPECT_LE(testing::rss_kib(::getpid()) - rss_after_100, 1024) << "RSS after 100: " << rss_after_100;
}

}  // namespace
}  // namespace procpool
