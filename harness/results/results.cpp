#include "results/results.hpp"

#include <sys/utsname.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <ctime>
#include <fstream>
#include <optional>
#include <set>
#include <thread>

#include <fmt/format.h>

#include "results/assertions.hpp"
#include "results/run_records.hpp"
#include "run/record_fields.hpp"
#include "run/runner.hpp"

namespace procpool::harness {
namespace {

using json = nlohmann::json;

error harness_error(std::string message) {
  return error{errc::invalid_options, std::move(message)};
}

// The CPU's model name, from /proc/cpuinfo; empty where it has none.
std::string cpu_model() {
  std::ifstream in("/proc/cpuinfo");
  for (std::string line; std::getline(in, line);) {
    if (!line.starts_with("model name")) continue;
    const auto colon = line.find(':');
    return colon == std::string::npos ? std::string() : line.substr(line.find_first_not_of(' ', colon + 1));
  }
  return {};
}

// The CPUs a cgroup v2 quota (cpu.max "QUOTA PERIOD") allows, or null for none ("max").
json cgroup_cpu_limit() {
  std::ifstream in("/sys/fs/cgroup/cpu.max");
  std::string quota;
  double period = 0;
  if (!(in >> quota >> period) || quota == "max" || period <= 0) return nullptr;
  try {
    return std::stod(quota) / period;
  } catch (const std::exception&) {
    return nullptr;
  }
}

json machine_json() {
  utsname u{};
  ::uname(&u);
  return {{"cores", std::thread::hardware_concurrency()},
          {"kernel", std::string(u.release)},
          {"machine", std::string(u.machine)},
          {"cpu_model", cpu_model()},
          {"cpu_limit", cgroup_cpu_limit()}};
}

// What makes two hosts' measurements comparable: shards that differ in it are merged with a
// warning.
std::string host_fingerprint(const json& environment) {
  json f = json::object();
  for (const char* key : {"cores", "kernel", "cpu_model", "cpu_limit"}) f[key] = environment.value(key, json());
  return f.dump();
}

// The shard a results document says it holds; {0, 1} for what it does not say readably.
shard shard_of(const json& doc) {
  static const json::json_pointer index("/run/shard/index"), count("/run/shard/count");
  shard s;
  if (doc.contains(index)) read_value(doc.at(index), s.index);
  if (doc.contains(count)) read_value(doc.at(count), s.count);
  return s;
}

// Every shard of 0..N-1 exactly once, all of the same N; the error names what is wrong.
std::optional<error> check_shard_set(const std::vector<json>& shards) {
  const std::size_t count = shard_of(shards.front()).count;
  std::set<std::size_t> seen;
  for (const auto& doc : shards) {
    const shard s = shard_of(doc);
    if (s.count != count) {
      return harness_error(fmt::format("the shards were cut differently: {} and {} shards", count, s.count));
    }
    if (s.index >= count) return harness_error(fmt::format("shard {} of {} does not exist", s.index, count));
    if (!seen.insert(s.index).second) {
      return harness_error(fmt::format("shard {} of {} appears twice", s.index, count));
    }
  }
  for (std::size_t i = 0; i < count; ++i) {
    if (!seen.contains(i)) return harness_error(fmt::format("shard {} of {} is missing", i, count));
  }
  return std::nullopt;
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
  if (auto wrong = check_shard_set(shards)) return *wrong;
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
  std::set<std::string> hosts;
  for (const auto& shard : shards) hosts.insert(host_fingerprint(shard.value("environment", json::object())));
  if (hosts.size() > 1) {
    merged["warnings"].push_back(fmt::format(
        "the shards ran on {} kinds of host (cores, kernel, CPU model or CPU limit differ): their cases' figures "
        "are not comparable with each other",
        hosts.size()));
  }
  return merged;
}

}  // namespace procpool::harness
