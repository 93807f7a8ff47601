#include "report_sections.hpp"

#include <algorithm>
#include <limits>

#include <fmt/format.h>

#include "report_text.hpp"
#include "results/run_records.hpp"
#include "run/record_fields.hpp"

namespace procpool::harness::report_sections {
namespace {

using json = nlohmann::json;
using report_model::find;
using report_model::number;
using report_model::whole;
using report_model::text;
using report_text::significant;

constexpr std::size_t max_findings = 40;
constexpr std::size_t max_failing_cases = 20;

span verdict_span(const std::string& verdict) {
  span s = code(verdict);
  s.swatch = report_model::verdict_colour(verdict);
  return s;
}

std::string plural(std::uint64_t n, std::string_view one, std::string_view many) {
  return fmt::format("{} {}", n, n == 1 ? one : many);
}

section conclusion(const json& results, const report_model::document& doc) {
  section s{"conclusion", "Conclusion", {}};
  s.blocks.push_back(paragraph({plain(doc.conclusion)}));
  if (doc.partial) {
    s.blocks.push_back(paragraph({strong("A partial run:"),
                                  plain(" some cases are missing or were interrupted; every figure here covers "
                                        "the cases present.")}));
  }
  for (const auto& warning : doc.warnings) s.blocks.push_back(paragraph({strong("Warning:"), plain(" " + warning)}));

  std::vector<std::pair<std::string, std::uint64_t>> ranked(doc.verdicts.begin(), doc.verdicts.end());
  std::stable_sort(ranked.begin(), ranked.end(), [](const auto& a, const auto& b) { return a.second > b.second; });
  block list = bullets({});
  for (const auto& [verdict, n] : ranked) {
    if (n == 0) continue;
    const bool sweep_level = std::any_of(doc.sweep_verdicts.begin(), doc.sweep_verdicts.end(),
                                         [&](const auto& v) { return v.verdict == verdict; });
    const auto meaning = report_model::verdict_meaning(verdict);
    list.lines.push_back({verdict_span(verdict),
                          plain(fmt::format(": {}{}{}", sweep_level ? plural(n, "sweep finding", "sweep findings")
                                                                    : plural(n, "request", "requests"),
                                            meaning.empty() ? "" : ", ", meaning))});
  }
  if (doc.unexplained > 0) {
    list.lines.push_back({plain(fmt::format("{} without a verdict", plural(doc.unexplained, "failed request", "failed requests")))});
  }
  if (!list.lines.empty()) {
    s.blocks.push_back(paragraph({plain("Verdicts, most frequent first:")}));
    s.blocks.push_back(std::move(list));
  }

  std::vector<std::string> families;
  run_summary summary;
  if (const json* recorded = find(results, "summary")) read_value(*recorded, summary);
  for (const auto& [family, n] : summary.families) {
    if (n > 0) families.push_back(fmt::format("{} {}", family, n));
  }
  if (!families.empty()) {
    s.blocks.push_back(paragraph({plain(fmt::format("By verdict family: {}.", fmt::join(families, ", ")))}));
  }
  return s;
}

section assertions(const json& results, const report_model::document& doc) {
  section s{"assertions", "Assertions", {}};
  const json* checks = find(results, "assertions");
  if (!checks || !checks->is_array() || checks->empty()) {
    s.blocks.push_back(paragraph({plain("The scenario has no [assert] table, so nothing was checked.")}));
    return s;
  }
  std::size_t failed = 0;
  table t{{"assertion", "limit", "value", "result", "detail"}, {false, true, true, false, false}, {}};
  for (const auto& a : *checks) {
    const json* held = find(a, "held");
    const bool ok = held && held->is_boolean() && held->get<bool>();
    failed += !ok;
    const json* limit = find(a, "limit");
    const json* value = find(a, "value");
    const auto shown = [](const json* v) {
      if (!v) return std::string{};
      if (v->is_number()) return significant(v->get<double>());
      if (v->is_array()) {
        std::vector<std::string> parts;
        for (const auto& item : *v) parts.push_back(report_text::plain(item));
        return parts.empty() ? std::string("none") : fmt::format("{}", fmt::join(parts, ", "));
      }
      return report_text::plain(*v);
    };
    t.rows.push_back({{code(text(a, "assertion"))}, {plain(shown(limit))}, {plain(shown(value))},
                      {ok ? plain("held") : strong("FAILED")}, {plain(text(a, "detail"))}});
  }
  s.blocks.push_back(paragraph({failed == 0 ? strong(checks->size() == 1 ? std::string("The assertion held.")
                                                                        : fmt::format("All {} assertions held.", checks->size()))
                                            : strong(checks->size() == 1 ? std::string("The assertion failed.")
                                                                  : fmt::format("{} of {} assertions failed.", failed,
                                                                                checks->size()))}));
  s.blocks.push_back(table_block(std::move(t)));

  // The same assertions case by case, as junit.xml reports them.
  const json& assert_section = report_model::object_at(report_model::object_at(results, "scenario"), "assert");
  block failing = bullets({});
  std::size_t count = 0;
  for (const auto& c : doc.cases) {
    std::vector<std::string> details;
    for (const auto& check : report_model::check_case(assert_section, c)) {
      if (!check.held) details.push_back(fmt::format("{}: {}", check.assertion, check.detail));
    }
    if (details.empty()) continue;
    if (++count <= max_failing_cases) {
      failing.lines.push_back({code(c.id), plain(fmt::format(" ({} failures): {}", report_model::failure_family(c),
                                                             fmt::join(details, "; ")))});
    }
  }
  if (count > 0) {
    s.blocks.push_back(paragraph({plain(fmt::format("Cases that fail an assertion on their own{}:",
                                                    count > max_failing_cases
                                                        ? fmt::format(" (the first {} of {})", max_failing_cases, count)
                                                        : ""))}));
    s.blocks.push_back(std::move(failing));
  }
  return s;
}

std::string evidence_text(const json& evidence) {
  if (evidence.is_string()) return evidence.get<std::string>();
  if (!evidence.is_object()) return {};
  std::vector<std::string> parts;
  for (const auto& [name, value] : evidence.items()) {
    parts.push_back(fmt::format("{}={}", name, value.is_number_float() ? significant(value.get<double>())
                                                                         : report_text::plain(value)));
  }
  return fmt::format("{}", fmt::join(parts, ", "));
}

std::optional<section> findings(const report_model::document& doc) {
  struct row {
    std::string where;
    const harness::finding_record* finding;
    std::uint64_t count;
  };
  std::vector<row> rows;
  for (const auto& c : doc.cases) {
    if (!c.record.findings) continue;
    for (const auto& f : *c.record.findings) rows.push_back({c.id, &f, f.count});
  }
  if (rows.empty() && doc.sweep_verdicts.empty() && doc.failed == 0) return std::nullopt;
  section s{"findings", "Findings", {}};
  table t{{"case", "verdict", "count", "summary", "evidence"}, {false, false, true, false, false}, {}};
  for (const auto& v : doc.sweep_verdicts) {
    t.rows.push_back({{plain("(sweep)")}, {verdict_span(v.verdict)}, {plain(fmt::format("{}", v.count))},
                      {plain(std::string(report_model::verdict_meaning(v.verdict)))}, {plain(v.evidence)}});
  }
  std::stable_sort(rows.begin(), rows.end(), [](const row& a, const row& b) { return a.count > b.count; });
  for (std::size_t i = 0; i < rows.size() && i < max_findings; ++i) {
    const harness::finding_record& f = *rows[i].finding;
    std::string summary = f.summary;
    if (!f.rule.empty()) summary += fmt::format(" (rule: {})", f.rule);
    t.rows.push_back({{code(rows[i].where)}, {verdict_span(f.verdict.empty() ? "?" : f.verdict)},
                      {plain(fmt::format("{}", rows[i].count))}, {plain(summary)},
                      {plain(evidence_text(f.evidence))}});
  }
  // What the diagnosis could not decide is said, with what it lacked, never guessed at.
  bool unjudged = false;
  for (const auto& c : doc.cases) {
    if (!c.record.unjudged) continue;
    for (const auto& u : *c.record.unjudged) {
      unjudged = true;
      s.blocks.push_back(paragraph({code(c.id),
                                    plain(fmt::format(": {} not judged, because {}.",
                                                      plural(u.count, "failed request", "failed requests"),
                                                      u.missing))}));
    }
  }
  if (t.rows.empty()) {
    if (!unjudged) {
      s.blocks.push_back(paragraph({plain("No findings: the results carry no diagnosis of the failed requests.")}));
    }
    return s;
  }
  if (rows.size() > max_findings) {
    s.blocks.push_back(paragraph({plain(fmt::format("The {} largest of {} findings; every one is in results.json.",
                                                    max_findings, rows.size()))}));
  }
  s.blocks.push_back(table_block(std::move(t)));
  return s;
}

std::optional<section> analyses(const json& results, const report_model::document& doc) {
  const run_analyses all = analyses_of(results);
  const bool has_usl = !all.usl.empty();
  const bool has_axes = !all.axes.empty();
  if (!has_usl && !has_axes) return std::nullopt;
  section s{"analyses", "Sweep analyses", {}};
  if (has_usl) {
    s.blocks.push_back(paragraph({plain("Throughput fitted to the Universal Scalability Law, "),
                                  code("X(N) = λN / (1 + σ(N-1) + κN(N-1))"),
                                  plain(": σ is contention, κ coherency; the peak is where adding more stops helping.")}));
    table t{{"axis", "held fixed", "λ (req/s)", "σ", "κ", "R²", "peak N", "peak req/s", "verdict"},
            {false, false, true, true, true, true, true, true, false}, {}};
    for (const auto& fit : all.usl) {
      const std::string verdict = fit.verdict.value_or("");
      t.rows.push_back({{code(fit.axis)},
                        {plain(report_model::group_label(fit.group, doc.swept_keys))},
                        {plain(significant(fit.lambda))},
                        {plain(significant(fit.sigma))},
                        {plain(significant(fit.kappa))},
                        {plain(significant(fit.r_squared))},
                        {plain(fit.peak_n ? significant(*fit.peak_n) : "unbounded")},
                        {plain(significant(fit.peak_throughput.value_or(0)))},
                        {verdict.empty() ? plain("none") : verdict_span(verdict)}});
    }
    s.blocks.push_back(table_block(std::move(t)));
  }
  if (has_axes) {
    s.blocks.push_back(paragraph({plain("Whether timeouts depend on each swept key (chi-square test of "
                                        "independence over its values):")}));
    table t{{"swept key", "kind", "timeout rate by value", "p-value", "timeouts depend on it"},
            {false, false, false, true, false}, {}};
    for (const auto& axis : all.axes) {
      std::vector<std::string> rates;
      for (const auto& r : axis.rows) {
        rates.push_back(fmt::format("{}: {}", report_text::plain(r.value),
                                    report_text::percent(r.rate)));
      }
      t.rows.push_back({{code(axis.key)}, {plain(axis.kind)},
                        {plain(fmt::format("{}", fmt::join(rates, ", ")))},
                        {plain(significant(axis.p_value))},
                        {axis.depends ? strong("yes") : plain("no")}});
    }
    s.blocks.push_back(table_block(std::move(t)));
  }
  return s;
}

// A case's figures in the cases table, in the order of its header.
std::vector<line> figure_cells(const report_model::case_row& c, bool ready, bool memory) {
  std::vector<line> cells = {{plain(significant(c.throughput_rps))},
                             {plain(report_text::ms_from_us(c.latency.p50))},
                             {plain(report_text::ms_from_us(c.latency.p99))},
                             {plain(report_text::percent(c.timeout_rate))},
                             {plain(fmt::format("{}", c.failed - c.timeouts))}};
  if (ready) cells.push_back({plain(c.record.ready_ms ? significant(*c.record.ready_ms) : "-")});
  if (memory) {
    const auto& m = c.record.memory;
    cells.push_back({plain(m ? significant(m->uss_kib.mean / 1024) : "-")});
    cells.push_back({plain(m ? significant(m->pss_kib.mean / 1024) : "-")});
  }
  return cells;
}

section cases(const report_model::document& doc) {
  section s{"cases", "Cases", {}};
  if (doc.cases.empty()) {
    s.blocks.push_back(paragraph({plain("The results hold no cases.")}));
    return s;
  }
  const bool repeated = std::any_of(doc.cases.begin(), doc.cases.end(),
                                    [](const auto& c) { return c.repetition > 0; });
  table t;
  t.header.push_back("#");
  t.numeric.push_back(true);
  for (const auto& key : doc.swept_keys) {
    t.header.push_back(key);
    t.numeric.push_back(false);
  }
  if (repeated) {
    t.header.push_back("rep");
    t.numeric.push_back(true);
  }
  // Start-up and memory columns only when some case has the figure: older documents, and
  // subjects whose workers cannot be read, keep the table as it was.
  const bool ready = std::any_of(doc.cases.begin(), doc.cases.end(),
                                 [](const auto& c) { return c.record.ready_ms.has_value(); });
  const bool memory = std::any_of(doc.cases.begin(), doc.cases.end(),
                                  [](const auto& c) { return c.record.memory.has_value(); });
  std::vector<const char*> figures = {"req/s", "p50 ms", "p99 ms", "timeout rate", "other failures"};
  if (ready) figures.push_back("ready ms");
  if (memory) figures.insert(figures.end(), {"worker USS MiB", "worker PSS MiB"});
  for (const char* name : figures) {
    t.header.emplace_back(name);
    t.numeric.push_back(true);
  }
  t.header.emplace_back("top verdict");
  t.numeric.push_back(false);
  for (std::size_t i = 0; i < doc.cases.size(); ++i) {
    const auto& c = doc.cases[i];
    std::vector<line> row = {{plain(fmt::format("{}", i + 1))}};
    for (const auto& key : doc.swept_keys) {
      const json* v = find(c.params, key);
      row.push_back({plain(v ? report_text::plain(*v) : "")});
    }
    if (repeated) row.push_back({plain(fmt::format("{}", c.repetition))});
    if (c.error) {
      for (std::size_t k = 0; k < figures.size(); ++k) row.push_back({plain("-")});
      row.push_back({strong("error"), plain(": " + *c.error)});
    } else {
      for (auto& cell : figure_cells(c, ready, memory)) row.push_back(std::move(cell));
      if (!c.top_verdict.empty()) {
        row.push_back({verdict_span(c.top_verdict)});
      } else {
        row.push_back({plain(c.failed > 0 ? "(no verdict)" : "-")});
      }
    }
    t.rows.push_back(std::move(row));
  }
  s.blocks.push_back(paragraph({plain(fmt::format(
      "{}, latency measured from submission (closed loop) or the intended start (open loop); the "
      "timeout rate counts checkout and request timeouts.{}{}",
      plural(doc.cases.size(), "case", "cases"),
      ready ? " Ready ms: from the subject's creation until every configured worker was first "
              "ready (- when they never all were)."
            : "",
      memory ? " Worker USS and PSS: the mean over the live workers just before the stop." : ""))}));
  s.blocks.push_back(table_block(std::move(t)));
  return s;
}

section environment(const json& results, const report_model::document& doc) {
  section s{"environment", "Environment", {}};
  const json& machine = report_model::object_at(results, "environment");
  table m{{"machine", "value"}, {false, false}, {}};
  for (const auto& [key, value] : machine.items()) m.rows.push_back({{plain(key)}, {plain(report_text::plain(value))}});
  if (!m.rows.empty()) s.blocks.push_back(table_block(std::move(m)));

  // Per-case readings as ranges: a wide range says the machine changed under the run.
  struct reading {
    const char* label;
    std::vector<const char*> path;
  };
  const reading readings[] = {
      {"cores available", {"cores"}},
      {"load average (1 min)", {"load_average_1m"}},
      {"CPU pressure over the case (some, %)", {"psi", "cpu_some_pct"}},
      {"memory pressure over the case (some, %)", {"psi", "memory_some_pct"}},
      {"steal (ticks)", {"steal_ticks"}},
      {"CPU hogs", {"cpu_hogs"}},
      {"worker CPU / (wall x pool size)", {"workers_cpu_per_wall"}},
  };
  table r{{"during the cases", "min", "max"}, {false, true, true}, {}};
  for (const auto& rd : readings) {
    double lo = std::numeric_limits<double>::infinity(), hi = -lo;
    for (const auto& c : doc.cases) {
      const json* v = &c.record.environment;
      for (const char* part : rd.path) v = v ? find(*v, part) : nullptr;
      if (!v || !v->is_number()) continue;
      lo = std::min(lo, v->get<double>());
      hi = std::max(hi, v->get<double>());
    }
    if (lo <= hi) r.rows.push_back({{plain(rd.label)}, {plain(significant(lo))}, {plain(significant(hi))}});
  }
  if (!r.rows.empty()) s.blocks.push_back(table_block(std::move(r)));

  const json& scenario = report_model::object_at(results, "scenario");
  const char* const settings[] = {
      "subject.kind", "worker.kind", "worker.startup_ms", "worker.init_ms", "worker.service.dist",
      "worker.service.ms", "pool.size", "pool.prewarm", "pool.max_concurrent_starts",
      "pool.checkout_timeout_ms", "pool.request_timeout_ms", "load.model", "load.concurrency",
      "load.requests", "load.duration_ms", "load.rate", "load.start", "environment.cpu_hogs",
      "environment.cpus", "repetitions", "seed"};
  table t{{"setting", "value"}, {false, false}, {}};
  for (const std::string key : settings) {
    const json* v = &scenario;
    for (std::size_t from = 0; v && from <= key.size();) {
      const auto dot = std::min(key.find('.', from), key.size());
      v = find(*v, key.substr(from, dot - from));
      from = dot + 1;
    }
    if (!v) continue;
    const bool swept = std::find(doc.swept_keys.begin(), doc.swept_keys.end(), key) != doc.swept_keys.end();
    t.rows.push_back({{code(key)}, {plain(swept ? "swept (see the cases)" : report_text::plain(*v))}});
  }
  if (!t.rows.empty()) s.blocks.push_back(table_block(std::move(t)));
  return s;
}

section reproduce(const json& results) {
  section s{"reproduce", "Reproduce", {}};
  const json& run = report_model::object_at(results, "run");
  const std::string command = text(run, "command");
  if (command.empty()) {
    s.blocks.push_back(paragraph({plain("The results do not record the command that produced them.")}));
  } else {
    s.blocks.push_back(paragraph({plain("Run it again with:")}));
    s.blocks.push_back(code_block(command));
  }
  const json& shard = report_model::object_at(run, "shard");
  if (number(shard, "count", 1) > 1) {
    s.blocks.push_back(paragraph({plain(fmt::format("This is shard {} of {}; the other shards and ",
                                                    number(shard, "index"), number(shard, "count"))),
                                  code("procpool merge"), plain(" complete the run.")}));
  }
  if (const json* merged = find(run, "merged_from"); merged && merged->is_number()) {
    s.blocks.push_back(paragraph({plain(fmt::format("These results merge {} shard runs: run each with ",
                                                    report_text::plain(*merged))),
                                  code("--shard I/N"), plain(", then "), code("procpool merge DIR... --out DIR"),
                                  plain(".")}));
  }
  s.blocks.push_back(paragraph({plain("Render these reports again from results.json alone:")}));
  s.blocks.push_back(code_block("procpool report results.json --out DIR"));
  return s;
}

}  // namespace

span plain(std::string text) { return {span::style::plain, std::move(text), {}}; }
span code(std::string text) { return {span::style::code, std::move(text), {}}; }
span strong(std::string text) { return {span::style::strong, std::move(text), {}}; }

block paragraph(line l) {
  block b;
  b.lines.push_back(std::move(l));
  return b;
}

block bullets(std::vector<line> items) {
  block b;
  b.type = block::kind::bullets;
  b.lines = std::move(items);
  return b;
}

block table_block(report_sections::table t) {
  block b;
  b.type = block::kind::table;
  b.table = std::move(t);
  return b;
}

block code_block(std::string shell) {
  block b;
  b.type = block::kind::code;
  b.code = std::move(shell);
  return b;
}

std::vector<section> sections_of(const json& results, const report_model::document& doc) {
  std::vector<section> out;
  out.push_back(conclusion(results, doc));
  out.push_back(assertions(results, doc));
  if (auto f = findings(doc)) out.push_back(std::move(*f));
  if (auto a = analyses(results, doc)) out.push_back(std::move(*a));
  out.push_back(cases(doc));
  out.push_back(environment(results, doc));
  out.push_back(reproduce(results));
  return out;
}

}  // namespace procpool::harness::report_sections
