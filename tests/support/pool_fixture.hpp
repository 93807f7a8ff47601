// Test support: the fixture of the suites that build pools of fake workers.
//
// Leak-checked (no worker may outlive a test), with an observer recording every timeline and
// worker event, and helpers that fail the test instead of returning errors:
//
//   class PoolFaults : public procpool::testing::recorded_pool_test {};
//   TEST_F(PoolFaults, Something) {
//     auto p = make(fake_options({{"crash_after", 3}}));
//     ready(p);
//     ...
//     EXPECT_EQ(recorder.timelines().size(), 4u);
//   }
#pragma once

#include <chrono>
#include <cstddef>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "procpool/pool.hpp"
#include "support/pool_recorder.hpp"
#include "support/process_audit.hpp"
#include "support/workers.hpp"

namespace procpool::testing {

class recorded_pool_test : public leak_checked_test {
 protected:
  // Fake workers with `init_args`, `size` of them, reporting to `recorder`.
  pool_options fake_options(nlohmann::json init_args = nlohmann::json::object(),
                            std::size_t size = 2) {
    pool_options o = fake_pool_options(std::move(init_args), size);
    o.observer = recorder.observer();
    return o;
  }

  static pool make(pool_options o) {
    auto p = pool::create(std::move(o));
    EXPECT_TRUE(p) << p.error().message;
    return std::move(*p);
  }

  static void ready(pool& p) {
    ASSERT_EQ(p.wait_ready(deadline_after(std::chrono::seconds(20))), ready_state::ready);
  }

  pool_recorder recorder;
};

}  // namespace procpool::testing
