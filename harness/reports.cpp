#include "reports.hpp"

namespace procpool::harness {

std::string render_markdown(const nlohmann::json&) { return {}; }
std::string render_html(const nlohmann::json&, const report_options&) { return {}; }
std::string render_junit(const nlohmann::json&, const report_options&) { return {}; }
std::string render_csv(const nlohmann::json&) { return {}; }

result<std::vector<std::filesystem::path>> write_reports(const std::filesystem::path&,
                                                         const nlohmann::json&,
                                                         const report_options&) {
  return std::vector<std::filesystem::path>{};
}

void add_report_command(CLI::App& app, int& exit_code) {
  (void)app;
  (void)exit_code;
}

}  // namespace procpool::harness
