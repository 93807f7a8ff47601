// `procpool compare BASE.json NEW.json`: regressions between two runs. Cases are matched by
// their params; latency and throughput are compared with the Mann-Whitney U test.
//
//   auto base = read_results("before/results.json");
//   auto candidate = read_results("after/results.json");
//   auto diff = compare_results(*base, *candidate, {.threshold_pct = 5, .alpha = 0.05});
//   if (!diff) { fmt::print(stderr, "{}\n", diff.error().message); return exit_usage; }
//   fmt::print("{}", comparison_text(*diff));
//   return diff->regressions() ? exit_failed : exit_ok;
//
// The method, the output and the exit codes are documented in harness/analysis/README.md.
#pragma once

#include <cstddef>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "procpool/result.hpp"

namespace procpool::harness {

struct compare_options {
  double threshold_pct = 5;  // a change smaller than this, in percent, is never a regression
  double alpha = 0.05;       // significance level of the Mann-Whitney U test
};

// A metric without a test (one figure a side) is `untested`, never significant.
enum class change_verdict { no_change, regression, improvement, untested };

// "regression", "improvement", "no significant change", "not tested".
std::string_view to_string(change_verdict v) noexcept;

// Where a metric's samples come from: one figure per repetition of the case (each side has
// at least 3), or the sampled successful requests' latencies (fewer repetitions; throughput
// is then shown but not tested).
enum class sample_source { repetitions, sampled_requests, untested };

struct metric_comparison {
  std::string case_name;  // the swept values, "load.model=open,load.start=cold"; "(no sweep)"
  std::string metric;     // "throughput (req/s)", "latency p50 (us)", ...
  bool higher_is_better = false;
  sample_source source = sample_source::untested;
  double base = 0;       // median of the base samples
  double candidate = 0;  // median of the new samples
  double change_pct = 0;             // (candidate - base) / base, in percent
  std::optional<double> p_value = {};  // none when not tested
  std::size_t base_samples = 0;
  std::size_t candidate_samples = 0;
  change_verdict verdict = change_verdict::no_change;
};

struct comparison {
  compare_options options;
  std::size_t base_cases = 0;       // distinct params in each document
  std::size_t candidate_cases = 0;
  std::vector<metric_comparison> rows = {};
  std::vector<std::string> only_in_base = {};  // case names
  std::vector<std::string> only_in_candidate = {};
  // Scenario settings that differ ("worker.service.ms: 1 -> 2"), repetitions too few for any
  // significance, failed requests, cases left out.
  std::vector<std::string> notes = {};

  std::size_t regressions() const noexcept;
  std::size_t improvements() const noexcept;
};

// Compares two results documents (schema procpool.results/1). Fails when either is not a
// results document or they have no case in common.
result<comparison> compare_results(const nlohmann::json& base, const nlohmann::json& candidate,
                                   const compare_options& options);

// A case's figures from somewhere other than a results document (the run history's last
// runs, analysis/history_changes.hpp): one sample per stored repetition.
struct baseline_case {
  std::string name;  // as metric_comparison::case_name
  std::vector<double> throughput = {};
  std::vector<double> p50 = {};
  std::vector<double> p99 = {};
};

// Compares a results document against such base samples: per case found on both sides,
// throughput, p50 and p99 over the repetitions with the same test and rules as
// compare_results. Fails when `candidate` is not a results document or no case matches.
result<comparison> compare_to_baseline(const std::vector<baseline_case>& base, const nlohmann::json& candidate,
                                       const compare_options& options);

// The comparison as a plain-text table for a terminal, and as Markdown for a pull request.
std::string comparison_text(const comparison& c);
std::string comparison_markdown(const comparison& c);

}  // namespace procpool::harness
