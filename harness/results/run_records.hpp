// The run-level records of results.json (schema in harness/results/README.md): the sweep
// analyses and the summary the diagnosis writes after every case, and that results, the
// reports and triage read back. Like the case records (run/records.hpp), each has one field
// table serving to_json and a tolerant from_json.
//
//   run_analyses a = diagnose_sweep(...);   // the diagnosis fills them
//   results["analyses"] = a;
//   const auto back = results["analyses"].get<run_analyses>();
#pragma once

#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "run/records.hpp"

namespace procpool::harness {

struct usl_point_record {
  double n = 0;           // the parallelism: callers or workers
  double throughput = 0;  // requests per second
};

// One Universal Scalability Law fit over a group of cases that differ only in `axis`.
struct usl_analysis {
  std::string axis;  // load.concurrency or pool.size
  nlohmann::json group = nlohmann::json::object();  // the other swept keys, held fixed
  std::vector<usl_point_record> points;
  double lambda = 0, sigma = 0, kappa = 0, r_squared = 0;
  double relative_error = 0;  // root-mean-square error over the mean throughput
  std::optional<double> peak_n, peak_throughput;  // unset (null) when unbounded
  std::optional<std::string> verdict;  // architectural.scaling, or unset (null)
  std::string evidence;  // a sentence
};

struct axis_row {
  nlohmann::json value;  // the swept value
  std::uint64_t requests = 0, timeouts = 0;
  double rate = 0;
};

// Whether the timeout rate depends on one swept key.
struct axis_analysis {
  std::string key;
  std::string kind;  // environmental, architectural or load
  std::vector<axis_row> rows;
  double p_value = 1;  // chi-square test of independence
  bool depends = false;
};

struct run_analyses {
  std::vector<usl_analysis> usl;
  std::vector<axis_analysis> axes;
};

struct run_summary {
  std::uint64_t cases = 0, requests = 0, failed = 0, timeouts = 0;
  count_map verdicts;  // the cases' sums plus the sweep-level verdicts
  count_map families;  // the same, per verdict family
};

void to_json(nlohmann::json& j, const usl_point_record& p);
void from_json(const nlohmann::json& j, usl_point_record& p);
void to_json(nlohmann::json& j, const usl_analysis& a);
void from_json(const nlohmann::json& j, usl_analysis& a);
void to_json(nlohmann::json& j, const axis_row& r);
void from_json(const nlohmann::json& j, axis_row& r);
void to_json(nlohmann::json& j, const axis_analysis& a);
void from_json(const nlohmann::json& j, axis_analysis& a);
void to_json(nlohmann::json& j, const run_analyses& a);
void from_json(const nlohmann::json& j, run_analyses& a);
void to_json(nlohmann::json& j, const run_summary& s);
void from_json(const nlohmann::json& j, run_summary& s);

// The document's analyses, or none when it has none; tolerant like every reader here.
run_analyses analyses_of(const nlohmann::json& results);

}  // namespace procpool::harness
