// The scenario parser with --set overrides: parse_scenario never throws or reaches undefined
// behaviour (toml++ is compiled into this target with its assertions on), its errors and
// everything it accepts can be written as JSON, and an accepted scenario expands.
//
// Input: the TOML text, then optionally a line "%%" and one KEY=VALUE override per line.
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include <fmt/format.h>

#include "fuzz_check.hpp"
#include "scenario/scenario.hpp"

namespace {

using nlohmann::json;
using procpool::fuzz::check;
using procpool::fuzz::fail;

constexpr std::string_view separator = "\n%%\n";
// Expanding is linear in the cases; more than this only slows the fuzzing down.
constexpr std::size_t max_cases_to_expand = 64;

// Text written to results.json or quoted as JSON must dump without throwing.
void check_dumps(const json& value, std::string_view what) {
  try {
    (void)value.dump();
  } catch (const json::exception& e) {
    fail(what, e.what());
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  namespace harness = procpool::harness;
  const std::string_view input(reinterpret_cast<const char*>(data), size);
  const std::size_t split = input.find(separator);
  const std::string_view text = input.substr(0, split);
  std::vector<std::string> overrides;
  if (split != std::string_view::npos) {
    std::string_view rest = input.substr(split + separator.size());
    while (!rest.empty()) {
      const std::size_t end = rest.find('\n');
      overrides.emplace_back(rest.substr(0, end));
      rest = end == std::string_view::npos ? std::string_view() : rest.substr(end + 1);
    }
  }

  const auto file = harness::parse_scenario(text, "fuzz.toml", overrides);
  if (!file) {
    const auto& e = file.error();
    check(!e.message.empty(), "a configuration error without a message");
    check_dumps(json(e.describe()), "a configuration error is not UTF-8");
    return 0;
  }
  check_dumps(harness::scenario_to_json(file->scenario), "an accepted scenario is not UTF-8");
  check(!harness::check_scenario(*file), "check_scenario refuses what parse_scenario accepted");

  std::size_t cases = file->scenario.repetitions;
  for (const auto& axis : file->scenario.sweep) {
    if (axis.values.empty() || cases > max_cases_to_expand) break;
    cases *= axis.values.size();
  }
  if (cases > max_cases_to_expand) return 0;
  const auto expanded = harness::expand(*file);
  check(expanded.size() == cases,
        fmt::format("expand made {} cases where the sweep has {}", expanded.size(), cases));
  for (const auto& c : expanded) {
    check_dumps(json(c.id), "a case id is not UTF-8");
    check_dumps(harness::scenario_to_json(c.scenario), "a case's scenario is not UTF-8");
    (void)harness::pool_options_for(c.scenario);
    check_dumps(harness::worker_init_args(c.scenario), "a case's init args are not UTF-8");
  }
  return 0;
}
