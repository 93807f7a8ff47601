// The outputs CI systems read without help: summary.md, short enough for a pull-request
// comment or a job summary whatever the run's size, and the benchmark files in the format of
// the common GitHub benchmark-tracking action ("customBiggerIsBetter" and
// "customSmallerIsBetter": [{name, unit, value, extra}]), one point per case and figure.
#include <algorithm>

#include <fmt/format.h>

#include "report_model.hpp"
#include "report_text.hpp"
#include "reports.hpp"
#include "results/assertions.hpp"

namespace procpool::harness {
namespace {

using json = nlohmann::json;
using report_model::case_row;

// A pull-request comment holds 65,536 characters; this many case rows stay far below it
// whatever the ids, and more belong in report.md anyway.
constexpr std::size_t summary_case_rows = 10;

std::string headline(const report_model::document& doc) {
  return fmt::format("### procpool: {}: {} cases, {} requests, {} timeouts{}\n\n", report_text::markdown_text(doc.name),
                     doc.cases.size(), doc.requests, doc.timeouts, doc.partial ? " (partial)" : "");
}

std::string assertion_lines(const json& results) {
  const json* list = report_model::find(results, "assertions");
  if (!list || !list->is_array() || list->empty()) return {};
  std::string out;
  for (const auto& a : *list) {
    const bool held = a.value("held", json(false)) == json(true);
    out += fmt::format("- {} `{}`: {}\n", held ? "held" : "**FAILED**", report_text::markdown_text(report_model::text(a, "assertion")),
                       report_text::markdown_text(report_model::text(a, "detail")));
  }
  return out + "\n";
}

// The cases most worth a look: most timeouts, then the slowest p99.
std::vector<const case_row*> worst_cases(const report_model::document& doc) {
  std::vector<const case_row*> rows;
  for (const auto& c : doc.cases) rows.push_back(&c);
  std::stable_sort(rows.begin(), rows.end(), [](const case_row* a, const case_row* b) {
    if (a->timeouts != b->timeouts) return a->timeouts > b->timeouts;
    return a->latency.p99 > b->latency.p99;
  });
  return rows;
}

std::string case_table(const report_model::document& doc) {
  if (doc.cases.empty()) return {};
  const auto rows = worst_cases(doc);
  std::string out = "| case | req/s | p99 ms | timeouts | top verdict |\n|---|---:|---:|---:|---|\n";
  for (std::size_t i = 0; i < rows.size() && i < summary_case_rows; ++i) {
    const case_row& c = *rows[i];
    out += fmt::format("| {} | {:.0f} | {} | {} | {} |\n", report_text::markdown_code(c.id), c.throughput_rps,
                       report_text::ms_from_us(c.latency.p99), c.timeouts,
                       c.error ? "could not start" : c.top_verdict.empty() ? "" : report_text::markdown_code(c.top_verdict));
  }
  if (rows.size() > summary_case_rows) {
    out += fmt::format("\nThe {} cases with the most timeouts, then the slowest p99, of {}: every case is in "
                       "report.md.\n",
                       summary_case_rows, rows.size());
  }
  return out;
}

// One benchmark point; `extra` says where it came from, as the action shows it on hover.
json point(const case_row& c, std::string_view figure, std::string_view unit, double value) {
  return {{"name", fmt::format("{} {}", report_text::valid_utf8(c.id), figure)},
          {"unit", unit},
          {"value", value},
          {"extra", fmt::format("{} requests, {} timeouts", c.requests, c.timeouts)}};
}

bool measured(const case_row& c) { return !c.error && !c.interrupted && c.requests > 0; }

}  // namespace

std::string render_summary(const json& results) {
  const auto doc = report_model::read_document(results);
  std::string out = headline(doc);
  out += report_text::markdown_text(doc.conclusion) + "\n\n";
  for (const auto& warning : doc.warnings) out += "**Warning:** " + report_text::markdown_text(warning) + "\n\n";
  out += assertion_lines(results);
  out += case_table(doc);
  return out;
}

std::string render_benchmark_bigger(const json& results) {
  json out = json::array();
  for (const auto& c : report_model::read_document(results).cases) {
    if (measured(c)) out.push_back(point(c, "throughput", "req/s", c.throughput_rps));
  }
  return out.dump(1, ' ', false, json::error_handler_t::replace) + "\n";
}

std::string render_benchmark_smaller(const json& results) {
  json out = json::array();
  for (const auto& c : report_model::read_document(results).cases) {
    if (!measured(c)) continue;
    out.push_back(point(c, "p50", "us", c.latency.p50));
    out.push_back(point(c, "p99", "us", c.latency.p99));
    out.push_back(point(c, "timeout rate", "%", 100 * c.timeout_rate));
  }
  return out.dump(1, ' ', false, json::error_handler_t::replace) + "\n";
}

}  // namespace procpool::harness
