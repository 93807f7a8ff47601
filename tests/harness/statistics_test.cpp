#include "statistics/statistics.hpp"

#include <gtest/gtest.h>

#include <cmath>
#include <limits>
#include <random>
#include <utility>
#include <vector>

// Reference values come from exact computations independent of this code: Fisher's and the
// exact Mann-Whitney p-values by enumerating every table or rank subset with rational
// arithmetic, Erlang C by the textbook formula with factorials, chi-square tail areas by their
// closed forms for 1, 2 and 3 degrees of freedom; R's documented examples agree where they
// exist (fisher.test on the tea-tasting table, wilcox.test on the depression data).

namespace procpool::harness {
namespace {

constexpr double infinity = std::numeric_limits<double>::infinity();

std::vector<usl_point> usl_curve(double lambda, double sigma, double kappa, const std::vector<double>& ns) {
  std::vector<usl_point> points;
  const usl_fit truth{.lambda = lambda, .sigma = sigma, .kappa = kappa};
  for (double n : ns) points.push_back({n, usl_throughput(truth, n)});
  return points;
}

// ---- USL ----

TEST(FitUsl, RecoversExactParameters) {
  const auto points = usl_curve(1000, 0.05, 0.002, {1, 2, 4, 8, 16, 24, 32});
  const auto fit = fit_usl(points);
  ASSERT_TRUE(fit);
  EXPECT_NEAR(fit->lambda, 1000, 1e-3);
  EXPECT_NEAR(fit->sigma, 0.05, 1e-6);
  EXPECT_NEAR(fit->kappa, 0.002, 1e-8);
  EXPECT_NEAR(fit->r_squared, 1, 1e-12);
  EXPECT_NEAR(fit->peak_n, std::sqrt(0.95 / 0.002), 1e-3);
  EXPECT_NEAR(fit->peak_throughput, usl_throughput(*fit, fit->peak_n), 1e-9);
  EXPECT_EQ(fit->points, points.size());
}

TEST(FitUsl, RecoversParametersFromNoisyRepetitions) {
  // Three repetitions per N with +-3% multiplicative noise.
  std::mt19937 rng(12345);
  std::uniform_real_distribution<double> noise(-0.03, 0.03);
  std::vector<usl_point> points;
  for (int rep = 0; rep < 3; ++rep) {
    for (const auto& p : usl_curve(500, 0.08, 0.004, {1, 2, 3, 4, 6, 8, 12, 16, 24, 32})) {
      points.push_back({p.n, p.throughput * (1 + noise(rng))});
    }
  }
  const auto fit = fit_usl(points);
  ASSERT_TRUE(fit);
  EXPECT_NEAR(fit->lambda, 500, 25);
  EXPECT_NEAR(fit->sigma, 0.08, 0.03);
  EXPECT_NEAR(fit->kappa, 0.004, 0.0015);
  EXPECT_GT(fit->r_squared, 0.95);
  EXPECT_NEAR(fit->peak_n, std::sqrt(0.92 / 0.004), 3);
}

TEST(FitUsl, LinearDataHasNoContentionAndNoPeak) {
  const auto fit = fit_usl(usl_curve(250, 0, 0, {1, 2, 4, 8, 16}));
  ASSERT_TRUE(fit);
  EXPECT_NEAR(fit->lambda, 250, 1e-9);
  EXPECT_EQ(fit->sigma, 0);
  EXPECT_EQ(fit->kappa, 0);
  EXPECT_EQ(fit->peak_n, infinity);
  EXPECT_EQ(fit->peak_throughput, infinity);
  EXPECT_NEAR(fit->r_squared, 1, 1e-12);
}

TEST(FitUsl, ContentionOnlyHasCeilingLambdaOverSigma) {
  const auto fit = fit_usl(usl_curve(100, 0.25, 0, {1, 2, 4, 8, 16, 64}));
  ASSERT_TRUE(fit);
  EXPECT_NEAR(fit->sigma, 0.25, 1e-6);
  EXPECT_LT(fit->kappa, 1e-9);
  if (fit->kappa == 0) {
    EXPECT_EQ(fit->peak_n, infinity);
    EXPECT_NEAR(fit->peak_throughput, 400, 1e-3);
  }
}

TEST(FitUsl, SaturatedFlatDataFitsFullContention) {
  // A pool of fixed size driven at rising concurrency: throughput flat from N = 1.
  std::vector<usl_point> points = {{1, 900}, {2, 900}, {4, 900}, {8, 900}};
  const auto fit = fit_usl(points);
  ASSERT_TRUE(fit);
  EXPECT_NEAR(fit->sigma, 1, 1e-6);
  EXPECT_NEAR(fit->lambda, 900, 1e-3);
  EXPECT_NEAR(usl_throughput(*fit, 8), 900, 1);
}

TEST(FitUsl, RefusesTooFewPointsOrNonPositiveThroughput) {
  EXPECT_FALSE(fit_usl(usl_curve(100, 0.1, 0.01, {1, 2, 4})));
  // Four points but only three distinct N.
  EXPECT_FALSE(fit_usl(usl_curve(100, 0.1, 0.01, {1, 2, 4, 4})));
  auto zero = usl_curve(100, 0.1, 0.01, {1, 2, 4, 8});
  zero[2].throughput = 0;
  EXPECT_FALSE(fit_usl(zero));
  auto below_one = usl_curve(100, 0.1, 0.01, {1, 2, 4, 8});
  below_one[0].n = 0;
  EXPECT_FALSE(fit_usl(below_one));
  EXPECT_FALSE(fit_usl({}));
}

// ---- Mann-Whitney ----

TEST(MannWhitney, ExactSmallSamples) {
  const std::vector<double> a = {1.1, 2.3, 3.5, 4.0, 5.2};
  const std::vector<double> b = {6.1, 7.4, 8.0, 9.9, 10.5, 3.9};
  const auto r = mann_whitney_u(a, b);
  ASSERT_TRUE(r);
  EXPECT_EQ(r->u, 2);
  EXPECT_NEAR(r->p_value, 0.017316017316017316, 1e-12);
  EXPECT_EQ(r->n1, 5u);
  EXPECT_EQ(r->n2, 6u);
}

TEST(MannWhitney, ExactMatchesRDepressionExample) {
  // R: wilcox.test(x, y) gives W = 35, p-value = 0.2544.
  const std::vector<double> x = {0.80, 0.83, 1.89, 1.04, 1.45, 1.38, 1.91, 1.64, 0.73, 1.46};
  const std::vector<double> y = {1.15, 0.88, 0.90, 0.74, 1.21};
  const auto r = mann_whitney_u(x, y);
  ASSERT_TRUE(r);
  EXPECT_EQ(r->u, 35);
  EXPECT_NEAR(r->p_value, 0.2544122544122544, 1e-12);
  // Swapping the samples mirrors U and keeps the two-sided p-value.
  const auto swapped = mann_whitney_u(y, x);
  ASSERT_TRUE(swapped);
  EXPECT_EQ(swapped->u, 15);
  EXPECT_NEAR(swapped->p_value, r->p_value, 1e-12);
}

TEST(MannWhitney, ExactSmallestPossiblePValue) {
  // Complete separation of 3 and 3: 2 / C(6, 3) = 0.1, never below 0.05.
  const std::vector<double> a = {1, 2, 3};
  const std::vector<double> b = {4, 5, 6};
  EXPECT_NEAR(mann_whitney_u(a, b)->p_value, 0.1, 1e-12);
  const std::vector<double> a4 = {1, 2, 3, 3.5};
  const std::vector<double> b4 = {4, 5, 6, 7};
  EXPECT_NEAR(mann_whitney_u(a4, b4)->p_value, 2.0 / 70, 1e-12);
}

TEST(MannWhitney, NormalApproximationWithTies) {
  const std::vector<double> a = {1, 2, 2, 3, 3, 3, 4, 5};
  const std::vector<double> b = {3, 4, 4, 5, 5, 6, 6, 7, 8};
  const auto r = mann_whitney_u(a, b);
  ASSERT_TRUE(r);
  EXPECT_EQ(r->u, 7.5);
  EXPECT_NEAR(r->p_value, 0.006373133838085877, 1e-9);
}

TEST(MannWhitney, NormalApproximationForLargeSamples) {
  std::vector<double> a;
  std::vector<double> b;
  for (int i = 0; i < 25; ++i) {
    a.push_back(i);
    b.push_back(i + 5.5);
  }
  const auto r = mann_whitney_u(a, b);
  ASSERT_TRUE(r);
  EXPECT_EQ(r->u, 190);
  EXPECT_NEAR(r->p_value, 0.017925777357406487, 1e-9);
}

TEST(MannWhitney, IdenticalSamplesAreNotSignificant) {
  const std::vector<double> same(30, 4.0);
  const auto r = mann_whitney_u(same, same);
  ASSERT_TRUE(r);
  EXPECT_EQ(r->p_value, 1);
  const std::vector<double> a = {1, 2, 3, 4, 5, 6, 7, 8};
  EXPECT_EQ(mann_whitney_u(a, a)->p_value, 1);
}

TEST(MannWhitney, EmptySampleHasNoResult) {
  const std::vector<double> a = {1, 2};
  EXPECT_FALSE(mann_whitney_u(a, {}));
  EXPECT_FALSE(mann_whitney_u({}, a));
}

// ---- Fisher ----

TEST(FisherExact, TeaTasting) {
  EXPECT_NEAR(fisher_exact_two_sided(3, 1, 1, 3), 0.4857142857142857, 1e-12);
  EXPECT_NEAR(fisher_exact_greater(3, 1, 1, 3), 0.24285714285714285, 1e-12);
}

TEST(FisherExact, KnownTables) {
  EXPECT_NEAR(fisher_exact_two_sided(1, 9, 11, 3), 0.0027594561852200836, 1e-12);
  EXPECT_NEAR(fisher_exact_greater(1, 9, 11, 3), 0.9999663480953022, 1e-12);
  EXPECT_NEAR(fisher_exact_two_sided(10, 2, 3, 15), 0.0005367241191434358, 1e-12);
  EXPECT_NEAR(fisher_exact_greater(10, 2, 3, 15), 0.00046518094336290503, 1e-12);
  // 7 of 10 failing against none of 10.
  EXPECT_NEAR(fisher_exact_two_sided(7, 3, 0, 10), 0.0030959752321981426, 1e-12);
  EXPECT_NEAR(fisher_exact_greater(7, 3, 0, 10), 0.0015479876160990713, 1e-12);
}

TEST(FisherExact, NoFailuresAnywhereIsNoEvidence) {
  EXPECT_EQ(fisher_exact_two_sided(0, 10, 0, 10), 1);
  EXPECT_EQ(fisher_exact_greater(0, 10, 0, 10), 1);
  EXPECT_EQ(fisher_exact_two_sided(0, 0, 0, 0), 1);
}

// ---- Chi-square ----

TEST(ChiSquare, KnownTables) {
  const std::vector<std::pair<std::uint64_t, std::uint64_t>> two = {{10, 90}, {25, 75}};
  EXPECT_NEAR(chi_square_independence(two), 0.00524720373911564, 1e-12);
  const std::vector<std::pair<std::uint64_t, std::uint64_t>> three = {{5, 95}, {10, 90}, {20, 80}};
  EXPECT_NEAR(chi_square_independence(three), 0.003481202988814607, 1e-12);
  const std::vector<std::pair<std::uint64_t, std::uint64_t>> four = {{3, 97}, {4, 96}, {2, 98}, {12, 88}};
  EXPECT_NEAR(chi_square_independence(four), 0.005548578199760869, 1e-12);
}

TEST(ChiSquare, EmptyRowsAreLeftOut) {
  const std::vector<std::pair<std::uint64_t, std::uint64_t>> rows = {{10, 90}, {0, 0}, {25, 75}};
  EXPECT_NEAR(chi_square_independence(rows), 0.00524720373911564, 1e-12);
}

TEST(ChiSquare, DegenerateTablesGiveOne) {
  const std::vector<std::pair<std::uint64_t, std::uint64_t>> no_failures = {{0, 50}, {0, 70}};
  EXPECT_EQ(chi_square_independence(no_failures), 1);
  const std::vector<std::pair<std::uint64_t, std::uint64_t>> one_row = {{5, 50}, {0, 0}};
  EXPECT_EQ(chi_square_independence(one_row), 1);
  const std::vector<std::pair<std::uint64_t, std::uint64_t>> equal = {{10, 90}, {10, 90}};
  EXPECT_NEAR(chi_square_independence(equal), 1, 1e-12);
}

// ---- Erlang C ----

TEST(ErlangC, TextbookValues) {
  // Offered load 5 Erlangs on 7 servers.
  const auto r = erlang_c(10, 0.5, 7);
  EXPECT_TRUE(r.stable);
  EXPECT_NEAR(r.utilisation, 5.0 / 7, 1e-12);
  EXPECT_NEAR(r.wait_probability, 0.324149949173288, 1e-12);
  EXPECT_NEAR(r.mean_wait_s, 0.081037487293322, 1e-12);
  const auto s = erlang_c(100, 0.1, 12);
  EXPECT_NEAR(s.wait_probability, 0.4493882242982709, 1e-12);
  EXPECT_NEAR(s.mean_wait_s, 0.022469411214913547, 1e-12);
}

TEST(ErlangC, ResponseTimeQuantiles) {
  const auto r = erlang_c(10, 0.5, 7);
  EXPECT_NEAR(r.response_quantile_s(0.99), 2.442043510938547, 1e-9);
  EXPECT_NEAR(r.response_quantile_s(0.5), 0.43257756797769886, 1e-9);
  // Wait rate equal to the service rate (3 servers, 2 Erlangs): the limit form of the CDF.
  EXPECT_NEAR(erlang_c(2, 1, 3).response_quantile_s(0.99), 5.8911744166032385, 1e-9);
  // With no arrivals the response time is the exponential service alone.
  EXPECT_NEAR(erlang_c(0, 0.5, 1).response_quantile_s(0.99), -std::log(0.01) * 0.5, 1e-9);
}

TEST(ErlangC, UnstableWhenOfferedLoadReachesServers) {
  const auto r = erlang_c(10, 0.5, 5);
  EXPECT_FALSE(r.stable);
  EXPECT_EQ(r.wait_probability, 1);
  EXPECT_EQ(r.mean_wait_s, infinity);
  EXPECT_EQ(r.response_quantile_s(0.99), infinity);
  EXPECT_FALSE(erlang_c(10, 0.5, 0).stable);
}

TEST(ErlangC, ServersForTarget) {
  // p99 at 6 servers is 3.07 s, at 7 servers 2.44 s.
  EXPECT_EQ(erlang_c_servers_for(10, 0.5, 0.99, 2.5), 7u);
  EXPECT_EQ(erlang_c_servers_for(10, 0.5, 0.99, 3.1), 6u);
  // Close to the service-only bound ln(100) * 0.5 = 2.3026 s: 10 servers give 2.3071 s.
  EXPECT_EQ(erlang_c_servers_for(10, 0.5, 0.99, 2.31), 10u);
  // Below the service-only bound no pool size is enough.
  EXPECT_FALSE(erlang_c_servers_for(10, 0.5, 0.99, 2.3));
  // The cap is honoured.
  EXPECT_FALSE(erlang_c_servers_for(10, 0.5, 0.99, 2.31, 9));
  EXPECT_FALSE(erlang_c_servers_for(1e6, 0.5, 0.99, 10, 1000));
}

}  // namespace
}  // namespace procpool::harness
