// Which cases a shard runs: every N-th case of the expansion (the default), or a split by
// each case's measured wall time in an earlier run, so that shards of very different cases (a
// 2 s cold start against none) finish together instead of waiting for the slowest.
//
//   const auto mine = balanced_shard_positions(cases, {.index = 1, .count = 4}, wall_ms_by_id);
//   for (std::size_t p : mine) run(cases[p]);   // p: the case's index in the unsharded run
#pragma once

#include <cstddef>
#include <map>
#include <string>
#include <vector>

#include "scenario/scenario.hpp"

namespace procpool::harness {

// Positions index, index + count, ...: what shard_cases selects.
std::vector<std::size_t> shard_positions(std::size_t total, shard s);

// Longest case first onto the shard with the least time so far (ties: the lower shard), which
// keeps the longest shard within 4/3 of the best split. A case missing from `wall_ms_by_id`
// counts as the mean of those found (1 ms each when none is). Deterministic for the same
// inputs; shard s's positions in ascending order; the shards are disjoint and cover every case.
std::vector<std::size_t> balanced_shard_positions(const std::vector<scenario_case>& cases, shard s,
                                                  const std::map<std::string, double, std::less<>>& wall_ms_by_id);

}  // namespace procpool::harness
