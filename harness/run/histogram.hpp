// A log-linear latency histogram in the style of HdrHistogram: 3 significant decimal digits,
// values 0 .. 2^41-1 (36 minutes in nanoseconds), O(1) record without allocation. Hand-written
// because no Debian package ships an HDR histogram.
//
// Not thread-safe. Give each caller thread its own histogram and merge them at the end:
//
//   std::vector<latency_histogram> per_thread(threads);
//   // thread i, on every request:
//   per_thread[i].record(static_cast<std::uint64_t>(elapsed.count()));
//   // after joining the threads:
//   latency_histogram all;
//   for (const auto& h : per_thread) all.merge(h);
//   auto p99 = all.value_at_percentile(99);
//
// The unit (microseconds, nanoseconds) is the caller's; the histogram only sees integers.
#pragma once

#include <bit>
#include <cstddef>
#include <cstdint>
#include <vector>

namespace procpool::harness {

class latency_histogram {
 public:
  // Values above this are clamped into the top counter and counted in clamped_count(); a
  // percentile that lands on one reports highest_trackable (or min() if all were clamped).
  static constexpr std::uint64_t highest_trackable = (std::uint64_t{1} << 41) - 1;

  latency_histogram();

  // O(1), never allocates.
  void record(std::uint64_t value) noexcept {
    if (value > highest_trackable) ++clamped_;
    ++counts_[index_of(value > highest_trackable ? highest_trackable : value)];
    if (count_ == 0 || value < min_) min_ = value;
    if (value > max_) max_ = value;
    ++count_;
    sum_ += value;
  }

  // Afterwards this histogram is as if it had recorded every value `other` recorded too.
  void merge(const latency_histogram& other) noexcept;
  void reset() noexcept;

  std::uint64_t count() const noexcept { return count_; }
  // How many recorded values exceeded highest_trackable.
  std::uint64_t clamped_count() const noexcept { return clamped_; }
  // min(), max() and mean() are exact, clamped values included; all three are 0 when empty.
  std::uint64_t min() const noexcept { return count_ ? min_ : 0; }
  std::uint64_t max() const noexcept { return max_; }
  double mean() const noexcept;

  // The nearest-rank percentile, p in [0, 100] (outside is clamped): the smallest recorded
  // value v such that at least p% of the values are <= v. Below 2048 the answer is exact;
  // above it the answer is at or above the true value by less than 1/1024 (0.098%), never
  // below it. p = 0 gives min(), p = 100 gives max(); 0 when empty. O(number of buckets).
  std::uint64_t value_at_percentile(double p) const noexcept;

 private:
  // Layout, as in HdrHistogram. Recording must be O(1) and the relative error must be bounded
  // at every magnitude. A fixed-width grid fine enough for small values would need 2^41
  // counters; a purely logarithmic grid needs a log() per record. So the grid is log-linear:
  // each power-of-two range [2^(10+k), 2^(11+k)) is cut into 1024 equal sub-buckets of width
  // 2^k. A value's counter is then found with one bit_width and one shift, and a counter's
  // width is at most 1/1024 of any value in it: under 0.1%, i.e. 3 significant digits
  // (1024 >= 10^3; HdrHistogram calls this 2048 sub-buckets per bucket, of which each bucket
  // after the first uses the upper half). Below 2048 (k = 0) the width is 1, so small values
  // are stored exactly. Index = k * 1024 + (value >> k), k = max(0, bit_width(value) - 11);
  // k runs to 30 for highest_trackable, giving 32768 counters (256 KiB), allocated once.
  static constexpr int sub_bucket_bits = 11;
  static constexpr int half_bits = sub_bucket_bits - 1;
  static constexpr int max_shift = std::bit_width(highest_trackable) - sub_bucket_bits;
  static constexpr std::size_t counter_count =
      (std::size_t{max_shift} << half_bits) + (std::size_t{1} << sub_bucket_bits);

  static std::size_t index_of(std::uint64_t value) noexcept {
    const int bits = std::bit_width(value);
    const int k = bits > sub_bucket_bits ? bits - sub_bucket_bits : 0;
    return (std::size_t(k) << half_bits) + std::size_t(value >> k);
  }
  // The largest value that shares a counter with the values at `index`.
  static std::uint64_t highest_equivalent(std::size_t index) noexcept;

  std::vector<std::uint64_t> counts_;
  std::uint64_t count_ = 0;
  std::uint64_t clamped_ = 0;
  std::uint64_t min_ = 0;
  std::uint64_t max_ = 0;
  unsigned __int128 sum_ = 0;  // exact: 2^64 values of 2^64 each cannot overflow it
};

}  // namespace procpool::harness
