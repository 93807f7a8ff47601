#include "analysis/compare.hpp"

#include <algorithm>
#include <cmath>
#include <fstream>
#include <map>
#include <memory>

#include <fmt/format.h>

#include "results/flatten.hpp"
#include "results/results.hpp"
#include "run/records.hpp"
#include "statistics/statistics.hpp"

namespace procpool::harness {
namespace {

using json = nlohmann::json;

error usage_error(std::string message) { return error{errc::invalid_options, std::move(message)}; }

// Fewer repetitions than this on either side and the per-repetition figures are too few to
// test; the sampled requests' latencies are used instead.
constexpr std::size_t min_repetitions = 3;

// The repetitions of one case (one set of params) in one document.
struct case_runs {
  std::string name;
  std::vector<case_record> usable;  // neither failed to start nor interrupted
  std::vector<std::string> left_out;  // why each other repetition was left out
  std::uint64_t ok = 0;
  std::uint64_t failed = 0;
};

struct case_index {
  std::vector<std::string> order;  // params keys in document order
  std::map<std::string, case_runs> by_params;
};

std::string case_name_of(const case_record& c) {
  if (c.params.empty()) return "(no sweep)";
  // The id names the swept values in axis order; the repetition suffix is not part of it.
  const auto hash = c.id.rfind('#');
  return hash == std::string::npos ? c.id : c.id.substr(0, hash);
}

result<case_index> index_cases(const json& doc, std::string_view which) {
  if (!doc.is_object() || doc.value("schema", "") != results_schema || !doc.contains("cases") ||
      !doc.at("cases").is_array()) {
    return usage_error(fmt::format("the {} document is not a {} document", which, results_schema));
  }
  case_index index;
  for (const auto& element : doc.at("cases")) {
    if (!element.is_object()) return usage_error(fmt::format("the {} document has a malformed case", which));
    auto c = element.get<case_record>();
    const std::string key = c.params.dump();
    auto [it, inserted] = index.by_params.try_emplace(key);
    if (inserted) {
      index.order.push_back(key);
      it->second.name = case_name_of(c);
    }
    case_runs& runs = it->second;
    if (c.error) {
      runs.left_out.push_back(fmt::format("repetition {}: the subject could not be created ({})", c.repetition,
                                          c.error->message.empty() ? "no message" : c.error->message));
      continue;
    }
    if (c.interrupted) {
      runs.left_out.push_back(fmt::format("repetition {}: interrupted", c.repetition));
      continue;
    }
    // A cancelled request neither failed nor succeeded: it is left out of both.
    if (const auto ok = c.outcomes.find("ok"); ok != c.outcomes.end()) runs.ok += ok->second;
    runs.failed += c.failed();
    runs.usable.push_back(std::move(c));
  }
  return index;
}

double median(std::vector<double> values) {
  if (values.empty()) return 0;
  std::sort(values.begin(), values.end());
  const std::size_t mid = values.size() / 2;
  return values.size() % 2 ? values[mid] : (values[mid - 1] + values[mid]) / 2;
}

// The figures compared per repetition.
double throughput_of(const case_record& c) { return c.throughput_rps; }
double p50_of(const case_record& c) { return c.latency_us.p50; }
double p99_of(const case_record& c) { return c.latency_us.p99; }

std::vector<double> per_repetition(const case_runs& runs, double (*figure)(const case_record&)) {
  std::vector<double> values;
  for (const case_record& c : runs.usable) values.push_back(figure(c));
  return values;
}

// Submission to reply of each sampled successful request, in microseconds.
std::vector<double> sampled_latencies_us(const case_runs& runs) {
  std::vector<double> values;
  for (const case_record& c : runs.usable) {
    if (!c.timelines) continue;
    for (const auto& t : c.timelines->requests_sampled) {
      if (!t.ok() || t.t_submit <= 0 || t.t_reply < t.t_submit) continue;
      values.push_back(double(t.t_reply - t.t_submit) / 1e3);
    }
  }
  return values;
}

double change_pct(double base, double candidate) {
  if (base == candidate) return 0;
  if (base == 0) return candidate > 0 ? HUGE_VAL : -HUGE_VAL;
  return (candidate - base) / std::abs(base) * 100;
}

metric_comparison compare_metric(std::string case_name, std::string metric, bool higher_is_better,
                                 sample_source source, const std::vector<double>& base,
                                 const std::vector<double>& candidate, const compare_options& options) {
  metric_comparison row{.case_name = std::move(case_name),
                        .metric = std::move(metric),
                        .higher_is_better = higher_is_better,
                        .source = source,
                        .base = median(base),
                        .candidate = median(candidate),
                        .base_samples = base.size(),
                        .candidate_samples = candidate.size()};
  row.change_pct = change_pct(row.base, row.candidate);
  const auto test = source == sample_source::untested ? std::nullopt : mann_whitney_u(base, candidate);
  if (!test) {
    row.source = sample_source::untested;
    row.verdict = change_verdict::untested;
    return row;
  }
  row.p_value = test->p_value;
  if (test->p_value < options.alpha && std::abs(row.change_pct) > options.threshold_pct) {
    const bool worse = higher_is_better ? row.change_pct < 0 : row.change_pct > 0;
    row.verdict = worse ? change_verdict::regression : change_verdict::improvement;
  }
  return row;
}

void compare_case(const case_runs& base, const case_runs& candidate, const compare_options& options,
                  comparison& out) {
  const auto throughput = throughput_of;
  const auto p50 = p50_of;
  const auto p99 = p99_of;
  const std::string& name = base.name;
  if (base.usable.empty() || candidate.usable.empty()) {
    out.notes.push_back(fmt::format("{}: not compared, no usable repetition in {}", name,
                                    base.usable.empty() ? "BASE" : "NEW"));
    return;
  }
  if (base.usable.size() >= min_repetitions && candidate.usable.size() >= min_repetitions) {
    const auto tested = sample_source::repetitions;
    out.rows.push_back(compare_metric(name, "throughput (req/s)", true, tested,
                                      per_repetition(base, throughput),
                                      per_repetition(candidate, throughput), options));
    out.rows.push_back(compare_metric(name, "latency p50 (us)", false, tested,
                                      per_repetition(base, p50), per_repetition(candidate, p50), options));
    out.rows.push_back(compare_metric(name, "latency p99 (us)", false, tested,
                                      per_repetition(base, p99), per_repetition(candidate, p99), options));
  } else {
    out.rows.push_back(compare_metric(name, "throughput (req/s)", true, sample_source::untested,
                                      per_repetition(base, throughput),
                                      per_repetition(candidate, throughput), options));
    const auto base_latency = sampled_latencies_us(base);
    const auto candidate_latency = sampled_latencies_us(candidate);
    out.rows.push_back(compare_metric(
        name, "latency, sampled requests (us)", false,
        base_latency.empty() || candidate_latency.empty() ? sample_source::untested
                                                          : sample_source::sampled_requests,
        base_latency, candidate_latency, options));
  }
  if (base.failed > 0 || candidate.failed > 0) {
    out.notes.push_back(fmt::format(
        "{}: {} of {} requests failed in BASE, {} of {} in NEW (Fisher's exact test p = {:.4g})", name,
        base.failed, base.failed + base.ok, candidate.failed, candidate.failed + candidate.ok,
        fisher_exact_two_sided(candidate.failed, candidate.ok, base.failed, base.ok)));
  }
  for (const auto& why : base.left_out) out.notes.push_back(fmt::format("{}: BASE {}, left out", name, why));
  for (const auto& why : candidate.left_out) out.notes.push_back(fmt::format("{}: NEW {}, left out", name, why));
}

std::string short_dump(const json* value) {
  if (!value) return "(absent)";
  std::string text = value->dump();
  if (text.size() > 60) text = text.substr(0, 57) + "...";
  return text;
}

// Settings that differ explain a difference (or its absence) better than any test.
void note_scenario_differences(const json& base, const json& candidate, comparison& out) {
  std::map<std::string, json> before;
  std::map<std::string, json> after;
  flatten(base.value("scenario", json::object()), before);
  flatten(candidate.value("scenario", json::object()), after);
  std::vector<std::string> keys;
  for (const auto& [key, value] : before) keys.push_back(key);
  for (const auto& [key, value] : after) {
    if (!before.contains(key)) keys.push_back(key);
  }
  std::sort(keys.begin(), keys.end());
  std::vector<std::string> differences;
  for (const auto& key : keys) {
    const auto b = before.find(key);
    const auto a = after.find(key);
    const json* bv = b == before.end() ? nullptr : &b->second;
    const json* av = a == after.end() ? nullptr : &a->second;
    if (bv && av && *bv == *av) continue;
    differences.push_back(fmt::format("{}: {} -> {}", key, short_dump(bv), short_dump(av)));
  }
  if (!differences.empty()) {
    out.notes.push_back(fmt::format("scenario settings that differ: {}", fmt::join(differences, "; ")));
  }
}

// The smallest two-sided p-value the exact test can give for samples of n1 and n2:
// 2 / C(n1 + n2, n1), complete separation.
double smallest_p_value(std::size_t n1, std::size_t n2) {
  double ways = 1;
  for (std::size_t i = 1; i <= n1; ++i) ways = ways * double(n2 + i) / double(i);
  return std::min(1.0, 2 / ways);
}

// ---- Rendering ----

std::string format_value(double v) {
  if (std::isinf(v)) return v > 0 ? "inf" : "-inf";
  const double magnitude = std::abs(v);
  if (magnitude >= 100) return fmt::format("{:.0f}", v);
  if (magnitude >= 10) return fmt::format("{:.1f}", v);
  return fmt::format("{:.2f}", v);
}

std::string format_change(double pct) {
  if (std::isinf(pct)) return pct > 0 ? "+inf%" : "-inf%";
  return fmt::format("{:+.1f}%", pct);
}

std::string format_p(const std::optional<double>& p) {
  if (!p) return "n/a";
  if (*p < 1e-4) return "<0.0001";
  return fmt::format("{:.4f}", *p);
}

std::vector<std::vector<std::string>> table_cells(const comparison& c) {
  std::vector<std::vector<std::string>> cells;
  for (const auto& row : c.rows) {
    cells.push_back({row.case_name, row.metric, format_value(row.base), format_value(row.candidate),
                     format_change(row.change_pct), format_p(row.p_value),
                     fmt::format("{}/{}", row.base_samples, row.candidate_samples),
                     std::string(to_string(row.verdict))});
  }
  return cells;
}

const std::vector<std::string> table_header = {"case", "metric", "base", "new", "change",
                                               "p-value", "n", "verdict"};

std::string summary_line(const comparison& c) {
  return fmt::format("{} regression{}, {} improvement{}, {} comparison{} in all (threshold {}%, alpha {})",
                     c.regressions(), c.regressions() == 1 ? "" : "s", c.improvements(),
                     c.improvements() == 1 ? "" : "s", c.rows.size(), c.rows.size() == 1 ? "" : "s",
                     c.options.threshold_pct, c.options.alpha);
}


}  // namespace

std::string_view to_string(change_verdict v) noexcept {
  switch (v) {
    case change_verdict::regression: return "regression";
    case change_verdict::improvement: return "improvement";
    case change_verdict::untested: return "not tested";
    case change_verdict::no_change: break;
  }
  return "no significant change";
}

std::size_t comparison::regressions() const noexcept {
  return std::size_t(std::count_if(rows.begin(), rows.end(),
                                   [](const auto& r) { return r.verdict == change_verdict::regression; }));
}

std::size_t comparison::improvements() const noexcept {
  return std::size_t(std::count_if(rows.begin(), rows.end(),
                                   [](const auto& r) { return r.verdict == change_verdict::improvement; }));
}

namespace {

// A comparison can look conclusive while its tests are weak; these notes say so.
void note_weak_tests(comparison& out,
                     const std::optional<std::pair<std::size_t, std::size_t>>& too_few_for_significance,
                     const compare_options& options) {
  const auto sampled = std::count_if(out.rows.begin(), out.rows.end(),
                                     [](const auto& r) { return r.source == sample_source::sampled_requests; });
  if (sampled > 0) {
    // Requests of one run share its conditions: the test cannot tell a slower pool from a
    // busier machine during one of the runs. Repetitions can.
    out.notes.push_back(fmt::format(
        "{} case{} with fewer than {} repetitions a side: latency is tested over one run's sampled "
        "requests against the other's, so a change in the machine's load between the runs counts "
        "as a change; for a gate, run 4 or more repetitions (scenario key `repetitions`)",
        sampled, sampled == 1 ? "" : "s", min_repetitions));
  }
  if (too_few_for_significance) {
    const auto [n1, n2] = *too_few_for_significance;
    out.notes.push_back(fmt::format(
        "with {} and {} repetitions the smallest possible p-value is {:.3g}: nothing can be "
        "significant at alpha {}; run more repetitions (4 and 4 reach 0.029)",
        n1, n2, smallest_p_value(n1, n2), options.alpha));
  }
}

}  // namespace

result<comparison> compare_results(const json& base, const json& candidate, const compare_options& options) {
  if (!(options.alpha > 0 && options.alpha < 1)) {
    return usage_error(fmt::format("alpha must be between 0 and 1 (got {})", options.alpha));
  }
  if (!(options.threshold_pct >= 0)) {
    return usage_error(fmt::format("the threshold must be 0 or more percent (got {})", options.threshold_pct));
  }
  auto before = index_cases(base, "BASE");
  if (!before) return before.error();
  auto after = index_cases(candidate, "NEW");
  if (!after) return after.error();

  comparison out{.options = options,
                 .base_cases = before->order.size(),
                 .candidate_cases = after->order.size()};
  note_scenario_differences(base, candidate, out);
  if (base.value("partial", false)) out.notes.push_back("BASE is partial: its run was interrupted or lacks shards");
  if (candidate.value("partial", false)) out.notes.push_back("NEW is partial: its run was interrupted or lacks shards");

  std::size_t matched = 0;
  std::optional<std::pair<std::size_t, std::size_t>> too_few_for_significance;
  for (const auto& key : before->order) {
    const auto match = after->by_params.find(key);
    if (match == after->by_params.end()) {
      out.only_in_base.push_back(before->by_params.at(key).name);
      continue;
    }
    ++matched;
    const case_runs& b = before->by_params.at(key);
    const case_runs& a = match->second;
    compare_case(b, a, options, out);
    if (b.usable.size() >= min_repetitions && a.usable.size() >= min_repetitions &&
        smallest_p_value(b.usable.size(), a.usable.size()) >= options.alpha) {
      too_few_for_significance = std::pair{b.usable.size(), a.usable.size()};
    }
  }
  for (const auto& key : after->order) {
    if (!before->by_params.contains(key)) out.only_in_candidate.push_back(after->by_params.at(key).name);
  }
  if (matched == 0) {
    return usage_error("the two results have no case in common (cases are matched by their swept values)");
  }
  note_weak_tests(out, too_few_for_significance, options);
  return out;
}

namespace {

void compare_to_samples(const baseline_case& base, const case_runs& candidate, const compare_options& options,
                        comparison& out) {
  const auto tested = sample_source::repetitions;
  out.rows.push_back(compare_metric(base.name, "throughput (req/s)", true, tested, base.throughput,
                                    per_repetition(candidate, throughput_of), options));
  out.rows.push_back(compare_metric(base.name, "latency p50 (us)", false, tested, base.p50,
                                    per_repetition(candidate, p50_of), options));
  out.rows.push_back(compare_metric(base.name, "latency p99 (us)", false, tested, base.p99,
                                    per_repetition(candidate, p99_of), options));
}

}  // namespace

result<comparison> compare_to_baseline(const std::vector<baseline_case>& base, const json& candidate,
                                       const compare_options& options) {
  if (!(options.alpha > 0 && options.alpha < 1) || !(options.threshold_pct >= 0)) {
    return usage_error("alpha must be between 0 and 1 and the threshold 0 or more percent");
  }
  auto after = index_cases(candidate, "NEW");
  if (!after) return after.error();
  std::map<std::string, const case_runs*> by_name;
  for (const auto& key : after->order) by_name.emplace(after->by_params.at(key).name, &after->by_params.at(key));
  comparison out{.options = options, .base_cases = base.size(), .candidate_cases = after->order.size()};
  std::size_t matched = 0;
  std::size_t too_few = 0;
  for (const auto& b : base) {
    const auto match = by_name.find(b.name);
    if (match == by_name.end() || b.throughput.empty()) {
      out.only_in_base.push_back(b.name);
      continue;
    }
    ++matched;
    const case_runs* candidate_runs = match->second;
    by_name.erase(match);
    if (candidate_runs->usable.empty()) {
      out.notes.push_back(fmt::format("{}: not compared, no usable repetition in NEW", b.name));
      continue;
    }
    compare_to_samples(b, *candidate_runs, options, out);
    too_few += smallest_p_value(b.throughput.size(), candidate_runs->usable.size()) >= options.alpha;
  }
  for (const auto& [name, runs] : by_name) out.only_in_candidate.push_back(name);
  if (matched == 0) return usage_error("the results and the history have no case in common");
  if (too_few > 0) {
    out.notes.push_back(fmt::format(
        "{} case{} with too few samples for any significance at alpha {}: add repetitions to NEW "
        "or take more history runs (--baseline-runs)", too_few, too_few == 1 ? "" : "s", options.alpha));
  }
  return out;
}

std::string comparison_text(const comparison& c) {
  const auto cells = table_cells(c);
  std::vector<std::size_t> width(table_header.size());
  for (std::size_t i = 0; i < table_header.size(); ++i) width[i] = table_header[i].size();
  for (const auto& row : cells) {
    for (std::size_t i = 0; i < row.size(); ++i) width[i] = std::max(width[i], row[i].size());
  }
  // Text columns to the left, figures to the right.
  const auto line = [&](const std::vector<std::string>& row) {
    std::string text;
    for (std::size_t i = 0; i < row.size(); ++i) {
      const bool figure = i >= 2 && i <= 6;
      if (i) text += "  ";
      text += figure ? fmt::format("{:>{}}", row[i], width[i])
                     : (i + 1 == row.size() ? row[i] : fmt::format("{:<{}}", row[i], width[i]));
    }
    return text + "\n";
  };
  std::string out = line(table_header);
  for (const auto& row : cells) out += line(row);
  out += "\n";
  for (const auto& name : c.only_in_base) out += fmt::format("only in BASE, not compared: {}\n", name);
  for (const auto& name : c.only_in_candidate) out += fmt::format("only in NEW, not compared: {}\n", name);
  for (const auto& note : c.notes) out += fmt::format("note: {}\n", note);
  out += summary_line(c) + "\n";
  return out;
}

std::string comparison_markdown(const comparison& c) {
  std::string out = "## procpool compare\n\n";
  out += fmt::format("**{}**\n\n", summary_line(c));
  out += fmt::format("| {} |\n", fmt::join(table_header, " | "));
  out += "|---|---|---:|---:|---:|---:|---:|---|\n";
  for (auto row : table_cells(c)) {
    if (row.back() == to_string(change_verdict::regression)) row.back() = "**regression**";
    for (auto& cell : row) {
      // A pipe would end the cell early.
      std::string escaped;
      for (char ch : cell) escaped += ch == '|' ? std::string("\\|") : std::string(1, ch);
      cell = std::move(escaped);
    }
    out += fmt::format("| {} |\n", fmt::join(row, " | "));
  }
  out += "\n";
  out += "Base and new are medians; p-values are two-sided Mann-Whitney U; n is the number of "
         "samples on each side: repetitions, or sampled requests when a case has fewer than 3 "
         "repetitions (throughput is then not tested).\n";
  if (!c.only_in_base.empty() || !c.only_in_candidate.empty() || !c.notes.empty()) out += "\n";
  for (const auto& name : c.only_in_base) out += fmt::format("- only in BASE, not compared: `{}`\n", name);
  for (const auto& name : c.only_in_candidate) out += fmt::format("- only in NEW, not compared: `{}`\n", name);
  for (const auto& note : c.notes) out += fmt::format("- {}\n", note);
  return out;
}


}  // namespace procpool::harness
