// Writing the report files, and `procpool report`. The renderers live in report_*.cpp.
#include "reports.hpp"

#include <algorithm>
#include <exception>
#include <memory>

#include <fmt/format.h>

#include "report_model.hpp"
#include "results/files.hpp"
#include "results/results.hpp"

namespace procpool::harness {
namespace {

error report_error(std::string message) { return error{errc::invalid_options, std::move(message)}; }
}  // namespace

result<std::vector<std::filesystem::path>> write_reports(const std::filesystem::path& dir,
                                                         const nlohmann::json& results,
                                                         const report_options& options) {
  std::error_code ec;
  std::filesystem::create_directories(dir, ec);
  if (ec) return io_failure("cannot create", dir, ec.message());
  std::vector<std::pair<const char*, std::string>> files;
  // The renderers read the document defensively; a throw here means a bug in them, reported
  // as an error value rather than taking the run's results down with it.
  try {
    files = {{"report.md", render_markdown(results)},
             {"report.html", render_html(results, options)},
             {"junit.xml", render_junit(results, options)},
             {"cases.csv", render_csv(results)},
             {"summary.md", render_summary(results)},
             {"benchmark-bigger.json", render_benchmark_bigger(results)},
             {"benchmark-smaller.json", render_benchmark_smaller(results)}};
  } catch (const std::exception& e) {
    return report_error(fmt::format("cannot render the reports: {}", e.what()));
  }
  std::vector<std::filesystem::path> paths;
  for (const auto& [name, content] : files) {
    auto path = dir / name;
    // Each file is replaced whole, so a reader never sees half a report.
    if (auto written = write_file_atomically(path, content); !written) {
      return std::move(written).error();
    }
    paths.push_back(std::move(path));
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


}  // namespace procpool::harness
