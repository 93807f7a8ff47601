#include "results/results.hpp"

#include <sys/utsname.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <ctime>
#include <fstream>
#include <set>
#include <thread>

#include <fmt/format.h>

#include "results/assertions.hpp"
#include "results/run_records.hpp"
#include "run/runner.hpp"

namespace procpool::harness {
namespace {

using json = nlohmann::json;

error harness_error(std::string message) {
  return error{errc::invalid_options, std::move(message)};
}

json machine_json() {
  utsname u{};
  ::uname(&u);
  return {{"cores", std::thread::hardware_concurrency()},
          {"kernel", std::string(u.release)},
          {"machine", std::string(u.machine)}};
}

}  // namespace

json new_results(const scenario& s, const run_info& info) {
  return {{"schema", results_schema},
          {"scenario", scenario_to_json(s)},
          {"environment", machine_json()},
          {"run", {{"command", info.command_line},
                   {"shard", {{"index", info.shard_index}, {"count", info.shard_count}}},
                   {"total_cases", info.total_cases}}},
          {"cases", json::array()},
          {"verdicts", json::object()},
          {"assertions", json::array()},
          {"partial", false}};
}

namespace {

// The verdicts of the sweep analyses, which belong to no case.
std::vector<sweep_verdict> sweep_verdicts_of(const json& results) {
  std::vector<sweep_verdict> out;
  for (const auto& fit : analyses_of(results).usl) {
    if (fit.verdict) out.push_back({*fit.verdict, fit.axis.empty() ? "?" : fit.axis});
  }
  return out;
}

}  // namespace

json check_assertions(const json& results) {
  const assert_config a = assertions_of(results.at("scenario").at("assert"));
  std::vector<case_figures> cases;
  for (const auto& c : results.at("cases")) cases.push_back(figures_of_case(c));
  json checks = json::array();
  if (a.max_timeout_rate) checks.push_back(check_max_timeout_rate(*a.max_timeout_rate, cases));
  if (a.p99_ms) checks.push_back(check_p99_ms(*a.p99_ms, cases));
  if (!a.forbid_verdicts.empty()) {
    checks.push_back(check_forbid_verdicts(a.forbid_verdicts, cases, sweep_verdicts_of(results)));
  }
  return checks;
}

std::string default_out_dir(std::string_view name) {
  const std::time_t now = std::time(nullptr);
  char stamp[32];
  std::strftime(stamp, sizeof stamp, "%Y%m%d-%H%M%S", std::localtime(&now));
  return fmt::format("reports/out/{}-{}", name, stamp);
}

result<std::filesystem::path> write_results(const std::filesystem::path& dir, const json& results) {
  std::error_code ec;
  std::filesystem::create_directories(dir, ec);
  if (ec) return io_failure("cannot create", dir, ec.message());
  const auto path = dir / "results.json";
  // Text that is not UTF-8 (a command line's bytes, say) is written as U+FFFD: a dump that
  // threw would lose the whole run.
  const std::string text = results.dump(1, ' ', false, json::error_handler_t::replace);
  if (auto written = write_file_atomically(path, text + "\n"); !written) {
    return std::move(written).error();
  }
  return path;
}

result<json> read_results(const std::filesystem::path& path) {
  std::ifstream in(path);
  if (!in) return io_failure("cannot read", path, std::generic_category().message(errno));
  json doc = json::parse(in, nullptr, /*allow_exceptions=*/false);
  if (doc.is_discarded()) return harness_error(fmt::format("{} is not JSON", path.string()));
  if (doc.value("schema", "") != results_schema) {
    return harness_error(fmt::format("{} is not a {} document", path.string(), results_schema));
  }
  return doc;
}

result<json> merge_results(const std::vector<json>& shards) {
  if (shards.empty()) return harness_error("nothing to merge");
  json merged = shards.front();
  const json& scenario = merged.at("scenario");
  json cases = json::array();
  std::set<std::string> seen;
  bool partial = false;
  for (const auto& shard : shards) {
    if (shard.at("scenario") != scenario) {
      return harness_error("the results come from different scenarios or settings");
    }
    partial = partial || shard.value("partial", false);
    for (const auto& c : shard.at("cases")) {
      const auto id = c.at("id").get<std::string>();
      if (!seen.insert(id).second) return harness_error(fmt::format("case {} appears twice", id));
      cases.push_back(c);
    }
  }
  std::sort(cases.begin(), cases.end(),
            [](const json& a, const json& b) { return a.at("index") < b.at("index"); });
  const auto total = merged.at("run").value("total_cases", cases.size());
  merged["cases"] = std::move(cases);
  merged["partial"] = partial || merged["cases"].size() != total;
  merged["run"]["shard"] = {{"index", 0}, {"count", 1}};
  merged["run"]["merged_from"] = shards.size();
  return merged;
}

}  // namespace procpool::harness
