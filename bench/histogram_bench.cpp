// The cost of latency_histogram::record (on every request of every caller thread, so it must
// stay in the nanoseconds) and of reading a percentile at the end of a run.
#include <benchmark/benchmark.h>

#include <cmath>
#include <cstdint>
#include <random>
#include <vector>

#include "run/histogram.hpp"

namespace {

using procpool::harness::latency_histogram;

// Latency-like values (lognormal around 100 us in ns, heavy tail), drawn once so the loop
// measures recording, not the random number generator.
std::vector<std::uint64_t> sample_values() {
  std::mt19937_64 rng(1);
  std::lognormal_distribution<double> d(std::log(100'000.0), 1.5);
  std::vector<std::uint64_t> values(1 << 16);
  for (auto& v : values) v = std::uint64_t(d(rng));
  return values;
}

void BM_HistogramRecord(benchmark::State& state) {
  const auto values = sample_values();
  latency_histogram h;
  std::size_t i = 0;
  for (auto _ : state) {
    h.record(values[i++ & (values.size() - 1)]);
  }
  benchmark::DoNotOptimize(h.count());
  state.SetItemsProcessed(state.iterations());
}

void BM_HistogramPercentile(benchmark::State& state) {
  latency_histogram h;
  for (auto v : sample_values()) h.record(v);
  for (auto _ : state) {
    benchmark::DoNotOptimize(h.value_at_percentile(99.9));
  }
}

void BM_HistogramMerge(benchmark::State& state) {
  latency_histogram a, b;
  for (auto v : sample_values()) b.record(v);
  for (auto _ : state) {
    a.merge(b);
    benchmark::ClobberMemory();
  }
}

BENCHMARK(BM_HistogramRecord);
BENCHMARK(BM_HistogramPercentile);
BENCHMARK(BM_HistogramMerge);

}  // namespace

BENCHMARK_MAIN();
