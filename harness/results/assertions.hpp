// The scenario's [assert] rules, each one function, judged on the figures of the cases. The
// run's verdict on them (results.json's "assertions", written by check_assertions) and the
// reports' per-case checks both use these, so the two cannot disagree on what held.
//
//   const assert_config a = assertions_of(results["scenario"]["assert"]);
//   const case_figures f = figures_of_case(results["cases"][0]);
//   if (a.p99_ms && !p99_held(f, *a.p99_ms)) ...
#pragma once

#include <cstdint>
#include <map>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "run/records.hpp"
#include "scenario/scenario.hpp"

namespace procpool::harness {

// What the rules read of one case.
struct case_figures {
  std::string id;
  std::uint64_t requests = 0;
  std::uint64_t timeouts = 0;  // checkout_timeout and request_timeout
  double p99_ms = 0;
  std::map<std::string, std::uint64_t, std::less<>> verdicts;  // name -> count

  double timeout_rate() const noexcept;
};

// The figures of a case; a figure missing from a document reads as 0.
case_figures figures_of_case(const case_record& c);
case_figures figures_of_case(const nlohmann::json& c);

// The [assert] table as results.json holds it; entries of the wrong type are left unset.
assert_config assertions_of(const nlohmann::json& section);

// ---- The rules on one case ----

// Per case, as the key is documented: one bad case among clean ones must not average away.
bool timeout_rate_held(const case_figures& c, double limit) noexcept;
bool p99_held(const case_figures& c, double limit_ms) noexcept;
// The patterns that forbid `verdict`, in their order; empty when it is allowed.
std::vector<std::string> forbidding_patterns(std::span<const std::string> patterns,
                                             std::string_view verdict);

// ---- The rules on a run: one results.json "assertions" entry each ----

// Held when every case held; the value and detail are the worst case's.
nlohmann::json check_max_timeout_rate(double limit, std::span<const case_figures> cases);
nlohmann::json check_p99_ms(double limit_ms, std::span<const case_figures> cases);

// A verdict found by a sweep analysis, which belongs to no case.
struct sweep_verdict {
  std::string verdict;
  std::string axis;
};
nlohmann::json check_forbid_verdicts(std::span<const std::string> patterns,
                                     std::span<const case_figures> cases,
                                     std::span<const sweep_verdict> sweep);

}  // namespace procpool::harness
