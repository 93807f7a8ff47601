// Shards: the index and count from each CI engine's variables, with errors that name them;
// the status file Bazel asks for; and a split by measured wall time that evens out shards of
// skewed cases where equal counts do not.
#include <unistd.h>

#include <algorithm>
#include <filesystem>
#include <map>
#include <numeric>

#include <gtest/gtest.h>

#include "cli/shard_option.hpp"
#include "scenario/shards.hpp"

namespace procpool::harness {
namespace {

env_lookup environment(std::map<std::string, std::string, std::less<>> vars) {
  return [vars = std::move(vars)](std::string_view name) -> std::optional<std::string> {
    const auto it = vars.find(name);
    return it == vars.end() ? std::nullopt : std::optional(it->second);
  };
}

TEST(ShardOption, EachEnginesVariablesGiveTheIndexAndCount) {
  const std::vector<std::pair<std::map<std::string, std::string, std::less<>>, shard>> engines = {
      {{{"PROCPOOL_SHARD_INDEX", "1"}, {"PROCPOOL_SHARD_COUNT", "3"}}, {1, 3}},
      {{{"JOB_COMPLETION_INDEX", "2"}, {"PROCPOOL_SHARD_COUNT", "4"}}, {2, 4}},  // Kubernetes
      {{{"TEST_SHARD_INDEX", "0"}, {"TEST_TOTAL_SHARDS", "2"}}, {0, 2}},         // Bazel
      {{{"GTEST_SHARD_INDEX", "5"}, {"GTEST_TOTAL_SHARDS", "6"}}, {5, 6}},       // GoogleTest
  };
  for (const auto& [vars, expected] : engines) {
    auto s = resolve_shard("auto", environment(vars));
    ASSERT_TRUE(s) << s.error().describe();
    EXPECT_EQ(s->index, expected.index);
    EXPECT_EQ(s->count, expected.count);
  }
  // The count written on the command line wins; PROCPOOL_ variables win over the engines'.
  auto s = resolve_shard("auto/8", environment({{"PROCPOOL_SHARD_INDEX", "7"}, {"JOB_COMPLETION_INDEX", "1"},
                                                {"TEST_TOTAL_SHARDS", "2"}}));
  ASSERT_TRUE(s);
  EXPECT_EQ(s->index, 7u);
  EXPECT_EQ(s->count, 8u);
  EXPECT_EQ(resolve_shard("1/2", environment({}))->index, 1u);
}

TEST(ShardOption, MissingOrBadVariablesAreNamed) {
  auto none = resolve_shard("auto", environment({}));
  ASSERT_FALSE(none);
  EXPECT_NE(none.error().message.find("JOB_COMPLETION_INDEX"), std::string::npos) << none.error().message;
  auto no_count = resolve_shard("auto", environment({{"JOB_COMPLETION_INDEX", "1"}}));
  ASSERT_FALSE(no_count);
  EXPECT_NE(no_count.error().message.find("auto/N"), std::string::npos) << no_count.error().message;
  auto beyond = resolve_shard("auto/2", environment({{"JOB_COMPLETION_INDEX", "2"}}));
  ASSERT_FALSE(beyond);
  EXPECT_NE(beyond.error().message.find("JOB_COMPLETION_INDEX=2"), std::string::npos) << beyond.error().message;
}

TEST(ShardOption, TheStatusFileIsTouchedWhenAsked) {
  const auto path = std::filesystem::temp_directory_path() / ("procpool-shard-status-" + std::to_string(::getpid()));
  EXPECT_TRUE(touch_shard_status_file(environment({})));
  EXPECT_TRUE(touch_shard_status_file(environment({{"TEST_SHARD_STATUS_FILE", path.string()}})));
  EXPECT_TRUE(std::filesystem::exists(path));
  std::filesystem::remove(path);
  EXPECT_FALSE(touch_shard_status_file(environment({{"TEST_SHARD_STATUS_FILE", "/proc/no/such/file"}})));
}

std::vector<scenario_case> cases_named(std::size_t n) {
  std::vector<scenario_case> out(n);
  for (std::size_t i = 0; i < n; ++i) out[i].id = "c" + std::to_string(i);
  return out;
}

double longest_shard(const std::vector<std::vector<std::size_t>>& shards, const std::vector<double>& ms) {
  double worst = 0;
  for (const auto& s : shards) {
    double sum = 0;
    for (auto p : s) sum += ms[p];
    worst = std::max(worst, sum);
  }
  return worst;
}

// Every fourth case has a 2 s cold start: equal counts put all of them on one shard.
TEST(BalancedShards, BeatEqualCountsOnSkewedCasesAndCoverEveryCaseOnce) {
  const auto cases = cases_named(16);
  std::vector<double> ms(16, 100);
  std::map<std::string, double, std::less<>> measured;
  for (std::size_t i = 0; i < 16; ++i) {
    if (i % 4 == 0) ms[i] = 2000;
    if (i != 5) measured[cases[i].id] = ms[i];  // case 5 is new: it counts as the mean
  }
  std::vector<std::vector<std::size_t>> equal, balanced;
  std::vector<std::size_t> all;
  for (std::size_t k = 0; k < 4; ++k) {
    equal.push_back(shard_positions(16, {k, 4}));
    balanced.push_back(balanced_shard_positions(cases, {k, 4}, measured));
    EXPECT_TRUE(std::is_sorted(balanced.back().begin(), balanced.back().end()));
    all.insert(all.end(), balanced.back().begin(), balanced.back().end());
  }
  std::sort(all.begin(), all.end());
  std::vector<std::size_t> expected(16);
  std::iota(expected.begin(), expected.end(), std::size_t{0});
  EXPECT_EQ(all, expected);
  EXPECT_EQ(longest_shard(equal, ms), 8000);
  // 2300 is the best split; case 5, estimated at the mean (about 600 ms), costs one more case.
  EXPECT_EQ(longest_shard(balanced, ms), 2400);
  // The same inputs give the same split.
  EXPECT_EQ(balanced_shard_positions(cases, {2, 4}, measured), balanced[2]);
}

}  // namespace
}  // namespace procpool::harness
