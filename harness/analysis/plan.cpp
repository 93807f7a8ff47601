#include "analysis/plan.hpp"

#include <algorithm>
#include <cmath>
#include <fstream>
#include <limits>
#include <memory>
#include <set>

#include <fmt/format.h>

#include "results/results.hpp"
#include "run/records.hpp"

namespace procpool::harness {
namespace {

using json = nlohmann::json;

constexpr double target_quantile = 0.99;
constexpr std::size_t min_points = 4;  // distinct axis values: the USL has three parameters
constexpr std::size_t max_pool_size = 100'000;
constexpr std::string_view concurrency_key = "load.concurrency";
constexpr std::string_view pool_size_key = "pool.size";

error usage_error(std::string message) { return error{errc::invalid_options, std::move(message)}; }

// The scenario's value of a dotted key ("pool.size" is scenario.pool.size).
const json* scenario_value(const json& scenario, std::string_view dotted) {
  const json* at = &scenario;
  std::size_t start = 0;
  while (true) {
    const std::size_t dot = dotted.find('.', start);
    const std::string part(dotted.substr(start, dot == std::string_view::npos ? std::string_view::npos : dot - start));
    if (!at->is_object() || !at->contains(part)) return nullptr;
    at = &at->at(part);
    if (dot == std::string_view::npos) return at;
    start = dot + 1;
  }
}

struct axis_values {
  std::string key;
  std::vector<json> values;
};

std::vector<axis_values> sweep_of(const json& results) {
  std::vector<axis_values> sweep;
  const json* axes = scenario_value(results.at("scenario"), "sweep");
  if (!axes || !axes->is_array()) return sweep;
  for (const auto& axis : *axes) {
    if (!axis.is_object() || !axis.contains("key") || !axis.contains("values")) continue;
    axis_values a{.key = axis.at("key").get<std::string>(), .values = {}};
    for (const auto& v : axis.at("values")) a.values.push_back(v);
    sweep.push_back(std::move(a));
  }
  return sweep;
}

// Swept with at least min_points distinct numbers.
bool usable_axis(const axis_values& axis) {
  std::set<double> distinct;
  for (const auto& v : axis.values) {
    if (!v.is_number()) return false;
    distinct.insert(v.get<double>());
  }
  return distinct.size() >= min_points;
}

std::string describe_values(const std::vector<json>& values) {
  std::vector<std::string> names;
  for (const auto& v : values) names.push_back(v.is_string() ? v.get<std::string>() : v.dump());
  return fmt::format("{}", fmt::join(names, ", "));
}

std::string value_text(const json& v) { return v.is_string() ? v.get<std::string>() : v.dump(); }

result<std::pair<std::string, json>> parse_where(const std::string& assignment) {
  const auto eq = assignment.find('=');
  if (eq == std::string::npos || eq == 0) {
    return usage_error(fmt::format("--where {}: expected KEY=VALUE", assignment));
  }
  const std::string text = assignment.substr(eq + 1);
  json value = json::parse(text, nullptr, /*allow_exceptions=*/false);
  if (value.is_discarded()) value = text;  // a bare word: load.model=closed
  return std::pair{assignment.substr(0, eq), std::move(value)};
}

result<const axis_values*> choose_axis(const std::vector<axis_values>& sweep, const std::string& wanted) {
  const auto find = [&](std::string_view key) -> const axis_values* {
    for (const auto& a : sweep) {
      if (a.key == key) return &a;
    }
    return nullptr;
  };
  if (!wanted.empty()) {
    if (wanted != concurrency_key && wanted != pool_size_key) {
      return usage_error(fmt::format("--axis {}: the USL is fitted against {} or {}", wanted,
                                     concurrency_key, pool_size_key));
    }
    const axis_values* axis = find(wanted);
    if (!axis || !usable_axis(*axis)) {
      return usage_error(fmt::format("--axis {}: not swept with {} or more numeric values", wanted, min_points));
    }
    return axis;
  }
  for (const auto key : {pool_size_key, concurrency_key}) {
    if (const axis_values* axis = find(key); axis && usable_axis(*axis)) return axis;
  }
  return usage_error(fmt::format(
      "the results have no sweep of {} or {} with {} or more values: the Universal Scalability "
      "Law has three parameters and needs at least {} points to fit",
      pool_size_key, concurrency_key, min_points, min_points));
}

// The value of each other swept axis whose cases are fitted.
result<std::vector<std::pair<std::string, json>>> choose_fixed(const std::vector<axis_values>& sweep,
                                                                const std::string& axis,
                                                                const std::vector<std::string>& where) {
  std::vector<std::pair<std::string, json>> chosen;
  for (const auto& assignment : where) {
    auto parsed = parse_where(assignment);
    if (!parsed) return parsed.error();
    const auto& [key, value] = *parsed;
    if (key == axis) return usage_error(fmt::format("--where {}: that is the fitted axis", assignment));
    const auto swept = std::find_if(sweep.begin(), sweep.end(), [&](const auto& a) { return a.key == key; });
    if (swept == sweep.end()) {
      std::vector<std::string> keys;
      for (const auto& a : sweep) keys.push_back(a.key);
      return usage_error(fmt::format("--where {}: {} is not swept (swept: {})", assignment, key, fmt::join(keys, ", ")));
    }
    if (std::find(swept->values.begin(), swept->values.end(), value) == swept->values.end()) {
      return usage_error(fmt::format("--where {}: not one of the swept values of {} ({})", assignment, key,
                                     describe_values(swept->values)));
    }
    chosen.emplace_back(key, value);
  }
  std::vector<std::pair<std::string, json>> fixed;
  for (const auto& a : sweep) {
    if (a.key == axis) continue;
    const auto given = std::find_if(chosen.begin(), chosen.end(), [&](const auto& c) { return c.first == a.key; });
    if (given != chosen.end()) {
      fixed.push_back(*given);
    } else if (a.key == concurrency_key && std::all_of(a.values.begin(), a.values.end(),
                                                       [](const json& v) { return v.is_number(); })) {
      fixed.emplace_back(a.key, *std::max_element(a.values.begin(), a.values.end(), [](const json& x, const json& y) {
        return x.get<double>() < y.get<double>();
      }));
    } else if (a.key == "load.model" && std::find(a.values.begin(), a.values.end(), json("closed")) != a.values.end()) {
      fixed.emplace_back(a.key, "closed");
    } else if (!a.values.empty()) {
      fixed.emplace_back(a.key, a.values.front());
    }
  }
  return fixed;
}

// The effective value of a key for a case: its swept value, else the scenario's.
const json* case_value(const case_record& c, const json& scenario, const std::string& key) {
  if (c.params.is_object() && c.params.contains(key)) return &c.params.at(key);
  return scenario_value(scenario, key);
}

std::string format_rate(double rps) {
  if (std::isinf(rps)) return "unbounded";
  return fmt::format("{:.0f} req/s", rps);
}

std::string format_ms(double seconds) {
  if (std::isinf(seconds)) return "unbounded";
  const double ms = seconds * 1e3;
  return ms >= 100 ? fmt::format("{:.0f} ms", ms) : ms >= 1 ? fmt::format("{:.2f} ms", ms) : fmt::format("{:.3f} ms", ms);
}

pool_sizing size_at(const capacity_plan& plan, std::size_t servers) {
  pool_sizing s{.servers = servers,
                .queue = erlang_c(plan.options.rate, plan.service_mean_s, servers),
                .usl_throughput = usl_throughput(plan.fit, double(servers))};
  s.p99_s = s.queue.response_quantile_s(target_quantile);
  s.meets_target = s.p99_s <= plan.options.p99_ms / 1e3 &&
                   s.usl_throughput >= plan.options.rate * (1 + plan.options.headroom);
  return s;
}

// The smallest size from `from` whose X on the curve reaches `required`; the curve rises up
// to N* and falls after it, so the search stops there.
std::optional<std::size_t> curve_size_from(const usl_fit& fit, std::size_t from, double required) {
  const double last = std::isinf(fit.peak_n) ? double(max_pool_size) : std::min(double(max_pool_size), std::ceil(fit.peak_n));
  for (std::size_t n = std::max<std::size_t>(from, 1); double(n) <= last; ++n) {
    if (usl_throughput(fit, double(n)) >= required) return n;
  }
  return std::nullopt;
}

void explain_service_bound(capacity_plan& plan) {
  const double target_s = plan.options.p99_ms / 1e3;
  const double service_only = -std::log1p(-target_quantile) * plan.service_mean_s;
  if (plan.service_mean_s >= target_s) {
    plan.reasons.push_back(fmt::format(
        "the mean service time alone, {}, is at or above the p99 target of {}: no pool size helps; "
        "the work itself must get faster",
        format_ms(plan.service_mean_s), format_ms(target_s)));
  } else if (service_only > target_s) {
    plan.reasons.push_back(fmt::format(
        "with exponential service of mean {} (the M/M/c model), the p99 of the service alone is "
        "{} (4.6 times the mean), above the target of {} however many workers serve: no pool "
        "size helps",
        format_ms(plan.service_mean_s), format_ms(service_only), format_ms(target_s)));
  } else {
    plan.reasons.push_back(fmt::format("no pool of up to {} workers meets a p99 of {} at {} (Erlang C)",
                                       max_pool_size, format_ms(target_s), format_rate(plan.options.rate)));
  }
}

void explain_curve_bound(capacity_plan& plan) {
  const double required = plan.options.rate * (1 + plan.options.headroom);
  const usl_fit& fit = plan.fit;
  std::string ceiling;
  if (fit.kappa > 0) {
    ceiling = fmt::format("the measured curve peaks at N* = {:.1f} with X(N*) = {}, and workers beyond "
                          "N* lower throughput (coherency kappa = {:.3g})",
                          fit.peak_n, format_rate(fit.peak_throughput), fit.kappa);
  } else {
    ceiling = fmt::format("the measured curve approaches lambda / sigma = {} as N grows (contention "
                          "sigma = {:.3f})",
                          format_rate(fit.peak_throughput), fit.sigma);
  }
  std::string reason = fmt::format("the rate with {:.0f}% headroom, {}, is beyond the USL ceiling: {}",
                                   plan.options.headroom * 100, format_rate(required), ceiling);
  if (fit.peak_throughput >= plan.options.rate) {
    reason += fmt::format(" (the rate alone, {}, is under the ceiling: it could be served with less "
                          "headroom, see --headroom)",
                          format_rate(plan.options.rate));
  }
  plan.reasons.push_back(std::move(reason));
}

void add_notes(capacity_plan& plan, const json& scenario) {
  double largest = 0;
  for (const auto& p : plan.points) largest = std::max(largest, p.n);
  if (plan.axis == concurrency_key) {
    const json* size = nullptr;
    for (const auto& [key, value] : plan.fixed) {
      if (key == pool_size_key) size = &value;
    }
    if (!size) size = scenario_value(scenario, pool_size_key);
    if (size && size->is_number() && size->get<double>() < largest) {
      plan.notes.push_back(fmt::format(
          "the sweep drove a pool of {} workers at up to {} requests in flight: points beyond N = {} "
          "measure that pool's limit, so the fitted ceiling may understate what a larger pool can do; "
          "a sweep of pool.size measures it directly",
          size->dump(), largest, size->dump()));
    }
  }
  if (plan.recommended && double(*plan.recommended) > largest) {
    plan.notes.push_back(fmt::format("the recommended size is beyond the largest measured N ({}): the "
                                     "curve is extrapolated; measure a sweep that reaches it",
                                     largest));
  }
  if (plan.fit.r_squared < 0.9) {
    plan.notes.push_back(fmt::format("the USL fits the measured throughput poorly (R² = {:.2f}): treat "
                                     "the curve's figures with care",
                                     plan.fit.r_squared));
  }
  if (plan.fit.lambda > 0 && 1 / plan.fit.lambda > 1.1 * plan.service_mean_s) {
    plan.notes.push_back(fmt::format(
        "at N = 1 the curve serves one request per {} (1 / lambda) while the worker's own service "
        "takes {}: the rest is dispatch and harness overhead, which Erlang C does not see",
        format_ms(1 / plan.fit.lambda), format_ms(plan.service_mean_s)));
  }
  plan.notes.push_back("Erlang C assumes Poisson arrivals and exponential service times; fixed "
                       "service times queue less, bursty arrivals more");
}


json finite_or_null(double v) { return std::isfinite(v) ? json(v) : json(nullptr); }

json optional_size(const std::optional<std::size_t>& n) { return n ? json(*n) : json(nullptr); }

// The options' figures must be finite, the rate and target above 0.
std::optional<error> check_plan_options(const plan_options& options) {
  if (!(options.rate > 0) || !std::isfinite(options.rate)) {
    return usage_error(fmt::format("the rate must be above 0 requests per second (got {})", options.rate));
  }
  if (!(options.p99_ms > 0) || !std::isfinite(options.p99_ms)) {
    return usage_error(fmt::format("the p99 target must be above 0 ms (got {})", options.p99_ms));
  }
  if (!(options.headroom >= 0) || !std::isfinite(options.headroom)) {
    return usage_error(fmt::format("the headroom must be 0 or more (got {})", options.headroom));
  }
  return std::nullopt;
}

bool is_results_document(const json& results) {
  return results.is_object() && results.value("schema", "") == results_schema && results.contains("scenario") &&
         results.contains("cases") && results.at("cases").is_array();
}

// Names the fitted cases in messages: "the cases with load.model=closed, ...".
std::string selection_of(const capacity_plan& plan) {
  std::vector<std::string> fixed_text;
  for (const auto& [key, value] : plan.fixed) fixed_text.push_back(fmt::format("{}={}", key, value_text(value)));
  return fixed_text.empty() ? std::string("the sweep's cases")
                            : fmt::format("the cases with {}", fmt::join(fixed_text, ", "));
}

bool runs_open_loop(const capacity_plan& plan, const json& scenario) {
  const json* model = [&]() -> const json* {
    for (const auto& [key, value] : plan.fixed) {
      if (key == "load.model") return &value;
    }
    return scenario_value(scenario, "load.model");
  }();
  return model && *model == "open";
}

// Adds the selected cases' (N, throughput) points and service-time samples to the plan;
// returns the samples' sum in seconds.
double gather_cases(capacity_plan& plan, const json& results, const json& scenario) {
  double service_sum_s = 0;
  for (const auto& element : results.at("cases")) {
    if (!element.is_object() || !element.contains("params")) continue;
    const auto c = element.get<case_record>();
    if (c.error || c.interrupted) continue;
    bool selected = true;
    for (const auto& [key, value] : plan.fixed) {
      const json* v = case_value(c, scenario, key);
      selected = selected && v && *v == value;
    }
    const json* n = case_value(c, scenario, plan.axis);
    const double throughput = c.throughput_rps;
    if (!selected || !n || !n->is_number() || !(throughput > 0)) continue;
    plan.points.push_back({n->get<double>(), throughput});
    if (!c.timelines) continue;
    for (const auto& t : c.timelines->requests_sampled) {
      if (!t.ok() || t.t_worker_recv <= 0 || t.t_worker_done < t.t_worker_recv) continue;
      service_sum_s += double(t.t_worker_done - t.t_worker_recv) / 1e9;
      ++plan.service_samples;
    }
  }
  return service_sum_s;
}

// Fits the USL to the gathered points and takes the mean service time; fails when the points
// or the samples cannot support them.
std::optional<error> fit_measurements(capacity_plan& plan, double service_sum_s, const std::string& selection) {
  std::set<double> distinct;
  for (const auto& p : plan.points) distinct.insert(p.n);
  if (distinct.size() < min_points) {
    return usage_error(fmt::format("{} have results at {} distinct values of {}; the USL fit needs at "
                                   "least {} (choose other cases with --where)",
                                   selection, distinct.size(), plan.axis, min_points));
  }
  auto fit = fit_usl(plan.points);
  if (!fit) {
    return usage_error(fmt::format("cannot fit the USL to {}: every {} must be 1 or more", selection, plan.axis));
  }
  plan.fit = *fit;
  if (plan.service_samples == 0) {
    return usage_error(fmt::format("{} hold no sampled successful request with worker timestamps: the "
                                   "service time cannot be measured",
                                   selection));
  }
  plan.service_mean_s = service_sum_s / double(plan.service_samples);
  return std::nullopt;
}

// The size Erlang C needs for the p99, the size the curve needs for the rate with headroom,
// and the recommendation that meets both, or the reasons none does.
void recommend_size(capacity_plan& plan) {
  const plan_options& options = plan.options;
  const double target_s = options.p99_ms / 1e3;
  const double required = options.rate * (1 + options.headroom);
  plan.queueing_servers =
      erlang_c_servers_for(options.rate, plan.service_mean_s, target_quantile, target_s, max_pool_size);
  plan.curve_servers = curve_size_from(plan.fit, 1, required);
  if (!plan.queueing_servers) explain_service_bound(plan);
  if (!plan.curve_servers) explain_curve_bound(plan);
  if (plan.queueing_servers && plan.curve_servers) {
    // The p99 only improves with more workers, so the larger of the two sizes meets both as
    // long as the curve still reaches the rate there (it may not, past N*).
    const std::size_t size = std::max(*plan.queueing_servers, *plan.curve_servers);
    if (usl_throughput(plan.fit, double(size)) >= required) {
      plan.recommended = size;
    } else {
      plan.reasons.push_back(fmt::format(
          "Erlang C needs {} workers for the p99, but at {} workers the measured curve gives {} "
          "(past its peak at N* = {:.1f}), short of the rate with headroom, {}",
          *plan.queueing_servers, size, format_rate(usl_throughput(plan.fit, double(size))),
          plan.fit.peak_n, format_rate(required)));
    }
  }
}

// The table: from the smallest stable size up to two past the decisive one, at most 12 rows.
void tabulate_sizes(capacity_plan& plan) {
  const std::size_t stable_from = std::size_t(std::floor(plan.options.rate * plan.service_mean_s)) + 1;
  std::size_t last = plan.recommended      ? *plan.recommended + 2
                     : plan.queueing_servers ? *plan.queueing_servers + 2
                                             : stable_from + 4;
  last = std::min(last, max_pool_size);
  const std::size_t first = std::max(stable_from, last > 11 ? last - 11 : std::size_t{1});
  for (std::size_t n = first; n <= last; ++n) plan.sizes.push_back(size_at(plan, n));
}

}  // namespace

result<capacity_plan> plan_capacity(const json& results, const plan_options& options) {
  if (auto bad = check_plan_options(options)) return *bad;
  if (!is_results_document(results)) return usage_error(fmt::format("not a {} document", results_schema));
  const json& scenario = results.at("scenario");
  const auto sweep = sweep_of(results);
  auto axis = choose_axis(sweep, options.axis);
  if (!axis) return axis.error();
  auto fixed = choose_fixed(sweep, (*axis)->key, options.where);
  if (!fixed) return fixed.error();

  capacity_plan plan{.scenario_name = scenario.value("name", std::string("scenario")),
                     .options = options,
                     .axis = (*axis)->key,
                     .fixed = std::move(*fixed),
                     .fit = {}};
  const std::string selection = selection_of(plan);
  if (runs_open_loop(plan, scenario)) {
    return usage_error(fmt::format("{} ran an open loop, whose throughput is its arrival rate: plan "
                                   "needs the throughput of a closed-loop sweep",
                                   selection));
  }
  const double service_sum_s = gather_cases(plan, results, scenario);
  if (auto bad = fit_measurements(plan, service_sum_s, selection)) return *bad;
  recommend_size(plan);
  tabulate_sizes(plan);
  add_notes(plan, scenario);
  return plan;
}

namespace {

// The title, the target and the recommendation (or why there is none).
std::string plan_heading(const capacity_plan& plan) {
  const auto& o = plan.options;
  std::string out = fmt::format("# Capacity plan: {}\n\n", plan.scenario_name);
  out += fmt::format("Target: p99 response time at most {} at {} (Poisson arrivals), with {:.0f}% "
                     "throughput headroom.\n\n",
                     format_ms(o.p99_ms / 1e3), format_rate(o.rate), o.headroom * 100);
  if (plan.recommended) {
    const auto at = size_at(plan, *plan.recommended);
    out += fmt::format("**Recommendation: a pool of {} worker{}.** Predicted p99 {}, utilisation "
                       "{:.0f}%, {:.1f}% of requests wait for a worker; the measured curve gives "
                       "{} at that size.\n\n",
                       *plan.recommended, *plan.recommended == 1 ? "" : "s", format_ms(at.p99_s),
                       at.queue.utilisation * 100, at.queue.wait_probability * 100,
                       format_rate(at.usl_throughput));
  } else {
    out += "**The target is beyond reach.**\n\n";
    for (const auto& reason : plan.reasons) out += fmt::format("- {}\n", reason);
    out += "\n";
  }

  return out;
}

// The fitted USL parameters, and the measured against the fitted throughput per point.
std::string plan_scaling_section(const capacity_plan& plan) {
  std::string out;
  std::vector<std::string> fixed_text;
  for (const auto& [key, value] : plan.fixed) fixed_text.push_back(fmt::format("`{}={}`", key, value_text(value)));
  out += "## Measured scaling (Universal Scalability Law)\n\n";
  out += fmt::format("X(N) = lambda N / (1 + sigma (N - 1) + kappa N (N - 1)), fitted to throughput "
                     "against `{}` over {} cases{}.\n\n",
                     plan.axis, plan.points.size(),
                     fixed_text.empty() ? "" : fmt::format(" with {}", fmt::join(fixed_text, ", ")));
  out += "| lambda (req/s) | sigma | kappa | R² | N* | X(N*) |\n|---:|---:|---:|---:|---:|---:|\n";
  out += fmt::format("| {:.1f} | {:.4f} | {:.3g} | {:.3f} | {} | {} |\n\n", plan.fit.lambda, plan.fit.sigma,
                     plan.fit.kappa, plan.fit.r_squared,
                     std::isinf(plan.fit.peak_n) ? std::string("none (kappa = 0)") : fmt::format("{:.1f}", plan.fit.peak_n),
                     format_rate(plan.fit.peak_throughput));
  out += "| N | measured | fitted |\n|---:|---:|---:|\n";
  auto points = plan.points;
  std::sort(points.begin(), points.end(), [](const auto& a, const auto& b) { return a.n < b.n; });
  for (const auto& p : points) {
    out += fmt::format("| {} | {} | {} |\n", p.n, format_rate(p.throughput),
                       format_rate(usl_throughput(plan.fit, p.n)));
  }

  return out;
}

// The service time, and the Erlang C table of candidate sizes.
std::string plan_sizing_section(const capacity_plan& plan) {
  const auto& o = plan.options;
  std::string out;
  out += "## Service time\n\n";
  out += fmt::format("Mean {} over {} sampled successful requests (worker receive to worker done).\n\n",
                     format_ms(plan.service_mean_s), plan.service_samples);

  out += "## Sizing (Erlang C, M/M/c)\n\n";
  out += fmt::format("Smallest size meeting the p99 by queueing: {}. Smallest size the measured curve "
                     "carries {} at: {}.\n\n",
                     plan.queueing_servers ? std::to_string(*plan.queueing_servers) : std::string("none"),
                     format_rate(o.rate * (1 + o.headroom)),
                     plan.curve_servers ? std::to_string(*plan.curve_servers) : std::string("none"));
  if (!plan.sizes.empty()) {
    out += "| workers | utilisation | P(wait) | mean wait | p99 response | curve X(N) | meets |\n"
           "|---:|---:|---:|---:|---:|---:|---|\n";
    for (const auto& s : plan.sizes) {
      out += fmt::format("| {} | {:.0f}% | {:.1f}% | {} | {} | {} | {} |\n", s.servers, s.queue.utilisation * 100,
                         s.queue.wait_probability * 100, format_ms(s.queue.mean_wait_s), format_ms(s.p99_s),
                         format_rate(s.usl_throughput), s.meets_target ? "yes" : "no");
    }
  }
  return out;
}

}  // namespace

std::string plan_markdown(const capacity_plan& plan) {
  std::string out = plan_heading(plan) + plan_scaling_section(plan) + "\n" + plan_sizing_section(plan);
  if (!plan.notes.empty()) {
    out += "\n## Notes\n\n";
    for (const auto& note : plan.notes) out += fmt::format("- {}\n", note);
  }
  return out;
}

json plan_json(const capacity_plan& plan) {
  json fixed = json::object();
  for (const auto& [key, value] : plan.fixed) fixed[key] = value;
  json points = json::array();
  for (const auto& p : plan.points) {
    points.push_back({{"n", p.n}, {"throughput_rps", p.throughput}, {"fitted_rps", usl_throughput(plan.fit, p.n)}});
  }
  json sizes = json::array();
  for (const auto& s : plan.sizes) {
    sizes.push_back({{"workers", s.servers},
                     {"utilisation", s.queue.utilisation},
                     {"wait_probability", s.queue.wait_probability},
                     {"mean_wait_ms", finite_or_null(s.queue.mean_wait_s * 1e3)},
                     {"p99_ms", finite_or_null(s.p99_s * 1e3)},
                     {"curve_throughput_rps", s.usl_throughput},
                     {"meets_target", s.meets_target}});
  }
  return {{"scenario", plan.scenario_name},
          {"target", {{"rate_rps", plan.options.rate}, {"p99_ms", plan.options.p99_ms}, {"headroom", plan.options.headroom}}},
          {"axis", plan.axis},
          {"fixed", fixed},
          {"usl",
           {{"lambda", plan.fit.lambda},
            {"sigma", plan.fit.sigma},
            {"kappa", plan.fit.kappa},
            {"r_squared", plan.fit.r_squared},
            {"peak_n", finite_or_null(plan.fit.peak_n)},
            {"peak_throughput_rps", finite_or_null(plan.fit.peak_throughput)},
            {"points", points}}},
          {"service_time", {{"mean_ms", plan.service_mean_s * 1e3}, {"samples", plan.service_samples}}},
          {"queueing_workers", optional_size(plan.queueing_servers)},
          {"curve_workers", optional_size(plan.curve_servers)},
          {"recommended_workers", optional_size(plan.recommended)},
          {"reachable", plan.recommended.has_value()},
          {"reasons", plan.reasons},
          {"sizes", sizes},
          {"notes", plan.notes}};
}


}  // namespace procpool::harness
