#include "results/assertions.hpp"

#include <algorithm>

#include <fmt/format.h>
#include <fmt/ranges.h>

#include "run/runner.hpp"

namespace procpool::harness {
namespace {

using json = nlohmann::json;

const json* member(const json& object, std::string_view key) {
  if (!object.is_object()) return nullptr;
  const auto it = object.find(key);
  return it == object.end() ? nullptr : &*it;
}

// The last case with the highest `figure`, so that a tie names the later case.
template <class Figure>
const case_figures* worst(std::span<const case_figures> cases, Figure figure) {
  const case_figures* found = nullptr;
  double most = 0;
  for (const auto& c : cases) {
    if (figure(c) >= most) {
      most = figure(c);
      found = &c;
    }
  }
  return found;
}

}  // namespace

double case_figures::timeout_rate() const noexcept {
  return requests ? static_cast<double>(timeouts) / static_cast<double>(requests) : 0.0;
}

case_figures figures_of_case(const case_record& c) {
  return {.id = c.id,
          .requests = c.requests(),
          .timeouts = c.timeouts(),
          .p99_ms = c.latency_us.p99 / 1000.0,
          .verdicts = {c.verdicts.begin(), c.verdicts.end()}};
}

case_figures figures_of_case(const json& c) { return figures_of_case(c.get<case_record>()); }

assert_config assertions_of(const json& section) {
  assert_config a;
  if (const json* v = member(section, "max_timeout_rate"); v && v->is_number()) {
    a.max_timeout_rate = v->get<double>();
  }
  if (const json* v = member(section, "p99_ms"); v && v->is_number()) a.p99_ms = v->get<double>();
  if (const json* v = member(section, "forbid_verdicts"); v && v->is_array()) {
    for (const auto& p : *v) {
      if (p.is_string()) a.forbid_verdicts.push_back(p.get<std::string>());
    }
  }
  return a;
}

bool timeout_rate_held(const case_figures& c, double limit) noexcept {
  return c.timeout_rate() <= limit;
}

bool p99_held(const case_figures& c, double limit_ms) noexcept { return c.p99_ms <= limit_ms; }

std::vector<std::string> forbidding_patterns(std::span<const std::string> patterns,
                                             std::string_view verdict) {
  std::vector<std::string> out;
  for (const auto& p : patterns) {
    if (verdict_matches(p, verdict)) out.push_back(p);
  }
  return out;
}

json check_max_timeout_rate(double limit, std::span<const case_figures> cases) {
  const case_figures* w = worst(cases, [](const case_figures& c) { return c.timeout_rate(); });
  const case_figures none;
  const case_figures& c = w ? *w : none;
  return {{"assertion", "max_timeout_rate"},
          {"limit", limit},
          {"value", c.timeout_rate()},
          {"held", timeout_rate_held(c, limit)},
          {"detail", fmt::format("worst case {}: {} timeouts in {} requests", c.id, c.timeouts,
                                 c.requests)}};
}

json check_p99_ms(double limit_ms, std::span<const case_figures> cases) {
  const case_figures* w = worst(cases, [](const case_figures& c) { return c.p99_ms; });
  const case_figures none;
  const case_figures& c = w ? *w : none;
  return {{"assertion", "p99_ms"},
          {"limit", limit_ms},
          {"value", c.p99_ms},
          {"held", p99_held(c, limit_ms)},
          {"detail", fmt::format("worst p99 {:.3f} ms in case {}", c.p99_ms, c.id)}};
}

json check_forbid_verdicts(std::span<const std::string> patterns,
                           std::span<const case_figures> cases,
                           std::span<const sweep_verdict> sweep) {
  std::vector<std::string> found;
  for (const auto& c : cases) {
    for (const auto& [verdict, n] : c.verdicts) {
      if (n == 0) continue;
      // One entry per pattern that forbids it, so that each pattern's catch shows.
      const auto by = forbidding_patterns(patterns, verdict);
      found.insert(found.end(), by.size(), fmt::format("{} x{} in {}", verdict, n, c.id));
    }
  }
  for (const auto& s : sweep) {
    const auto by = forbidding_patterns(patterns, s.verdict);
    found.insert(found.end(), by.size(), fmt::format("{} over {} (sweep)", s.verdict, s.axis));
  }
  return {{"assertion", "forbid_verdicts"},
          {"limit", std::vector<std::string>(patterns.begin(), patterns.end())},
          {"value", found},
          {"held", found.empty()},
          {"detail",
           found.empty() ? "no forbidden verdict" : fmt::format("{}", fmt::join(found, "; "))}};
}

}  // namespace procpool::harness
