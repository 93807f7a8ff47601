// Diagnosis: one verdict, with its evidence, for every timeout or failed request, counted per
// case; sweep-level analyses (the Universal Scalability Law fit, whether timeouts depend on
// each swept axis); and the run's plain-language conclusion. Verdict names are a contract and
// the rules are documented in harness/diagnosis/verdicts.md; the fields it writes, in
// harness/results/README.md.
//
//   json c = run_case(...);          // runner.hpp
//   diagnose_case(c, the_case.scenario);
//   ...
//   diagnose_run(results);           // after every case, before check_assertions
#pragma once

#include <string_view>

#include <nlohmann/json.hpp>

#include "scenario/scenario.hpp"

namespace procpool::harness {

// Verdict names (harness/diagnosis/verdicts.md, "The verdicts").
namespace verdict {
inline constexpr std::string_view startup = "environmental.startup";
inline constexpr std::string_view init = "environmental.init";
inline constexpr std::string_view contention = "environmental.contention";
inline constexpr std::string_view capacity = "capacity";
inline constexpr std::string_view workload = "workload";
inline constexpr std::string_view dispatch = "architectural.dispatch";
inline constexpr std::string_view startup_serialization = "architectural.startup_serialization";
inline constexpr std::string_view scaling = "architectural.scaling";
inline constexpr std::string_view crash = "fault.crash";
inline constexpr std::string_view hang = "fault.hang";
inline constexpr std::string_view protocol = "fault.protocol";
}  // namespace verdict

// "environmental", "architectural", "capacity", "workload" or "fault".
std::string_view verdict_family(std::string_view name) noexcept;

// Gives each failed request timeline of the case a `verdict` and `evidence`, and fills the
// case's `verdicts` (name -> count) and `findings` (one per verdict: count, rule, evidence of
// a representative request, a one-line summary). `s` is the case's scenario.
void diagnose_case(nlohmann::json& c, const scenario& s);

// After every case: the top-level `verdicts` (the cases' sums plus sweep-level verdicts),
// `analyses` (USL fits, per-axis timeout dependence), `summary` and `conclusion`.
void diagnose_run(nlohmann::json& results);

}  // namespace procpool::harness
