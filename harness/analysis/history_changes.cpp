#include "analysis/history_changes.hpp"

#include <algorithm>
#include <cmath>
#include <map>
#include <optional>

#include <fmt/format.h>

namespace procpool::harness {
namespace {

double median(std::vector<double> v) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  const std::size_t mid = v.size() / 2;
  return v.size() % 2 ? v[mid] : (v[mid - 1] + v[mid]) / 2;
}

std::string format_value(double v) {
  const double magnitude = std::abs(v);
  if (magnitude >= 100) return fmt::format("{:.0f}", v);
  if (magnitude >= 10) return fmt::format("{:.1f}", v);
  if (magnitude >= 0.1 || v == 0) return fmt::format("{:.2f}", v);
  return fmt::format("{:.4f}", v);
}

std::string format_change(double relative) {
  if (std::isinf(relative)) return relative > 0 ? "+inf%" : "-inf%";
  return fmt::format("{:+.1f}%", relative * 100);
}

std::string change_line(const history_changes& h, const history_change& c) {
  const history_run& run = h.runs[c.run];
  const char* what = !c.regression ? "improvement"
                     : c.failing()  ? "REGRESSION, holds in the newest run"
                     : c.latest     ? "regression, no longer holds in the newest run"
                                    : "regression, followed by a later change";
  return fmt::format("{}  {}: shifted at run {} (id {}, {}): {} -> {} ({}), p = {:.4f}: {}\n", c.case_name,
                     figure_name(c.figure), run.name(), run.id, run.added_at, format_value(c.point.before_median),
                     format_value(c.point.after_median), format_change(c.point.relative_change), c.point.p_value,
                     what);
}

}  // namespace

std::string_view figure_name(history_figure f) noexcept {
  switch (f) {
    case history_figure::throughput: return "throughput (req/s)";
    case history_figure::p50: return "latency p50 (us)";
    case history_figure::p99: return "latency p99 (us)";
    case history_figure::timeout_rate: break;
  }
  return "timeout rate";
}

std::string_view figure_key(history_figure f) noexcept {
  switch (f) {
    case history_figure::throughput: return "throughput_rps";
    case history_figure::p50: return "p50_us";
    case history_figure::p99: return "p99_us";
    case history_figure::timeout_rate: break;
  }
  return "timeout_rate";
}

bool higher_is_better(history_figure f) noexcept { return f == history_figure::throughput; }

double figure_of(const history_case& c, history_figure f) noexcept {
  switch (f) {
    case history_figure::throughput: return c.throughput_rps;
    case history_figure::p50: return c.p50_us;
    case history_figure::p99: return c.p99_us;
    case history_figure::timeout_rate: break;
  }
  return c.timeout_rate;
}

std::vector<history_series> history_series_of(const std::vector<history_run>& runs,
                                              const std::vector<history_case>& cases) {
  std::map<std::int64_t, std::size_t> run_index;
  for (std::size_t i = 0; i < runs.size(); ++i) run_index[runs[i].id] = i;
  // case name -> run index -> its repetitions
  std::vector<std::string> order;
  std::map<std::string, std::map<std::size_t, std::vector<const history_case*>>> grouped;
  for (const auto& c : cases) {
    const auto run = run_index.find(c.run_id);
    if (run == run_index.end()) continue;
    if (!grouped.contains(c.case_name)) order.push_back(c.case_name);
    grouped[c.case_name][run->second].push_back(&c);
  }
  std::vector<history_series> out;
  for (const auto& name : order) {
    for (const auto figure : history_figures) {
      history_series s{.case_name = name, .figure = figure};
      for (const auto& [run, repetitions] : grouped[name]) {
        std::vector<double> values;
        for (const auto* c : repetitions) values.push_back(figure_of(*c, figure));
        s.runs.push_back(run);
        s.values.push_back(median(std::move(values)));
      }
      out.push_back(std::move(s));
    }
  }
  return out;
}

std::size_t history_changes::failing() const {
  return std::size_t(std::count_if(changes.begin(), changes.end(), [](const auto& c) { return c.failing(); }));
}

history_changes find_history_changes(std::vector<history_run> runs, const std::vector<history_case>& cases,
                                     const change_point_options& options) {
  history_changes out{.runs = std::move(runs), .options = options};
  out.series = history_series_of(out.runs, cases);
  for (const auto& s : out.series) {
    const auto points = find_change_points(s.values, options);
    for (std::size_t k = 0; k < points.size(); ++k) {
      const auto& p = points[k];
      const double newest = s.values.back();
      out.changes.push_back({.case_name = s.case_name,
                             .figure = s.figure,
                             .point = p,
                             .run = s.runs[p.index],
                             .regression = higher_is_better(s.figure) ? p.relative_change < 0 : p.relative_change > 0,
                             .latest = k + 1 == points.size(),
                             .holds = std::abs(newest - p.after_median) < std::abs(newest - p.before_median)});
    }
  }
  return out;
}

std::string changes_text(const history_changes& h) {
  std::string out;
  for (const auto& c : h.changes) out += change_line(h, c);
  out += fmt::format(
      "{} change point{} in {} series over {} runs (alpha {}, minimum change {}%); {} regression{} holding in "
      "the newest run\n",
      h.changes.size(), h.changes.size() == 1 ? "" : "s", h.series.size(), h.runs.size(), h.options.alpha,
      h.options.min_relative_change * 100, h.failing(), h.failing() == 1 ? "" : "s");
  return out;
}

std::vector<baseline_case> baseline_of(const std::vector<history_run>& runs, const std::vector<history_case>& cases,
                                       std::size_t n) {
  const std::size_t first = runs.size() > n ? runs.size() - n : 0;
  std::map<std::int64_t, bool> recent;
  for (std::size_t i = first; i < runs.size(); ++i) recent[runs[i].id] = true;
  std::vector<baseline_case> out;
  std::map<std::string, std::size_t> index;
  for (const auto& c : cases) {
    if (!recent.contains(c.run_id)) continue;
    auto [it, inserted] = index.try_emplace(c.case_name, out.size());
    if (inserted) out.push_back({.name = c.case_name});
    auto& b = out[it->second];
    b.throughput.push_back(c.throughput_rps);
    b.p50.push_back(c.p50_us);
    b.p99.push_back(c.p99_us);
  }
  return out;
}

std::vector<case_flips> flip_rates(const std::vector<history_run>& runs, const std::vector<history_case>& cases) {
  // Whether each case failed in each run, in run order (runs are oldest first).
  std::vector<std::string> order;
  std::map<std::string, std::map<std::size_t, bool>> failed_by_run;
  std::map<std::int64_t, std::size_t> position;
  for (std::size_t i = 0; i < runs.size(); ++i) position[runs[i].id] = i;
  for (const auto& c : cases) {
    const auto at = position.find(c.run_id);
    if (at == position.end()) continue;
    if (!failed_by_run.contains(c.case_name)) order.push_back(c.case_name);
    bool& failed = failed_by_run[c.case_name][at->second];
    failed = failed || c.timeouts > 0;
  }
  std::vector<case_flips> out;
  for (const auto& name : order) {
    case_flips f{.case_name = name};
    std::optional<bool> previous;
    for (const auto& [run, failed] : failed_by_run[name]) {
      ++f.runs;
      f.failing += failed;
      if (previous && *previous != failed) ++f.flips;
      previous = failed;
    }
    out.push_back(std::move(f));
  }
  return out;
}

}  // namespace procpool::harness
