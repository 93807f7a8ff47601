// `procpool plan RESULTS.json --rate R --p99-ms T`: capacity planning from a measured sweep,
// by the Universal Scalability Law and Erlang C.
//
//   auto results = read_results("reports/out/quickstart/results.json");
//   auto plan = plan_capacity(*results, {.rate = 2000, .p99_ms = 10});
//   if (!plan) { fmt::print(stderr, "{}\n", plan.error().message); return exit_usage; }
//   fmt::print("{}", plan_markdown(*plan));
//   return plan->recommended ? exit_ok : exit_failed;   // beyond reach: plan->reasons say why
//
// The method, the output and the exit codes are documented in harness/analysis/README.md.
#pragma once

#include <cstddef>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

#include "procpool/result.hpp"
#include "statistics/statistics.hpp"

namespace procpool::harness {

struct plan_options {
  double rate = 0;    // arrivals per second to serve
  double p99_ms = 0;  // target 99th percentile of the response time (queueing + service)
  // The USL throughput at the recommended size must be at least rate * (1 + headroom): a
  // pool run at its measured limit has no margin for the curve's error or for bursts.
  double headroom = 0.2;
  // The swept axis the USL is fitted against: "load.concurrency" or "pool.size"; empty picks
  // pool.size when it is swept with 4 or more values, else load.concurrency.
  std::string axis = {};
  // "KEY=VALUE": the value of another swept axis whose cases are fitted (VALUE as JSON, or a
  // bare word). Axes not named take their default (see plan_capacity).
  std::vector<std::string> where = {};
};

// One candidate pool size, as Erlang C and the fitted curve see it.
struct pool_sizing {
  std::size_t servers = 0;
  erlang_c_result queue;
  double p99_s = 0;          // Erlang C response-time p99; +infinity when unstable
  double usl_throughput = 0;  // X(servers) on the fitted curve
  bool meets_target = false;  // p99 within target and X within the headroom
};

struct capacity_plan {
  std::string scenario_name;
  plan_options options;
  std::string axis;
  std::vector<std::pair<std::string, nlohmann::json>> fixed = {};  // the other swept axes' values
  std::vector<usl_point> points = {};  // (axis value, throughput) per fitted case
  usl_fit fit;
  double service_mean_s = 0;  // mean t_worker_done - t_worker_recv of the sampled ok requests
  std::size_t service_samples = 0;
  std::optional<std::size_t> queueing_servers = {};  // smallest size meeting the p99 (Erlang C)
  std::optional<std::size_t> curve_servers = {};     // smallest size whose X meets the headroom
  std::optional<std::size_t> recommended = {};       // both; none when beyond reach
  std::vector<pool_sizing> sizes = {};  // the sizes around the recommendation
  std::vector<std::string> reasons = {};  // why the target is beyond reach
  std::vector<std::string> notes = {};    // caveats on the data and the model
};

// Plans from a results document (schema procpool.results/1). The fitted cases: those of the
// axis's sweep at one value of each other swept axis: `where` if given, else the largest
// load.concurrency (so the pool is kept busy when pool.size is the axis), `closed` for
// load.model, and the first listed value of any other axis. Fails (a usage error) when no
// axis has 4 or more swept values with results, the cases ran an open loop, or no sampled
// request measures the service time. A target beyond reach is a plan without `recommended`.
result<capacity_plan> plan_capacity(const nlohmann::json& results, const plan_options& options);

std::string plan_markdown(const capacity_plan& plan);
nlohmann::json plan_json(const capacity_plan& plan);

}  // namespace procpool::harness
