#include "run/load.hpp"

#include <chrono>
#include <condition_variable>
#include <limits>
#include <mutex>
#include <optional>
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

void count_outcome(caller_tally& tally, std::optional<errc> failure) {
  ++tally.outcomes[failure ? std::string(to_string(*failure)) : std::string("ok")];
}

void count_outcome(caller_tally& tally, const result<response>& reply) {
  count_outcome(tally, reply ? std::nullopt : std::optional<errc>(reply.error().code));
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

// ---- Submitted load: one generator thread, however many requests are outstanding ----

// A request as its completion saw it.
struct finished {
  std::optional<errc> failure;
  std::uint64_t latency_us = 0;
};

// Where completions leave finished requests for the generator. They run on the subject's
// thread (procpool's dispatcher), which serves every worker's I/O: they append under a short
// lock and wake the generator only when it sleeps, and the tallying stays on the generator.
class finished_queue {
 public:
  void push(finished f) {
    bool wake = false;
    {
      std::lock_guard lock(mutex_);
      items_.push_back(f);
      wake = sleeping_;
    }
    if (wake) ready_.notify_one();
  }

  // Everything finished so far, waiting until `until` when nothing has.
  std::vector<finished> take(clock::time_point until) {
    std::vector<finished> out;
    std::unique_lock lock(mutex_);
    sleeping_ = true;
    ready_.wait_until(lock, until, [&] { return !items_.empty(); });
    sleeping_ = false;
    out.swap(items_);
    return out;
  }

 private:
  std::mutex mutex_;
  std::condition_variable ready_;
  std::vector<finished> items_;
  bool sleeping_ = false;
};

// Issues requests through subject::submit and tallies their outcomes, all on its one thread.
class generator {
 public:
  generator(subject& target, const request_spec& request) : target_(target), request_(request) {}

  // Submits a request whose latency runs from `from`; false when the subject refuses submit.
  bool issue(clock::time_point from) {
    if (refused_) return false;
    refused_ = !target_.submit(request_.command, request_.args, {},
                               [q = &queue_, from](result<response> r) {
                                 q->push({r ? std::nullopt : std::optional<errc>(r.error().code),
                                          micros(clock::now() - from)});
                               });
    if (!refused_) {
      ++outstanding_;
      ++issued_;
    }
    return !refused_;
  }

  // Tallies what finished, waiting until `until` when nothing has.
  void collect(clock::time_point until) {
    for (const finished& f : queue_.take(until)) {
      tally_.latency_us.record(f.latency_us);
      count_outcome(tally_, f.failure);
      --outstanding_;
    }
  }

  // Waits for every outstanding request: the completions refer to this generator, and the
  // subject's deadlines bound the wait.
  void drain() {
    while (outstanding_ > 0) collect(clock::now() + std::chrono::milliseconds(100));
  }

  load_outcome outcome(clock::time_point start, const std::atomic<bool>& interrupted) {
    std::vector<caller_tally> tallies{std::move(tally_)};
    load_outcome out = merge_tallies(tallies, start, interrupted);
    out.submit_refused = refused_;
    return out;
  }

  std::size_t outstanding() const { return outstanding_; }
  std::uint64_t issued() const { return issued_; }
  bool refused() const { return refused_; }
  void late_start() { ++tally_.late_starts; }

 private:
  subject& target_;
  const request_spec& request_;
  finished_queue queue_;
  caller_tally tally_;
  std::size_t outstanding_ = 0;
  std::uint64_t issued_ = 0;
  bool refused_ = false;
};

// A short wait, so that an interrupt or the end of the run is noticed between completions.
clock::time_point soon(clock::time_point limit = clock::time_point::max()) {
  return std::min(limit, clock::now() + std::chrono::milliseconds(50));
}

// Keeps load.in_flight requests outstanding, replacing each as it completes.
load_outcome closed_submit(subject& target, const load_config& load, const request_spec& request,
                           const std::atomic<bool>& interrupted) {
  generator g(target, request);
  const auto start = clock::now();
  const auto until = load.duration_ms > 0 ? start + std::chrono::milliseconds(load.duration_ms)
                                          : clock::time_point::max();
  const std::uint64_t budget =
      load.duration_ms > 0 ? std::numeric_limits<std::uint64_t>::max() : load.requests;
  while (!interrupted && clock::now() < until && !g.refused()) {
    while (g.outstanding() < load.in_flight && g.issued() < budget && g.issue(clock::now())) {
    }
    if (g.refused() || (g.issued() >= budget && g.outstanding() == 0)) break;
    g.collect(soon(until));
  }
  g.drain();
  return g.outcome(start, interrupted);
}

// Issues each arrival at its intended start, at most load.in_flight outstanding: an arrival
// that finds them all out waits, starts late, and its latency still counts from its intended
// start.
load_outcome open_submit(subject& target, const load_config& load, const request_spec& request,
                         std::uint64_t seed, const std::atomic<bool>& interrupted) {
  const auto schedule = arrival_schedule(load, seed);
  generator g(target, request);
  const auto start = clock::now();
  for (std::size_t i = 0; i < schedule.size() && !interrupted && !g.refused();) {
    const auto intended = start + schedule[i];
    if (g.outstanding() >= load.in_flight) {
      g.collect(soon());
    } else if (clock::now() < intended) {
      g.collect(soon(intended));
    } else {
      if (clock::now() - intended > std::chrono::milliseconds(1)) g.late_start();
      g.issue(intended);
      ++i;
    }
  }
  g.drain();
  return g.outcome(start, interrupted);
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
  if (load.issue == load_issue::submit) {
    if (load.model == load_model::open) return open_submit(target, load, request, seed, interrupted);
    return closed_submit(target, load, request, interrupted);
  }
  if (load.model == load_model::open) return open_loop(target, load, request, seed, interrupted);
  return closed_loop(target, load, request, interrupted);
}

}  // namespace procpool::harness
