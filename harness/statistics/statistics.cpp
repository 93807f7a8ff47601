#include "statistics/statistics.hpp"

#include <algorithm>
#include <array>
#include <climits>
#include <cmath>
#include <limits>
#include <numeric>

#include <boost/math/distributions/chi_squared.hpp>
#include <boost/math/distributions/hypergeometric.hpp>
#include <boost/math/distributions/normal.hpp>

namespace procpool::harness {
namespace {

constexpr double infinity = std::numeric_limits<double>::infinity();

// ---- USL ----

// For fixed sigma and kappa the model is linear in lambda, so lambda has a closed form and
// the fit is a search over two bounded coefficients only.
struct usl_profile {
  double sse = infinity;
  double lambda = 0;
};

usl_profile profile_at(std::span<const usl_point> points, double sigma, double kappa) {
  double xg = 0;
  double gg = 0;
  for (const auto& p : points) {
    const double g = p.n / (1 + sigma * (p.n - 1) + kappa * p.n * (p.n - 1));
    xg += p.throughput * g;
    gg += g * g;
  }
  if (!(gg > 0)) return {};
  usl_profile out{.sse = 0, .lambda = xg / gg};
  for (const auto& p : points) {
    const double g = p.n / (1 + sigma * (p.n - 1) + kappa * p.n * (p.n - 1));
    const double r = p.throughput - out.lambda * g;
    out.sse += r * r;
  }
  return out;
}

// ---- Mann-Whitney ----

// Average ranks (from 1), ties sharing the mean of their positions; also the tie term
// sum(t^3 - t) over tie groups, for the variance correction.
struct ranking {
  std::vector<double> ranks;
  double tie_term = 0;
};

ranking rank_all(std::span<const double> values) {
  std::vector<std::size_t> order(values.size());
  std::iota(order.begin(), order.end(), std::size_t{0});
  std::sort(order.begin(), order.end(),
            [&](std::size_t x, std::size_t y) { return values[x] < values[y]; });
  ranking out{.ranks = std::vector<double>(values.size()), .tie_term = 0};
  for (std::size_t i = 0; i < order.size();) {
    std::size_t j = i;
    while (j + 1 < order.size() && values[order[j + 1]] == values[order[i]]) ++j;
    const double rank = (double(i) + double(j)) / 2 + 1;
    for (std::size_t k = i; k <= j; ++k) out.ranks[order[k]] = rank;
    const double t = double(j - i + 1);
    out.tie_term += t * t * t - t;
    i = j + 1;
  }
  return out;
}

// Largest sample size (each side) for which the exact null distribution is used.
constexpr std::size_t exact_limit = 20;

// The null distribution of U for samples of n1 and n2 without ties: the number of ways to
// pick n1 of the ranks 1..n1+n2 with each rank sum, shifted to U. Counts fit a double exactly
// up to C(40, 20) ~ 1.4e11.
std::vector<double> exact_u_counts(std::size_t n1, std::size_t n2) {
  const std::size_t n = n1 + n2;
  const std::size_t max_sum = n1 * n - n1 * (n1 - 1) / 2;
  // ways[k][s]: subsets of size k of the ranks seen so far with sum s.
  std::vector<std::vector<double>> ways(n1 + 1, std::vector<double>(max_sum + 1, 0));
  ways[0][0] = 1;
  for (std::size_t rank = 1; rank <= n; ++rank) {
    for (std::size_t k = std::min(rank, n1); k >= 1; --k) {
      for (std::size_t s = max_sum; s >= rank; --s) ways[k][s] += ways[k - 1][s - rank];
    }
  }
  const std::size_t min_sum = n1 * (n1 + 1) / 2;
  return {ways[n1].begin() + static_cast<std::ptrdiff_t>(min_sum), ways[n1].end()};
}

// ---- Fisher ----

// P(top-left cell = x) with the table's margins fixed: hypergeometric.
class fixed_margins {
 public:
  fixed_margins(std::uint64_t a, std::uint64_t b, std::uint64_t c, std::uint64_t d)
      : row1_(a + b), col1_(a + c), total_(a + b + c + d) {
    lowest_ = col1_ > c + d ? col1_ - (c + d) : 0;
    highest_ = std::min(row1_, col1_);
  }

  std::uint64_t lowest() const { return lowest_; }
  std::uint64_t highest() const { return highest_; }

  double probability(std::uint64_t x) const {
    if (total_ <= UINT_MAX) {
      const boost::math::hypergeometric_distribution<double> dist(
          static_cast<unsigned>(row1_), static_cast<unsigned>(col1_), static_cast<unsigned>(total_));
      return boost::math::pdf(dist, static_cast<unsigned>(x));
    }
    // Beyond Boost's unsigned parameters: log-factorials are precise enough at this scale.
    const auto log_choose = [](double n, double k) {
      return std::lgamma(n + 1) - std::lgamma(k + 1) - std::lgamma(n - k + 1);
    };
    const double row2 = double(total_ - row1_);
    return std::exp(log_choose(double(row1_), double(x)) +
                    log_choose(row2, double(col1_ - x)) - log_choose(double(total_), double(col1_)));
  }

 private:
  std::uint64_t row1_;
  std::uint64_t col1_;
  std::uint64_t total_;
  std::uint64_t lowest_ = 0;
  std::uint64_t highest_ = 0;
};

// ---- Erlang C ----

// Erlang B by its stable recurrence B(k) = a B(k-1) / (k + a B(k-1)); no factorials, so it
// holds for any number of servers.
double erlang_b(double offered, std::size_t servers) {
  double b = 1;
  for (std::size_t k = 1; k <= servers; ++k) b = offered * b / (double(k) + offered * b);
  return b;
}

// (1 - e^-x) / x, continuous through x = 0.
double one_minus_exp_over(double x) { return std::abs(x) < 1e-12 ? 1 - x / 2 : -std::expm1(-x) / x; }

}  // namespace

// ---- USL ----

namespace {

// kappa matters once kappa N (N - 1) is comparable to 1, so it is searched as
// u = kappa N (N - 1) at the largest N: on a log grid over ten decades, plus zero.
constexpr int sigma_steps = 200;
constexpr int kappa_steps = 200;
constexpr double u_low_exp = -7;
constexpr double u_high_exp = 3;

// The best (sigma, u) found so far and its profile.
struct usl_search {
  double sigma = 0;
  double u = 0;
  usl_profile profile;

  void consider(std::span<const usl_point> points, double kappa_scale, double s, double u_try) {
    const auto candidate = profile_at(points, s, u_try / kappa_scale);
    if (candidate.sse < profile.sse) *this = {s, u_try, candidate};
  }
};

// Points with a positive, finite throughput and N >= 1, at four or more distinct N; the
// largest N, or nothing when the points cannot be fitted.
std::optional<double> usl_fittable(std::span<const usl_point> points) {
  std::vector<double> distinct;
  double max_n = 0;
  for (const auto& p : points) {
    if (!(p.throughput > 0) || !std::isfinite(p.throughput) || !(p.n >= 1) || !std::isfinite(p.n)) {
      return std::nullopt;
    }
    distinct.push_back(p.n);
    max_n = std::max(max_n, p.n);
  }
  std::sort(distinct.begin(), distinct.end());
  distinct.erase(std::unique(distinct.begin(), distinct.end()), distinct.end());
  if (distinct.size() < 4) return std::nullopt;
  return max_n;
}

usl_search usl_grid_search(std::span<const usl_point> points, double kappa_scale) {
  const auto u_at = [](int j) {
    return j == 0 ? 0.0 : std::pow(10.0, u_low_exp + (u_high_exp - u_low_exp) * (j - 1) / (kappa_steps - 1));
  };
  usl_search best{.profile = profile_at(points, 0, 0)};
  for (int i = 0; i <= sigma_steps; ++i) {
    for (int j = 0; j <= kappa_steps; ++j) best.consider(points, kappa_scale, double(i) / sigma_steps, u_at(j));
  }
  return best;
}

// Pattern search (eight directions, steps halved when no move helps), clamped to sigma in
// [0, 1] and kappa >= 0: no derivatives, so no trouble at the bounds.
void usl_refine(std::span<const usl_point> points, double kappa_scale, usl_search& best) {
  double step_sigma = 1.0 / sigma_steps;
  double step_u = best.u > 0 ? best.u * 0.15 : std::pow(10.0, u_low_exp);
  for (int iteration = 0; iteration < 20'000 && (step_sigma > 1e-13 || step_u > 1e-15 * std::max(1.0, best.u));
       ++iteration) {
    const double sse_before = best.profile.sse;
    // Each direction steps from wherever the previous one moved to.
    for (const auto& [ds, du] : std::array<std::pair<int, int>, 8>{
             {{1, 0}, {-1, 0}, {0, 1}, {0, -1}, {1, 1}, {-1, -1}, {1, -1}, {-1, 1}}}) {
      best.consider(points, kappa_scale, std::clamp(best.sigma + ds * step_sigma, 0.0, 1.0),
                    std::max(0.0, best.u + du * step_u));
    }
    if (!(best.profile.sse < sse_before)) {
      step_sigma /= 2;
      step_u /= 2;
    }
  }
}

// R squared, and where the fitted curve peaks.
void usl_summarise(std::span<const usl_point> points, double sse, usl_fit& fit) {
  double mean = 0;
  for (const auto& p : points) mean += p.throughput;
  mean /= double(points.size());
  double total = 0;
  for (const auto& p : points) total += (p.throughput - mean) * (p.throughput - mean);
  fit.r_squared = total > 0 ? 1 - sse / total : (sse == 0 ? 1 : 0);
  if (fit.kappa > 0) {
    // With sigma near 1 the peak falls below one unit; the model is not used below N = 1.
    fit.peak_n = std::max(1.0, std::sqrt((1 - fit.sigma) / fit.kappa));
    fit.peak_throughput = usl_throughput(fit, fit.peak_n);
  } else {
    fit.peak_n = infinity;
    fit.peak_throughput = fit.sigma > 0 ? fit.lambda / fit.sigma : infinity;
  }
}

}  // namespace

std::optional<usl_fit> fit_usl(std::span<const usl_point> points) {
  const auto max_n = usl_fittable(points);
  if (!max_n) return std::nullopt;
  const double kappa_scale = *max_n * (*max_n - 1);
  usl_search best = usl_grid_search(points, kappa_scale);
  usl_refine(points, kappa_scale, best);
  usl_fit fit{.lambda = best.profile.lambda, .sigma = best.sigma, .kappa = best.u / kappa_scale,
              .points = points.size()};
  usl_summarise(points, best.profile.sse, fit);
  return fit;
}

double usl_throughput(const usl_fit& fit, double n) noexcept {
  return fit.lambda * n / (1 + fit.sigma * (n - 1) + fit.kappa * n * (n - 1));
}

// ---- Tests ----

std::optional<mann_whitney_result> mann_whitney_u(std::span<const double> a, std::span<const double> b) {
  if (a.empty() || b.empty()) return std::nullopt;
  std::vector<double> all(a.begin(), a.end());
  all.insert(all.end(), b.begin(), b.end());
  const ranking r = rank_all(all);
  const double n1 = double(a.size());
  const double n2 = double(b.size());
  double rank_sum = 0;
  for (std::size_t i = 0; i < a.size(); ++i) rank_sum += r.ranks[i];
  mann_whitney_result out{.u = rank_sum - n1 * (n1 + 1) / 2, .p_value = 1, .n1 = a.size(), .n2 = b.size()};

  if (r.tie_term == 0 && a.size() <= exact_limit && b.size() <= exact_limit) {
    const auto counts = exact_u_counts(a.size(), b.size());
    const double total = std::accumulate(counts.begin(), counts.end(), 0.0);
    const auto u = static_cast<std::size_t>(std::llround(out.u));
    double at_most = 0;
    double at_least = 0;
    for (std::size_t k = 0; k < counts.size(); ++k) {
      if (k <= u) at_most += counts[k];
      if (k >= u) at_least += counts[k];
    }
    out.p_value = std::min(1.0, 2 * std::min(at_most, at_least) / total);
    return out;
  }

  const double n = n1 + n2;
  const double variance = n1 * n2 / 12 * ((n + 1) - r.tie_term / (n * (n - 1)));
  if (!(variance > 0)) return out;  // every value tied: no evidence of a shift
  const double z = (std::abs(out.u - n1 * n2 / 2) - 0.5) / std::sqrt(variance);
  if (z <= 0) return out;
  const boost::math::normal_distribution<double> standard;
  out.p_value = std::min(1.0, 2 * boost::math::cdf(boost::math::complement(standard, z)));
  return out;
}

double fisher_exact_two_sided(std::uint64_t a, std::uint64_t b, std::uint64_t c, std::uint64_t d) {
  if (a + b == 0 || c + d == 0 || a + c == 0 || b + d == 0) return 1;
  const fixed_margins table(a, b, c, d);
  // The relative tolerance keeps tables exactly as likely as the observed one (ties that
  // rounding would separate) in the sum, as R's fisher.test does.
  const double observed = table.probability(a) * (1 + 1e-7);
  double p = 0;
  for (std::uint64_t x = table.lowest(); x <= table.highest(); ++x) {
    const double px = table.probability(x);
    if (px <= observed) p += px;
  }
  return std::min(1.0, p);
}

double fisher_exact_greater(std::uint64_t a, std::uint64_t b, std::uint64_t c, std::uint64_t d) {
  if (a + b == 0 || c + d == 0 || a + c == 0 || b + d == 0) return 1;
  const fixed_margins table(a, b, c, d);
  double p = 0;
  for (std::uint64_t x = std::max(a, table.lowest()); x <= table.highest(); ++x) p += table.probability(x);
  return std::min(1.0, p);
}

double chi_square_independence(std::span<const std::pair<std::uint64_t, std::uint64_t>> rows) {
  double failures = 0;
  double successes = 0;
  std::size_t non_empty = 0;
  for (const auto& [f, s] : rows) {
    failures += double(f);
    successes += double(s);
    if (f + s > 0) ++non_empty;
  }
  if (non_empty < 2 || failures == 0 || successes == 0) return 1;
  const double total = failures + successes;
  // Pearson's statistic without continuity correction, also for two rows.
  double statistic = 0;
  for (const auto& [f, s] : rows) {
    const double n = double(f + s);
    if (n == 0) continue;
    const double expected_f = n * failures / total;
    const double expected_s = n * successes / total;
    statistic += (double(f) - expected_f) * (double(f) - expected_f) / expected_f +
                 (double(s) - expected_s) * (double(s) - expected_s) / expected_s;
  }
  const boost::math::chi_squared_distribution<double> dist(double(non_empty - 1));
  return boost::math::cdf(boost::math::complement(dist, statistic));
}

// ---- Erlang C ----

erlang_c_result erlang_c(double rate, double service_s, std::size_t servers) {
  erlang_c_result out;
  out.rate = rate;
  out.service_s = service_s;
  out.servers = servers;
  const double offered = rate * service_s;
  if (servers == 0 || !(service_s > 0) || !(rate >= 0)) {
    out.utilisation = servers == 0 ? infinity : 0;
    out.mean_wait_s = infinity;
    out.wait_probability = 1;
    return out;
  }
  out.utilisation = offered / double(servers);
  if (!(offered < double(servers))) {
    out.wait_probability = 1;
    out.mean_wait_s = infinity;
    return out;
  }
  out.stable = true;
  if (rate == 0) return out;
  const double b = erlang_b(offered, servers);
  out.wait_probability = double(servers) * b / (double(servers) - offered * (1 - b));
  out.mean_wait_s = out.wait_probability * service_s / (double(servers) - offered);
  return out;
}

double erlang_c_result::response_quantile_s(double q) const {
  if (!stable) return infinity;
  if (!(q > 0)) return 0;
  if (!(q < 1)) return infinity;
  // The wait is 0 with probability 1 - C, else exponential with rate theta = c mu - lambda;
  // the service is exponential with rate mu. P(wait + service > t) =
  // e^(-mu t) (1 + C mu t (1 - e^(-(theta - mu) t)) / ((theta - mu) t)), which stays finite
  // when theta = mu.
  const double mu = 1 / service_s;
  const double theta = double(servers) * mu - rate;
  const double c = wait_probability;
  const auto tail = [&](double t) {
    return std::exp(-mu * t) * (1 + c * mu * t * one_minus_exp_over((theta - mu) * t));
  };
  const double beyond = 1 - q;
  double high = service_s;
  while (tail(high) > beyond) high *= 2;
  double low = 0;
  for (int i = 0; i < 200 && high - low > 1e-15 * high; ++i) {
    const double mid = (low + high) / 2;
    (tail(mid) > beyond ? low : high) = mid;
  }
  return high;
}

std::optional<std::size_t> erlang_c_servers_for(double rate, double service_s, double q,
                                                double target_s, std::size_t max_servers) {
  if (!(service_s > 0) || !(rate >= 0) || !(q > 0 && q < 1) || !(target_s > 0)) return std::nullopt;
  // With no wait at all the response time is the service time: its quantile bounds every
  // pool size from below, so beyond it there is nothing to search.
  if (-std::log1p(-q) * service_s > target_s) return std::nullopt;
  const auto meets = [&](std::size_t servers) {
    return erlang_c(rate, service_s, servers).response_quantile_s(q) <= target_s;
  };
  // The smallest stable size, then bisection: the quantile falls as servers are added.
  if (!(rate * service_s < double(max_servers))) return std::nullopt;
  std::size_t low = static_cast<std::size_t>(std::floor(rate * service_s)) + 1;
  if (low > max_servers) return std::nullopt;
  if (meets(low)) return low;
  if (!meets(max_servers)) return std::nullopt;
  std::size_t high = max_servers;  // meets(high), !meets(low)
  while (high - low > 1) {
    const std::size_t mid = low + (high - low) / 2;
    (meets(mid) ? high : low) = mid;
  }
  return high;
}

}  // namespace procpool::harness
