// The human- and CI-facing renderings of a results document (results.hpp): report.md,
// report.html (self-contained, inline SVG charts), junit.xml, cases.csv, summary.md and the
// benchmark-tracking files. Each is a pure
// function of the document, so `procpool report` re-renders exactly what `procpool run` wrote.
//
//   auto written = write_reports("reports/out/quickstart", results, {});
//   if (!written) fmt::print(stderr, "{}\n", written.error().message);
#pragma once

#include <filesystem>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "procpool/result.hpp"

namespace procpool::harness {

struct report_options {
  // junit.xml: report a case whose failures are all environmental as skipped, not failed.
  bool environmental_as_skipped = false;
  // report.html: the case whose worker lifecycle is drawn; empty picks the case with the most
  // timeouts (the first case when none timed out).
  std::string timeline_case;
};

std::string render_markdown(const nlohmann::json& results);
std::string render_html(const nlohmann::json& results, const report_options& options);
std::string render_junit(const nlohmann::json& results, const report_options& options);
std::string render_csv(const nlohmann::json& results);
// summary.md: the headline, the conclusion, the assertions and the worst cases, sized for a
// pull-request comment or a CI job summary.
std::string render_summary(const nlohmann::json& results);
// benchmark-bigger.json (throughput) and benchmark-smaller.json (p50, p99, timeout rate): the
// "customBiggerIsBetter" / "customSmallerIsBetter" input of the GitHub benchmark-tracking
// action, one point per case and figure.
std::string render_benchmark_bigger(const nlohmann::json& results);
std::string render_benchmark_smaller(const nlohmann::json& results);

// Writes the report files (report_file_names) into `dir` (creating it). Returns their paths.
result<std::vector<std::filesystem::path>> write_reports(const std::filesystem::path& dir,
                                                         const nlohmann::json& results,
                                                         const report_options& options);

// What run, merge and triage leave behind: results.json, then the reports, in `dir`.
// Returns the path of results.json.
result<std::filesystem::path> write_results_and_reports(const std::filesystem::path& dir,
                                                        const nlohmann::json& results,
                                                        const report_options& options);

}  // namespace procpool::harness
