// Writing the four report files, and `procpool report`. The renderers live in report_*.cpp.
#include "reports.hpp"

#include <algorithm>
#include <exception>
#include <fstream>
#include <memory>

#include <fmt/format.h>

#include "report_model.hpp"
#include "results.hpp"
#include "run_command.hpp"

namespace procpool::harness {
namespace {

error report_error(std::string message) { return error{errc::invalid_options, std::move(message)}; }

// Written beside and renamed into place, so a reader never sees half a report.
result<std::filesystem::path> write_file(const std::filesystem::path& path, const std::string& content) {
  auto temporary = path;
  temporary += ".tmp";
  {
    std::ofstream out(temporary, std::ios::binary);
    out << content;
    if (!out) return report_error(fmt::format("cannot write {}", temporary.string()));
  }
  std::error_code ec;
  std::filesystem::rename(temporary, path, ec);
  if (ec) return report_error(fmt::format("cannot write {}: {}", path.string(), ec.message()));
  return path;
}

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
    const auto view = report_model::view_of(*doc);
    const bool known = std::any_of(view.cases.begin(), view.cases.end(),
                                   [&](const auto& c) { return c.id == opts.render.timeline_case; });
    if (!known) {
      fmt::print(stderr, "procpool report: --timeline-case: no case {} in {} ({} cases{})\n",
                 opts.render.timeline_case, opts.results, view.cases.size(),
                 view.cases.empty() ? "" : ", for example " + view.cases.front().id);
      return exit_usage;
    }
  }
  const std::filesystem::path out =
      opts.out.empty() ? std::filesystem::path(opts.results).parent_path() : std::filesystem::path(opts.out);
  auto written = write_reports(out.empty() ? std::filesystem::path(".") : out, *doc, opts.render);
  if (!written) {
    fmt::print(stderr, "procpool report: {}\n", written.error().message);
    return exit_internal;
  }
  for (const auto& path : *written) fmt::print("{}\n", path.string());
  return exit_ok;
}

}  // namespace

result<std::vector<std::filesystem::path>> write_reports(const std::filesystem::path& dir,
                                                         const nlohmann::json& results,
                                                         const report_options& options) {
  std::error_code ec;
  std::filesystem::create_directories(dir, ec);
  if (ec) return report_error(fmt::format("cannot create {}: {}", dir.string(), ec.message()));
  std::vector<std::pair<const char*, std::string>> files;
  // The renderers read the document defensively; a throw here means a bug in them, reported
  // as an error value rather than taking the run's results down with it.
  try {
    files = {{"report.md", render_markdown(results)},
             {"report.html", render_html(results, options)},
             {"junit.xml", render_junit(results, options)},
             {"cases.csv", render_csv(results)}};
  } catch (const std::exception& e) {
    return report_error(fmt::format("cannot render the reports: {}", e.what()));
  }
  std::vector<std::filesystem::path> paths;
  for (const auto& [name, content] : files) {
    auto path = write_file(dir / name, content);
    if (!path) return path.error();
    paths.push_back(std::move(*path));
  }
  return paths;
}

result<std::filesystem::path> write_results_and_reports(const std::filesystem::path& dir,
                                                        const nlohmann::json& results,
                                                        const report_options& options) {
  auto written = write_results(dir, results);
  if (!written) return written;
  if (auto reports = write_reports(dir, results, options); !reports) return std::move(reports).error();
  return written;
}

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
