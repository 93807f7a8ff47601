#include "run/histogram.hpp"

#include <algorithm>
#include <cmath>

namespace procpool::harness {

latency_histogram::latency_histogram() : counts_(counter_count, 0) {}

std::uint64_t latency_histogram::highest_equivalent(std::size_t index) noexcept {
  if (index < (std::size_t{1} << sub_bucket_bits)) return index;
  const int k = int(index >> half_bits) - 1;
  const std::uint64_t sub = index - (std::size_t(k) << half_bits);  // in [1024, 2048)
  return ((sub + 1) << k) - 1;
}

void latency_histogram::merge(const latency_histogram& other) noexcept {
  if (other.count_ == 0) return;
  for (std::size_t i = 0; i < counter_count; ++i) counts_[i] += other.counts_[i];
  min_ = count_ ? std::min(min_, other.min_) : other.min_;
  max_ = std::max(max_, other.max_);
  count_ += other.count_;
  clamped_ += other.clamped_;
  sum_ += other.sum_;
}

void latency_histogram::reset() noexcept {
  std::fill(counts_.begin(), counts_.end(), 0);
  count_ = clamped_ = min_ = max_ = 0;
  sum_ = 0;
}

double latency_histogram::mean() const noexcept {
  return count_ ? double(static_cast<long double>(sum_) / count_) : 0.0;
}

std::uint64_t latency_histogram::value_at_percentile(double p) const noexcept {
  if (count_ == 0) return 0;
  if (!(p > 0)) p = 0;  // NaN too
  if (p > 100) p = 100;
  // Nearest rank ceil(p/100 * n). The tiny downward nudge stops binary rounding from turning
  // an exact rank into the next one (99.9 / 100 * 1000 is 999.0000000000001 in doubles).
  const double exact = p / 100.0 * double(count_);
  const auto rank =
      std::clamp<std::uint64_t>(std::uint64_t(std::ceil(exact * (1 - 1e-12))), 1, count_);
  // The first and last ranks are known exactly; no need to round them to a counter's edge.
  if (rank == 1) return min_;
  if (rank == count_) return max_;
  std::uint64_t seen = 0;
  for (std::size_t i = index_of(std::min(min_, highest_trackable)); i < counter_count; ++i) {
    seen += counts_[i];
    // The counter's top edge bounds every value in it from above, and so does max_: report
    // the smaller, which keeps the answer at or above the true value and within 1/1024 of it.
    if (seen >= rank) return std::clamp(highest_equivalent(i), min_, max_);
  }
  return max_;  // unreachable: the counters sum to count_
}

}  // namespace procpool::harness
