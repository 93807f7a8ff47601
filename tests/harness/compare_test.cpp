#include "analysis/compare.hpp"
#include "cli/compare_command.hpp"

#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <random>
#include <string>
#include <vector>

#include "results/results.hpp"
#include "cli/exit_codes.hpp"
#include "support/scratch_dir.hpp"

namespace procpool::harness {
namespace {

using json = nlohmann::json;

// A case as `procpool run` writes it, with only what compare reads.
json make_case(const json& params, std::size_t repetition, double throughput, double p50, double p99,
               const std::vector<double>& sampled_latencies_us) {
  std::string name;
  for (const auto& [key, value] : params.items()) {
    name += (name.empty() ? "" : ",") + key + "=" + (value.is_string() ? value.get<std::string>() : value.dump());
  }
  json sampled = json::array();
  std::uint64_t t = 1'000'000'000;
  for (double latency : sampled_latencies_us) {
    const auto reply = t + static_cast<std::uint64_t>(latency * 1e3);
    sampled.push_back({{"t_submit", t}, {"t_worker_recv", t + 1000}, {"t_worker_done", reply - 1000},
                       {"t_reply", reply}, {"outcome", "ok"}});
    t += 10'000'000;
  }
  return {{"id", (params.empty() ? std::string("r") : name + "#r") + std::to_string(repetition)},
          {"params", params},
          {"repetition", repetition},
          {"outcomes", {{"ok", sampled_latencies_us.size()}}},
          {"latency_us", {{"p50", p50}, {"p99", p99}}},
          {"throughput_rps", throughput},
          {"timelines", {{"requests_sampled", sampled}}}};
}

json make_document(const json& cases, double service_ms = 1.0) {
  return {{"schema", results_schema},
          {"scenario", {{"name", "synthetic"}, {"worker", {{"service", {{"ms", service_ms}}}}}}},
          {"cases", cases},
          {"partial", false}};
}

std::vector<double> latencies(std::uint32_t seed, double centre_us, double spread_us, std::size_t n = 100) {
  std::mt19937 rng(seed);
  std::uniform_real_distribution<double> jitter(-spread_us, spread_us);
  std::vector<double> out;
  for (std::size_t i = 0; i < n; ++i) out.push_back(centre_us + jitter(rng));
  return out;
}

const json closed = {{"load.model", "closed"}};
const json open = {{"load.model", "open"}};

// One repetition per case: latency from the sampled requests.
json sampled_run(std::uint32_t seed, double latency_shift_us) {
  return make_document(json::array(
      {make_case(closed, 0, 1800, 1100, 1400, latencies(seed, 1100 + latency_shift_us, 150)),
       make_case(open, 0, 500, 1050, 1300, latencies(seed + 1, 1050 + latency_shift_us, 150))}));
}

// `reps` repetitions of one case with the given throughput centre.
json repeated_run(std::uint32_t seed, std::size_t reps, double throughput) {
  std::mt19937 rng(seed);
  std::uniform_real_distribution<double> jitter(-0.01, 0.01);
  json cases = json::array();
  for (std::size_t r = 0; r < reps; ++r) {
    cases.push_back(make_case(closed, r, throughput * (1 + jitter(rng)), 1000 * (1 + jitter(rng)),
                              1500 * (1 + jitter(rng)), latencies(seed + std::uint32_t(r), 1000, 100)));
  }
  return make_document(cases);
}

const metric_comparison* find_row(const comparison& c, std::string_view case_name, std::string_view metric) {
  for (const auto& row : c.rows) {
    if (row.case_name == case_name && row.metric.starts_with(metric)) return &row;
  }
  return nullptr;
}

TEST(CompareResults, IdenticalRunsShowNoChange) {
  const json run = sampled_run(1, 0);
  const auto diff = compare_results(run, run, {});
  ASSERT_TRUE(diff) << diff.error().message;
  ASSERT_EQ(diff->rows.size(), 4u);  // throughput and sampled latency per case
  EXPECT_EQ(diff->regressions(), 0u);
  EXPECT_EQ(diff->improvements(), 0u);
  const auto* latency = find_row(*diff, "load.model=closed", "latency, sampled");
  ASSERT_NE(latency, nullptr);
  EXPECT_EQ(latency->source, sample_source::sampled_requests);
  EXPECT_EQ(latency->base_samples, 100u);
  ASSERT_TRUE(latency->p_value);
  EXPECT_EQ(*latency->p_value, 1);
  EXPECT_EQ(latency->change_pct, 0);
  EXPECT_TRUE(diff->only_in_base.empty());
  EXPECT_TRUE(diff->only_in_candidate.empty());
}

TEST(CompareResults, ThroughputWithOneRepetitionIsShownButNotTested) {
  json faster = sampled_run(1, 0);
  faster["cases"][0]["throughput_rps"] = 900;  // half the base's throughput
  const auto diff = compare_results(sampled_run(1, 0), faster, {});
  ASSERT_TRUE(diff);
  const auto* throughput = find_row(*diff, "load.model=closed", "throughput");
  ASSERT_NE(throughput, nullptr);
  EXPECT_EQ(throughput->source, sample_source::untested);
  EXPECT_FALSE(throughput->p_value);
  EXPECT_NEAR(throughput->change_pct, -50, 1e-9);
  EXPECT_EQ(throughput->verdict, change_verdict::untested);
  EXPECT_EQ(diff->regressions(), 0u);
}

TEST(CompareResults, OneMillisecondLatencyShiftIsARegression) {
  const auto diff = compare_results(sampled_run(1, 0), sampled_run(101, 1000), {});
  ASSERT_TRUE(diff);
  EXPECT_EQ(diff->regressions(), 2u);
  const auto* latency = find_row(*diff, "load.model=closed", "latency, sampled");
  ASSERT_NE(latency, nullptr);
  EXPECT_EQ(latency->verdict, change_verdict::regression);
  ASSERT_TRUE(latency->p_value);
  EXPECT_LT(*latency->p_value, 1e-10);
  EXPECT_GT(latency->change_pct, 60);
  EXPECT_LT(latency->change_pct, 120);
}

TEST(CompareResults, OneMillisecondLatencyDropIsAnImprovement) {
  const auto diff = compare_results(sampled_run(101, 1000), sampled_run(1, 0), {});
  ASSERT_TRUE(diff);
  EXPECT_EQ(diff->regressions(), 0u);
  EXPECT_EQ(diff->improvements(), 2u);
}

TEST(CompareResults, SignificantChangeBelowThresholdIsNotARegression) {
  // +3%: with 100 samples and little spread it is significant, but under the 5% threshold.
  const auto base = make_document(json::array({make_case(closed, 0, 1800, 1000, 1100, latencies(1, 1000, 5))}));
  const auto slower = make_document(json::array({make_case(closed, 0, 1800, 1030, 1130, latencies(2, 1030, 5))}));
  const auto diff = compare_results(base, slower, {.threshold_pct = 5, .alpha = 0.05});
  ASSERT_TRUE(diff);
  const auto* latency = find_row(*diff, "load.model=closed", "latency, sampled");
  ASSERT_NE(latency, nullptr);
  EXPECT_LT(*latency->p_value, 0.05);
  EXPECT_EQ(latency->verdict, change_verdict::no_change);
  // With a 2% threshold the same change is a regression.
  const auto strict = compare_results(base, slower, {.threshold_pct = 2, .alpha = 0.05});
  ASSERT_TRUE(strict);
  EXPECT_EQ(strict->regressions(), 1u);
}

TEST(CompareResults, RepetitionsAreTestedPerRepetition) {
  const auto diff = compare_results(repeated_run(1, 5, 2000), repeated_run(50, 5, 1600), {});
  ASSERT_TRUE(diff);
  ASSERT_EQ(diff->rows.size(), 3u);  // throughput, p50, p99
  const auto* throughput = find_row(*diff, "load.model=closed", "throughput");
  ASSERT_NE(throughput, nullptr);
  EXPECT_EQ(throughput->source, sample_source::repetitions);
  EXPECT_EQ(throughput->base_samples, 5u);
  ASSERT_TRUE(throughput->p_value);
  EXPECT_NEAR(*throughput->p_value, 2.0 / 252, 1e-12);  // complete separation of 5 and 5
  EXPECT_EQ(throughput->verdict, change_verdict::regression);
  EXPECT_NE(find_row(*diff, "load.model=closed", "latency p50"), nullptr);
  EXPECT_NE(find_row(*diff, "load.model=closed", "latency p99"), nullptr);
  EXPECT_EQ(diff->regressions(), 1u);
}

TEST(CompareResults, ThreeRepetitionsCannotBeSignificantAndSaySo) {
  const auto diff = compare_results(repeated_run(1, 3, 2000), repeated_run(50, 3, 1000), {});
  ASSERT_TRUE(diff);
  const auto* throughput = find_row(*diff, "load.model=closed", "throughput");
  ASSERT_NE(throughput, nullptr);
  EXPECT_NEAR(*throughput->p_value, 0.1, 1e-12);
  EXPECT_EQ(diff->regressions(), 0u);
  bool noted = false;
  for (const auto& note : diff->notes) noted = noted || note.find("smallest possible p-value") != std::string::npos;
  EXPECT_TRUE(noted);
}

TEST(CompareResults, MatchesByParamsWhateverTheOrderAndListsTheRest) {
  json base = sampled_run(1, 0);
  json candidate = sampled_run(1, 0);
  std::swap(candidate["cases"][0], candidate["cases"][1]);
  candidate["cases"][1]["repetition"] = 7;
  base["cases"].push_back(make_case({{"load.model", "closed"}, {"pool.size", 8}}, 0, 1, 1, 1, {}));
  candidate["cases"].push_back(make_case({{"load.model", "open"}, {"pool.size", 8}}, 0, 1, 1, 1, {}));
  const auto diff = compare_results(base, candidate, {});
  ASSERT_TRUE(diff);
  EXPECT_EQ(diff->rows.size(), 4u);
  EXPECT_EQ(diff->regressions(), 0u);
  EXPECT_EQ(diff->only_in_base, std::vector<std::string>{"load.model=closed,pool.size=8"});
  EXPECT_EQ(diff->only_in_candidate, std::vector<std::string>{"load.model=open,pool.size=8"});
}

TEST(CompareResults, NotesDifferentSettingsAndLeftOutRepetitions) {
  json base = make_document(json::array({make_case(closed, 0, 1800, 1000, 1100, latencies(1, 1000, 50))}), 1.0);
  json candidate = make_document(json::array({make_case(closed, 0, 1800, 1000, 1100, latencies(1, 1000, 50))}), 2.0);
  json broken = make_case(closed, 1, 0, 0, 0, {});
  broken["error"] = {{"type", "start_failed"}, {"message", "worker exited during init"}};
  candidate["cases"].push_back(broken);
  const auto diff = compare_results(base, candidate, {});
  ASSERT_TRUE(diff);
  const std::string notes = json(diff->notes).dump();
  EXPECT_NE(notes.find("worker.service.ms: 1.0 -> 2.0"), std::string::npos) << notes;
  EXPECT_NE(notes.find("worker exited during init"), std::string::npos) << notes;
  // The broken repetition is not a sample: one usable repetition each, sampled latencies.
  EXPECT_EQ(find_row(*diff, "load.model=closed", "latency, sampled")->candidate_samples, 100u);
}

TEST(CompareResults, RefusesDocumentsWithNothingInCommon) {
  const json base = make_document(json::array({make_case(closed, 0, 1, 1, 1, latencies(1, 1000, 5))}));
  const json candidate = make_document(json::array({make_case(open, 0, 1, 1, 1, latencies(1, 1000, 5))}));
  const auto diff = compare_results(base, candidate, {});
  ASSERT_FALSE(diff);
  EXPECT_NE(diff.error().message.find("no case in common"), std::string::npos);
}

TEST(CompareResults, RefusesWhatIsNotAResultsDocument) {
  const json run = sampled_run(1, 0);
  EXPECT_FALSE(compare_results(json{{"schema", "other/1"}, {"cases", json::array()}}, run, {}));
  EXPECT_FALSE(compare_results(run, json::array(), {}));
  EXPECT_FALSE(compare_results(run, run, {.threshold_pct = 5, .alpha = 0}));
}

TEST(CompareResults, MarkdownHasTheTableAndMarksRegressions) {
  const auto diff = compare_results(sampled_run(1, 0), sampled_run(101, 1000), {});
  ASSERT_TRUE(diff);
  const std::string md = comparison_markdown(*diff);
  EXPECT_NE(md.find("| case | metric | base | new | change | p-value | n | verdict |"), std::string::npos) << md;
  EXPECT_NE(md.find("**regression**"), std::string::npos);
  EXPECT_NE(md.find("2 regressions"), std::string::npos);
  const std::string text = comparison_text(*diff);
  EXPECT_NE(text.find("regression"), std::string::npos);
  EXPECT_NE(text.find("n/a"), std::string::npos);  // the untested throughput
}

// ---- The command: exit codes ----

class CompareCommand : public testing::with_scratch_dir<> {
 protected:
  std::string write(const std::string& name, const json& doc) {
    const auto path = dir_ / name;
    std::ofstream(path) << doc.dump();
    return path.string();
  }

  int run(const std::string& args) {
    CLI::App app;
    int exit_code = -1;
    add_compare_command(app, exit_code);
    try {
      app.parse("compare " + args, false);
    } catch (const CLI::ParseError&) {
      return exit_usage;
    }
    return exit_code;
  }
};

TEST_F(CompareCommand, ExitCodes) {
  const auto base = write("base.json", sampled_run(1, 0));
  const auto same = write("same.json", sampled_run(1, 0));
  const auto slower = write("slower.json", sampled_run(101, 1000));
  const auto other = write("other.json", json{{"schema", "something/else"}});
  EXPECT_EQ(run(base + " " + same), exit_ok);
  EXPECT_EQ(run(base + " " + slower), exit_failed);
  EXPECT_EQ(run(slower + " " + base), exit_ok);  // an improvement
  EXPECT_EQ(run(base + " " + (dir_ / "missing.json").string()), exit_usage);
  EXPECT_EQ(run(base + " " + other), exit_usage);
  EXPECT_EQ(run(base + " " + same + " --alpha 2"), exit_usage);
}

TEST_F(CompareCommand, WritesMarkdown) {
  const auto base = write("base.json", sampled_run(1, 0));
  const auto slower = write("slower.json", sampled_run(101, 1000));
  const auto md = dir_ / "comment.md";
  EXPECT_EQ(run(base + " " + slower + " --markdown " + md.string()), exit_failed);
  std::ifstream in(md);
  const std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  EXPECT_NE(text.find("**regression**"), std::string::npos);
}

}  // namespace
}  // namespace procpool::harness
