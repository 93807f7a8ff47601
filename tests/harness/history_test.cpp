// The run history: a SQLite round trip, the migration from schema version 1, the change-point
// gate of `procpool history changes` on a planted regression, `history report`'s files and
// `compare --baseline-db`.
#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <random>
#include <sstream>
#include <string>

#include <fmt/format.h>

#include "analysis/history_changes.hpp"
#include "analysis/history_store.hpp"
#include "cli/compare_command.hpp"
#include "cli/exit_codes.hpp"
#include "cli/history_command.hpp"
#include "results/results.hpp"
#include "support/scratch_dir.hpp"

namespace procpool::harness {
namespace {

using json = nlohmann::json;

// A case as `procpool run` writes it, with the figures the history keeps.
json make_case(int concurrency, std::size_t repetition, double throughput, double p99, std::uint64_t timeouts) {
  const std::string name = "load.concurrency=" + std::to_string(concurrency);
  return {{"id", name + "#r" + std::to_string(repetition)},
          {"params", {{"load.concurrency", concurrency}}},
          {"repetition", repetition},
          {"outcomes", {{"ok", 1000 - timeouts}, {"request_timeout", timeouts}}},
          {"latency_us", {{"p50", p99 / 2}, {"p99", p99}}},
          {"throughput_rps", throughput},
          {"verdicts", timeouts ? json{{"architectural.queueing", timeouts}} : json::object()}};
}

// A run of two cases, two repetitions each, with 2% noise; `slowdown` multiplies the p99 of
// concurrency 8 and divides its throughput.
json make_run(std::uint64_t seed, double slowdown = 1) {
  std::mt19937_64 rng(seed);
  std::normal_distribution<double> noise(1, 0.02);
  json cases = json::array();
  for (int concurrency : {1, 8}) {
    const double factor = concurrency == 8 ? slowdown : 1;
    for (std::size_t r = 0; r < 2; ++r) {
      cases.push_back(make_case(concurrency, r, 900 * concurrency * noise(rng) / factor,
                                1000 * noise(rng) * factor, 0));
    }
  }
  return {{"schema", results_schema},
          {"scenario", {{"name", "synthetic"}, {"load", {{"requests", 1000}}}}},
          {"environment", {{"cores", 2}, {"kernel", "6.1.0"}, {"cpu_model", "test cpu"}, {"cpu_limit", nullptr}}},
          {"cases", cases},
          {"partial", false}};
}

class History : public testing::with_scratch_dir<> {
 protected:
  std::string write(const std::string& name, const json& doc) {
    const auto path = dir_ / name;
    std::ofstream(path) << doc.dump();
    return path.string();
  }

  // Runs `procpool <args>` in-process; CLI11 splits the words.
  int run(const std::string& args) {
    CLI::App app;
    int exit_code = -1;
    add_history_command(app, exit_code);
    add_compare_command(app, exit_code);
    try {
      app.parse(args, false);
    } catch (const CLI::ParseError&) {
      return exit_usage;
    }
    return exit_code;
  }

  // `clean` runs, then `stepped` runs with the planted slowdown, each added with its label.
  void add_runs(int clean, int stepped, double slowdown = 1.25) {
    for (int i = 0; i < clean + stepped; ++i, ++added_) {
      const auto file = write("run.json", make_run(std::uint64_t(added_ + 1), i < clean ? 1 : slowdown));
      ::testing::internal::CaptureStdout();
      const int code = run(fmt::format("history add {} --db {} --label build-{}", file, db(), added_));
      const std::string out = ::testing::internal::GetCapturedStdout();
      ASSERT_EQ(code, exit_ok) << out;
    }
  }

  std::string db() const { return (dir_ / "history.sqlite").string(); }
  int added_ = 0;  // runs added so far: each has its own seed and label
};

TEST_F(History, RoundTrip) {
  auto store = history_store::open(db());
  ASSERT_TRUE(store) << store.error().message;
  EXPECT_EQ(store->version(), history_schema_version);
  json doc = make_run(1);
  doc["cases"].push_back(make_case(16, 0, 5000, 3000, 250));
  auto id = store->add_run(doc, "abc123", "2026-01-02T03:04:05Z");
  ASSERT_TRUE(id) << id.error().message;
  auto runs = store->runs();
  ASSERT_TRUE(runs);
  ASSERT_EQ(runs->size(), 1u);
  EXPECT_EQ((*runs)[0].id, *id);
  EXPECT_EQ((*runs)[0].label, "abc123");
  EXPECT_EQ((*runs)[0].name(), "abc123");
  EXPECT_EQ((*runs)[0].added_at, "2026-01-02T03:04:05Z");
  EXPECT_EQ((*runs)[0].scenario_name, "synthetic");
  EXPECT_EQ(json::parse((*runs)[0].scenario), doc["scenario"]);
  EXPECT_EQ((*runs)[0].cores, 2);
  EXPECT_EQ((*runs)[0].kernel, "6.1.0");
  EXPECT_EQ((*runs)[0].cpu_model, "test cpu");
  EXPECT_FALSE((*runs)[0].cpu_limit);
  auto cases = store->cases();
  ASSERT_TRUE(cases);
  ASSERT_EQ(cases->size(), 5u);
  const auto& last = cases->back();
  EXPECT_EQ(last.case_id, "load.concurrency=16#r0");
  EXPECT_EQ(last.case_name, "load.concurrency=16");
  EXPECT_DOUBLE_EQ(last.throughput_rps, 5000);
  EXPECT_DOUBLE_EQ(last.p50_us, 1500);
  EXPECT_DOUBLE_EQ(last.p99_us, 3000);
  EXPECT_EQ(last.requests, 1000u);
  EXPECT_EQ(last.timeouts, 250u);
  EXPECT_DOUBLE_EQ(last.timeout_rate, 0.25);
  EXPECT_EQ(last.verdicts.at("architectural.queueing"), 250u);
  EXPECT_TRUE(cases->front().verdicts.empty());
}

TEST_F(History, RefusesWhatIsNotAResultsDocumentAndStoresNothing) {
  auto store = history_store::open(db());
  ASSERT_TRUE(store);
  EXPECT_FALSE(store->add_run(json{{"schema", "other"}}, ""));
  json bad = make_run(1);
  bad["cases"].push_back(42);  // fails after the run's row: the transaction is rolled back
  EXPECT_FALSE(store->add_run(bad, ""));
  EXPECT_TRUE(store->runs()->empty());
  EXPECT_TRUE(store->cases()->empty());
}

TEST_F(History, MigratesFromVersion1) {
  {
    auto v1 = history_store::open(db(), 1);
    ASSERT_TRUE(v1) << v1.error().message;
    EXPECT_EQ(v1->version(), 1);
    // Version 1 had no label column.
    ASSERT_TRUE(v1->db().exec(
        "INSERT INTO runs(id, added_at, scenario_name, scenario, cores, kernel, cpu_model) VALUES"
        " (7, '2025-12-01T00:00:00Z', 'old', '{}', 4, 'k', 'cpu');"
        "INSERT INTO cases VALUES (7, 'load.concurrency=1#r0', 'load.concurrency=1', 900, 500, 1000, 1000, 0, 0);"));
    EXPECT_FALSE(v1->db().exec("SELECT label FROM runs"));
  }
  auto store = history_store::open(db());
  ASSERT_TRUE(store) << store.error().message;
  EXPECT_EQ(store->version(), 2);
  auto runs = store->runs();
  ASSERT_TRUE(runs);
  ASSERT_EQ(runs->size(), 1u);
  EXPECT_EQ((*runs)[0].label, "");
  EXPECT_EQ((*runs)[0].name(), "#7");
  ASSERT_TRUE(store->add_run(make_run(1), "new"));
  EXPECT_EQ(store->runs()->size(), 2u);
  EXPECT_EQ(store->cases()->size(), 5u);
  // Opening again migrates nothing more.
  EXPECT_EQ(history_store::open(db())->version(), 2);
}

TEST_F(History, RefusesANewerSchema) {
  ASSERT_TRUE(history_store::open(db()));
  {
    auto store = history_store::open(db());
    ASSERT_TRUE(store->db().exec("UPDATE schema_version SET version = 99"));
  }
  auto newer = history_store::open(db());
  ASSERT_FALSE(newer);
  EXPECT_EQ(newer.error().code, errc::io_error);
  EXPECT_NE(newer.error().message.find("newer"), std::string::npos);
}

TEST_F(History, ChangesGateFailsOnAPlantedRegression) {
  add_runs(10, 0);
  EXPECT_EQ(run("history changes --db " + db()), exit_ok);
  add_runs(0, 6);  // runs 10..15 are 25% slower at concurrency 8
  ::testing::internal::CaptureStdout();
  EXPECT_EQ(run("history changes --db " + db()), exit_failed);
  const std::string out = ::testing::internal::GetCapturedStdout();
  EXPECT_NE(out.find("load.concurrency=8  latency p99 (us): shifted at run build-10"), std::string::npos) << out;
  EXPECT_NE(out.find("load.concurrency=8  throughput (req/s): shifted at run build-10"), std::string::npos) << out;
  EXPECT_EQ(out.find("load.concurrency=1 "), std::string::npos) << out;
  // Smaller than --min-change: no change point, the gate passes.
  EXPECT_EQ(run("history changes --db " + db() + " --min-change 30"), exit_ok);
}

TEST_F(History, ChangesGatePassesWhenTheRegressionWasFixed) {
  add_runs(10, 6);
  add_runs(6, 0);  // back to normal
  auto store = history_store::open(db());
  const auto h = find_history_changes(*store->runs(), *store->cases(), {});
  EXPECT_GE(h.changes.size(), 2u);
  EXPECT_EQ(h.failing(), 0u);
  EXPECT_EQ(run("history changes --db " + db()), exit_ok);
}

TEST_F(History, ChangesUsageErrors) {
  EXPECT_EQ(run("history changes --db " + (dir_ / "missing.sqlite").string()), exit_usage);
  EXPECT_EQ(run("history add " + (dir_ / "missing.json").string() + " --db " + db()), exit_usage);
  EXPECT_EQ(run("history changes"), exit_usage);
  EXPECT_EQ(run("history changes --db " + db() + " --alpha 3"), exit_usage);
}

TEST_F(History, ReportWritesPagesAndCharts) {
  add_runs(10, 6);
  json with_timeouts = make_run(77, 1.25);  // still slow: the regression holds
  with_timeouts["cases"].push_back(make_case(16, 0, 5000, 3000, 250));
  ASSERT_TRUE(history_store::open(db())->add_run(with_timeouts, "timeouts"));
  const auto out = dir_ / "report";
  EXPECT_EQ(run("history report --db " + db() + " --out " + out.string()), exit_ok);
  std::stringstream html, md;
  html << std::ifstream(out / "history.html").rdbuf();
  md << std::ifstream(out / "history.md").rdbuf();
  EXPECT_NE(html.str().find("<svg class=\"chart\""), std::string::npos);
  EXPECT_EQ(html.str().find("http"), std::string::npos);  // no external assets
  EXPECT_NE(html.str().find("stroke-dasharray"), std::string::npos);  // a change point drawn
  EXPECT_NE(md.str().find("![load.concurrency=8: latency p99 (us)](charts/"), std::string::npos);
  EXPECT_NE(md.str().find("**regression, holds**"), std::string::npos);
  // Three cases, four figures each, and verdict counts for the one that recorded verdicts.
  EXPECT_NE(html.str().find("architectural.queueing"), std::string::npos);
  std::size_t charts = 0;
  for (const auto& entry : std::filesystem::directory_iterator(out / "charts")) {
    ++charts;
    std::stringstream svg;
    svg << std::ifstream(entry.path()).rdbuf();
    EXPECT_TRUE(svg.str().starts_with("<svg xmlns=\"http://www.w3.org/2000/svg\""));
  }
  EXPECT_EQ(charts, 13u);
}

TEST_F(History, CompareAgainstTheHistory) {
  add_runs(10, 0);
  json slower = make_run(99, 1.25);
  for (std::size_t r = 2; r < 4; ++r) {  // four repetitions of NEW
    const json more = make_run(99 + r, 1.25);
    for (const auto& c : more["cases"]) {
      json copy = c;
      copy["id"] = copy["id"].get<std::string>() + "x" + std::to_string(r);
      slower["cases"].push_back(copy);
    }
  }
  const auto candidate = write("new.json", slower);
  const auto same = write("same.json", make_run(50));
  EXPECT_EQ(run("compare " + same + " --baseline-db " + db()), exit_ok);
  EXPECT_EQ(run("compare " + candidate + " --baseline-db " + db() + " --baseline-runs 3"), exit_failed);
  EXPECT_EQ(run("compare " + candidate + " " + same + " --baseline-db " + db()), exit_usage);
  EXPECT_EQ(run("compare " + candidate + " --baseline-db " + (dir_ / "none.sqlite").string()), exit_usage);

  auto store = history_store::open(db());
  const auto base = baseline_of(*store->runs(), *store->cases(), 3);
  ASSERT_EQ(base.size(), 2u);
  EXPECT_EQ(base[1].name, "load.concurrency=8");
  EXPECT_EQ(base[1].p99.size(), 6u);  // 3 runs x 2 repetitions
  auto diff = compare_to_baseline(base, slower, {});
  ASSERT_TRUE(diff);
  EXPECT_EQ(diff->regressions(), 3u);  // throughput, p50 and p99 of concurrency 8
}

TEST(HistoryFlips, AFlakyCaseFlipsAndASteadyOneDoesNot) {
  std::vector<history_run> runs;
  std::vector<history_case> cases;
  const std::vector<int> flaky = {0, 1, 0, 1, 1, 0};  // timeouts per run
  for (std::size_t i = 0; i < flaky.size(); ++i) {
    runs.push_back({.id = static_cast<std::int64_t>(i + 10)});
    cases.push_back({.run_id = runs.back().id, .case_id = "flaky#r0", .case_name = "flaky",
                     .timeouts = static_cast<std::uint64_t>(flaky[i])});
    cases.push_back({.run_id = runs.back().id, .case_id = "steady#r0", .case_name = "steady"});
    // A second repetition that timed out makes its run a failing one.
    cases.push_back({.run_id = runs.back().id, .case_id = "broken#r0", .case_name = "broken", .timeouts = 2});
  }
  const auto flips = flip_rates(runs, cases);
  ASSERT_EQ(flips.size(), 3u);
  EXPECT_EQ(flips[0].case_name, "flaky");
  EXPECT_EQ(flips[0].runs, 6u);
  EXPECT_EQ(flips[0].failing, 3u);
  EXPECT_EQ(flips[0].flips, 4u);
  EXPECT_DOUBLE_EQ(flips[0].rate(), 0.8);
  EXPECT_EQ(flips[1].flips, 0u);
  EXPECT_EQ(flips[2].failing, 6u);
  EXPECT_EQ(flips[2].flips, 0u);
}

}  // namespace
}  // namespace procpool::harness
