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
#include "run/runner.hpp"
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
json setting(const json& results, const json& c, const std::string& key) {
  if (c.contains("params") && c["params"].contains(key)) return c["params"][key];
  const json* node = &results.at("scenario");
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

// A member, or an empty one: iterating a temporary from json::value() trips GCC 12's
// maybe-uninitialized analysis.
const json& member(const json& j, const char* key) {
  static const json empty = json::object();
  return j.contains(key) ? j[key] : empty;
}

double number(const json& j, double fallback = 0) { return j.is_number() ? j.get<double>() : fallback; }

std::uint64_t count_of(const json& n) {
  if (n.is_number_unsigned()) return n.get<std::uint64_t>();
  if (n.is_number_integer()) return static_cast<std::uint64_t>(std::max<std::int64_t>(0, n.get<std::int64_t>()));
  return 0;
}

std::uint64_t requests_of(const json& c) {
  std::uint64_t n = 0;
  for (const auto& [name, count] : member(c, "outcomes").items()) n += count_of(count);
  return n;
}

std::uint64_t timeouts_of(const json& c) {
  std::uint64_t n = 0;
  for (const auto& [name, count] : member(c, "outcomes").items()) {
    if (is_timeout_outcome(name)) n += count_of(count);
  }
  return n;
}

std::vector<std::string> swept_keys(const json& results) {
  std::vector<std::string> keys;
  for (const auto& axis : member(results.at("scenario"), "sweep")) {
    keys.push_back(axis.at("key").get<std::string>());
  }
  return keys;
}

std::string axis_kind(const std::string& key) {
  static const std::set<std::string, std::less<>> environmental = {
      "worker.startup_ms", "worker.init_ms", "environment.cpu_hogs", "environment.cpus"};
  static const std::set<std::string, std::less<>> architectural = {
      "subject.kind", "subject.command", "pool.prewarm", "pool.max_concurrent_starts"};
  if (environmental.contains(key)) return "environmental";
  if (architectural.contains(key)) return "architectural";
  return "load";
}

std::string value_text(const json& v) { return v.is_string() ? v.get<std::string>() : v.dump(); }

// One fit per group of cases that differ only in the scaling axis (and repetition).
json usl_analyses(const json& results) {
  json out = json::array();
  const auto keys = swept_keys(results);
  for (const std::string axis : {"load.concurrency", "pool.size"}) {
    if (std::find(keys.begin(), keys.end(), axis) == keys.end()) continue;
    std::map<std::string, std::vector<const json*>> groups;
    std::map<std::string, json> group_params;
    for (const auto& c : results.at("cases")) {
      json others = json::object();
      for (const auto& [k, v] : member(c, "params").items()) {
        if (k != axis) others[k] = v;
      }
      groups[others.dump()].push_back(&c);
      group_params[others.dump()] = others;
    }
    for (const auto& [group_key, cases] : groups) {
      std::vector<usl_point> points;
      json points_json = json::array();
      std::vector<std::string> objections;
      for (const json* c : cases) {
        const double concurrency = number(setting(results, *c, "load.concurrency"), 1);
        const double pool_size = number(setting(results, *c, "pool.size"), 1);
        // Only where the axis sets the parallelism: concurrency up to the pool's size, or a
        // pool no larger than its callers.
        const double n = axis == "load.concurrency" ? concurrency : pool_size;
        if (concurrency > pool_size && axis == "load.concurrency") continue;
        if (pool_size > concurrency && axis == "pool.size") continue;
        if (c->contains("error") || c->value("interrupted", false)) continue;
        const double x = number(member(*c, "throughput_rps"));
        points.push_back({n, x});
        points_json.push_back({{"n", n}, {"throughput", x}});
        const json& env = member(*c, "environment");
        const double cpu_share = number(member(env, "case_cpu_share"));
        if (cpu_share >= cpu_saturated_share) {
          objections.push_back(fmt::format("{}={} kept {:.0f}% of the CPUs busy", axis, n, 100 * cpu_share));
        }
        const std::string start = setting(results, *c, "load.start").is_string()
                                      ? setting(results, *c, "load.start").get<std::string>()
                                      : "cold";
        const double injected = number(setting(results, *c, "worker.startup_ms")) +
                                number(setting(results, *c, "worker.init_ms"));
        if (start == "cold" && injected > 0.05 * number(member(*c, "load_wall_ms"))) {
          objections.push_back(fmt::format("{}={} includes a cold start of {:.0f} ms", axis, n, injected));
        }
      }
      std::set<double> distinct;
      for (const auto& p : points) distinct.insert(p.n);
      if (distinct.size() < usl_min_points) continue;
      const auto fit = fit_usl(points);
      if (!fit) continue;
      json a = {{"axis", axis},
                {"group", group_params[group_key]},
                {"points", points_json},
                {"lambda", fit->lambda},
                {"sigma", fit->sigma},
                {"kappa", fit->kappa},
                {"r_squared", fit->r_squared},
                {"peak_n", std::isfinite(fit->peak_n) ? json(fit->peak_n) : json(nullptr)},
                {"peak_throughput", std::isfinite(fit->peak_throughput) ? json(fit->peak_throughput)
                                                                        : json(nullptr)},
                {"verdict", nullptr}};
      double squared_error = 0, mean = 0;
      for (const auto& p : points) {
        squared_error += std::pow(p.throughput - usl_throughput(*fit, p.n), 2);
        mean += p.throughput;
      }
      mean /= points.size();
      const double relative_error = mean > 0 ? std::sqrt(squared_error / points.size()) / mean : 1.0;
      a["relative_error"] = relative_error;
      const auto [lo, hi] = std::minmax_element(points.begin(), points.end(),
                                                [](const auto& p, const auto& q) { return p.n < q.n; });
      const std::string growth = fmt::format(
          "throughput {:.0f} req/s at {}={} and {:.0f} req/s at {}={} ({:.2f}x for {:.0f}x); "
          "USL sigma {:.3f}, kappa {:.4f}, R^2 {:.2f}, error {:.1f}% of the mean",
          lo->throughput, axis, lo->n, hi->throughput, axis, hi->n,
          lo->throughput > 0 ? hi->throughput / lo->throughput : 0.0, hi->n / lo->n, fit->sigma,
          fit->kappa, fit->r_squared, 100 * relative_error);
      if (fit->sigma >= scaling_sigma && relative_error <= scaling_max_relative_error && objections.empty()) {
        a["verdict"] = verdict::scaling;
        a["evidence"] = growth + fmt::format(": contention at or above {}", scaling_sigma);
      } else if (fit->sigma >= scaling_sigma && !objections.empty()) {
        a["evidence"] = growth + "; not judged architectural: " + fmt::format("{}", fmt::join(objections, "; "));
      } else {
        a["evidence"] = growth;
      }
      out.push_back(std::move(a));
    }
  }
  return out;
}

json axis_analyses(const json& results) {
  json out = json::array();
  for (const auto& key : swept_keys(results)) {
    std::map<std::string, std::pair<json, std::pair<std::uint64_t, std::uint64_t>>> rows_by_value;
    std::vector<std::string> order;
    for (const auto& c : results.at("cases")) {
      const json value = setting(results, c, key);
      const std::string text = value_text(value);
      if (!rows_by_value.contains(text)) order.push_back(text);
      auto& row = rows_by_value[text];
      row.first = value;
      row.second.first += requests_of(c);
      row.second.second += timeouts_of(c);
    }
    json rows = json::array();
    std::vector<std::pair<std::uint64_t, std::uint64_t>> table;
    double lo = 1, hi = 0;
    for (const auto& text : order) {
      const auto& [value, counts] = rows_by_value[text];
      const auto [requests, timeouts] = counts;
      const double rate = requests ? static_cast<double>(timeouts) / requests : 0.0;
      if (requests > 0) {
        lo = std::min(lo, rate);
        hi = std::max(hi, rate);
      }
      rows.push_back({{"value", value}, {"requests", requests}, {"timeouts", timeouts}, {"rate", rate}});
      table.emplace_back(timeouts, requests - std::min(timeouts, requests));
    }
    const double p = chi_square_independence(table);
    out.push_back({{"key", key},
                   {"kind", axis_kind(key)},
                   {"rows", rows},
                   {"p_value", p},
                   {"depends", p < axis_alpha && hi - lo >= axis_min_rate_difference}});
  }
  return out;
}

std::string plural(std::uint64_t n, std::string_view one, std::string_view many) {
  return fmt::format("{} {}", n, n == 1 ? one : many);
}

// The case finding with the most requests behind each verdict: its summary is the example.
std::map<std::string, std::string> example_per_verdict(const json& results) {
  std::map<std::string, std::pair<std::uint64_t, std::string>> best;
  for (const auto& c : results.at("cases")) {
    for (const auto& f : member(c, "findings")) {
      if (!f.contains("verdict") || !f["verdict"].is_string()) continue;
      const auto name = f["verdict"].get<std::string>();
      const auto count = count_of(member(f, "count"));
      if (!best.contains(name) || count > best[name].first) {
        best[name] = {count, f.value("summary", "")};
      }
    }
  }
  std::map<std::string, std::string> out;
  for (const auto& [name, b] : best) out[name] = b.second;
  return out;
}

std::string conclusion(const json& results, const json& summary, const json& analyses) {
  const auto cases = summary.at("cases").get<std::uint64_t>();
  const auto requests = summary.at("requests").get<std::uint64_t>();
  const auto failed = summary.at("failed").get<std::uint64_t>();
  const auto timeouts = summary.at("timeouts").get<std::uint64_t>();
  std::string text;
  if (failed == 0) {
    text = fmt::format("No request failed or timed out: {} in {}.", plural(requests, "request", "requests"),
                       plural(cases, "case", "cases"));
  } else {
    text = fmt::format("{} of {} failed across {}: {}{}.", failed, plural(requests, "request", "requests"),
                       plural(cases, "case", "cases"), plural(timeouts, "timeout", "timeouts"),
                       failed > timeouts ? ", " + plural(failed - timeouts, "other failure", "other failures") : "");
    std::vector<std::pair<std::uint64_t, std::string>> ordered;
    for (const auto& [name, n] : summary.at("verdicts").items()) ordered.emplace_back(n.get<std::uint64_t>(), name);
    std::sort(ordered.rbegin(), ordered.rend());
    const auto examples = example_per_verdict(results);
    std::vector<std::string> parts;
    for (const auto& [n, name] : ordered) {
      const auto it = examples.find(name);
      parts.push_back(it == examples.end() || it->second.empty()
                          ? fmt::format("{} {}", n, name)
                          : fmt::format("{} {} ({})", n, name, it->second));
    }
    if (!parts.empty()) text += fmt::format(" Verdicts: {}.", fmt::join(parts, "; "));
  }
  for (const auto& a : analyses.at("usl")) {
    if (!a.at("verdict").is_null()) {
      text += fmt::format(" {} over {}: {}.", a["verdict"].get<std::string>(), a["axis"].get<std::string>(),
                          a.value("evidence", ""));
    }
  }
  std::vector<std::string> depends;
  for (const auto& a : analyses.at("axes")) {
    if (a.at("depends").get<bool>()) {
      depends.push_back(fmt::format("{} ({}, p={:.2g})", a["key"].get<std::string>(),
                                    a["kind"].get<std::string>(), a["p_value"].get<double>()));
    }
  }
  if (!depends.empty()) text += fmt::format(" The timeout rate depends on {}.", fmt::join(depends, ", "));
  return text;
}

}  // namespace

void diagnose_run(json& results) {
  json verdicts = json::object();
  json families = json::object();
  for (const auto& f : verdict_families) families[std::string(f.name)] = 0;
  std::uint64_t requests = 0, failed = 0, timeouts = 0;
  for (const auto& c : results.at("cases")) {
    requests += requests_of(c);
    failed += requests_of(c) - count_of(member(member(c, "outcomes"), "ok"));
    timeouts += timeouts_of(c);
    for (const auto& [name, n] : member(c, "verdicts").items()) {
      verdicts[name] = verdicts.value(name, std::uint64_t{0}) + count_of(n);
    }
  }
  json analyses = {{"usl", usl_analyses(results)}, {"axes", axis_analyses(results)}};
  for (const auto& a : analyses["usl"]) {
    if (a.at("verdict").is_null()) continue;
    const auto name = a["verdict"].get<std::string>();
    verdicts[name] = verdicts.value(name, std::uint64_t{0}) + 1;
  }
  for (const auto& [name, n] : verdicts.items()) {
    const std::string family(verdict_family(name));
    families[family] = families.value(family, std::uint64_t{0}) + n.get<std::uint64_t>();
  }
  json summary = {{"cases", results.at("cases").size()},
                  {"requests", requests},
                  {"failed", failed},
                  {"timeouts", timeouts},
                  {"verdicts", verdicts},
                  {"families", families}};
  results["verdicts"] = verdicts;
  results["analyses"] = analyses;
  results["conclusion"] = conclusion(results, summary, analyses);
  results["summary"] = std::move(summary);
}

}  // namespace procpool::harness
