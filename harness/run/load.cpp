#include "run/load.hpp"

#include <chrono>
#include <random>
#include <thread>
#include <vector>

#include "procpool/clock.hpp"

namespace procpool::harness {
namespace {

using clock = std::chrono::steady_clock;

// What one caller thread saw; merged after the run so that recording takes no lock.
struct caller_tally {
  latency_histogram latency_us;
  std::map<std::string, std::uint64_t> outcomes;
  std::uint64_t late_starts = 0;
};

void count_outcome(caller_tally& tally, const result<response>& reply) {
  ++tally.outcomes[reply ? std::string("ok") : std::string(to_string(reply.error().code))];
}

std::uint64_t micros(clock::duration d) {
  return static_cast<std::uint64_t>(std::max<std::int64_t>(
      0, std::chrono::duration_cast<std::chrono::microseconds>(d).count()));
}

load_outcome merge_tallies(std::vector<caller_tally>& tallies, clock::time_point start,
                           const std::atomic<bool>& interrupted) {
  load_outcome out;
  out.wall_ns = std::chrono::duration_cast<std::chrono::nanoseconds>(clock::now() - start).count();
  for (auto& t : tallies) {
    out.latency_us.merge(t.latency_us);
    for (const auto& [name, n] : t.outcomes) {
      out.outcomes[name] += n;
      out.issued += n;
    }
    out.late_starts += t.late_starts;
  }
  out.interrupted = interrupted.load();
  return out;
}

load_outcome closed_loop(subject& target, const load_config& load, const request_spec& request,
                         const std::atomic<bool>& interrupted) {
  std::vector<caller_tally> tallies(load.concurrency);
  std::atomic<std::uint64_t> next{0};
  const auto start = clock::now();
  const auto until = load.duration_ms > 0 ? start + std::chrono::milliseconds(load.duration_ms)
                                          : clock::time_point::max();
  const auto think = std::chrono::duration<double, std::milli>(load.think_ms);
  std::vector<std::thread> callers;
  for (std::size_t c = 0; c < load.concurrency; ++c) {
    callers.emplace_back([&, c] {
      caller_tally& tally = tallies[c];
      while (!interrupted && clock::now() < until) {
        if (load.duration_ms == 0 && next.fetch_add(1) >= load.requests) break;
        const auto submitted = clock::now();
        auto reply = target.call(request.command, request.args, {});
        tally.latency_us.record(micros(clock::now() - submitted));
        count_outcome(tally, reply);
        if (load.think_ms > 0) std::this_thread::sleep_for(think);
      }
    });
  }
  for (auto& t : callers) t.join();
  return merge_tallies(tallies, start, interrupted);
}

// The intended start of every arrival, as offsets from the run's start.
std::vector<clock::duration> arrival_schedule(const load_config& load, std::uint64_t seed) {
  const double rate = load.rate;
  const std::uint64_t count =
      load.duration_ms > 0 ? static_cast<std::uint64_t>(rate * load.duration_ms / 1000.0)
                           : load.requests;
  std::vector<clock::duration> schedule;
  schedule.reserve(count);
  std::mt19937_64 rng(seed);
  std::exponential_distribution<double> gap(rate);
  double t_s = 0;
  for (std::uint64_t i = 0; i < count; ++i) {
    t_s = load.arrivals == arrival_process::constant ? i / rate : t_s + gap(rng);
    schedule.push_back(std::chrono::duration_cast<clock::duration>(std::chrono::duration<double>(t_s)));
  }
  return schedule;
}

load_outcome open_loop(subject& target, const load_config& load, const request_spec& request,
                       std::uint64_t seed, const std::atomic<bool>& interrupted) {
  const auto schedule = arrival_schedule(load, seed);
  std::vector<caller_tally> tallies(load.concurrency);
  std::atomic<std::size_t> next{0};
  const auto start = clock::now();
  std::vector<std::thread> callers;
  for (std::size_t c = 0; c < load.concurrency; ++c) {
    callers.emplace_back([&, c] {
      caller_tally& tally = tallies[c];
      while (!interrupted) {
        const std::size_t i = next.fetch_add(1);
        if (i >= schedule.size()) break;
        const auto intended = start + schedule[i];
        // Sleep in short steps so that an interrupt is noticed during long gaps.
        while (!interrupted && clock::now() < intended) {
          std::this_thread::sleep_until(std::min(intended, clock::now() + std::chrono::milliseconds(50)));
        }
        if (interrupted) break;
        if (clock::now() - intended > std::chrono::milliseconds(1)) ++tally.late_starts;
        auto reply = target.call(request.command, request.args, {});
        // From the intended start: time spent waiting for a free caller counts.
        tally.latency_us.record(micros(clock::now() - intended));
        count_outcome(tally, reply);
      }
    });
  }
  for (auto& t : callers) t.join();
  return merge_tallies(tallies, start, interrupted);
}

}  // namespace

request_spec request_for(const scenario& s) {
  switch (s.load.command) {
    case load_command::sleep: return {"sleep", {{"ms", s.worker.service.ms}}};
    case load_command::burn: return {"burn", {{"ms", s.worker.service.ms}}};
    case load_command::echo: break;
  }
  return {"echo", {{"payload", std::string(32, 'x')}}};
}

load_outcome run_load(subject& target, const load_config& load, const request_spec& request,
                      std::uint64_t seed, const std::atomic<bool>& interrupted) {
  if (load.model == load_model::open) return open_loop(target, load, request, seed, interrupted);
  return closed_loop(target, load, request, interrupted);
}

}  // namespace procpool::harness
