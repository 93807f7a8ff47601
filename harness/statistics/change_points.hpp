// Change points in a series of runs: E-divisive means (Matteson and James, 2014), the method
// MongoDB's performance CI uses to find the run where a benchmark's figure shifted (Daly et
// al., "The Use of Change Point Detection to Identify Software Performance Regressions in a
// Continuous Integration System", ICPE 2020).
//
//   std::vector<double> p99 = {...};   // one figure per run, oldest first
//   for (const auto& cp : find_change_points(p99, {.alpha = 0.01, .min_relative_change = 0.05}))
//     fmt::print("shifted at run {}: {} -> {} (p = {})\n", cp.index, cp.before_median,
//                cp.after_median, cp.p_value);
//
// Deterministic: the permutation test draws from a fixed seed, so one series always gives the
// same answer (a CI gate must not flap on its own randomness).
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>
#include <vector>

namespace procpool::harness {

struct change_point_options {
  double alpha = 0.01;                // a split is significant when its permutation p < alpha
  double min_relative_change = 0.05;  // and the medians either side differ by at least this
  std::size_t permutations = 499;     // p-values resolve to 1 / (permutations + 1)
  std::size_t min_segment = 3;        // fewest runs either side of a change point
  std::uint64_t seed = 0x5eed;
};

struct change_point {
  std::size_t index = 0;     // the first run after the shift
  double p_value = 1;        // of the permutation test that accepted it
  double before_median = 0;  // of the runs since the previous change point
  double after_median = 0;   // of the runs up to the next change point
  double relative_change = 0;  // (after - before) / |before|; +-infinity when before is 0
};

// The energy statistic of splitting `values` at `tau` (0 < tau < size): how much further apart
// the two sides' values are than the values within each side. Larger is a clearer split.
double energy_statistic(std::span<const double> values, std::size_t tau);

// The change points of `values`, in order. Binary segmentation: the best split of a segment
// (largest energy statistic over every split and every right end of the segment) is kept when a permutation test finds it significant and the
// medians either side differ by min_relative_change; both halves are then searched again.
// An empty result for series shorter than 2 * min_segment.
std::vector<change_point> find_change_points(std::span<const double> values,
                                             const change_point_options& options = {});

}  // namespace procpool::harness
