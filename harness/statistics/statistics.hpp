// The statistics the diagnosis, `compare` and `plan` rest on: the Universal Scalability Law
// fit, the Mann-Whitney U test, Fisher's exact test, a chi-square test of independence, and
// Erlang C (M/M/c) queueing. Distributions and p-values come from Boost.Math.
//
//   std::vector<usl_point> sweep = {{1, 950}, {2, 1800}, {4, 3100}, {8, 3900}};
//   if (auto fit = fit_usl(sweep)) fmt::print("sigma {:.3f}, peak at N={:.1f}\n", fit->sigma, fit->peak_n);
//
// Nothing here throws on bad data: a fit or test that cannot be computed (too few points,
// empty samples) is std::nullopt.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <utility>
#include <vector>

namespace procpool::harness {

// ---- Universal Scalability Law: X(N) = lambda N / (1 + sigma (N - 1) + kappa N (N - 1)) ----

struct usl_point {
  double n = 0;           // concurrency or pool size
  double throughput = 0;  // requests per second
};

struct usl_fit {
  double lambda = 0;  // throughput of one unit (N = 1)
  double sigma = 0;   // contention, in [0, 1]
  double kappa = 0;   // coherency, >= 0
  double r_squared = 0;  // of the fitted throughput against the measured one
  double peak_n = 0;     // N* = sqrt((1 - sigma) / kappa); +infinity when kappa == 0
  double peak_throughput = 0;  // X(N*), or lambda / sigma as N -> infinity when kappa == 0
  std::size_t points = 0;
};

// Least-squares fit with sigma, kappa >= 0. REQUIRES nothing; returns nullopt with fewer than
// 4 points (distinct N), or when the throughputs are not all positive, or an N is below 1.
// Several points may share an N (repetitions): each counts as a point.
std::optional<usl_fit> fit_usl(std::span<const usl_point> points);

// X(n) under the fit.
double usl_throughput(const usl_fit& fit, double n) noexcept;

// ---- Tests ----

struct mann_whitney_result {
  double u = 0;        // U of the first sample
  double p_value = 1;  // two-sided
  std::size_t n1 = 0;
  std::size_t n2 = 0;
};

// Two-sided Mann-Whitney U test (exact for small samples without ties, normal approximation
// with tie and continuity correction otherwise). nullopt when either sample is empty.
std::optional<mann_whitney_result> mann_whitney_u(std::span<const double> a, std::span<const double> b);

// Fisher's exact test on the 2x2 table [[a, b], [c, d]] (for example failures and passes in
// two environments). Two-sided p-value (sum of tables no more likely than the observed one).
double fisher_exact_two_sided(std::uint64_t a, std::uint64_t b, std::uint64_t c, std::uint64_t d);
// One-sided: the probability of a table with at least `a` in the top-left cell (first row
// fails more often than the second), margins fixed.
double fisher_exact_greater(std::uint64_t a, std::uint64_t b, std::uint64_t c, std::uint64_t d);

// Chi-square test of independence on an r x 2 table of {failures, successes} per row (for
// example timeouts per value of a swept axis). p-value; 1 when the table has fewer than two
// non-empty rows or no failures at all.
double chi_square_independence(std::span<const std::pair<std::uint64_t, std::uint64_t>> rows);

// ---- Erlang C: M/M/c with arrival rate `rate` (1/s) and mean service time `service_s` ----

struct erlang_c_result {
  bool stable = false;        // offered load < servers
  double utilisation = 0;     // rate * service_s / servers
  double wait_probability = 0;  // P(wait > 0), the Erlang C formula
  double mean_wait_s = 0;
  // Quantile of the response time (wait + service), with exponential service; +infinity when
  // unstable.
  double response_quantile_s(double q) const;
  double rate = 0;
  double service_s = 0;
  std::size_t servers = 0;
};

erlang_c_result erlang_c(double rate, double service_s, std::size_t servers);

// The smallest number of servers whose response-time quantile q is at most `target_s`, up to
// `max_servers`; nullopt when even that many are not enough.
std::optional<std::size_t> erlang_c_servers_for(double rate, double service_s, double q,
                                                double target_s, std::size_t max_servers = 100'000);

}  // namespace procpool::harness
