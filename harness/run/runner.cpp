#include "run/runner.hpp"

#include <chrono>
#include <mutex>
#include <random>
#include <unordered_map>
#include <unordered_set>

#include <fmt/format.h>

#include "procpool/clock.hpp"
#include "run/environment.hpp"
#include "run/load.hpp"
#include "run/worker_states.hpp"
#include "subjects/subject.hpp"
#include "subjects/worker_locator.hpp"

namespace procpool::harness {
namespace {

using json = nlohmann::json;

// Bounds on what a case keeps in memory: every failed request up to a cap (a crash storm
// must not exhaust memory) and a fixed-size random sample of the successes. Worker events are
// all kept, for the diagnosis; results.json keeps a bounded share of them
// (keep_results_sample in records.hpp).
constexpr std::size_t max_failed_timelines = 5'000;
constexpr std::size_t sampled_ok_timelines = 100;

// Collects a case's events and timelines from the subject's threads.
class case_recorder {
 public:
  explicit case_recorder(std::uint64_t seed) : rng_(seed) {}

  pool_observer observer() {
    return {.on_worker_event =
                [this](const worker_event& e) {
                  std::lock_guard lock(mutex_);
                  timelines_.workers.push_back(e);
                },
            .on_request = [this](const request_timeline& t) { record(t); }};
  }

  case_timelines timelines() {
    std::lock_guard lock(mutex_);
    return timelines_;
  }

  std::vector<std::int64_t> live_worker_pids() {
    std::lock_guard lock(mutex_);
    return harness::live_worker_pids(timelines_.workers);
  }

 private:
  void record(const request_timeline& t) {
    std::lock_guard lock(mutex_);
    if (t.outcome) {
      // A request reported again is a late completion (external subjects): the task ran
      // after its caller gave up, and its stamps say where and when.
      // (Id 0 is a request that never got one: a checkout timeout, say.)
      if (const auto seen = failed_index_.find(t.request_id); t.request_id != 0 && seen != failed_index_.end()) {
        return complete_late(timelines_.requests_failed[seen->second], t);
      }
      // Beyond the cap: a request already counted as dropped is not counted again.
      if (dropped_timeouts_.erase(t.request_id)) return;
      if (timelines_.requests_failed.size() < max_failed_timelines) {
        if (t.request_id != 0) failed_index_.emplace(t.request_id, timelines_.requests_failed.size());
        timelines_.requests_failed.push_back(timeline_record::of(t));
      } else {
        ++timelines_.requests_failed_dropped;
        if (*t.outcome == errc::request_timeout) dropped_timeouts_.insert(t.request_id);
      }
      return;
    }
    // Reservoir sampling: every success has the same chance to be kept.
    ++ok_seen_;
    auto& sampled = timelines_.requests_sampled;
    if (sampled.size() < sampled_ok_timelines) {
      sampled.push_back(timeline_record::of(t));
    } else if (const auto slot = std::uniform_int_distribution<std::uint64_t>(0, ok_seen_ - 1)(rng_);
               slot < sampled_ok_timelines) {
      sampled[slot] = timeline_record::of(t);
    }
  }

  // A driver that names no worker still stamps the task: the stamps are merged without one.
  static void complete_late(timeline_record& kept, const request_timeline& late) {
    if (kept.t_worker_recv != 0 || late.t_worker_recv == 0) return;
    kept.worker = late.worker;
    kept.t_checkout = late.t_checkout;
    kept.t_sent = late.t_sent;
    kept.t_worker_recv = late.t_worker_recv;
    kept.t_worker_done = late.t_worker_done;
  }

  std::mutex mutex_;
  std::mt19937_64 rng_;
  case_timelines timelines_;
  std::unordered_map<std::uint64_t, std::size_t> failed_index_;  // request id -> position
  // Request timeouts beyond the cap whose late completion may still be reported, each until it is.
  std::unordered_set<std::uint64_t> dropped_timeouts_;
  std::uint64_t ok_seen_ = 0;
};

latency_record latency_of(const latency_histogram& h) {
  const auto us = [](std::uint64_t v) { return static_cast<double>(v); };
  return {.p50 = us(h.value_at_percentile(50)),
          .p90 = us(h.value_at_percentile(90)),
          .p99 = us(h.value_at_percentile(99)),
          .p999 = us(h.value_at_percentile(99.9)),
          .max = us(h.max()),
          .mean = h.mean(),
          .count = h.count()};
}

// The case's environment readings, with the CPU figures only a finished case has.
json finished_environment(const environment_reading& before, const environment_reading& after,
                          std::size_t hogs, double wall_ms, std::size_t pool_size) {
  json environment = environment_json(before, after);
  environment["cpu_hogs"] = hogs;
  environment["workers_cpu_ms"] = (after.children_cpu_us - before.children_cpu_us) / 1e3;
  // Workers' CPU time over the wall time they could have used: well under 1 with busy
  // workers means they were waiting for CPU.
  environment["workers_cpu_per_wall"] =
      wall_ms > 0 ? (after.children_cpu_us - before.children_cpu_us) / 1e3 /
                        (wall_ms * static_cast<double>(pool_size))
                  : 0.0;
  // The case's own CPU use (harness, subject and workers) over every CPU it could use: near
  // 1, the case measured the host's cores rather than the subject.
  const double case_cpu_ms =
      (after.children_cpu_us - before.children_cpu_us + after.self_cpu_us - before.self_cpu_us) / 1e3;
  environment["case_cpu_share"] =
      wall_ms > 0 ? case_cpu_ms / (wall_ms * static_cast<double>(std::max<std::size_t>(1, after.cores)))
                  : 0.0;
  return environment;
}

// The memory of the workers among `pids` that can still be read (one may exit between the
// events and the read); nullopt when none could.
std::optional<memory_record> memory_of(const std::vector<std::int64_t>& pids) {
  memory_record m;
  for (const auto pid : pids) {
    const auto r = read_smaps_rollup(pid);
    if (!r) continue;
    ++m.workers;
    m.uss_kib.mean += static_cast<double>(r->uss_kib);
    m.pss_kib.mean += static_cast<double>(r->pss_kib);
    m.uss_kib.max = std::max(m.uss_kib.max, static_cast<double>(r->uss_kib));
    m.pss_kib.max = std::max(m.pss_kib.max, static_cast<double>(r->pss_kib));
  }
  if (m.workers == 0) return std::nullopt;
  m.uss_kib.mean /= static_cast<double>(m.workers);
  m.pss_kib.mean /= static_cast<double>(m.workers);
  return m;
}

}  // namespace

std::optional<case_error> apply_start_mode(const scenario& s, pool_options& options) {
  switch (s.worker.start_mode) {
    case worker_start_mode::spawn:
      options.worker.start_mode = start_mode::spawn;
      return std::nullopt;
    case worker_start_mode::zygote:
      // Only procpool's own pool forks from a template; a reference pool or an external one
      // starts workers its own way, and a run that silently spawned would mislabel its figures.
      if (s.subject.kind != subject_type::procpool) {
        return case_error{std::string(to_string(errc::invalid_options)),
                          fmt::format("worker.start_mode \"zygote\" needs subject.kind = "
                                      "\"procpool\"; a {} subject starts its workers itself",
                                      to_string(s.subject.kind))};
      }
      options.worker.start_mode = start_mode::zygote;
      return std::nullopt;
  }
  return std::nullopt;
}

launch_options worker_launch_for(const scenario& s) {
  launch_options launch;
  switch (s.worker.kind) {
    case worker_type::command:
      launch.argv = s.worker.command;
      return launch;
    case worker_type::python:
      launch = python_worker_launch();
      if (s.worker.startup_ms > 0) {
        // sleep, then exec the interpreter: the delay lands between spawn and t_main_ns,
        // where a slow interpreter start would.
        std::vector<std::string> argv = {"/bin/sh", "-c", "sleep \"$0\" && exec \"$@\"",
                                         fmt::format("{:.3f}", s.worker.startup_ms / 1000.0)};
        argv.insert(argv.end(), launch.argv.begin(), launch.argv.end());
        launch.argv = std::move(argv);
      }
      break;
    case worker_type::fake:
      launch = fake_worker_launch();
      break;
  }
  for (auto& flag : worker_extra_flags(s)) launch.argv.push_back(std::move(flag));
  return launch;
}

case_record run_case(const scenario_case& c, std::size_t index, const std::atomic<bool>& interrupted) {
  const scenario& s = c.scenario;
  case_record out;
  out.id = c.id;
  out.index = index;
  out.repetition = c.repetition;
  for (const auto& [key, value] : c.params) out.params[key] = value;

  // Hogs first, on every CPU; then the limit, which the subject's threads and workers inherit.
  cpu_hogs hogs(s.environment.cpu_hogs);
  cpu_affinity_limit limit(s.environment.cpus);
  case_recorder recorder(s.seed + c.repetition);

  pool_options options = pool_options_for(s);
  options.worker = worker_launch_for(s);
  options.observer = recorder.observer();
  const auto before = read_environment();
  if (auto refused = apply_start_mode(s, options)) {
    out.error = std::move(refused);
    out.timelines = recorder.timelines();
    out.environment = environment_json(before, read_environment());
    return out;
  }
  const auto t0 = std::chrono::steady_clock::now();
  // ready_ms counts from here, on the clock of the events' t_ns.
  const std::int64_t t_created_ns = monotonic_ns();
  auto target = make_subject(s.subject, std::move(options), {.warm = s.load.start == load_start::warm});
  if (!target) {
    out.error = case_error{std::string(to_string(target.error().code)), target.error().message};
    out.timelines = recorder.timelines();
    out.environment = environment_json(before, read_environment());
    return out;
  }
  if (s.load.start == load_start::warm) {
    (*target)->wait_ready(deadline_after(std::chrono::milliseconds(s.pool.start_timeout_ms +
                                                                   s.pool.init_timeout_ms)));
  }
  const load_outcome load =
      run_load(**target, s.load, request_for(s), s.seed + c.repetition, interrupted);
  if (load.submit_refused) {
    // The scenario check refuses this before a run; a subject added since may not have it.
    out.error = case_error{std::string(to_string(errc::invalid_options)),
                           fmt::format("load.issue \"submit\": a {} subject does not implement "
                                       "submit",
                                       to_string(s.subject.kind))};
  }
  // Before the stop: a stopping worker may already be freeing its pages.
  out.memory = memory_of(recorder.live_worker_pids());
  (*target)->stop();
  target->reset();  // reaps every worker, so the children's CPU time below includes them
  const auto after = read_environment();
  const double wall_ms =
      std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();

  for (const auto& [name, n] : load.outcomes) out.outcomes[name] = n;
  out.latency_us = latency_of(load.latency_us);
  out.throughput_rps = load.wall_ns > 0 ? load.issued * 1e9 / load.wall_ns : 0.0;
  out.wall_ms = wall_ms;
  out.load_wall_ms = load.wall_ns / 1e6;
  out.late_starts = load.late_starts;
  out.interrupted = load.interrupted;
  out.environment = finished_environment(before, after, hogs.count(), wall_ms, s.pool.size);
  out.timelines = recorder.timelines();
  out.ready_ms = ready_ms(out.timelines->workers, t_created_ns, s.pool.size);
  return out;
}

}  // namespace procpool::harness
