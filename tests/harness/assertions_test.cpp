// The [assert] rules: results.json's run-level entries and the reports' per-case checks come
// from the same rule functions, so they agree on what held.
#include "results/assertions.hpp"

#include <gtest/gtest.h>

#include "report_model.hpp"
#include "results/results.hpp"

namespace procpool::harness {
namespace {

using json = nlohmann::json;

json results_with(json assertions, std::vector<json> cases) {
  return {{"scenario", {{"assert", std::move(assertions)}}}, {"cases", std::move(cases)}};
}

json a_case(std::string id, std::uint64_t ok, std::uint64_t timeouts, double p99_us, json verdicts) {
  return {{"id", std::move(id)},
          {"outcomes", {{"ok", ok}, {"request_timeout", timeouts}}},
          {"latency_us", {{"p99", p99_us}}},
          {"verdicts", std::move(verdicts)}};
}

TEST(Assertions, FiguresOfACaseCountTimeoutsAndReadP99InMilliseconds) {
  const auto f = figures_of_case(a_case("c", 6, 2, 2500, {{"capacity", 2}}));
  EXPECT_EQ(f.id, "c");
  EXPECT_EQ(f.requests, 8u);
  EXPECT_EQ(f.timeouts, 2u);
  EXPECT_DOUBLE_EQ(f.timeout_rate(), 0.25);
  EXPECT_DOUBLE_EQ(f.p99_ms, 2.5);
  EXPECT_EQ(f.verdicts.at("capacity"), 2u);
  // A case whose subject could not be created has no figures: it reads as zeros.
  EXPECT_EQ(figures_of_case(json{{"id", "e"}}).requests, 0u);
}

TEST(Assertions, RunLevelEntriesNameTheWorstCase) {
  const json results = results_with(
      {{"max_timeout_rate", 0.2}, {"p99_ms", 3.0}},
      {a_case("a", 9, 1, 4000, json::object()), a_case("b", 5, 5, 1000, json::object())});
  const json checks = check_assertions(results);
  ASSERT_EQ(checks.size(), 2u);
  EXPECT_EQ(checks[0]["assertion"], "max_timeout_rate");
  EXPECT_EQ(checks[0]["held"], false);
  EXPECT_EQ(checks[0]["detail"], "worst case b: 5 timeouts in 10 requests");
  EXPECT_EQ(checks[1]["assertion"], "p99_ms");
  EXPECT_EQ(checks[1]["held"], false);
  EXPECT_EQ(checks[1]["detail"], "worst p99 4.000 ms in case a");
}

TEST(Assertions, EachForbiddingPatternCountsOnce) {
  const json results = results_with({{"forbid_verdicts", {"fault.*", "*.crash"}}},
                                    {a_case("a", 1, 0, 0, {{"fault.crash", 2}, {"capacity", 1}})});
  const json checks = check_assertions(results);
  ASSERT_EQ(checks.size(), 1u);
  EXPECT_EQ(checks[0]["value"], json({"fault.crash x2 in a", "fault.crash x2 in a"}));
  EXPECT_EQ(checks[0]["limit"], json({"fault.*", "*.crash"}));
}

TEST(Assertions, TheReportsPerCaseChecksAgreeWithTheRunLevelEntries) {
  const json assertions = {{"max_timeout_rate", 0.2}, {"p99_ms", 3.0}, {"forbid_verdicts", {"fault.*"}}};
  const std::vector<json> cases = {a_case("a", 9, 1, 4000, {{"capacity", 1}}),
                                   a_case("b", 5, 5, 1000, {{"fault.hang", 5}})};
  const json run = check_assertions(results_with(assertions, cases));
  const auto doc = report_model::read_document(results_with(assertions, cases));
  ASSERT_EQ(doc.cases.size(), 2u);
  for (std::size_t rule = 0; rule < run.size(); ++rule) {
    bool every_case_held = true;
    for (const auto& c : doc.cases) {
      const auto checks = report_model::check_case(assertions, c);
      ASSERT_EQ(checks.size(), run.size());
      EXPECT_EQ(checks[rule].assertion, run[rule]["assertion"]);
      every_case_held = every_case_held && checks[rule].held;
    }
    EXPECT_EQ(every_case_held, run[rule]["held"].get<bool>()) << run[rule]["assertion"];
  }
}

}  // namespace
}  // namespace procpool::harness
