// Run-level diagnosis: the cases' verdicts summed, the sweep analyses (Universal Scalability
// Law fits, whether the timeout rate depends on each swept axis), and the conclusion.
#include <algorithm>
#include <cmath>
#include <map>
#include <set>
#include <string>
#include <vector>

#include <fmt/format.h>

#include "diagnosis/diagnosis.hpp"
#include "results/run_records.hpp"
#include "run/record_fields.hpp"
#include "statistics/statistics.hpp"

namespace procpool::harness {
namespace {

using json = nlohmann::json;

// USL contention at or above this, with a fit this good, is evidence that the subject does
// not scale: at sigma 0.3, four workers give 2.1x the throughput of one instead of 4x.
constexpr double scaling_sigma = 0.3;
// Fit quality as the root-mean-square error over the mean throughput: R^2 says nothing about
// a flat curve, which is exactly the one that matters here.
constexpr double scaling_max_relative_error = 0.15;
constexpr std::size_t usl_min_points = 4;
// A point whose case (harness, subject and workers) kept this share of the CPUs busy
// measured the host's cores rather than the subject.
constexpr double cpu_saturated_share = 0.7;
// A swept axis "matters" when the timeout rate differs across its values with p below this
// and by at least this much.
constexpr double axis_alpha = 0.01;
constexpr double axis_min_rate_difference = 0.01;

// A setting of one case: its swept value, or the scenario's.
json setting(const json& scenario, const case_record& c, const std::string& key) {
  if (c.params.is_object() && c.params.contains(key)) return c.params[key];
  const json* node = &scenario;
  std::size_t from = 0;
  while (true) {
    const auto dot = key.find('.', from);
    const std::string part = key.substr(from, dot == std::string::npos ? std::string::npos : dot - from);
    if (!node->is_object() || !node->contains(part)) return nullptr;
    node = &(*node)[part];
    if (dot == std::string::npos) return *node;
    from = dot + 1;
  }
}

double number(const json& j, double fallback = 0) { return j.is_number() ? j.get<double>() : fallback; }

std::vector<std::string> swept_keys(const json& scenario) {
  std::vector<std::string> keys;
  if (!scenario.contains("sweep")) return keys;
  for (const auto& axis : scenario["sweep"]) keys.push_back(axis.at("key").get<std::string>());
  return keys;
}

std::string axis_kind(const std::string& key) {
  static const std::set<std::string, std::less<>> environmental = {
      "worker.startup_ms", "worker.init_ms", "environment.cpu_hogs", "environment.cpus"};
  static const std::set<std::string, std::less<>> architectural = {
      "subject.kind", "subject.command", "pool.prewarm", "pool.max_concurrent_starts",
      "pool.pipeline_depth", "load.issue"};
  if (environmental.contains(key)) return "environmental";
  if (architectural.contains(key)) return "architectural";
  return "load";
}

std::string value_text(const json& v) { return v.is_string() ? v.get<std::string>() : v.dump(); }

// What the run-level diagnosis reads: the scenario as run and its cases, typed.
struct run_view {
  const json& scenario;
  std::vector<case_record> cases;
};

// The cases that differ only in `axis` (and repetition), keyed by the other swept values.
std::map<std::string, std::pair<json, std::vector<const case_record*>>> groups_along(const run_view& run,
                                                                                     const std::string& axis) {
  std::map<std::string, std::pair<json, std::vector<const case_record*>>> groups;
  for (const auto& c : run.cases) {
    json others = json::object();
    if (c.params.is_object()) {
      for (const auto& [k, v] : c.params.items()) {
        if (k != axis) others[k] = v;
      }
    }
    auto& group = groups[others.dump()];
    group.first = others;
    group.second.push_back(&c);
  }
  return groups;
}

// The points of one group where `axis` sets the parallelism, and the reasons (a saturated
// host, a cold start inside the measurement) a poor fit would not be the subject's fault.
struct usl_sample {
  std::vector<usl_point> points;
  std::vector<std::string> objections;
};

usl_sample usl_sample_of(const run_view& run, const std::string& axis, const std::vector<const case_record*>& cases) {
  usl_sample out;
  for (const case_record* c : cases) {
    const double concurrency = number(setting(run.scenario, *c, "load.concurrency"), 1);
    const double pool_size = number(setting(run.scenario, *c, "pool.size"), 1);
    // Only where the axis sets the parallelism: concurrency up to the pool's size, or a
    // pool no larger than its callers.
    const double n = axis == "load.concurrency" ? concurrency : pool_size;
    if (concurrency > pool_size && axis == "load.concurrency") continue;
    if (pool_size > concurrency && axis == "pool.size") continue;
    if (c->error || c->interrupted) continue;
    out.points.push_back({n, c->throughput_rps});
    const double cpu_share = c->environment.is_object() ? number(c->environment.value("case_cpu_share", json())) : 0;
    if (cpu_share >= cpu_saturated_share) {
      out.objections.push_back(fmt::format("{}={} kept {:.0f}% of the CPUs busy", axis, n, 100 * cpu_share));
    }
    const json start = setting(run.scenario, *c, "load.start");
    const double injected = number(setting(run.scenario, *c, "worker.startup_ms")) +
                            number(setting(run.scenario, *c, "worker.init_ms"));
    if ((start.is_string() ? start.get<std::string>() : "cold") == "cold" &&
        injected > 0.05 * c->load_wall_ms.value_or(0)) {
      out.objections.push_back(fmt::format("{}={} includes a cold start of {:.0f} ms", axis, n, injected));
    }
  }
  return out;
}

// The fit's error as the root-mean-square error over the mean throughput.
double relative_error_of(const usl_fit& fit, const std::vector<usl_point>& points) {
  double squared_error = 0, mean = 0;
  for (const auto& p : points) {
    squared_error += std::pow(p.throughput - usl_throughput(fit, p.n), 2);
    mean += p.throughput;
  }
  mean /= points.size();
  return mean > 0 ? std::sqrt(squared_error / points.size()) / mean : 1.0;
}

// The verdict, and the sentence that says why (or why not).
void judge_fit(usl_analysis& a, const usl_fit& fit, const usl_sample& sample) {
  const auto [lo, hi] = std::minmax_element(sample.points.begin(), sample.points.end(),
                                            [](const auto& p, const auto& q) { return p.n < q.n; });
  const std::string growth = fmt::format(
      "throughput {:.0f} req/s at {}={} and {:.0f} req/s at {}={} ({:.2f}x for {:.0f}x); "
      "USL sigma {:.3f}, kappa {:.4f}, R^2 {:.2f}, error {:.1f}% of the mean",
      lo->throughput, a.axis, lo->n, hi->throughput, a.axis, hi->n,
      lo->throughput > 0 ? hi->throughput / lo->throughput : 0.0, hi->n / lo->n, fit.sigma, fit.kappa,
      fit.r_squared, 100 * a.relative_error);
  const bool contended = fit.sigma >= scaling_sigma;
  if (contended && a.relative_error <= scaling_max_relative_error && sample.objections.empty()) {
    a.verdict = std::string(verdict::scaling);
    a.evidence = growth + fmt::format(": contention at or above {}", scaling_sigma);
  } else if (contended && !sample.objections.empty()) {
    a.evidence = growth + "; not judged architectural: " + fmt::format("{}", fmt::join(sample.objections, "; "));
  } else {
    a.evidence = growth;
  }
}

std::optional<double> finite(double v) { return std::isfinite(v) ? std::optional(v) : std::nullopt; }

// One fit per group of cases that differ only in the scaling axis (and repetition).
std::vector<usl_analysis> usl_analyses(const run_view& run) {
  std::vector<usl_analysis> out;
  const auto keys = swept_keys(run.scenario);
  for (const std::string axis : {"load.concurrency", "pool.size"}) {
    if (std::find(keys.begin(), keys.end(), axis) == keys.end()) continue;
    for (const auto& [group_key, group] : groups_along(run, axis)) {
      const usl_sample sample = usl_sample_of(run, axis, group.second);
      std::set<double> distinct;
      for (const auto& p : sample.points) distinct.insert(p.n);
      if (distinct.size() < usl_min_points) continue;
      const auto fit = fit_usl(sample.points);
      if (!fit) continue;
      usl_analysis a{.axis = axis,
                     .group = group.first,
                     .points = {},
                     .lambda = fit->lambda,
                     .sigma = fit->sigma,
                     .kappa = fit->kappa,
                     .r_squared = fit->r_squared,
                     .relative_error = relative_error_of(*fit, sample.points),
                     .peak_n = finite(fit->peak_n),
                     .peak_throughput = finite(fit->peak_throughput),
                     .verdict = std::nullopt,
                     .evidence = {}};
      for (const auto& p : sample.points) a.points.push_back({p.n, p.throughput});
      judge_fit(a, *fit, sample);
      out.push_back(std::move(a));
    }
  }
  return out;
}

std::vector<axis_analysis> axis_analyses(const run_view& run) {
  std::vector<axis_analysis> out;
  for (const auto& key : swept_keys(run.scenario)) {
    std::map<std::string, axis_row> rows_by_value;
    std::vector<std::string> order;
    for (const auto& c : run.cases) {
      const json value = setting(run.scenario, c, key);
      const std::string text = value_text(value);
      if (!rows_by_value.contains(text)) order.push_back(text);
      auto& row = rows_by_value[text];
      row.value = value;
      row.requests += c.requests();
      row.timeouts += c.timeouts();
    }
    axis_analysis a{.key = key, .kind = axis_kind(key), .rows = {}, .p_value = 1, .depends = false};
    std::vector<std::pair<std::uint64_t, std::uint64_t>> table;
    double lo = 1, hi = 0;
    for (const auto& text : order) {
      axis_row row = rows_by_value[text];
      row.rate = row.requests ? static_cast<double>(row.timeouts) / row.requests : 0.0;
      if (row.requests > 0) {
        lo = std::min(lo, row.rate);
        hi = std::max(hi, row.rate);
      }
      table.emplace_back(row.timeouts, row.requests - std::min(row.timeouts, row.requests));
      a.rows.push_back(std::move(row));
    }
    a.p_value = chi_square_independence(table);
    a.depends = a.p_value < axis_alpha && hi - lo >= axis_min_rate_difference;
    out.push_back(std::move(a));
  }
  return out;
}

std::string plural(std::uint64_t n, std::string_view one, std::string_view many) {
  return fmt::format("{} {}", n, n == 1 ? one : many);
}

// The case finding with the most requests behind each verdict: its summary is the example.
std::map<std::string, std::string> example_per_verdict(const run_view& run) {
  std::map<std::string, std::pair<std::uint64_t, std::string>> best;
  for (const auto& c : run.cases) {
    for (const auto& f : c.findings.value_or(std::vector<finding_record>{})) {
      if (f.verdict.empty()) continue;
      if (!best.contains(f.verdict) || f.count > best[f.verdict].first) best[f.verdict] = {f.count, f.summary};
    }
  }
  std::map<std::string, std::string> out;
  for (const auto& [name, b] : best) out[name] = b.second;
  return out;
}

// "12 capacity (example); 3 fault.crash".
std::string verdicts_sentence(const run_view& run, const run_summary& summary) {
  std::vector<std::pair<std::uint64_t, std::string>> ordered;
  for (const auto& [name, n] : summary.verdicts) ordered.emplace_back(n, name);
  std::sort(ordered.rbegin(), ordered.rend());
  const auto examples = example_per_verdict(run);
  std::vector<std::string> parts;
  for (const auto& [n, name] : ordered) {
    const auto it = examples.find(name);
    parts.push_back(it == examples.end() || it->second.empty() ? fmt::format("{} {}", n, name)
                                                               : fmt::format("{} {} ({})", n, name, it->second));
  }
  return parts.empty() ? "" : fmt::format(" Verdicts: {}.", fmt::join(parts, "; "));
}

// " 4 not judged: <what was missing>." for the failed requests the record could not decide.
std::string unjudged_sentence(const run_view& run) {
  std::map<std::string, std::uint64_t> by_reason;
  for (const auto& c : run.cases) {
    for (const auto& u : c.unjudged.value_or(std::vector<unjudged_record>{})) by_reason[u.missing] += u.count;
  }
  std::vector<std::string> parts;
  for (const auto& [missing, n] : by_reason) parts.push_back(fmt::format("{} ({})", n, missing));
  return parts.empty() ? "" : fmt::format(" Not judged: {}.", fmt::join(parts, "; "));
}

std::string conclusion(const run_view& run, const run_summary& summary, const run_analyses& analyses) {
  const auto& [cases, requests, failed, timeouts, verdicts, families] = summary;
  std::string text;
  if (failed == 0) {
    text = fmt::format("No request failed or timed out: {} in {}.", plural(requests, "request", "requests"),
                       plural(cases, "case", "cases"));
  } else {
    text = fmt::format("{} of {} failed across {}: {}{}.", failed, plural(requests, "request", "requests"),
                       plural(cases, "case", "cases"), plural(timeouts, "timeout", "timeouts"),
                       failed > timeouts ? ", " + plural(failed - timeouts, "other failure", "other failures") : "");
    text += verdicts_sentence(run, summary);
    text += unjudged_sentence(run);
  }
  for (const auto& a : analyses.usl) {
    if (a.verdict) text += fmt::format(" {} over {}: {}.", *a.verdict, a.axis, a.evidence);
  }
  std::vector<std::string> depends;
  for (const auto& a : analyses.axes) {
    if (a.depends) depends.push_back(fmt::format("{} ({}, p={:.2g})", a.key, a.kind, a.p_value));
  }
  if (!depends.empty()) text += fmt::format(" The timeout rate depends on {}.", fmt::join(depends, ", "));
  return text;
}

run_summary summary_of(const run_view& run, const run_analyses& analyses) {
  run_summary s;
  s.cases = run.cases.size();
  for (const auto& f : verdict_families) s.families[std::string(f.name)] = 0;
  for (const auto& c : run.cases) {
    s.requests += c.requests();
    s.failed += c.failed();
    s.timeouts += c.timeouts();
    for (const auto& [name, n] : c.verdicts) s.verdicts[name] += n;
  }
  for (const auto& a : analyses.usl) {
    if (a.verdict) ++s.verdicts[*a.verdict];
  }
  for (const auto& [name, n] : s.verdicts) s.families[std::string(verdict_family(name))] += n;
  return s;
}

}  // namespace

void diagnose_run(json& results) {
  run_view run{.scenario = results.at("scenario"), .cases = {}};
  read_value(results.at("cases"), run.cases);
  const run_analyses analyses{.usl = usl_analyses(run), .axes = axis_analyses(run)};
  const run_summary summary = summary_of(run, analyses);
  results["verdicts"] = summary.verdicts;
  results["analyses"] = analyses;
  results["conclusion"] = conclusion(run, summary, analyses);
  results["summary"] = summary;
}

}  // namespace procpool::harness
