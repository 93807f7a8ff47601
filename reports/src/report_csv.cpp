// cases.csv: one row per case, for spreadsheets and scripts. Columns: id, repetition, each
// swept key, throughput and latency figures, requests, ready_ms and the workers' mean USS and
// PSS (empty when the case has none), one column per outcome and per verdict
// seen in any case, timeout rate, top verdict and the subject's error. RFC 4180: CRLF line
// ends, fields quoted when they need it.
#include <optional>
#include <set>

#include <fmt/format.h>

#include "report_model.hpp"
#include "report_text.hpp"
#include "reports.hpp"

namespace procpool::harness {
namespace {

using report_text::csv_field;

std::string csv_number(double value) { return fmt::format("{}", value); }

// An absent figure is an empty field: a spreadsheet reads it as blank, not as 0.
std::string csv_number(const std::optional<double>& value) {
  return value ? csv_number(*value) : std::string();
}

void add_row(std::string& out, const std::vector<std::string>& fields) {
  for (std::size_t i = 0; i < fields.size(); ++i) {
    if (i) out += ',';
    out += fields[i];
  }
  out += "\r\n";
}

}  // namespace

std::string render_csv(const nlohmann::json& results) {
  const auto doc = report_model::read_document(results);
  std::set<std::string> outcomes, verdicts;
  for (const auto& c : doc.cases) {
    for (const auto& [name, n] : c.outcomes) outcomes.insert(name);
    for (const auto& [name, n] : c.verdicts) verdicts.insert(name);
  }
  // ok first: it is the column every reader looks for.
  std::vector<std::string> outcome_columns;
  if (outcomes.erase("ok")) outcome_columns.push_back("ok");
  outcome_columns.insert(outcome_columns.end(), outcomes.begin(), outcomes.end());

  std::vector<std::string> header = {"id", "repetition"};
  for (const auto& key : doc.swept_keys) header.push_back(csv_field(key));
  for (const char* name : {"throughput_rps", "latency_p50_us", "latency_p90_us", "latency_p99_us",
                           "latency_p999_us", "latency_max_us", "latency_mean_us", "requests",
                           "ready_ms", "uss_kib_mean", "pss_kib_mean"}) {
    header.emplace_back(name);
  }
  for (const auto& o : outcome_columns) header.push_back(csv_field("outcome." + o));
  header.emplace_back("timeout_rate");
  header.emplace_back("top_verdict");
  for (const auto& v : verdicts) header.push_back(csv_field("verdict." + v));
  header.emplace_back("error");

  std::string out;
  add_row(out, header);
  for (const auto& c : doc.cases) {
    std::vector<std::string> row = {csv_field(c.id), fmt::format("{}", c.repetition)};
    for (const auto& key : doc.swept_keys) {
      const auto* value = report_model::find(c.params, key);
      row.push_back(value ? csv_field(report_text::plain(*value)) : "");
    }
    const auto& l = c.latency;
    for (const double figure : {c.throughput_rps, l.p50, l.p90, l.p99, l.p999, l.max, l.mean}) {
      row.push_back(csv_number(figure));
    }
    row.push_back(fmt::format("{}", c.requests));
    const auto& memory = c.record.memory;
    row.push_back(csv_number(c.record.ready_ms));
    row.push_back(csv_number(memory ? std::optional(memory->uss_kib.mean) : std::nullopt));
    row.push_back(csv_number(memory ? std::optional(memory->pss_kib.mean) : std::nullopt));
    for (const auto& o : outcome_columns) {
      const auto it = c.outcomes.find(o);
      row.push_back(fmt::format("{}", it == c.outcomes.end() ? 0 : it->second));
    }
    row.push_back(csv_number(c.timeout_rate));
    row.push_back(csv_field(c.top_verdict));
    for (const auto& v : verdicts) {
      const auto it = c.verdicts.find(v);
      row.push_back(fmt::format("{}", it == c.verdicts.end() ? 0 : it->second));
    }
    row.push_back(csv_field(c.error.value_or("")));
    add_row(out, row);
  }
  return out;
}

}  // namespace procpool::harness
