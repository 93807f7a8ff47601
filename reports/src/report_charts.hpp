// The charts of report.html. Each function returns an HTML fragment: a <figure> holding one
// inline <svg class="chart" data-chart="NAME"> with axis labels, units and a legend, and a
// caption; or, when the chart does not apply to these results (no sweep, a single swept key,
// nothing failed), a <p class="note" data-chart-note="NAME"> saying why. NAME is throughput,
// latency, timeouts, lifecycle or verdicts.
//
//   const auto doc = report_model::read_document(results);
//   html += report_charts::throughput(results, doc);
#pragma once

#include <string>
#include <string_view>

#include <nlohmann/json.hpp>

#include "report_model.hpp"

namespace procpool::harness::report_charts {

// Throughput against concurrency (or pool size, or another numeric swept key), one series per
// combination of the other swept keys, with the fitted USL curve from the analyses.
std::string throughput(const nlohmann::json& results, const report_model::document& doc);

// p50, p90 and p99 latency against the same key.
std::string latency(const report_model::document& doc);

// Timeout rate over two swept keys (start-up latency x concurrency when both are swept),
// each cell coloured by its dominant verdict.
std::string timeout_heatmap(const report_model::document& doc);

// Requests per verdict over the run, coloured by verdict family.
std::string verdicts(const report_model::document& doc);

// The case whose lifecycle is drawn: `requested` when given (nullptr when no case has that
// id), else the case with the most timeouts, else the first case.
const report_model::case_row* timeline_case(const report_model::document& doc, std::string_view requested);

// A Gantt chart of every worker of case `c` (capped), state by state, with the case's recorded
// requests drawn on the worker that served them and timeouts marked. Defined in report_gantt.cpp.
std::string lifecycle(const report_model::case_row& c, std::string_view why_this_case);

// ---- Shared by the chart files ----

std::string figure(std::string_view name, const std::string& svg, std::string_view caption);
std::string note(std::string_view name, std::string_view text);

}  // namespace procpool::harness::report_charts
