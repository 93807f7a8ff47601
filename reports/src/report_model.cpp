#include "report_model.hpp"

#include <algorithm>
#include <set>

#include <fmt/format.h>

#include "diagnosis/diagnosis.hpp"
#include "results/assertions.hpp"
#include "results/run_records.hpp"
#include "report_text.hpp"
#include "run/runner.hpp"
#include "scenario/scenario.hpp"

namespace procpool::harness::report_model {
namespace {

using json = nlohmann::json;

std::uint64_t sum(const counts& c) {
  std::uint64_t n = 0;
  for (const auto& [name, count] : c) n += count;
  return n;
}

case_row row_of(case_record record) {
  case_row row;
  const case_record& c = row.record = std::move(record);
  row.id = c.id.empty() ? "(no id)" : c.id;
  row.repetition = c.repetition;
  if (c.params.is_object()) row.params = c.params;
  row.throughput_rps = c.throughput_rps;
  row.wall_ms = c.wall_ms;
  const latency_record& l = c.latency_us;
  row.latency = {l.p50, l.p90, l.p99, l.p999, l.max, l.mean};
  row.outcomes = {c.outcomes.begin(), c.outcomes.end()};
  row.requests = c.requests();
  row.failed = c.failed();
  row.timeouts = c.timeouts();
  row.timeout_rate = row.requests ? static_cast<double>(row.timeouts) / static_cast<double>(row.requests) : 0.0;
  row.verdicts = {c.verdicts.begin(), c.verdicts.end()};
  std::erase_if(row.verdicts, [](const auto& entry) { return entry.second == 0; });
  row.top_verdict = top_of(row.verdicts);
  if (c.error) row.error = fmt::format("{}: {}", c.error->type.empty() ? "error" : c.error->type, c.error->message);
  row.interrupted = c.interrupted;
  return row;
}

std::string composed_conclusion(const document& doc) {
  if (doc.cases.empty()) return "The run has no cases.";
  const std::string cases = doc.cases.size() == 1 ? "1 case" : fmt::format("{} cases", doc.cases.size());
  std::string out;
  if (doc.failed == 0) {
    out = fmt::format("No request failed or timed out: {} requests in {}.", doc.requests, cases);
  } else {
    out = fmt::format("{} of {} requests timed out and {} failed otherwise, in {}.", doc.timeouts,
                      doc.requests, doc.failed - doc.timeouts, cases);
    const std::string top = top_of(doc.verdicts);
    if (top.empty()) {
      out += " No verdicts were recorded, so the causes are not known.";
    } else {
      const std::string_view meaning = verdict_meaning(top);
      out += fmt::format(" The most frequent verdict is {} ({} of them){}.", top,
                         doc.verdicts.find(top)->second,
                         meaning.empty() ? "" : fmt::format(": {}", meaning));
    }
  }
  const auto errors = std::count_if(doc.cases.begin(), doc.cases.end(),
                                    [](const case_row& c) { return c.error.has_value(); });
  if (errors > 0) out += fmt::format(" {} cases could not create their subject.", errors);
  return out;
}

}  // namespace

const json* find(const json& object, std::string_view key) {
  if (!object.is_object()) return nullptr;
  const auto it = object.find(key);
  return it == object.end() ? nullptr : &*it;
}

double number(const json& object, std::string_view key, double fallback) {
  const json* v = find(object, key);
  return v && v->is_number() ? v->get<double>() : fallback;
}

std::string text(const json& object, std::string_view key, std::string fallback) {
  const json* v = find(object, key);
  return v && v->is_string() ? v->get<std::string>() : fallback;
}

std::uint64_t whole(const json& object, std::string_view key) {
  const double v = number(object, key);
  // 2^64 and above do not fit; such a figure is nonsense anyway.
  return v >= 1 && v < 18446744073709551616.0 ? static_cast<std::uint64_t>(v) : 0;
}

const json& object_at(const json& object, std::string_view key) {
  static const json empty = json::object();
  const json* v = find(object, key);
  return v && v->is_object() ? *v : empty;
}

counts counts_of(const json* object) {
  counts out;
  if (!object || !object->is_object()) return out;
  for (const auto& [name, n] : object->items()) {
    if (n.is_number()) out[name] = whole(*object, name);
  }
  return out;
}

std::string top_of(const counts& verdicts) {
  std::string best;
  std::uint64_t most = 0;
  for (const auto& [name, n] : verdicts) {
    if (n > most) {
      most = n;
      best = name;
    }
  }
  return best;
}

namespace {

// The scenario's name, description and swept keys; without a sweep table (a hand-written
// document), the keys the cases' params name.
void read_header(const json& results, document& doc) {
  if (const json* scenario = find(results, "scenario")) {
    doc.name = text(*scenario, "name", "scenario");
    doc.description = text(*scenario, "description");
    if (const json* sweep = find(*scenario, "sweep"); sweep && sweep->is_array()) {
      for (const auto& axis : *sweep) {
        if (const std::string key = text(axis, "key"); !key.empty()) doc.swept_keys.push_back(key);
      }
    }
  }
  if (!doc.swept_keys.empty()) return;
  for (const auto& c : doc.cases) {
    for (const auto& [key, value] : c.params.items()) {
      if (std::find(doc.swept_keys.begin(), doc.swept_keys.end(), key) == doc.swept_keys.end()) {
        doc.swept_keys.push_back(key);
      }
    }
  }
}

void read_cases(const json& results, document& doc) {
  const json* cases = find(results, "cases");
  if (!cases || !cases->is_array()) return;
  for (const auto& c : *cases) {
    if (c.is_object()) doc.cases.push_back(row_of(c.get<case_record>()));
  }
}

// The cases' totals; returns the cases' verdict sums.
counts add_case_totals(document& doc) {
  counts case_sums;
  std::uint64_t explained = 0;
  for (const auto& c : doc.cases) {
    doc.requests += c.requests;
    doc.timeouts += c.timeouts;
    doc.failed += c.failed;
    for (const auto& [name, n] : c.verdicts) case_sums[name] += n;
    explained += std::min(sum(c.verdicts), c.failed);
  }
  doc.unexplained = doc.failed - explained;
  return case_sums;
}

// Sweep-level verdicts: named by the analyses, or whatever the top level counts beyond the
// cases' sums.
std::map<std::string, run_verdict, std::less<>> sweep_verdicts(const json& results, const document& doc,
                                                                const counts& case_sums) {
  std::map<std::string, run_verdict, std::less<>> sweep;
  for (const auto& fit : analyses_of(results).usl) {
    if (!fit.verdict || fit.verdict->empty()) continue;
    auto& entry = sweep[*fit.verdict];
    entry.verdict = *fit.verdict;
    ++entry.count;
    if (fit.evidence.empty()) continue;
    // Several fits may find the same verdict: each says which group it fitted.
    std::string evidence = fit.evidence;
    if (fit.group.is_object() && !fit.group.empty()) {
      evidence = fmt::format("{}: {}", group_label(fit.group, doc.swept_keys), evidence);
    }
    entry.evidence += (entry.evidence.empty() ? "" : "; ") + evidence;
  }
  for (const auto& [name, n] : counts_of(find(results, "verdicts"))) {
    const auto in_cases = case_sums.count(name) ? case_sums.at(name) : 0;
    if (n > in_cases) {
      auto& entry = sweep[name];
      entry.verdict = name;
      entry.count = std::max(entry.count, n - in_cases);
    }
  }
  return sweep;
}

}  // namespace

document read_document(const json& results) {
  document doc;
  read_cases(results, doc);
  read_header(results, doc);
  const counts case_sums = add_case_totals(doc);
  doc.verdicts = case_sums;
  for (auto& [name, entry] : sweep_verdicts(results, doc, case_sums)) {
    doc.verdicts[name] += entry.count;
    doc.sweep_verdicts.push_back(std::move(entry));
  }
  if (const json* partial = find(results, "partial"); partial && partial->is_boolean()) {
    doc.partial = partial->get<bool>();
  }
  if (const json* warnings = find(results, "warnings"); warnings && warnings->is_array()) {
    for (const auto& w : *warnings) {
      if (w.is_string()) doc.warnings.push_back(w.get<std::string>());
    }
  }
  doc.conclusion = text(results, "conclusion");
  if (doc.conclusion.empty()) doc.conclusion = composed_conclusion(doc);
  return doc;
}

std::string_view family_of(std::string_view verdict) noexcept { return verdict_family(verdict); }

std::string family_colour(std::string_view family) {
  return std::string(harness::family_colour(family));
}

std::string verdict_colour(std::string_view verdict) {
  return std::string(harness::verdict_colour(verdict));
}

std::string_view verdict_meaning(std::string_view verdict) noexcept {
  return harness::verdict_meaning(verdict);
}

namespace {

case_check timeout_rate_check(const case_figures& c, double limit) {
  return {"max_timeout_rate", timeout_rate_held(c, limit),
          fmt::format("{} timeouts in {} requests ({}), limit {}", c.timeouts, c.requests,
                      report_text::percent(c.timeout_rate()), report_text::percent(limit)),
          {}};
}

case_check p99_check(const case_figures& c, double limit_ms) {
  return {"p99_ms", p99_held(c, limit_ms),
          fmt::format("p99 {} ms, limit {} ms", report_text::significant(c.p99_ms),
                      report_text::significant(limit_ms)),
          {}};
}

case_check forbid_check(const case_figures& c, const std::vector<std::string>& patterns) {
  case_check check{"forbid_verdicts", true, {}, {}};
  std::vector<std::string> found;
  for (const auto& [verdict, n] : c.verdicts) {
    const auto matching = harness::forbidding_patterns(patterns, verdict);
    if (n == 0 || matching.empty()) continue;
    check.verdicts.push_back(verdict);
    found.push_back(fmt::format("{} x{} (forbidden by {})", verdict, n, fmt::join(matching, ", ")));
  }
  check.held = found.empty();
  check.detail = found.empty() ? "no forbidden verdict" : fmt::format("{}", fmt::join(found, "; "));
  return check;
}

}  // namespace

std::vector<case_check> check_case(const json& assert_section, const case_row& c) {
  const assert_config a = assertions_of(assert_section);
  const case_figures figures = figures_of_case(c.record);
  std::vector<case_check> checks;
  if (a.max_timeout_rate) checks.push_back(timeout_rate_check(figures, *a.max_timeout_rate));
  if (a.p99_ms) checks.push_back(p99_check(figures, *a.p99_ms));
  if (!a.forbid_verdicts.empty()) checks.push_back(forbid_check(figures, a.forbid_verdicts));
  return checks;
}

std::vector<std::string> forbidding_patterns(const json& assert_section, std::string_view verdict) {
  return harness::forbidding_patterns(assertions_of(assert_section).forbid_verdicts, verdict);
}

std::string failure_family(const case_row& c) {
  std::set<std::string, std::less<>> families;
  for (const auto& [verdict, n] : c.verdicts) {
    if (n > 0) families.emplace(family_of(verdict));
  }
  if (families.empty()) return "unknown";
  if (families.size() > 1) return "mixed";
  return *families.begin();
}

std::optional<std::string> scaling_axis(const document& doc) {
  const auto numeric = [&](const std::string& key) {
    std::set<double> values;
    for (const auto& c : doc.cases) {
      const json* v = find(c.params, key);
      if (!v) continue;
      if (!v->is_number()) return false;
      values.insert(v->get<double>());
    }
    return values.size() >= 2;
  };
  for (const char* preferred : {"load.concurrency", "pool.size"}) {
    const auto it = std::find(doc.swept_keys.begin(), doc.swept_keys.end(), preferred);
    if (it != doc.swept_keys.end() && numeric(*it)) return *it;
  }
  for (const auto& key : doc.swept_keys) {
    if (numeric(key)) return key;
  }
  return std::nullopt;
}

std::string group_label(const json& group, const std::vector<std::string>& order) {
  if (!group.is_object() || group.empty()) return "all cases";
  std::vector<std::string> parts;
  for (const auto& key : order) {
    if (const json* value = find(group, key)) parts.push_back(fmt::format("{}={}", key, report_text::plain(*value)));
  }
  for (const auto& [key, value] : group.items()) {
    if (std::find(order.begin(), order.end(), key) == order.end()) {
      parts.push_back(fmt::format("{}={}", key, report_text::plain(value)));
    }
  }
  return fmt::format("{}", fmt::join(parts, ", "));
}

std::vector<series> series_along(const document& doc, const std::string& axis) {
  std::vector<series> out;
  for (const auto& c : doc.cases) {
    const json* x = find(c.params, axis);
    if (c.error || !x || !x->is_number()) continue;
    json group = json::object();
    for (const auto& key : doc.swept_keys) {
      if (key == axis) continue;
      if (const json* v = find(c.params, key)) group[key] = *v;
    }
    auto s = std::find_if(out.begin(), out.end(), [&](const series& e) { return e.group == group; });
    if (s == out.end()) {
      out.push_back({group, {}});
      s = std::prev(out.end());
    }
    const double value = x->get<double>();
    auto p = std::find_if(s->points.begin(), s->points.end(),
                          [&](const series_point& e) { return e.x == value; });
    if (p == s->points.end()) {
      s->points.push_back({value, {}});
      p = std::prev(s->points.end());
    }
    p->cases.push_back(&c);
  }
  for (auto& s : out) {
    std::sort(s.points.begin(), s.points.end(),
              [](const series_point& a, const series_point& b) { return a.x < b.x; });
  }
  return out;
}

}  // namespace procpool::harness::report_model
