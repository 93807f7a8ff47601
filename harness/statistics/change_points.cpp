#include "statistics/change_points.hpp"

#include <algorithm>
#include <cmath>
#include <limits>
#include <random>
#include <utility>

namespace procpool::harness {
namespace {

struct split {
  std::size_t tau = 0;  // 0: no split possible
  double q = -std::numeric_limits<double>::infinity();
};

// Q(tau) from the sums of |x_i - x_j| within each side and between them (alpha = 1 in
// Matteson and James's notation: the mean distance, which detects shifts in the mean).
double energy_from_sums(double within_left, double within_right, double between, std::size_t a,
                        std::size_t b) {
  const double fa = double(a);
  const double fb = double(b);
  const double left = a > 1 ? within_left / (fa * (fa - 1) / 2) : 0;
  const double right = b > 1 ? within_right / (fb * (fb - 1) / 2) : 0;
  return fa * fb / (fa + fb) * (2 * between / (fa * fb) - left - right);
}

// Sums of |v_i - v_j| over rectangles of index pairs in O(1), from 2-D prefix sums.
class distance_sums {
 public:
  explicit distance_sums(std::span<const double> v) : n_(v.size() + 1), prefix_(n_ * n_, 0) {
    for (std::size_t i = 1; i < n_; ++i) {
      for (std::size_t j = 1; j < n_; ++j) {
        prefix_[i * n_ + j] = std::abs(v[i - 1] - v[j - 1]) + prefix_[(i - 1) * n_ + j] +
                              prefix_[i * n_ + j - 1] - prefix_[(i - 1) * n_ + j - 1];
      }
    }
  }
  // The sum over i in [a, b), j in [c, d).
  double rect(std::size_t a, std::size_t b, std::size_t c, std::size_t d) const {
    return at(b, d) - at(a, d) - at(b, c) + at(a, c);
  }

 private:
  double at(std::size_t i, std::size_t j) const { return prefix_[i * n_ + j]; }
  std::size_t n_;
  std::vector<double> prefix_;
};

// The best split in O(n^2): over every tau and every right end kappa, as Matteson and James
// do, so that a shift that reverts later in the segment (a bump) is compared against its own
// extent rather than diluted by the runs after it.
split best_split(std::span<const double> v, std::size_t min_segment) {
  const std::size_t n = v.size();
  split best;
  if (n < 2 * min_segment || n < 2) return best;
  const distance_sums d(v);
  for (std::size_t tau = min_segment; tau + min_segment <= n; ++tau) {
    const double within_left = d.rect(0, tau, 0, tau) / 2;
    for (std::size_t kappa = tau + min_segment; kappa <= n; ++kappa) {
      const double within_right = d.rect(tau, kappa, tau, kappa) / 2;
      const double between = d.rect(0, tau, tau, kappa);
      const double q = energy_from_sums(within_left, within_right, between, tau, kappa - tau);
      if (q > best.q) best = {tau, q};
    }
  }
  return best;
}

// Fisher-Yates with our own index draw: std::shuffle's draws differ between standard
// libraries, and the p-values must not.
void shuffle(std::vector<double>& v, std::mt19937_64& rng) {
  for (std::size_t i = v.size(); i > 1; --i) std::swap(v[i - 1], v[rng() % i]);
}

// The share of shuffled segments whose best split is at least as strong as the observed one
// (counting the observed one, so p is never 0).
double permutation_p(std::span<const double> segment, double observed, const change_point_options& o,
                     std::mt19937_64& rng) {
  std::vector<double> v(segment.begin(), segment.end());
  std::size_t at_least = 0;
  const double tolerance = 1e-12 * std::max(1.0, std::abs(observed));
  for (std::size_t k = 0; k < o.permutations; ++k) {
    shuffle(v, rng);
    if (best_split(v, std::max<std::size_t>(o.min_segment, 1)).q >= observed - tolerance) ++at_least;
  }
  return double(at_least + 1) / double(o.permutations + 1);
}

double median_of(std::span<const double> values) {
  std::vector<double> v(values.begin(), values.end());
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  const std::size_t mid = v.size() / 2;
  return v.size() % 2 ? v[mid] : (v[mid - 1] + v[mid]) / 2;
}

double relative(double before, double after) {
  if (before == after) return 0;
  if (before == 0) return after > 0 ? HUGE_VAL : -HUGE_VAL;
  return (after - before) / std::abs(before);
}

// Medians between neighbouring change points, once all are known.
void fill_medians(std::span<const double> values, std::vector<change_point>& cps) {
  std::sort(cps.begin(), cps.end(), [](const auto& a, const auto& b) { return a.index < b.index; });
  for (std::size_t k = 0; k < cps.size(); ++k) {
    const std::size_t begin = k == 0 ? 0 : cps[k - 1].index;
    const std::size_t end = k + 1 < cps.size() ? cps[k + 1].index : values.size();
    cps[k].before_median = median_of(values.subspan(begin, cps[k].index - begin));
    cps[k].after_median = median_of(values.subspan(cps[k].index, end - cps[k].index));
    cps[k].relative_change = relative(cps[k].before_median, cps[k].after_median);
  }
}

}  // namespace

double energy_statistic(std::span<const double> values, std::size_t tau) {
  if (tau == 0 || tau >= values.size()) return 0;
  double within_left = 0, within_right = 0, between = 0;
  for (std::size_t i = 0; i < values.size(); ++i) {
    for (std::size_t j = i + 1; j < values.size(); ++j) {
      const double d = std::abs(values[i] - values[j]);
      (j < tau ? within_left : i >= tau ? within_right : between) += d;
    }
  }
  return energy_from_sums(within_left, within_right, between, tau, values.size() - tau);
}

std::vector<change_point> find_change_points(std::span<const double> values,
                                             const change_point_options& options) {
  std::vector<change_point> found;
  std::vector<std::pair<std::size_t, std::size_t>> segments = {{0, values.size()}};
  while (!segments.empty()) {
    const auto [begin, end] = segments.back();
    segments.pop_back();
    const auto segment = values.subspan(begin, end - begin);
    const split s = best_split(segment, std::max<std::size_t>(options.min_segment, 1));
    if (s.tau == 0) continue;
    // Seeded by the segment, not by the order segments are visited in.
    std::mt19937_64 rng(options.seed ^ (begin * 0x9e3779b97f4a7c15ULL) ^ (end << 32));
    const double p = permutation_p(segment, s.q, options, rng);
    if (p >= options.alpha) continue;
    const double size = relative(median_of(segment.first(s.tau)), median_of(segment.subspan(s.tau)));
    if (std::abs(size) < options.min_relative_change) continue;
    found.push_back({.index = begin + s.tau, .p_value = p});
    segments.push_back({begin, begin + s.tau});
    segments.push_back({begin + s.tau, end});
  }
  fill_medians(values, found);
  return found;
}

}  // namespace procpool::harness
