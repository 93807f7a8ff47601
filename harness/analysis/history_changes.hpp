// Change points in the run history: each case's figures as series in run order, E-divisive
// means over each (statistics/change_points.hpp), and the gate of `procpool history changes`:
// fail when a figure's latest change is a regression that still holds in the newest run.
//
//   auto store = history_store::open("perf.sqlite");
//   auto changes = find_history_changes(*store->runs(), *store->cases(), {.alpha = 0.01});
//   fmt::print("{}", changes_text(changes));
//   return changes.failing() ? exit_failed : exit_ok;
#pragma once

#include <cstddef>
#include <string>
#include <string_view>
#include <vector>

#include "analysis/compare.hpp"
#include "analysis/history_store.hpp"
#include "statistics/change_points.hpp"

namespace procpool::harness {

enum class history_figure { throughput, p50, p99, timeout_rate };
inline constexpr history_figure history_figures[] = {history_figure::throughput, history_figure::p50,
                                                     history_figure::p99, history_figure::timeout_rate};

std::string_view figure_name(history_figure f) noexcept;  // "throughput (req/s)", ...
std::string_view figure_key(history_figure f) noexcept;   // "throughput_rps", "p50_us", ...
bool higher_is_better(history_figure f) noexcept;         // throughput only
double figure_of(const history_case& c, history_figure f) noexcept;

// One case's figure across the runs that have the case: the median over the run's
// repetitions, oldest run first.
struct history_series {
  std::string case_name = {};
  history_figure figure = history_figure::throughput;
  std::vector<std::size_t> runs = {};  // index into the runs vector, one per value
  std::vector<double> values = {};
};

// Every (case, figure) series, cases in order of first appearance.
std::vector<history_series> history_series_of(const std::vector<history_run>& runs,
                                              const std::vector<history_case>& cases);

struct history_change {
  std::string case_name = {};
  history_figure figure = history_figure::throughput;
  change_point point = {};
  std::size_t run = 0;        // index into the runs vector: the first run after the shift
  bool regression = false;    // in the bad direction for this figure
  bool latest = false;        // the series' last change point
  bool holds = false;         // the newest run is still nearer the after median than the before one
  bool failing() const { return regression && latest && holds; }
};

struct history_changes {
  std::vector<history_run> runs = {};
  std::vector<history_series> series = {};
  std::vector<history_change> changes = {};  // by series, then in run order
  change_point_options options = {};
  std::size_t failing() const;
};

history_changes find_history_changes(std::vector<history_run> runs, const std::vector<history_case>& cases,
                                     const change_point_options& options);

// How often a case flips between passing (no timeout in any repetition of a run) and failing
// across the runs that hold it: a flaky case flips often, a broken or a healthy one never.
struct case_flips {
  std::string case_name = {};
  std::size_t runs = 0;     // runs that hold the case
  std::size_t failing = 0;  // of them, runs in which it timed out
  std::size_t flips = 0;    // consecutive runs that disagree
  double rate() const { return runs > 1 ? static_cast<double>(flips) / static_cast<double>(runs - 1) : 0.0; }
};

// One per case, in the order the cases first appear.
std::vector<case_flips> flip_rates(const std::vector<history_run>& runs, const std::vector<history_case>& cases);

// One line per change point, and a closing line with the gate's verdict.
std::string changes_text(const history_changes& h);

// Base samples for `compare --baseline-db`: every repetition of each case in the last `n` runs.
std::vector<baseline_case> baseline_of(const std::vector<history_run>& runs, const std::vector<history_case>& cases,
                                       std::size_t n);

}  // namespace procpool::harness
