#include "run/runner.hpp"

#include <chrono>
#include <mutex>
#include <random>

#include <fmt/format.h>

#include "run/environment.hpp"
#include "run/load.hpp"
#include "subjects/subject.hpp"
#include "subjects/worker_locator.hpp"

namespace procpool::harness {
namespace {

using json = nlohmann::json;

// Bounds on what a case keeps: every failed request and every worker event up to a cap (a
// crash storm must not exhaust memory), and a fixed-size random sample of the successes.
constexpr std::size_t max_failed_timelines = 5'000;
constexpr std::size_t sampled_ok_timelines = 100;
constexpr std::size_t max_worker_events = 20'000;

json timeline_json(const request_timeline& t) {
  return {{"request_id", t.request_id},
          {"worker", t.worker},
          {"t_submit", t.t_submit},
          {"t_checkout", t.t_checkout},
          {"t_sent", t.t_sent},
          {"t_worker_recv", t.t_worker_recv},
          {"t_worker_done", t.t_worker_done},
          {"t_reply", t.t_reply},
          {"outcome", t.outcome ? json(to_string(*t.outcome)) : json("ok")}};
}

json event_json(const worker_event& e) {
  json j = {{"t_ns", e.t_ns},   {"worker", e.worker},           {"slot", e.slot},
            {"from", to_string(e.from)}, {"to", to_string(e.to)}, {"cause", e.cause},
            {"pid", e.pid}};
  if (e.t_spawn_ns) j["t_spawn_ns"] = e.t_spawn_ns;
  if (e.t_main_ns) j["t_main_ns"] = e.t_main_ns;
  if (e.t_init_done_ns) j["t_init_done_ns"] = e.t_init_done_ns;
  if (e.exit != exit_kind::none) j["exit_kind"] = to_string(e.exit);
  return j;
}

// Collects a case's events and timelines from the subject's threads.
class case_recorder {
 public:
  explicit case_recorder(std::uint64_t seed) : rng_(seed) {}

  pool_observer observer() {
    return {.on_worker_event =
                [this](const worker_event& e) {
                  std::lock_guard lock(mutex_);
                  if (events_.size() < max_worker_events) {
                    events_.push_back(event_json(e));
                  } else {
                    ++events_dropped_;
                  }
                },
            .on_request = [this](const request_timeline& t) { record(t); }};
  }

  json timelines() {
    std::lock_guard lock(mutex_);
    return {{"requests_failed", failed_},
            {"requests_failed_dropped", failed_dropped_},
            {"requests_sampled", sampled_},
            {"workers", events_},
            {"worker_events_dropped", events_dropped_}};
  }

 private:
  void record(const request_timeline& t) {
    std::lock_guard lock(mutex_);
    if (t.outcome) {
      if (failed_.size() < max_failed_timelines) {
        failed_.push_back(timeline_json(t));
      } else {
        ++failed_dropped_;
      }
      return;
    }
    // Reservoir sampling: every success has the same chance to be kept.
    ++ok_seen_;
    if (sampled_.size() < sampled_ok_timelines) {
      sampled_.push_back(timeline_json(t));
    } else if (const auto slot = std::uniform_int_distribution<std::uint64_t>(0, ok_seen_ - 1)(rng_);
               slot < sampled_ok_timelines) {
      sampled_[slot] = timeline_json(t);
    }
  }

  std::mutex mutex_;
  std::mt19937_64 rng_;
  json failed_ = json::array();
  json sampled_ = json::array();
  json events_ = json::array();
  std::uint64_t ok_seen_ = 0;
  std::uint64_t failed_dropped_ = 0;
  std::uint64_t events_dropped_ = 0;
};

json latency_json(const latency_histogram& h) {
  return {{"p50", h.value_at_percentile(50)},   {"p90", h.value_at_percentile(90)},
          {"p99", h.value_at_percentile(99)},   {"p999", h.value_at_percentile(99.9)},
          {"max", h.max()},                     {"mean", h.mean()},
          {"count", h.count()}};
}

}  // namespace

bool is_timeout_outcome(std::string_view outcome) noexcept {
  return outcome == "checkout_timeout" || outcome == "request_timeout";
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

json run_case(const scenario_case& c, std::size_t index, const std::atomic<bool>& interrupted) {
  const scenario& s = c.scenario;
  json params = json::object();
  for (const auto& [key, value] : c.params) params[key] = value;
  json out = {{"id", c.id}, {"index", index}, {"params", params}, {"repetition", c.repetition},
              {"verdicts", json::object()}};

  // Hogs first, on every CPU; then the limit, which the subject's threads and workers inherit.
  cpu_hogs hogs(s.environment.cpu_hogs);
  cpu_affinity_limit limit(s.environment.cpus);
  case_recorder recorder(s.seed + c.repetition);

  pool_options options = pool_options_for(s);
  options.worker = worker_launch_for(s);
  options.observer = recorder.observer();
  const auto before = read_environment();
  const auto t0 = std::chrono::steady_clock::now();
  auto target = make_subject(s.subject, std::move(options));
  if (!target) {
    out["error"] = {{"type", to_string(target.error().code)}, {"message", target.error().message}};
    out["outcomes"] = {{"ok", 0}};
    out["latency_us"] = latency_json(latency_histogram{});
    out["throughput_rps"] = 0;
    out["wall_ms"] = 0;
    out["timelines"] = recorder.timelines();
    out["environment"] = environment_json(before, read_environment());
    return out;
  }
  if (s.load.start == load_start::warm) {
    (*target)->wait_ready(deadline_after(std::chrono::milliseconds(s.pool.start_timeout_ms +
                                                                   s.pool.init_timeout_ms)));
  }
  const load_outcome load =
      run_load(**target, s.load, request_for(s), s.seed + c.repetition, interrupted);
  (*target)->stop();
  target->reset();  // reaps every worker, so the children's CPU time below includes them
  const auto after = read_environment();
  const double wall_ms =
      std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();

  json outcomes = {{"ok", 0}};
  for (const auto& [name, n] : load.outcomes) outcomes[name] = n;
  out["outcomes"] = outcomes;
  out["latency_us"] = latency_json(load.latency_us);
  out["throughput_rps"] = load.wall_ns > 0 ? load.issued * 1e9 / load.wall_ns : 0.0;
  out["wall_ms"] = wall_ms;
  out["load_wall_ms"] = load.wall_ns / 1e6;
  out["late_starts"] = load.late_starts;
  if (load.interrupted) out["interrupted"] = true;
  json environment = environment_json(before, after);
  environment["cpu_hogs"] = hogs.count();
  environment["workers_cpu_ms"] = (after.children_cpu_us - before.children_cpu_us) / 1e3;
  // Workers' CPU time over the wall time they could have used: well under 1 with busy
  // workers means they were waiting for CPU.
  environment["workers_cpu_per_wall"] =
      wall_ms > 0 ? (after.children_cpu_us - before.children_cpu_us) / 1e3 /
                        (wall_ms * static_cast<double>(s.pool.size))
                  : 0.0;
  // The case's own CPU use (harness, subject and workers) over every CPU it could use: near
  // 1, the case measured the host's cores rather than the subject.
  const double case_cpu_ms =
      (after.children_cpu_us - before.children_cpu_us + after.self_cpu_us - before.self_cpu_us) / 1e3;
  environment["case_cpu_share"] =
      wall_ms > 0 ? case_cpu_ms / (wall_ms * static_cast<double>(std::max<std::size_t>(1, after.cores)))
                  : 0.0;
  out["environment"] = environment;
  out["timelines"] = recorder.timelines();
  return out;
}

}  // namespace procpool::harness
