#include "analysis/plan.hpp"
#include "cli/plan_command.hpp"

#include <gtest/gtest.h>
#include <unistd.h>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <functional>
#include <string>
#include <vector>

#include "results/results.hpp"
#include "cli/exit_codes.hpp"
#include "support/scratch_dir.hpp"

// A synthetic sweep whose throughput follows the USL with lambda 1000 req/s, sigma 0.05 and
// kappa 0.001 (N* = 30.8, X(N*) = 9038 req/s) and whose workers take exactly 1 ms a request.
// Expected sizes were computed independently (Erlang C by the textbook formula, the p99 by
// bisection on the closed-form response-time distribution): at 3000 req/s a p99 of 10 ms
// needs 4 workers by queueing, and the curve carries 3600 req/s (20% headroom) from 5.

namespace procpool::harness {
namespace {

using json = nlohmann::json;

constexpr double lambda = 1000;
constexpr double sigma = 0.05;
constexpr double kappa = 0.001;
constexpr std::uint64_t service_ns = 1'000'000;

double truth(double n) { return usl_throughput({.lambda = lambda, .sigma = sigma, .kappa = kappa}, n); }

json sampled_requests(std::size_t n) {
  json out = json::array();
  std::uint64_t t = 5'000'000'000;
  for (std::size_t i = 0; i < n; ++i) {
    out.push_back({{"t_submit", t}, {"t_worker_recv", t + 20'000}, {"t_worker_done", t + 20'000 + service_ns},
                   {"t_reply", t + 40'000 + service_ns}, {"outcome", "ok"}});
    t += 3'000'000;
  }
  // A failed request's timestamps must not count.
  out.push_back({{"t_submit", t}, {"t_worker_recv", t + 1}, {"t_worker_done", t + 900'000'000},
                 {"t_reply", t + 900'000'000}, {"outcome", "request_timeout"}});
  return out;
}

// The sweep `axes` (key -> values); throughput from `throughput(params)`.
json make_results(const std::vector<std::pair<std::string, std::vector<json>>>& axes,
                  const std::function<double(const json&)>& throughput, const std::string& model = "closed") {
  json sweep = json::array();
  for (const auto& [key, values] : axes) sweep.push_back({{"key", key}, {"values", values}});
  json cases = json::array();
  std::vector<json> combos = {json::object()};
  for (const auto& [key, values] : axes) {
    std::vector<json> next;
    for (const auto& c : combos) {
      for (const auto& v : values) {
        json p = c;
        p[key] = v;
        next.push_back(p);
      }
    }
    combos = next;
  }
  for (std::size_t i = 0; i < combos.size(); ++i) {
    cases.push_back({{"id", "case" + std::to_string(i)},
                     {"index", i},
                     {"params", combos[i]},
                     {"repetition", 0},
                     {"throughput_rps", throughput(combos[i])},
                     {"timelines", {{"requests_sampled", sampled_requests(20)}}}});
  }
  return {{"schema", results_schema},
          {"scenario",
           {{"name", "synthetic"}, {"pool", {{"size", 4}}}, {"load", {{"model", model}, {"concurrency", 4}}}, {"sweep", sweep}}},
          {"cases", cases}};
}

json pool_size_sweep() {
  return make_results({{"pool.size", {1, 2, 4, 8, 16, 32}}},
                      [](const json& p) { return truth(p.at("pool.size").get<double>()); });
}

TEST(PlanCapacity, RecoversCurveAndServiceTime) {
  const auto plan = plan_capacity(pool_size_sweep(), {.rate = 3000, .p99_ms = 10});
  ASSERT_TRUE(plan) << plan.error().message;
  EXPECT_EQ(plan->axis, "pool.size");
  EXPECT_EQ(plan->points.size(), 6u);
  EXPECT_NEAR(plan->fit.lambda, lambda, 1e-3);
  EXPECT_NEAR(plan->fit.sigma, sigma, 1e-6);
  EXPECT_NEAR(plan->fit.kappa, kappa, 1e-8);
  EXPECT_NEAR(plan->service_mean_s, 1e-3, 1e-12);
  EXPECT_EQ(plan->service_samples, 6u * 20);  // the failed request is left out
}

TEST(PlanCapacity, CurveLiftsTheErlangSize) {
  const auto plan = plan_capacity(pool_size_sweep(), {.rate = 3000, .p99_ms = 10});
  ASSERT_TRUE(plan);
  EXPECT_EQ(plan->queueing_servers, 4u);
  EXPECT_EQ(plan->curve_servers, 5u);  // X(4) = 3442 < 3600 <= X(5) = 4098
  EXPECT_EQ(plan->recommended, 5u);
  EXPECT_TRUE(plan->reasons.empty());
  bool has_row = false;
  for (const auto& s : plan->sizes) {
    if (s.servers == 5) {
      has_row = true;
      EXPECT_TRUE(s.meets_target);
      EXPECT_NEAR(s.usl_throughput, truth(5), 1e-3);
    }
    if (s.servers == 4) {
      EXPECT_FALSE(s.meets_target);
    }
  }
  EXPECT_TRUE(has_row);
}

TEST(PlanCapacity, QueueingDecidesWhenTheCurveHasRoom) {
  // 2000 req/s: 3 workers by Erlang C; the curve carries 2400 req/s from 3 (X(3) = 2712).
  const auto plan = plan_capacity(pool_size_sweep(), {.rate = 2000, .p99_ms = 10});
  ASSERT_TRUE(plan);
  EXPECT_EQ(plan->queueing_servers, 3u);
  EXPECT_EQ(plan->recommended, 3u);
  // A tighter p99 needs more workers: 5 for 6 ms at 3000 req/s.
  const auto tight = plan_capacity(pool_size_sweep(), {.rate = 3000, .p99_ms = 6});
  ASSERT_TRUE(tight);
  EXPECT_EQ(tight->queueing_servers, 5u);
}

TEST(PlanCapacity, BeyondReachWhenServiceAloneExceedsTheTarget) {
  // ln(100) x 1 ms = 4.6 ms is the p99 of the service alone.
  const auto plan = plan_capacity(pool_size_sweep(), {.rate = 100, .p99_ms = 4});
  ASSERT_TRUE(plan);
  EXPECT_FALSE(plan->recommended);
  EXPECT_FALSE(plan->queueing_servers);
  ASSERT_FALSE(plan->reasons.empty());
  EXPECT_NE(plan->reasons.front().find("service alone"), std::string::npos) << plan->reasons.front();
  const auto slower = plan_capacity(pool_size_sweep(), {.rate = 100, .p99_ms = 0.5});
  ASSERT_TRUE(slower);
  EXPECT_NE(slower->reasons.front().find("mean service time alone"), std::string::npos) << slower->reasons.front();
}

TEST(PlanCapacity, BeyondReachWhenTheRateExceedsTheCeiling) {
  // 8000 req/s with 20% headroom is 9600 req/s, above X(N*) = 9038.
  const auto plan = plan_capacity(pool_size_sweep(), {.rate = 8000, .p99_ms = 10});
  ASSERT_TRUE(plan);
  EXPECT_FALSE(plan->recommended);
  EXPECT_TRUE(plan->queueing_servers);
  EXPECT_FALSE(plan->curve_servers);
  ASSERT_EQ(plan->reasons.size(), 1u);
  EXPECT_NE(plan->reasons[0].find("beyond the USL ceiling"), std::string::npos) << plan->reasons[0];
  EXPECT_NE(plan->reasons[0].find("--headroom"), std::string::npos) << plan->reasons[0];
  // Without headroom the curve reaches 8000 req/s at 16 workers (X(15) = 7853, X(16) = 8040).
  const auto no_headroom = plan_capacity(pool_size_sweep(), {.rate = 8000, .p99_ms = 10, .headroom = 0});
  ASSERT_TRUE(no_headroom);
  EXPECT_EQ(no_headroom->recommended, 16u);
  const auto far = plan_capacity(pool_size_sweep(), {.rate = 20000, .p99_ms = 10});
  ASSERT_TRUE(far);
  EXPECT_FALSE(far->recommended);
  EXPECT_EQ(far->reasons[0].find("--headroom"), std::string::npos);
}

TEST(PlanCapacity, ConcurrencyAxisWithOtherAxesFixed) {
  // Concurrency swept against a pool of 4 and a start-up delay that halves throughput: the
  // default fits the first start-up value, --where the other.
  const auto results = make_results(
      {{"load.concurrency", {1, 2, 4, 8}}, {"worker.startup_ms", {0, 400}}}, [](const json& p) {
        return truth(p.at("load.concurrency").get<double>()) / (p.at("worker.startup_ms") == 0 ? 1 : 2);
      });
  const auto plan = plan_capacity(results, {.rate = 1000, .p99_ms = 10});
  ASSERT_TRUE(plan) << plan.error().message;
  EXPECT_EQ(plan->axis, "load.concurrency");
  ASSERT_EQ(plan->fixed.size(), 1u);
  EXPECT_EQ(plan->fixed[0].second, 0);
  EXPECT_NEAR(plan->fit.lambda, lambda, 1e-3);
  bool noted = false;
  for (const auto& note : plan->notes) noted = noted || note.find("pool of 4 workers") != std::string::npos;
  EXPECT_TRUE(noted);
  const auto other = plan_capacity(results, {.rate = 1000, .p99_ms = 10, .where = {"worker.startup_ms=400"}});
  ASSERT_TRUE(other) << other.error().message;
  EXPECT_NEAR(other->fit.lambda, lambda / 2, 1e-3);
  EXPECT_FALSE(plan_capacity(results, {.rate = 1000, .p99_ms = 10, .where = {"worker.startup_ms=7"}}));
  EXPECT_FALSE(plan_capacity(results, {.rate = 1000, .p99_ms = 10, .where = {"pool.size=7"}}));
  EXPECT_FALSE(plan_capacity(results, {.rate = 1000, .p99_ms = 10, .axis = "pool.size"}));
}

TEST(PlanCapacity, PoolSizePreferredWithTheLargestConcurrency) {
  // Throughput is limited by min(pool size, concurrency); the largest concurrency keeps every
  // pool size busy, so the fit sees the pool's own curve.
  const auto results = make_results({{"pool.size", {1, 2, 4, 8}}, {"load.concurrency", {1, 8}}}, [](const json& p) {
    return truth(std::min(p.at("pool.size").get<double>(), p.at("load.concurrency").get<double>()));
  });
  const auto plan = plan_capacity(results, {.rate = 1000, .p99_ms = 10});
  ASSERT_TRUE(plan) << plan.error().message;
  EXPECT_EQ(plan->axis, "pool.size");
  EXPECT_EQ(plan->fixed[0].second, 8);
  EXPECT_NEAR(plan->fit.sigma, sigma, 1e-6);
}

TEST(PlanCapacity, UsageErrors) {
  // Three points are too few.
  const auto three = make_results({{"pool.size", {1, 2, 4}}}, [](const json& p) { return truth(p.at("pool.size").get<double>()); });
  const auto too_few = plan_capacity(three, {.rate = 1000, .p99_ms = 10});
  ASSERT_FALSE(too_few);
  EXPECT_NE(too_few.error().message.find("at least 4 points"), std::string::npos) << too_few.error().message;
  // No sweep of a concurrency-like axis.
  const auto other_axis =
      make_results({{"worker.init_ms", {0, 1, 2, 3}}}, [](const json&) { return 1000.0; });
  EXPECT_FALSE(plan_capacity(other_axis, {.rate = 1000, .p99_ms = 10}));
  // An open loop's throughput is its arrival rate.
  const auto open = make_results({{"pool.size", {1, 2, 4, 8}}}, [](const json&) { return 500.0; }, "open");
  const auto refused = plan_capacity(open, {.rate = 1000, .p99_ms = 10});
  ASSERT_FALSE(refused);
  EXPECT_NE(refused.error().message.find("open loop"), std::string::npos);
  // No sampled requests: no service time.
  auto blind = pool_size_sweep();
  for (auto& c : blind["cases"]) c["timelines"]["requests_sampled"] = json::array();
  EXPECT_FALSE(plan_capacity(blind, {.rate = 1000, .p99_ms = 10}));
  // Bad targets and documents.
  EXPECT_FALSE(plan_capacity(pool_size_sweep(), {.rate = 0, .p99_ms = 10}));
  EXPECT_FALSE(plan_capacity(pool_size_sweep(), {.rate = 10, .p99_ms = -1}));
  EXPECT_FALSE(plan_capacity(json{{"schema", "x"}}, {.rate = 10, .p99_ms = 10}));
}

TEST(PlanCapacity, CasesThatFailedToStartAreLeftOut) {
  auto results = pool_size_sweep();
  results["cases"][0]["error"] = {{"type", "start_failed"}, {"message", "no"}};
  results["cases"][0]["throughput_rps"] = 0;
  const auto plan = plan_capacity(results, {.rate = 3000, .p99_ms = 10});
  ASSERT_TRUE(plan);
  EXPECT_EQ(plan->points.size(), 5u);
  EXPECT_NEAR(plan->fit.sigma, sigma, 1e-6);
}

TEST(PlanCapacity, RenderingsCarryTheRecommendation) {
  const auto plan = plan_capacity(pool_size_sweep(), {.rate = 3000, .p99_ms = 10});
  ASSERT_TRUE(plan);
  const std::string md = plan_markdown(*plan);
  EXPECT_NE(md.find("**Recommendation: a pool of 5 workers.**"), std::string::npos) << md;
  const json j = plan_json(*plan);
  EXPECT_EQ(j.at("recommended_workers"), 5);
  EXPECT_EQ(j.at("queueing_workers"), 4);
  EXPECT_EQ(j.at("reachable"), true);
  EXPECT_NEAR(j.at("usl").at("sigma").get<double>(), sigma, 1e-6);
  EXPECT_NEAR(j.at("service_time").at("mean_ms").get<double>(), 1, 1e-9);
  const auto beyond = plan_capacity(pool_size_sweep(), {.rate = 100, .p99_ms = 4});
  ASSERT_TRUE(beyond);
  EXPECT_NE(plan_markdown(*beyond).find("beyond reach"), std::string::npos);
  EXPECT_TRUE(plan_json(*beyond).at("recommended_workers").is_null());
}

// ---- The command: exit codes ----

class PlanCommand : public testing::with_scratch_dir<> {
 protected:
  void SetUp() override {
    with_scratch_dir::SetUp();
    results_ = (dir_ / "results.json").string();
    std::ofstream(results_) << pool_size_sweep().dump();
  }

  int run(const std::string& args) {
    CLI::App app;
    int exit_code = -1;
    add_plan_command(app, exit_code);
    try {
      app.parse("plan " + args, false);
    } catch (const CLI::ParseError&) {
      return exit_usage;
    }
    return exit_code;
  }

  std::string results_;
};

TEST_F(PlanCommand, ExitCodesAndFiles) {
  const auto json_path = dir_ / "plan.json";
  const auto md_path = dir_ / "plan.md";
  EXPECT_EQ(run(results_ + " --rate 3000 --p99-ms 10 --json " + json_path.string() + " --markdown " +
                md_path.string()),
            exit_ok);
  std::ifstream in(json_path);
  const json written = json::parse(in);
  EXPECT_EQ(written.at("recommended_workers"), 5);
  EXPECT_TRUE(std::filesystem::file_size(md_path) > 0);
  EXPECT_EQ(run(results_ + " --rate 100 --p99-ms 4"), exit_failed);
  EXPECT_EQ(run(results_ + " --rate 0 --p99-ms 4"), exit_usage);
  EXPECT_EQ(run(results_ + " --p99-ms 4"), exit_usage);
  EXPECT_EQ(run((dir_ / "missing.json").string() + " --rate 100 --p99-ms 4"), exit_usage);
}

}  // namespace
}  // namespace procpool::harness
