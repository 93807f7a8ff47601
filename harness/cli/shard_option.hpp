// --shard as CI engines hand it out: "I/N" as written, or "auto" / "auto/N", which read the
// shard from the variables a Kubernetes Indexed Job, Bazel, GoogleTest or a workflow of one's
// own sets, so that one command line serves every shard.
//
//   auto s = resolve_shard("auto", getenv_lookup);   // JOB_COMPLETION_INDEX=2, PROCPOOL_SHARD_COUNT=4
//   // s->index == 2, s->count == 4
//
// The index comes from the first of PROCPOOL_SHARD_INDEX, JOB_COMPLETION_INDEX,
// TEST_SHARD_INDEX, GTEST_SHARD_INDEX that is set; the count from "/N", else the first of
// PROCPOOL_SHARD_COUNT, TEST_TOTAL_SHARDS, GTEST_TOTAL_SHARDS.
#pragma once

#include <array>
#include <functional>
#include <optional>
#include <string>
#include <string_view>

#include "scenario/scenario.hpp"

namespace procpool::harness {

inline constexpr std::array<std::string_view, 4> shard_index_variables = {
    "PROCPOOL_SHARD_INDEX", "JOB_COMPLETION_INDEX", "TEST_SHARD_INDEX", "GTEST_SHARD_INDEX"};
inline constexpr std::array<std::string_view, 3> shard_count_variables = {"PROCPOOL_SHARD_COUNT", "TEST_TOTAL_SHARDS",
                                                                          "GTEST_TOTAL_SHARDS"};

// The environment, or a stand-in for it in tests.
using env_lookup = std::function<std::optional<std::string>(std::string_view name)>;
std::optional<std::string> getenv_lookup(std::string_view name);

// "I/N", "auto" or "auto/N". Errors name the variables that were looked for.
config_result<shard> resolve_shard(std::string_view text, const env_lookup& env);

// Bazel asks a test that understands sharding to touch TEST_SHARD_STATUS_FILE; does so when
// it is set. Returns false when it is set and cannot be written.
bool touch_shard_status_file(const env_lookup& env);

}  // namespace procpool::harness
