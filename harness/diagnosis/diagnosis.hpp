// Diagnosis: one verdict, with its evidence, for every timeout or failed request, counted per
// case; sweep-level analyses (the Universal Scalability Law fit, whether timeouts depend on
// each swept axis); and the run's plain-language conclusion. Verdict names are a contract and
// the rules are documented in harness/diagnosis/verdicts.md; the fields it writes, in
// harness/results/README.md.
//
//   case_record c = run_case(...);   // runner.hpp
//   diagnose_case(c, the_case.scenario);
//   ...
//   diagnose_run(results);           // after every case, before check_assertions
#pragma once

#include <string_view>

#include <nlohmann/json.hpp>

#include "run/records.hpp"
#include "scenario/scenario.hpp"
#include "scenario/verdicts.hpp"  // the verdict names, families and meanings

namespace procpool::harness {

// Gives each failed request timeline of the case a `verdict` and `evidence`, and fills the
// case's `verdicts` (name -> count) and `findings` (one per verdict: count, rule, evidence of
// a representative request, a one-line summary). `s` is the case's scenario.
void diagnose_case(case_record& c, const scenario& s);
// The same, on a case already in a document.
void diagnose_case(nlohmann::json& c, const scenario& s);

// After every case: the top-level `verdicts` (the cases' sums plus sweep-level verdicts),
// `analyses` (USL fits, per-axis timeout dependence), `summary` and `conclusion`.
void diagnose_run(nlohmann::json& results);

}  // namespace procpool::harness
