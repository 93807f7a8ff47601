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

json check_assertions(const json& results) {
  json checks = json::array();
  const json& cases = results.at("cases");
  const json& section = results.at("scenario").at("assert");
  struct {
    std::optional<double> max_timeout_rate, p99_ms;
    std::vector<std::string> forbid_verdicts;
  } a;
  if (section.contains("max_timeout_rate") && section["max_timeout_rate"].is_number()) {
    a.max_timeout_rate = section["max_timeout_rate"].get<double>();
  }
  if (section.contains("p99_ms") && section["p99_ms"].is_number()) {
    a.p99_ms = section["p99_ms"].get<double>();
  }
  if (section.contains("forbid_verdicts")) {
    a.forbid_verdicts = section["forbid_verdicts"].get<std::vector<std::string>>();
  }
  if (a.max_timeout_rate) {
    // Per case, as the key is documented: one bad case among clean ones must not average
    // away.
    double worst = 0;
    std::string worst_case;
    std::uint64_t worst_timeouts = 0, worst_total = 0;
    for (const auto& c : cases) {
      std::uint64_t timeouts = 0, total = 0;
      for (const auto& [name, n] : c.at("outcomes").items()) {
        total += n.get<std::uint64_t>();
        if (is_timeout_outcome(name)) timeouts += n.get<std::uint64_t>();
      }
      const double rate = total ? static_cast<double>(timeouts) / total : 0.0;
      if (rate >= worst) {
        worst = rate;
        worst_case = c.at("id").get<std::string>();
        worst_timeouts = timeouts;
        worst_total = total;
      }
    }
    checks.push_back({{"assertion", "max_timeout_rate"},
                      {"limit", *a.max_timeout_rate},
                      {"value", worst},
                      {"held", worst <= *a.max_timeout_rate},
                      {"detail", fmt::format("worst case {}: {} timeouts in {} requests", worst_case,
                                             worst_timeouts, worst_total)}});
  }
  if (a.p99_ms) {
    double worst = 0;
    std::string worst_case;
    for (const auto& c : cases) {
      const double p99_ms = c.at("latency_us").at("p99").get<double>() / 1000.0;
      if (p99_ms >= worst) {
        worst = p99_ms;
        worst_case = c.at("id").get<std::string>();
      }
    }
    checks.push_back({{"assertion", "p99_ms"},
                      {"limit", *a.p99_ms},
                      {"value", worst},
                      {"held", worst <= *a.p99_ms},
                      {"detail", fmt::format("worst p99 {:.3f} ms in case {}", worst, worst_case)}});
  }
  if (!a.forbid_verdicts.empty()) {
    std::vector<std::string> found;
    for (const auto& c : cases) {
      if (!c.contains("verdicts")) continue;
      for (const auto& [verdict, n] : c["verdicts"].items()) {
        for (const auto& pattern : a.forbid_verdicts) {
          if (n.get<std::uint64_t>() > 0 && verdict_matches(pattern, verdict)) {
            found.push_back(fmt::format("{} x{} in {}", verdict, n.get<std::uint64_t>(),
                                        c.at("id").get<std::string>()));
          }
        }
      }
    }
    // Sweep-level verdicts belong to no case.
    if (results.contains("analyses") && results["analyses"].contains("usl")) {
      for (const auto& fit : results["analyses"]["usl"]) {
        if (!fit.contains("verdict") || !fit["verdict"].is_string()) continue;
        const auto verdict = fit["verdict"].get<std::string>();
        for (const auto& pattern : a.forbid_verdicts) {
          if (verdict_matches(pattern, verdict)) {
            found.push_back(fmt::format("{} over {} (sweep)", verdict, fit.value("axis", "?")));
          }
        }
      }
    }
    checks.push_back({{"assertion", "forbid_verdicts"},
                      {"limit", a.forbid_verdicts},
                      {"value", found},
                      {"held", found.empty()},
                      {"detail", found.empty() ? "no forbidden verdict"
                                               : fmt::format("{}", fmt::join(found, "; "))}});
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
  if (auto written = write_file_atomically(path, results.dump(1) + "\n"); !written) {
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
