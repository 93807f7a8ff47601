#include "cli/report_command.hpp"

#include <algorithm>
#include <filesystem>
#include <memory>
#include <string>

#include <fmt/format.h>

#include "cli/exit_codes.hpp"
#include "report_model.hpp"
#include "reports.hpp"
#include "results/files.hpp"
#include "results/results.hpp"

namespace procpool::harness {
namespace {

struct report_command_options {
  std::string results;
  std::string out;
  report_options render;
};

int report(const report_command_options& opts) {
  auto doc = read_results(opts.results);
  if (!doc) {
    fmt::print(stderr, "procpool report: {}\n", doc.error().message);
    return exit_usage;
  }
  if (!opts.render.timeline_case.empty()) {
    const auto view = report_model::read_document(*doc);
    const bool known = std::any_of(view.cases.begin(), view.cases.end(),
                                   [&](const auto& c) { return c.id == opts.render.timeline_case; });
    if (!known) {
      fmt::print(stderr, "procpool report: --timeline-case: no case {} in {} ({} cases{})\n",
                 opts.render.timeline_case, opts.results, view.cases.size(),
                 view.cases.empty() ? "" : ", for example " + view.cases.front().id);
      return exit_usage;
    }
  }
  std::filesystem::path out =
      opts.out.empty() ? std::filesystem::path(opts.results).parent_path() : std::filesystem::path(opts.out);
  if (out.empty()) out = ".";
  if (auto ready = prepare_output_dir(out); !ready) {
    fmt::print(stderr, "procpool report: {}\n", ready.error().message);
    return exit_internal;
  }
  auto written = write_reports(out, *doc, opts.render);
  if (!written) {
    fmt::print(stderr, "procpool report: {}\n", written.error().message);
    return exit_internal;
  }
  for (const auto& path : *written) fmt::print("{}\n", path.string());
  return exit_ok;
}

}  // namespace

void add_report_command(CLI::App& app, int& exit_code) {
  auto opts = std::make_shared<report_command_options>();
  auto* cmd = app.add_subcommand(
      "report", "Render report.md, report.html, junit.xml and cases.csv again from a results.json "
                "alone. Exit 0 when written, 2 when RESULTS is missing or not a results document, 3 "
                "when the files cannot be written.");
  cmd->add_option("results", opts->results, "the results.json to render")->required();
  cmd->add_option("--out", opts->out, "output directory (default: the directory of RESULTS)");
  cmd->add_option("--timeline-case", opts->render.timeline_case,
                  "the case whose worker lifecycle report.html draws (default: the case with the most "
                  "timeouts, else the first)");
  cmd->add_flag("--environmental-as-skipped", opts->render.environmental_as_skipped,
                "junit.xml: report a case whose failures are all environmental as skipped, not failed");
  cmd->callback([opts, &exit_code] { exit_code = report(*opts); });
}

}  // namespace procpool::harness
