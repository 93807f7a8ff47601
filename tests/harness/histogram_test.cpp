#include "run/histogram.hpp"

#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <limits>
#include <new>
#include <random>
#include <string>
#include <vector>

// Counts allocations, to prove that record() allocates nothing.
namespace {
std::atomic<std::size_t> allocations{0};
}  // namespace

// GCC pairs the replaced new with free() across inlining and warns; the pair is consistent.
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wmismatched-new-delete"
void* operator new(std::size_t n) {
  ++allocations;
  if (void* p = std::malloc(n ? n : 1)) return p;
  throw std::bad_alloc();
}
void operator delete(void* p) noexcept { std::free(p); }
void operator delete(void* p, std::size_t) noexcept { std::free(p); }
#pragma GCC diagnostic pop

namespace procpool::harness {
namespace {

// Percentiles in thousandths, so the exact nearest rank is computed in integers and checks the
// histogram's floating-point rank independently.
constexpr std::uint64_t percentiles_milli[] = {0, 1'000, 50'000, 90'000, 99'000, 99'900, 100'000};

std::uint64_t nearest_rank(const std::vector<std::uint64_t>& sorted, std::uint64_t p_milli) {
  const std::uint64_t n = sorted.size();
  const std::uint64_t rank = std::max<std::uint64_t>(1, (p_milli * n + 99'999) / 100'000);
  return sorted[rank - 1];
}

// Below 2048 the histogram is exact; above it the answer is at or above the truth by less
// than 1/1024, never below.
void expect_within_precision(std::uint64_t got, std::uint64_t truth, const std::string& what) {
  if (truth < 2048) {
    EXPECT_EQ(got, truth) << what;
    return;
  }
  EXPECT_GE(got, truth) << what;
  EXPECT_LE(double(got - truth) / double(truth), 0.001) << what << ": got " << got
                                                        << ", true " << truth;
}

struct accuracy_case {
  std::string name;
  std::vector<std::uint64_t> values;
};

std::vector<std::uint64_t> draw(std::size_t n, auto&& next) {
  std::vector<std::uint64_t> out(n);
  for (auto& v : out) v = next();
  return out;
}

std::vector<accuracy_case> accuracy_cases() {
  std::mt19937_64 rng(20240611);
  constexpr std::size_t n = 200'000;
  auto to_u64 = [](double x) { return std::uint64_t(std::llround(std::max(0.0, x))); };
  std::vector<accuracy_case> cases;
  {
    std::uniform_int_distribution<std::uint64_t> d(0, 2047);
    cases.push_back({"uniform_linear_range", draw(n, [&] { return d(rng); })});
  }
  {
    std::uniform_int_distribution<std::uint64_t> d(1, 1'000'000'000);
    cases.push_back({"uniform", draw(n, [&] { return d(rng); })});
  }
  {
    std::exponential_distribution<double> d(1.0 / 250'000);  // mean 250 us in ns
    cases.push_back({"exponential", draw(n, [&] { return to_u64(d(rng)); })});
  }
  {
    std::lognormal_distribution<double> d(std::log(200'000.0), 2.0);  // heavy tail
    cases.push_back({"lognormal", draw(n, [&] { return to_u64(d(rng)); })});
  }
  cases.push_back({"constant", std::vector<std::uint64_t>(n, 123'456'789)});
  cases.push_back({"constant_small", std::vector<std::uint64_t>(n, 7)});
  {
    std::uniform_real_distribution<double> d(0, std::log(1e12));  // 1 .. 1e12, log-uniform
    cases.push_back({"span_1_to_1e12", draw(n, [&] { return to_u64(std::exp(d(rng))); })});
  }
  cases.push_back({"single_value", {987'654'321}});
  return cases;
}

TEST(LatencyHistogram, PercentilesAreWithinPrecisionOfNearestRank) {
  for (auto& c : accuracy_cases()) {
    latency_histogram h;
    for (auto v : c.values) h.record(v);
    std::sort(c.values.begin(), c.values.end());
    ASSERT_EQ(h.count(), c.values.size()) << c.name;
    EXPECT_EQ(h.min(), c.values.front()) << c.name;
    EXPECT_EQ(h.max(), c.values.back()) << c.name;
    EXPECT_EQ(h.clamped_count(), 0u) << c.name;
    for (auto p : percentiles_milli) {
      expect_within_precision(h.value_at_percentile(double(p) / 1000), nearest_rank(c.values, p),
                              c.name + " p" + std::to_string(double(p) / 1000));
    }
    EXPECT_EQ(h.value_at_percentile(0), c.values.front()) << c.name;
    EXPECT_EQ(h.value_at_percentile(100), c.values.back()) << c.name;
  }
}

TEST(LatencyHistogram, EveryPercentileOnAFineGridIsWithinPrecision) {
  std::mt19937_64 rng(7);
  std::lognormal_distribution<double> d(std::log(50'000.0), 1.5);
  std::vector<std::uint64_t> values(10'007);  // a prime count, so ranks are rarely integers
  for (auto& v : values) v = std::uint64_t(d(rng));
  latency_histogram h;
  for (auto v : values) h.record(v);
  std::sort(values.begin(), values.end());
  for (std::uint64_t p = 0; p <= 100'000; p += 100) {
    expect_within_precision(h.value_at_percentile(double(p) / 1000), nearest_rank(values, p),
                            "p" + std::to_string(double(p) / 1000));
  }
}

TEST(LatencyHistogram, EveryCounterEdgeStaysWithinPrecision) {
  // The worst cases are the lowest value of each counter, which reports its highest.
  for (int shift = 11; shift < 41; ++shift) {
    for (std::uint64_t v : {std::uint64_t{1} << shift, (std::uint64_t{1} << shift) + 1,
                            (std::uint64_t{1} << (shift + 1)) - 1}) {
      latency_histogram h;
      h.record(1);
      h.record(v);
      h.record(v);  // ranks 2 and 3: p50 is v, but not via the exact max shortcut
      h.record(latency_histogram::highest_trackable);
      expect_within_precision(h.value_at_percentile(50), v, "value " + std::to_string(v));
    }
  }
}

TEST(LatencyHistogram, MeanIsExact) {
  std::mt19937_64 rng(11);
  std::uniform_int_distribution<std::uint64_t> d(0, std::uint64_t{1} << 40);
  latency_histogram h;
  long double sum = 0;
  for (int i = 0; i < 100'000; ++i) {
    auto v = d(rng);
    h.record(v);
    sum += v;
  }
  EXPECT_DOUBLE_EQ(h.mean(), double(sum / 100'000));
}

TEST(LatencyHistogram, MergeEqualsRecordingEverythingIntoOne) {
  std::mt19937_64 rng(3);
  std::lognormal_distribution<double> d(std::log(1e6), 2.5);
  latency_histogram all;
  std::vector<latency_histogram> per_thread(4);
  for (int i = 0; i < 100'000; ++i) {
    auto v = std::uint64_t(d(rng));
    if (i % 997 == 0) v = latency_histogram::highest_trackable + std::uint64_t(i);
    all.record(v);
    per_thread[std::size_t(i) % per_thread.size()].record(v);
  }
  latency_histogram merged;
  merged.merge(latency_histogram{});  // merging an empty one changes nothing
  EXPECT_EQ(merged.count(), 0u);
  for (const auto& h : per_thread) merged.merge(h);
  merged.merge(latency_histogram{});

  EXPECT_EQ(merged.count(), all.count());
  EXPECT_EQ(merged.clamped_count(), all.clamped_count());
  EXPECT_EQ(merged.min(), all.min());
  EXPECT_EQ(merged.max(), all.max());
  EXPECT_EQ(merged.mean(), all.mean());
  for (std::uint64_t p = 0; p <= 100'000; p += 50) {
    EXPECT_EQ(merged.value_at_percentile(double(p) / 1000),
              all.value_at_percentile(double(p) / 1000))
        << "p" << double(p) / 1000;
  }
}

TEST(LatencyHistogram, MergeKeepsTheSmallerMinimumOfANonEmptyTarget) {
  latency_histogram a, b;
  a.record(500);
  b.record(100);
  b.record(900);
  a.merge(b);
  EXPECT_EQ(a.min(), 100u);
  EXPECT_EQ(a.max(), 900u);
  EXPECT_EQ(a.count(), 3u);
  EXPECT_EQ(a.value_at_percentile(50), 500u);
}

TEST(LatencyHistogram, EmptyHistogramReportsZeros) {
  latency_histogram h;
  EXPECT_EQ(h.count(), 0u);
  EXPECT_EQ(h.clamped_count(), 0u);
  EXPECT_EQ(h.min(), 0u);
  EXPECT_EQ(h.max(), 0u);
  EXPECT_EQ(h.mean(), 0.0);
  for (auto p : percentiles_milli) EXPECT_EQ(h.value_at_percentile(double(p) / 1000), 0u);
}

TEST(LatencyHistogram, ZeroIsARecordableValue) {
  latency_histogram h;
  h.record(0);
  h.record(0);
  h.record(5);
  EXPECT_EQ(h.min(), 0u);
  EXPECT_EQ(h.value_at_percentile(50), 0u);
  EXPECT_EQ(h.value_at_percentile(100), 5u);
}

TEST(LatencyHistogram, ResetEmptiesIt) {
  latency_histogram h;
  for (std::uint64_t v : {3u, 3000u, 3'000'000u}) h.record(v);
  h.record(std::numeric_limits<std::uint64_t>::max());
  h.reset();
  EXPECT_EQ(h.count(), 0u);
  EXPECT_EQ(h.clamped_count(), 0u);
  EXPECT_EQ(h.max(), 0u);
  EXPECT_EQ(h.value_at_percentile(50), 0u);
  h.record(42);
  EXPECT_EQ(h.min(), 42u);
  EXPECT_EQ(h.max(), 42u);
  EXPECT_EQ(h.value_at_percentile(0), 42u);
  EXPECT_EQ(h.value_at_percentile(50), 42u);
}

TEST(LatencyHistogram, ValuesAboveTheRangeAreClampedAndCounted) {
  constexpr auto top = latency_histogram::highest_trackable;
  static_assert(top >= std::uint64_t{1} << 40);
  latency_histogram h;
  h.record(10);
  h.record(top);  // the largest trackable value is not clamped
  h.record(top + 1);
  h.record(std::numeric_limits<std::uint64_t>::max());
  EXPECT_EQ(h.count(), 4u);
  EXPECT_EQ(h.clamped_count(), 2u);
  EXPECT_EQ(h.min(), 10u);
  EXPECT_EQ(h.max(), std::numeric_limits<std::uint64_t>::max());  // exact, not clamped
  EXPECT_EQ(h.value_at_percentile(50), top);
  EXPECT_EQ(h.value_at_percentile(75), top);  // lands on a clamped value
  EXPECT_EQ(h.value_at_percentile(100), std::numeric_limits<std::uint64_t>::max());
  EXPECT_DOUBLE_EQ(h.mean(), (10.0 + double(top) + double(top + 1) + 0x1p64 - 1) / 4);
}

TEST(LatencyHistogram, RanksAreExactDespiteBinaryRounding) {
  // In doubles 99.9 / 100 * 1000 is 999.0000000000001; its ceiling must still be rank 999.
  latency_histogram h;
  for (std::uint64_t v = 1; v <= 1000; ++v) h.record(v);
  EXPECT_EQ(h.value_at_percentile(99.9), 999u);
  EXPECT_EQ(h.value_at_percentile(99.95), 1000u);
  EXPECT_EQ(h.value_at_percentile(0.1), 1u);
  EXPECT_EQ(h.value_at_percentile(0.15), 2u);
  EXPECT_EQ(h.value_at_percentile(50), 500u);
}

TEST(LatencyHistogram, PercentilesOutsideZeroToHundredAreClamped) {
  latency_histogram h;
  for (std::uint64_t v = 1; v <= 100; ++v) h.record(v);
  EXPECT_EQ(h.value_at_percentile(-5), 1u);
  EXPECT_EQ(h.value_at_percentile(std::nan("")), 1u);
  EXPECT_EQ(h.value_at_percentile(250), 100u);
  EXPECT_EQ(h.value_at_percentile(1), 1u);
  EXPECT_EQ(h.value_at_percentile(1.01), 2u);
  EXPECT_EQ(h.value_at_percentile(99.9), 100u);
}

TEST(LatencyHistogram, RecordDoesNotAllocate) {
  latency_histogram h;
  std::vector<std::uint64_t> values;
  for (std::uint64_t v = 1; v != 0 && values.size() < 200; v = v * 3 + 1) values.push_back(v);
  const auto before = allocations.load();
  for (int round = 0; round < 100; ++round)
    for (auto v : values) h.record(v);
  EXPECT_EQ(allocations.load(), before);
  EXPECT_EQ(h.count(), 100 * values.size());
}

TEST(LatencyHistogram, IsCopyable) {
  latency_histogram h;
  h.record(1234567);
  latency_histogram copy = h;
  h.record(1);
  EXPECT_EQ(copy.count(), 1u);
  EXPECT_EQ(copy.min(), 1234567u);
}

}  // namespace
}  // namespace procpool::harness
