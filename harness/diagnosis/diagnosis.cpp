// Per-request verdicts. Each failed request is judged from what the pool was doing while it
// waited or ran (rebuilt from the case's worker events), the case's environment readings, and
// the successful requests around it. The rules, in the order they are tried, and their
// thresholds are documented in harness/diagnosis/verdicts.md: change both together.
#include "diagnosis/diagnosis.hpp"

#include <algorithm>
#include <cmath>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include <fmt/format.h>

#include "diagnosis/abandoned_tasks.hpp"
#include "results/worker_intervals.hpp"
#include "run/records.hpp"
#include "run/runner.hpp"

namespace procpool::harness {
namespace {

using json = nlohmann::json;

constexpr double ns_per_ms = 1e6;

// A request that saw an idle worker for this long (or for this share of its wait, if longer)
// was not dispatched: handing a free worker to a waiter takes microseconds.
constexpr double dispatch_bound_ms = 5.0;
constexpr double dispatch_bound_share = 0.10;
// The share of a wait a cause must cover to count as the cause.
constexpr double dominant_share = 0.5;
// CPU pressure (share of the case's wall time in which some task waited for a CPU) above
// which the host counts as short of CPU.
constexpr double contention_psi_pct = 10.0;
// Service time stretched this much beyond what was asked for counts as slowed down.
constexpr double contention_stretch = 1.3;
// Successful requests whose service time reaches this share of the deadline show a workload
// that runs close to it.
constexpr double workload_near_deadline = 0.5;

bool is_live(worker_state s) {
  return s == worker_state::starting || s == worker_state::idle || s == worker_state::busy ||
         s == worker_state::pinging;
}

struct worker_start {
  std::uint64_t worker = 0;
  std::int64_t t_spawn = 0;
  std::int64_t t_main = 0;       // 0 when the start did not finish
  std::int64_t t_init_done = 0;  // 0 when the start did not finish
  std::int64_t t_end = 0;        // when it stopped starting (ready, or gone)
};

// One launch of a zygote template (pool/ZYGOTE.md), from its spawn to its exit: while none is
// ready the pool cannot start a worker, so a template's start is the start of every worker
// waiting for it.
struct template_start {
  std::uint64_t worker = 0;
  std::int64_t pid = 0;
  std::int64_t t_spawn = 0;
  std::int64_t t_main = 0;       // 0 until it was ready
  std::int64_t t_init_done = 0;  // the end of its preload; 0 until it was ready
  std::int64_t t_ready = 0;      // 0: never ready
  std::int64_t t_end = 0;        // its exit, or the case's end
  bool fault = false;            // it exited with a fault: a failed launch, or it died
  std::string exit_cause;
  // From its fault exit to the next template's spawn (or the case's end): no template at all.
  std::int64_t t_down_until = 0;

  bool failed_launch() const { return fault && !t_ready; }
  // Not ready: from its spawn until it was ready, or until it gave up.
  std::int64_t unready_until() const { return t_ready ? t_ready : t_end; }
};

// How many workers were in each state, from one change to the next, and whether the pool
// had no ready zygote template then (no_template > 0: it could start no worker).
struct occupancy_step {
  std::int64_t t = 0;
  int starting = 0;
  int idle = 0;
  int busy = 0;
  int live = 0;
  int no_template = 0;
};

// The outage a slot suffers after its worker died of a fault: from the exit until the slot's
// next worker is spawned (or the case ends).
struct slot_outage {
  std::int64_t begin = 0;
  std::int64_t end = 0;
  std::uint64_t worker = 0;  // the worker that died
};

struct fault_exit {
  std::int64_t t = 0;
  std::uint64_t worker = 0;
};

struct service_reference {
  bool known = false;      // the harness asked the worker for a known service time
  double typical_ms = 0;   // its mean
  double upper_ms = 0;     // about its 99th percentile
  bool cpu = false;
};

// What a case's scenario asked for, as far as the rules need it.
struct case_settings {
  std::size_t pool_size = 1;
  std::size_t start_cap = 1;
  double checkout_timeout_ms = 0;
  double request_timeout_ms = 0;
  double start_timeout_ms = 0;
  double template_start_timeout_ms = 0;  // a template's ready is due within start_timeout
  double injected_start_ms = 0;  // worker.startup_ms + worker.init_ms
  service_reference service;
};

// The case rebuilt from its record (rebuild_case_view): worker state intervals, occupancy over time, the starts,
// slot outages after faults, request waits, and reference figures.
struct case_view {
  std::vector<state_interval> intervals;
  // Each worker's idle intervals, in time order: [begin, end).
  std::map<std::uint64_t, std::vector<std::pair<std::int64_t, std::int64_t>>> idle_by_worker;
  std::vector<occupancy_step> steps;
  std::vector<worker_start> starts;
  std::vector<template_start> templates;  // in spawn order; empty unless the pool had one
  double mean_template_startup_ms = 0;    // over the templates that became ready
  double mean_template_init_ms = 0;
  std::size_t ready_templates = 0;
  std::vector<slot_outage> outages;
  std::vector<fault_exit> fault_exits;
  std::map<std::uint64_t, std::string> exit_causes;
  std::vector<std::pair<std::int64_t, std::int64_t>> waits;  // submit to checkout (or reply)
  std::vector<double> ok_service_ms;                         // worker_done - worker_recv
  double mean_startup_ms = 0;  // over completed starts
  double mean_init_ms = 0;
  std::size_t completed_starts = 0;
  std::int64_t t_end = 0;
  // Nonzero: the pool's state after this time is unknown, for the reason given.
  std::int64_t t_known_until = 0;
  std::string unknown_after;
  abandoned_tasks abandoned;  // tasks that outlived their callers (external pools)
  bool workers_known = false;  // any worker event at all
  double cpu_pressure_pct = 0;
  bool psi_available = false;
  std::size_t cpu_hogs = 0;
};

// Why a worker left, from its stopping or exited event. Documents written before events
// carried exit_kind (merge and report read old results.json files) say it only in the free
// text of the cause, so the cause's wording is the fallback there.
bool is_planned_exit(const worker_event& e) {
  switch (e.exit) {
    case exit_kind::planned_stop:
    case exit_kind::recycled: return true;
    case exit_kind::fault: return false;
    case exit_kind::none: break;
  }
  return e.cause.starts_with("pool stopping") || e.cause.starts_with("recycled");
}

service_reference service_of(const scenario& s) {
  service_reference r;
  if (s.worker.kind == worker_type::command) return r;
  const auto& sv = s.worker.service;
  r.known = true;
  r.cpu = sv.cpu || s.load.command == load_command::burn;
  if (s.load.command != load_command::echo) {
    r.typical_ms = r.upper_ms = sv.ms;
    return r;
  }
  switch (sv.dist) {
    case service_dist::fixed: r.typical_ms = r.upper_ms = sv.ms; break;
    case service_dist::uniform:
      r.typical_ms = (sv.min_ms + sv.max_ms) / 2;
      r.upper_ms = sv.max_ms;
      break;
    case service_dist::exponential:
      r.typical_ms = sv.ms;
      r.upper_ms = sv.ms * std::log(100.0);
      break;
    case service_dist::lognormal:
      r.typical_ms = sv.ms * std::exp(sv.sigma * sv.sigma / 2);
      r.upper_ms = sv.ms * std::exp(2.326 * sv.sigma);
      break;
  }
  return r;
}

case_settings settings_of(const scenario& s) {
  const std::size_t cores = std::max<std::size_t>(1, std::thread::hardware_concurrency());
  return {.pool_size = s.pool.size,
          .start_cap = s.pool.max_concurrent_starts ? s.pool.max_concurrent_starts : cores,
          .checkout_timeout_ms = static_cast<double>(s.pool.checkout_timeout_ms),
          .request_timeout_ms = static_cast<double>(s.pool.request_timeout_ms),
          .start_timeout_ms = static_cast<double>(s.pool.start_timeout_ms + s.pool.init_timeout_ms),
          .template_start_timeout_ms = static_cast<double>(s.pool.start_timeout_ms),
          .injected_start_ms = s.worker.startup_ms + s.worker.init_ms,
          .service = service_of(s)};
}

// The latest thing the case recorded: its last worker event or request reply.
std::int64_t end_of(const case_timelines& tl) {
  std::int64_t t_end = 0;
  for (const auto& e : tl.workers) t_end = std::max(t_end, e.t_ns);
  for (const auto* list : {&tl.requests_failed, &tl.requests_sampled}) {
    for (const auto& t : *list) t_end = std::max(t_end, t.t_reply);
  }
  return t_end;
}

// The starts, the exits that were faults, and the outages of the slots those left empty.
void read_departures(const std::vector<worker_event>& workers, case_view& v) {
  std::map<std::uint64_t, worker_start> starting;
  std::map<std::size_t, fault_exit> slot_down_since;  // slots whose worker died of a fault
  // A worker the pool retired on purpose (recycled, or stopped with the pool) left no fault
  // behind, whatever its exit looked like: its stopping event decides when it had one.
  std::map<std::uint64_t, bool> stopping_planned;
  std::set<std::uint64_t> seen;
  for (const worker_event* e : in_time_order(workers)) {
    const std::int64_t t = e->t_ns;
    // A slot is back when its next worker appears: starting, or (a pool that reports no
    // starts) in whatever state it was first seen.
    if (seen.insert(e->worker).second && e->to != worker_state::exited) {
      if (auto down = slot_down_since.find(e->slot); down != slot_down_since.end()) {
        v.outages.push_back({down->second.t, t, down->second.worker});
        slot_down_since.erase(down);
      }
    }
    if (e->to == worker_state::starting) {
      starting[e->worker] = {.worker = e->worker, .t_spawn = e->t_spawn_ns ? e->t_spawn_ns : t};
    } else if (auto st = starting.find(e->worker); st != starting.end()) {
      st->second.t_end = t;
      st->second.t_main = e->t_main_ns;
      st->second.t_init_done = e->t_init_done_ns;
      v.starts.push_back(st->second);
      starting.erase(st);
    }
    if (e->to == worker_state::stopping) stopping_planned[e->worker] = is_planned_exit(*e);
    if (e->to != worker_state::exited) continue;
    v.exit_causes[e->worker] = e->cause;
    const auto stopped = stopping_planned.find(e->worker);
    if (!(stopped != stopping_planned.end() ? stopped->second : is_planned_exit(*e))) {
      v.fault_exits.push_back({t, e->worker});
      slot_down_since[e->slot] = {t, e->worker};
    }
  }
  for (auto& [worker, st] : starting) {
    st.t_end = v.t_end;
    v.starts.push_back(st);
  }
  for (const auto& [slot, since] : slot_down_since) v.outages.push_back({since.t, v.t_end, since.worker});
}

// The mean start-up (spawn to main) and init (main to init done) of the starts that got both
// stamps: a worker's, or a template's, whose init is its preload.
struct phase_means {
  std::size_t completed = 0;
  double startup_ms = 0;
  double init_ms = 0;
};

template <class Start>
phase_means phase_means_of(const std::vector<Start>& starts) {
  phase_means m;
  for (const auto& s : starts) {
    if (!s.t_main || !s.t_init_done) continue;
    ++m.completed;
    m.startup_ms += (s.t_main - s.t_spawn) / ns_per_ms;
    m.init_ms += (s.t_init_done - s.t_main) / ns_per_ms;
  }
  if (m.completed) {
    m.startup_ms /= m.completed;
    m.init_ms /= m.completed;
  }
  return m;
}

// Each template's launch, from its events in time order: its stamps come with its ready
// event, its fault (or not) with its exit.
void read_templates(const std::vector<worker_event>& events, case_view& v) {
  std::map<std::uint64_t, std::size_t> index;  // template -> its launch in v.templates
  std::map<std::uint64_t, bool> stopping_planned;
  for (const worker_event* e : in_time_order(events)) {
    auto [it, first] = index.try_emplace(e->worker, v.templates.size());
    if (first) {
      template_start& t = v.templates.emplace_back();
      t.worker = e->worker;
      t.t_spawn = e->t_ns;
      t.t_end = v.t_end;
    }
    template_start& t = v.templates[it->second];
    if (e->pid > 0) t.pid = e->pid;
    if (e->t_spawn_ns) t.t_spawn = e->t_spawn_ns;
    if (e->t_main_ns) t.t_main = e->t_main_ns;
    if (e->t_init_done_ns) t.t_init_done = e->t_init_done_ns;
    if (e->to == worker_state::idle && !t.t_ready) t.t_ready = e->t_ns;
    if (e->to == worker_state::stopping) stopping_planned[e->worker] = is_planned_exit(*e);
    if (e->to != worker_state::exited) continue;
    t.t_end = e->t_ns;
    t.exit_cause = e->cause;
    const auto stopped = stopping_planned.find(e->worker);
    t.fault = !(stopped != stopping_planned.end() ? stopped->second : is_planned_exit(*e));
  }
  std::stable_sort(v.templates.begin(), v.templates.end(),
                   [](const template_start& a, const template_start& b) { return a.t_spawn < b.t_spawn; });
  for (std::size_t k = 0; k < v.templates.size(); ++k) {
    template_start& t = v.templates[k];
    if (t.fault) t.t_down_until = k + 1 < v.templates.size() ? v.templates[k + 1].t_spawn : v.t_end;
  }
  const phase_means means = phase_means_of(v.templates);
  v.ready_templates = means.completed;
  v.mean_template_startup_ms = means.startup_ms;
  v.mean_template_init_ms = means.init_ms;
}

// How many workers were in each state, from one change to the next: +1/-1 per interval
// edge, summed in time order. A template's unready and down spans count in no_template.
std::vector<occupancy_step> occupancy_of(const std::vector<state_interval>& intervals,
                                         const std::vector<template_start>& templates) {
  struct edge {
    std::int64_t t;
    std::optional<worker_state> state;  // none: a span without a ready template
    int delta;
  };
  std::vector<edge> edges;
  for (const auto& i : intervals) {
    edges.push_back({i.begin, i.state, +1});
    edges.push_back({i.end, i.state, -1});
  }
  for (const auto& t : templates) {
    edges.push_back({t.t_spawn, std::nullopt, +1});
    edges.push_back({t.unready_until(), std::nullopt, -1});
    if (t.fault && t.t_down_until > t.t_end) {
      edges.push_back({t.t_end, std::nullopt, +1});
      edges.push_back({t.t_down_until, std::nullopt, -1});
    }
  }
  std::sort(edges.begin(), edges.end(), [](const edge& a, const edge& b) { return a.t < b.t; });
  std::vector<occupancy_step> steps;
  occupancy_step current;
  for (std::size_t i = 0; i < edges.size();) {
    const std::int64_t t = edges[i].t;
    for (; i < edges.size() && edges[i].t == t; ++i) {
      const auto& e = edges[i];
      if (!e.state) {
        current.no_template += e.delta;
        continue;
      }
      if (e.state == worker_state::starting) current.starting += e.delta;
      if (e.state == worker_state::idle) current.idle += e.delta;
      if (e.state == worker_state::busy) current.busy += e.delta;
      if (is_live(*e.state)) current.live += e.delta;
    }
    current.t = t;
    steps.push_back(current);
  }
  return steps;
}

void read_start_means(case_view& v) {
  const phase_means means = phase_means_of(v.starts);
  v.completed_starts = means.completed;
  v.mean_startup_ms = means.startup_ms;
  v.mean_init_ms = means.init_ms;
}

// A request that ran out of time still queued in its worker's pipeline (written behind
// others, and never the oldest unanswered one): its worker never began on it.
bool never_at_head(const timeline_record& t) {
  return t.outcome == "request_timeout" && t.t_head == 0 && t.ahead > 0;
}

void read_requests(const case_timelines& tl, case_view& v) {
  for (const auto* list : {&tl.requests_failed, &tl.requests_sampled}) {
    for (const auto& t : *list) {
      v.waits.emplace_back(t.t_submit, t.t_checkout ? t.t_checkout : t.t_reply);
      // Its wait behind the requests ahead of it is judged as its own (rule 0), so it is one
      // of the waits an overlapping request sees, and not one of its own.
      if (never_at_head(t)) v.waits.emplace_back(t.t_sent, t.t_reply);
    }
  }
  for (const auto& t : tl.requests_sampled) {
    if (t.t_worker_recv && t.t_worker_done) {
      v.ok_service_ms.push_back((t.t_worker_done - t.t_worker_recv) / ns_per_ms);
    }
  }
  std::sort(v.ok_service_ms.begin(), v.ok_service_ms.end());
}

void read_environment(const json& env, case_view& v) {
  v.psi_available = env.value("psi_available", false);
  if (env.contains("psi")) v.cpu_pressure_pct = env["psi"].value("cpu_some_pct", 0.0);
  v.cpu_hogs = env.value("cpu_hogs", std::size_t{0});
}

// The worker events with the occupancy the driver could not report: each never-completed
// task placed on its silent worker becomes that worker's busy interval.
std::vector<worker_event> with_hidden_runs(std::vector<worker_event> events, const abandoned_tasks& a) {
  for (const auto& run : a.hidden) {
    worker_event e;
    e.t_ns = run.since;
    e.worker = run.worker;
    e.from = worker_state::idle;
    e.to = worker_state::busy;
    e.cause = "a task that never completed";
    events.push_back(std::move(e));
  }
  return events;
}

// The pool's history during the case, rebuilt from its worker events and requests.
case_view rebuild_case_view(const case_timelines& tl, const json& environment) {
  case_view v;
  v.t_end = end_of(tl);
  v.workers_known = !tl.workers.empty();
  // Past the last kept event the pool's state is unknown when events were dropped.
  if (tl.worker_events_dropped > 0) {
    for (const auto& e : tl.workers) v.t_known_until = std::max(v.t_known_until, e.t_ns);
    v.unknown_after = fmt::format("the record keeps the pool's first {} worker events and {} were "
                                  "left out", tl.workers.size(), tl.worker_events_dropped);
  }
  v.abandoned = find_abandoned_tasks(tl, v.t_end);
  // A task in flight when the case ended may have kept a worker busy that reported nothing
  // since: at most one task's length before the end is uncertain.
  if (v.abandoned.unplaced > 0 && v.abandoned.longest_task_ns > 0) {
    // The stop follows the last reply: a task still running then began at most one task's
    // length before it.
    std::int64_t last_reply = 0;
    for (const auto* list : {&tl.requests_failed, &tl.requests_sampled}) {
      for (const auto& t : *list) last_reply = std::max(last_reply, t.t_reply);
    }
    const std::int64_t horizon = std::min(v.t_end, last_reply) - v.abandoned.longest_task_ns;
    if (!v.t_known_until || horizon < v.t_known_until) {
      v.t_known_until = horizon;
      v.unknown_after = fmt::format(
          "{} timed-out tasks never completed and the driver does not say which workers ran "
          "them, so the pool's occupancy in the last {:.0f} ms of the case (the longest task) "
          "is unknown",
          v.abandoned.unplaced, v.abandoned.longest_task_ns / ns_per_ms);
    }
  }
  // A template is never a worker that could take a request: its events make the templates'
  // history, and the pool's workers are the rest.
  std::vector<worker_event> workers, templates;
  for (const auto& e : tl.workers) {
    (e.role == worker_role::zygote_template ? templates : workers).push_back(e);
  }
  read_templates(templates, v);
  v.intervals = worker_intervals(with_hidden_runs(workers, v.abandoned), v.t_end);
  v.steps = occupancy_of(v.intervals, v.templates);
  for (const auto& i : v.intervals) {
    if (i.state == worker_state::idle) v.idle_by_worker[i.worker].emplace_back(i.begin, i.end);
  }
  for (auto& [worker, idle] : v.idle_by_worker) std::sort(idle.begin(), idle.end());
  read_departures(workers, v);
  read_start_means(v);
  read_requests(tl, v);
  read_environment(environment, v);
  return v;
}

double overlap_ms(std::int64_t a0, std::int64_t a1, std::int64_t b0, std::int64_t b1) {
  return std::max<std::int64_t>(0, std::min(a1, b1) - std::max(a0, b0)) / ns_per_ms;
}

// What the pool was doing during one request's wait.
struct wait_picture {
  double wait_ms = 0;
  double idle_max_ms = 0;  // the longest a single worker sat idle
  std::uint64_t idle_worker = 0;
  double starting_ms = 0;       // some start in progress
  int max_starting = 0;         // concurrent starts at most
  // Slots short of workers while no zygote template was ready: the pool could start none.
  double template_wait_ms = 0;
  double start_or_template_ms = 0;  // either of the two
  double short_slots_ms = 0;    // fewer live workers than the pool's size
  double saturated_ms = 0;      // every live worker busy, none starting, none idle
  double outage_ms = 0;         // some slot down after a fault
  std::size_t fault_exits = 0;  // workers lost to faults during the wait
  std::set<std::uint64_t> lost_workers;  // those, and the ones whose slots were still down
  bool others_waiting = false;  // another request waited at the same time
  std::vector<const worker_start*> starts;
  double busy_share = 0;  // mean busy workers over live workers
  // Time in which some worker was busy with a task whose caller had already given up, and
  // how much of it each such request's task took.
  double abandoned_ms = 0;
  std::map<std::size_t, double> abandoned_by_request;
};

// The length of the union of [begin, end) spans, clipped to [a, b).
double union_ms(std::vector<std::pair<std::int64_t, std::int64_t>> spans, std::int64_t a, std::int64_t b) {
  std::sort(spans.begin(), spans.end());
  std::int64_t covered = 0, reach = a;
  for (auto [s0, s1] : spans) {
    s0 = std::max(s0, reach);
    s1 = std::min(s1, b);
    if (s1 > s0) {
      covered += s1 - s0;
      reach = s1;
    }
  }
  return covered / ns_per_ms;
}

// The longest any single worker sat idle during [a, b). Each worker's idle intervals are
// disjoint and in order: only those from the first that ends after `a` can overlap, so a long
// soak's history costs a search per worker, not a scan.
void read_idle(const case_view& v, std::int64_t a, std::int64_t b, wait_picture& p) {
  for (const auto& [worker, idle] : v.idle_by_worker) {
    auto it = std::partition_point(idle.begin(), idle.end(), [&](const auto& i) { return i.second <= a; });
    for (; it != idle.end() && it->first < b; ++it) {
      const double o = overlap_ms(it->first, it->second, a, b);
      if (o > p.idle_max_ms) {
        p.idle_max_ms = o;
        p.idle_worker = worker;
      }
    }
  }
}

// How many workers were starting, live and busy during [a, b): the step in force at `a` and
// those after it.
void read_occupancy(const case_view& v, const case_settings& cs, std::int64_t a, std::int64_t b,
                    wait_picture& p) {
  double busy_sum = 0, live_sum = 0;
  const auto first = std::partition_point(v.steps.begin(), v.steps.end(),
                                          [&](const occupancy_step& s) { return s.t <= a; });
  for (std::size_t k = first == v.steps.begin() ? 0 : static_cast<std::size_t>(first - v.steps.begin()) - 1;
       k < v.steps.size() && v.steps[k].t < b; ++k) {
    const auto& s = v.steps[k];
    const std::int64_t until = k + 1 < v.steps.size() ? v.steps[k + 1].t : v.t_end;
    const double d = overlap_ms(s.t, until, a, b);
    if (d <= 0) continue;
    const bool short_slots = static_cast<std::size_t>(s.live) < cs.pool_size;
    if (s.starting > 0) {
      p.starting_ms += d;
      p.max_starting = std::max(p.max_starting, s.starting);
    }
    const bool waiting_for_template = s.no_template > 0 && short_slots;
    if (waiting_for_template) p.template_wait_ms += d;
    if (s.starting > 0 || waiting_for_template) p.start_or_template_ms += d;
    if (short_slots) p.short_slots_ms += d;
    if (s.live > 0 && s.busy == s.live) p.saturated_ms += d;
    busy_sum += s.busy * d;
    live_sum += s.live * d;
  }
  // Before the first event, nothing was live: every slot was short.
  if (!v.steps.empty() && a < v.steps.front().t) {
    p.short_slots_ms += overlap_ms(a, v.steps.front().t, a, b);
  }
  p.busy_share = live_sum > 0 ? busy_sum / live_sum : 0;
}

// Workers lost, and workers held by abandoned tasks, during [a, b).
void read_losses(const case_view& v, std::int64_t a, std::int64_t b, wait_picture& p) {
  for (const auto& o : v.outages) {
    const double down = overlap_ms(o.begin, o.end, a, b);
    p.outage_ms = std::max(p.outage_ms, down);
    if (down > 0) p.lost_workers.insert(o.worker);
  }
  for (const auto& e : v.fault_exits) {
    if (e.t < a || e.t > b) continue;
    ++p.fault_exits;
    p.lost_workers.insert(e.worker);
  }
  std::vector<std::pair<std::int64_t, std::int64_t>> abandoned;
  for (const auto& span : v.abandoned.spans) {
    const double o = overlap_ms(span.begin, span.end, a, b);
    if (o <= 0) continue;
    abandoned.emplace_back(span.begin, span.end);
    p.abandoned_by_request[span.request] += o;
  }
  p.abandoned_ms = union_ms(std::move(abandoned), a, b);
}

wait_picture picture(const case_view& v, const case_settings& cs, std::int64_t a, std::int64_t b) {
  wait_picture p;
  p.wait_ms = std::max<std::int64_t>(0, b - a) / ns_per_ms;
  read_idle(v, a, b, p);
  read_occupancy(v, cs, a, b, p);
  read_losses(v, a, b, p);
  for (const auto& s : v.starts) {
    if (overlap_ms(s.t_spawn, s.t_end, a, b) > 0) p.starts.push_back(&s);
  }
  int self_seen = 0;
  for (const auto& [w0, w1] : v.waits) {
    if (w0 == a && w1 == b && self_seen++ == 0) continue;
    if (overlap_ms(w0, w1, a, b) > 0) {
      p.others_waiting = true;
      break;
    }
  }
  return p;
}

struct judgement {
  judgement(std::string_view v, std::string r, json e = json::object(), std::string s = {})
      : verdict(v), rule(std::move(r)), evidence(std::move(e)), summary(std::move(s)) {}
  std::string_view verdict;  // empty: undecided, for the reason in `missing`
  std::string rule;  // the rule that decided, in words
  json evidence;     // the figures it decided on
  std::string summary;
  std::string missing;  // undecided: the evidence the record lacks
};

judgement undecided(std::string missing) {
  judgement j{std::string_view{}, std::string{}};
  j.missing = std::move(missing);
  return j;
}

double percentile(const std::vector<double>& sorted, double q) {
  if (sorted.empty()) return 0;
  const auto i = static_cast<std::size_t>(std::ceil(q * sorted.size())) - 1;
  return sorted[std::min(i, sorted.size() - 1)];
}

double round3(double x) { return std::round(x * 1000) / 1000; }

// Service under contention: the host short of CPU, and service slower than asked.
std::optional<double> contention_stretch_of(const case_view& v, const case_settings& cs) {
  if (!cs.service.known || cs.service.typical_ms <= 0 || v.ok_service_ms.empty()) return std::nullopt;
  double sum = 0;
  for (double x : v.ok_service_ms) sum += x;
  return sum / v.ok_service_ms.size() / cs.service.typical_ms;
}

bool host_short_of_cpu(const case_view& v) {
  return v.psi_available ? v.cpu_pressure_pct >= contention_psi_pct : v.cpu_hogs > 0;
}

judgement contention(const case_view& v, std::optional<double> stretch, double waited_ms,
                     double deadline_ms, std::string_view what) {
  judgement j{verdict::contention,
              "the host was short of CPU (CPU pressure at or above 10% of the case, or CPU hogs "
              "without pressure readings) and service ran slower than asked"};
  j.evidence = {{"cpu_pressure_pct", round3(v.cpu_pressure_pct)},
                {"cpu_hogs", v.cpu_hogs},
                {"waited_ms", round3(waited_ms)},
                {"deadline_ms", deadline_ms}};
  if (stretch) j.evidence["service_stretch"] = round3(*stretch);
  j.summary = fmt::format(
      "{}{}{}{}", what,
      v.psi_available ? fmt::format(" while some task waited for a CPU {:.0f}% of the time", v.cpu_pressure_pct)
                      : std::string(),
      v.cpu_hogs ? fmt::format(", {} CPU hogs", v.cpu_hogs) : "",
      stretch ? fmt::format(", service {:.1f}x slower than asked", *stretch) : "");
  return j;
}

// The verdicts of the requests whose failure cost a worker its life, by worker.
using loss_verdicts = std::map<std::uint64_t, std::string_view>;

// A wait spent on replacing lost workers is charged to what lost them: the verdict of the
// failed request that killed the worker (a request timeout under contention is contention),
// fault.crash when the worker died on its own.
judgement replacement_wait(const wait_picture& p, const loss_verdicts& losses, json evidence,
                           std::string rule) {
  std::map<std::string_view, std::size_t> causes;
  for (const auto w : p.lost_workers) {
    const auto it = losses.find(w);
    ++causes[it == losses.end() ? verdict::crash : it->second];
  }
  std::string_view cause = verdict::crash;
  std::size_t most = 0;
  for (const auto& [name, n] : causes) {
    if (n > most) {
      most = n;
      cause = name;
    }
  }
  evidence["lost_workers"] = p.lost_workers.size();
  evidence["lost_to"] = cause;
  judgement j{cause, std::move(rule), std::move(evidence)};
  j.summary = fmt::format("waited {:.0f} ms while {} lost {} were replaced ({})", p.wait_ms,
                          p.lost_workers.size(), p.lost_workers.size() == 1 ? "worker" : "workers",
                          cause == verdict::crash ? "they died" : fmt::format("lost to {}", cause));
  return j;
}

judgement idle_worker_wait(const wait_picture& p, json evidence, double dispatch_bound) {
  judgement j{verdict::dispatch,
              "a ready worker sat idle during the wait for longer than the dispatch bound "
              "(5 ms, or 10% of the wait)"};
  j.evidence = std::move(evidence);
  j.evidence.update({{"idle_worker", p.idle_worker},
                     {"idle_ms", round3(p.idle_max_ms)},
                     {"dispatch_bound_ms", round3(dispatch_bound)}});
  j.summary = fmt::format("waited {:.0f} ms while worker {} sat idle for {:.0f} ms", p.wait_ms,
                          p.idle_worker, p.idle_max_ms);
  return j;
}

// The mean start-up and init of the starts the request saw finish; the case's completed
// starts otherwise.
std::pair<double, double> start_phases_ms(const case_view& v, const wait_picture& p) {
  double startup_ms = 0, init_ms = 0;
  std::size_t n = 0;
  for (const auto* s : p.starts) {
    if (!s->t_main || !s->t_init_done) continue;
    startup_ms += (s->t_main - s->t_spawn) / ns_per_ms;
    init_ms += (s->t_init_done - s->t_main) / ns_per_ms;
    ++n;
  }
  if (!n) return {v.mean_startup_ms, v.mean_init_ms};
  return {startup_ms / n, init_ms / n};
}

// Starts were in progress for most of the wait: serialised starts, or the slower of their
// two phases.
judgement starting_wait(const case_view& v, const case_settings& cs, const wait_picture& p, json base) {
  base.update({{"starting_ms", round3(p.starting_ms)},
               {"max_concurrent_starts", p.max_starting},
               {"start_cap", cs.start_cap},
               {"starts_during_wait", p.starts.size()},
               {"short_slots_ms", round3(p.short_slots_ms)}});
  const bool room_to_start_more = cs.start_cap >= 2 && cs.pool_size >= 2 &&
                                  p.short_slots_ms >= dominant_share * p.starting_ms;
  if (p.max_starting <= 1 && room_to_start_more && p.others_waiting) {
    judgement j{verdict::startup_serialization,
                "starts were in progress for most of the wait but never overlapped, although "
                "the start cap allowed more, slots were free and other requests waited too"};
    j.evidence = base;
    j.summary = fmt::format(
        "waited {:.0f} ms while workers started one at a time, although the start cap "
        "allowed {} and the pool of {} had free slots for {:.0f} ms of the wait",
        p.wait_ms, cs.start_cap, cs.pool_size, p.short_slots_ms);
    return j;
  }
  // Which phase of the starts kept the request waiting.
  const auto [startup_ms, init_ms] = start_phases_ms(v, p);
  const bool init_slower = init_ms > startup_ms;
  judgement j{init_slower ? verdict::init : verdict::startup,
              init_slower ? "starts were in progress for most of the wait, concurrent or at the "
                            "cap, and their init phase (main to init done) was the longer"
                          : "starts were in progress for most of the wait, concurrent or at the "
                            "cap, and their start-up phase (spawn to main) was the longer"};
  j.evidence = base;
  j.evidence.update({{"startup_ms", round3(startup_ms)}, {"init_ms", round3(init_ms)}});
  j.summary = fmt::format(
      "start-up took {:.0f} ms and init {:.0f} ms against a {:.0f} ms checkout timeout; {}",
      startup_ms, init_ms, cs.checkout_timeout_ms,
      p.max_starting > 1 ? fmt::format("starts were concurrent (up to {} at once, cap {})",
                                       p.max_starting, cs.start_cap)
                         : fmt::format("one start at a time, as the cap ({}) or the pool's "
                                       "free slots allowed",
                                       cs.start_cap));
  return j;
}

// The figures that name a template in evidence: which process it was and its phases, as far
// as they were stamped.
json template_evidence(const template_start& t) {
  json e = {{"zygote_template", true}, {"template_worker", t.worker}, {"template_pid", t.pid}};
  if (t.t_main) e["template_startup_ms"] = round3((t.t_main - t.t_spawn) / ns_per_ms);
  if (t.t_main && t.t_init_done) e["template_preload_ms"] = round3((t.t_init_done - t.t_main) / ns_per_ms);
  if (!t.exit_cause.empty()) e["template_exit"] = t.exit_cause;
  return e;
}

// A template that failed, judged as a failed start is (judge_start_failed): a launch that ran
// out of its start timeout is the environment's when launches here take that long and a hang
// when they do not; any other failure (its preload failed, it exited, it died once ready,
// taking its workers with it) is a crash.
judgement failed_template(const case_view& v, const case_settings& cs, const template_start& t, json evidence) {
  evidence.update(template_evidence(t));
  evidence["ready_templates"] = v.ready_templates;
  // The launch's length says it, whatever words the pool chose ("did not finish its preload
  // within ..." from procpool's).
  const bool timed_out =
      t.failed_launch() && (t.t_end - t.t_spawn >= cs.template_start_timeout_ms * ns_per_ms ||
                            t.exit_cause.find("did not finish") != std::string::npos);
  if (timed_out) {
    evidence["start_timeout_ms"] = cs.template_start_timeout_ms;
    const double typical_ms = v.mean_template_startup_ms + v.mean_template_init_ms;
    const bool environment_slow = v.ready_templates
                                      ? typical_ms >= dominant_share * cs.template_start_timeout_ms
                                      : cs.injected_start_ms >= cs.template_start_timeout_ms;
    if (environment_slow) {
      const bool init_slower = v.ready_templates && v.mean_template_init_ms > v.mean_template_startup_ms;
      judgement j{init_slower ? verdict::init : verdict::startup,
                  "the zygote template the pool's workers waited for ran out of its start "
                  "timeout, and template launches in this environment take that long"};
      j.evidence = std::move(evidence);
      j.summary = fmt::format("the zygote template (pid {}) did not become ready within {:.0f} ms; "
                              "launches here take {:.0f} ms",
                              t.pid, cs.template_start_timeout_ms,
                              v.ready_templates ? typical_ms : cs.injected_start_ms);
      return j;
    }
    judgement j{verdict::hang,
                "the zygote template the pool's workers waited for never became ready, although "
                "template launches here take well under the start timeout"};
    j.evidence = std::move(evidence);
    j.summary = fmt::format("the zygote template (pid {}) never became ready within {:.0f} ms", t.pid,
                            cs.template_start_timeout_ms);
    return j;
  }
  judgement j{verdict::crash,
              t.failed_launch() ? "the zygote template the pool's workers waited for failed its launch"
                                : "the zygote template died, and the pool's workers waited for its "
                                  "replacement"};
  j.evidence = std::move(evidence);
  j.summary = fmt::format("the zygote template (pid {}) {}: {}", t.pid,
                          t.failed_launch() ? "failed its launch" : "died",
                          t.exit_cause.empty() ? "exit" : t.exit_cause);
  return j;
}

// The pool's slots were short for most of the wait while no zygote template was ready, so no
// worker could start: the template's start was the start of every worker waiting for it. The
// template whose unready or down time covered most of the wait decides: by the slower of its
// phases, as rule 5 judges worker starts, or, when it failed, as a failed start.
judgement template_wait(const case_view& v, const case_settings& cs, const wait_picture& p,
                        std::int64_t a, std::int64_t b, json base) {
  base.update({{"template_wait_ms", round3(p.template_wait_ms)},
               {"short_slots_ms", round3(p.short_slots_ms)}});
  const template_start* decisive = nullptr;
  bool decisive_failed = false;
  double most = -1;
  for (const auto& t : v.templates) {
    const double unready = overlap_ms(t.t_spawn, t.unready_until(), a, b);
    const double down = t.fault ? overlap_ms(t.t_end, t.t_down_until, a, b) : 0;
    // A failed launch's unready time and any template's down time were spent on a failure.
    const double failed = down + (t.failed_launch() ? unready : 0);
    const double starting = t.failed_launch() ? 0 : unready;
    for (const auto& [ms, is_failure] : {std::pair{starting, false}, std::pair{failed, true}}) {
      if (ms > most) {
        most = ms;
        decisive = &t;
        decisive_failed = is_failure;
      }
    }
  }
  if (!decisive) return undecided("no zygote template's launch overlaps the wait");
  if (decisive_failed) return failed_template(v, cs, *decisive, std::move(base));
  base.update(template_evidence(*decisive));
  // A start still under way when the case ended has no stamps: as for a start that failed
  // with none completed (judge_start_failed), its whole time counts as start-up.
  const bool phases_known = decisive->t_main && decisive->t_init_done;
  const double startup_ms = phases_known ? (decisive->t_main - decisive->t_spawn) / ns_per_ms
                                         : (decisive->unready_until() - decisive->t_spawn) / ns_per_ms;
  const double init_ms = phases_known ? (decisive->t_init_done - decisive->t_main) / ns_per_ms : 0;
  const bool init_slower = init_ms > startup_ms;
  base.update({{"startup_ms", round3(startup_ms)}, {"init_ms", round3(init_ms)},
               {"template_phases_known", phases_known}});
  judgement j{init_slower ? verdict::init : verdict::startup,
              init_slower ? "no zygote template was ready for most of the wait, so no worker could "
                            "start, and the template's preload (main to preload done) was the "
                            "longer of its phases"
                          : "no zygote template was ready for most of the wait, so no worker could "
                            "start, and the template's start-up (spawn to main) was the longer of "
                            "its phases"};
  j.evidence = std::move(base);
  j.summary = fmt::format(
      "waited {:.0f} ms for the zygote template (pid {}): its start-up took {:.0f} ms and its "
      "preload {}{} against a {:.0f} ms checkout timeout",
      p.wait_ms, decisive->pid, startup_ms, phases_known ? fmt::format("{:.0f} ms", init_ms) : "an unknown time",
      phases_known ? "" : " (it was not ready by the end of the case)", cs.checkout_timeout_ms);
  return j;
}

judgement saturated_wait(const case_settings& cs, const wait_picture& p, json base) {
  judgement j{verdict::capacity,
              "no worker was idle or starting for most of the wait: every live worker was busy "
              "with requests"};
  j.evidence = std::move(base);
  j.evidence.update({{"saturated_ms", round3(p.saturated_ms)},
                     {"utilisation", round3(p.busy_share)},
                     {"pool_size", cs.pool_size}});
  j.summary = fmt::format(
      "waited {:.0f} ms with no worker free: every live worker busy for {:.0f} ms of it, {:.0f}% "
      "utilisation (pool of {})",
      p.wait_ms, p.saturated_ms, 100 * p.busy_share, cs.pool_size);
  return j;
}

// The verdicts decided so far, by index into requests_failed: a wait behind an abandoned
// task takes the verdict of the request that abandoned it.
using decided_verdicts = std::map<std::size_t, std::string_view>;

judgement abandoned_wait(const wait_picture& p, const decided_verdicts& decided, json evidence) {
  std::map<std::string_view, double> by_verdict;
  for (const auto& [request, ms] : p.abandoned_by_request) {
    if (const auto it = decided.find(request); it != decided.end()) by_verdict[it->second] += ms;
  }
  std::string_view cause;
  double most = 0;
  for (const auto& [name, ms] : by_verdict) {
    if (ms > most) {
      most = ms;
      cause = name;
    }
  }
  if (cause.empty()) {
    return undecided("the wait was spent behind tasks whose callers had given up, and none of "
                     "those requests could be judged");
  }
  evidence["abandoned_ms"] = round3(p.abandoned_ms);
  evidence["abandoned_tasks"] = p.abandoned_by_request.size();
  evidence["lost_to"] = cause;
  judgement j{cause,
              "workers were busy for most of the wait with tasks whose callers had already "
              "given up (the pool cannot cancel them); the verdict is that of those first timeouts",
              std::move(evidence)};
  j.summary = fmt::format(
      "waited {:.0f} ms while {} earlier timed-out {} still held workers for {:.0f} ms of it "
      "(those were judged {})",
      p.wait_ms, p.abandoned_by_request.size(),
      p.abandoned_by_request.size() == 1 ? "task" : "tasks", p.abandoned_ms, cause);
  return j;
}

// The rules for a request that waited for a worker and never got one in time, in the order
// harness/diagnosis/verdicts.md gives: a checkout timeout, or a request that stayed queued
// inside an external pool. The wait is [a, b).
judgement judge_wait(const case_view& v, const case_settings& cs, std::int64_t a, std::int64_t b,
                     json base, const loss_verdicts& losses, const decided_verdicts& decided) {
  if (!v.workers_known) {
    return undecided("the subject reported no workers (no worker pids, lifecycle events or worker "
                     "stamps), so what the pool was doing during the wait is unknown");
  }
  if (v.t_known_until && b > v.t_known_until) {
    if (v.t_known_until - a < dominant_share * (b - a)) return undecided(v.unknown_after);
    b = v.t_known_until;  // judge the part of the wait that is known
  }
  const wait_picture p = picture(v, cs, a, b);
  base["waited_ms"] = round3(p.wait_ms);
  const double dispatch_bound = std::max(dispatch_bound_ms, dispatch_bound_share * p.wait_ms);
  if (p.idle_max_ms >= dispatch_bound) return idle_worker_wait(p, base, dispatch_bound);
  if (!p.lost_workers.empty() && p.outage_ms >= dominant_share * p.wait_ms) {
    json evidence = base;
    evidence["slot_down_ms"] = round3(p.outage_ms);
    return replacement_wait(p, losses, std::move(evidence),
                            "workers were lost during the wait and their slots were down for most "
                            "of it; the verdict is that of what lost them");
  }
  if (p.abandoned_ms >= dominant_share * p.wait_ms) return abandoned_wait(p, decided, base);
  if (p.start_or_template_ms >= dominant_share * p.wait_ms) {
    if (p.template_wait_ms >= p.starting_ms) return template_wait(v, cs, p, a, b, base);
    return starting_wait(v, cs, p, base);
  }
  const auto stretch = contention_stretch_of(v, cs);
  if (host_short_of_cpu(v) && (!stretch || *stretch >= contention_stretch)) {
    return contention(v, stretch, p.wait_ms, cs.checkout_timeout_ms,
                      fmt::format("waited {:.0f} ms for workers busy with slowed service", p.wait_ms));
  }
  if (!p.lost_workers.empty()) {
    return replacement_wait(p, losses, base, "workers were lost during the wait");
  }
  return saturated_wait(cs, p, base);
}

judgement judge_checkout_timeout(const case_view& v, const case_settings& cs, const timeline_record& t,
                                 const loss_verdicts& losses, const decided_verdicts& decided) {
  return judge_wait(v, cs, t.t_submit, t.t_reply, {{"checkout_timeout_ms", cs.checkout_timeout_ms}},
                    losses, decided);
}

// A request that ran out of time on a worker, having run for ran_ms.
judgement judge_request_timeout(const case_view& v, const case_settings& cs, double ran_ms) {
  const double deadline_ms = cs.request_timeout_ms;
  json base = {{"ran_ms", round3(ran_ms)}, {"request_timeout_ms", deadline_ms}};
  const double ok_p99 = percentile(v.ok_service_ms, 0.99);
  if (!v.ok_service_ms.empty()) base["ok_service_p99_ms"] = round3(ok_p99);

  if (cs.service.known && cs.service.upper_ms >= deadline_ms) {
    judgement j{verdict::workload,
                "the task asked for (its service time, about its 99th percentile) reaches the "
                "deadline"};
    j.evidence = base;
    j.evidence.update({{"requested_service_ms", round3(cs.service.upper_ms)}});
    j.summary = fmt::format("the task runs up to {:.0f} ms against a {:.0f} ms request timeout",
                            cs.service.upper_ms, deadline_ms);
    return j;
  }
  const auto stretch = contention_stretch_of(v, cs);
  if (host_short_of_cpu(v) && (!stretch || *stretch >= contention_stretch)) {
    return contention(v, stretch, ran_ms, deadline_ms,
                      fmt::format("ran {:.0f} ms, reaching its {:.0f} ms request timeout", ran_ms, deadline_ms));
  }
  if (!v.ok_service_ms.empty() && ok_p99 >= workload_near_deadline * deadline_ms) {
    judgement j{verdict::workload,
                "successful requests of the same case took at least half the deadline (99th "
                "percentile of their service time)"};
    j.evidence = base;
    j.summary = fmt::format("successful requests took up to {:.0f} ms against a {:.0f} ms timeout",
                            ok_p99, deadline_ms);
    return j;
  }
  judgement j{verdict::hang,
              "the worker did not answer within the deadline, although the case's successful "
              "requests finished well inside it and the host had CPU to spare"};
  j.evidence = base;
  j.summary = v.ok_service_ms.empty()
                  ? fmt::format("the worker did not answer within {:.0f} ms", deadline_ms)
                  : fmt::format("the worker did not answer within {:.0f} ms; successful requests "
                                "took {:.1f} ms (p99)",
                                deadline_ms, ok_p99);
  return j;
}

judgement judge_start_failed(const case_view& v, const case_settings& cs, const timeline_record& t) {
  // The last start that failed before the request gave up says why: a worker's, or a
  // zygote template's (while none is ready, the pool fails starts fast).
  const std::int64_t b = t.t_reply;
  std::string cause;
  std::int64_t t_failed = -1;
  for (const auto& s : v.starts) {
    if (s.t_main || s.t_end > b) continue;
    if (auto it = v.exit_causes.find(s.worker); it != v.exit_causes.end()) {
      cause = it->second;
      t_failed = std::max(t_failed, s.t_end);
    }
  }
  const template_start* failed_tpl = nullptr;
  for (const auto& tpl : v.templates) {
    if (tpl.fault && tpl.t_end <= b && tpl.t_end > t_failed) {
      failed_tpl = &tpl;
      t_failed = tpl.t_end;
    }
  }
  if (failed_tpl) return failed_template(v, cs, *failed_tpl, {{"completed_starts", v.completed_starts}});
  json evidence = {{"start_failure", cause}, {"completed_starts", v.completed_starts}};
  const bool timed_out = cause.find("did not finish start-up") != std::string::npos;
  if (timed_out) {
    const double typical_start_ms = v.mean_startup_ms + v.mean_init_ms;
    const bool environment_slow =
        v.completed_starts ? typical_start_ms >= dominant_share * cs.start_timeout_ms
                           : cs.injected_start_ms >= cs.start_timeout_ms;
    evidence["start_timeout_ms"] = cs.start_timeout_ms;
    if (environment_slow) {
      const bool init_slower = v.completed_starts ? v.mean_init_ms > v.mean_startup_ms : false;
      judgement j{init_slower ? verdict::init : verdict::startup,
                  "starts ran out of their start timeout, and starts in this environment take "
                  "that long"};
      j.evidence = evidence;
      j.summary = fmt::format("starts take {:.0f} ms against a {:.0f} ms start timeout",
                              v.completed_starts ? typical_start_ms : cs.injected_start_ms,
                              cs.start_timeout_ms);
      return j;
    }
    judgement j{verdict::hang,
                "a worker never finished its start, although starts here take well under the "
                "start timeout (other starts, or the injected start-up and init when none "
                "completed)"};
    j.evidence = evidence;
    j.summary = v.completed_starts
                    ? fmt::format("a worker never became ready within {:.0f} ms, while {} other "
                                  "starts took {:.0f} ms each",
                                  cs.start_timeout_ms, v.completed_starts, typical_start_ms)
                    : fmt::format("no worker became ready within {:.0f} ms, with {:.0f} ms of "
                                  "start-up and init injected",
                                  cs.start_timeout_ms, cs.injected_start_ms);
    return j;
  }
  judgement j{verdict::crash, "workers died during start-up"};
  j.evidence = evidence;
  j.summary = fmt::format("workers died during start-up: {}", cause.empty() ? "no start succeeded" : cause);
  return j;
}

// The request that timed out in an external pool and never completed, placed on the worker
// that went silent with it (abandoned_tasks.hpp); nullptr when it was not placed.
const hidden_run* hidden_run_of(const case_view& v, std::size_t index) {
  for (const auto& run : v.abandoned.hidden) {
    if (run.request == index) return &run;
  }
  return nullptr;
}

// A request timeout: it ran out of time on a worker, or (an external pool, where the deadline
// covers the pool's own queue) it waited in the pool for most of its time.
judgement judge_timeout_in_pool(const case_view& v, const case_settings& cs, const timeline_record& t,
                                std::size_t index, const loss_verdicts& losses,
                                const decided_verdicts& decided) {
  if (never_at_head(t)) {
    return judge_wait(v, cs, t.t_sent, t.t_reply,
                      {{"request_timeout_ms", cs.request_timeout_ms},
                       {"queued_on_worker", t.worker},
                       {"ahead", t.ahead}},
                      losses, decided);
  }
  const json queued_base = {{"request_timeout_ms", cs.request_timeout_ms}, {"queued_in_pool", true}};
  if (never_completed(t)) {
    const hidden_run* run = hidden_run_of(v, index);
    // Not placed, or placed on its worker only after its deadline: it waited in the pool.
    if (!run || run->since >= t.t_reply) {
      return judge_wait(v, cs, t.t_submit, t.t_reply, queued_base, losses, decided);
    }
    if (run->died) {
      const auto it = v.exit_causes.find(run->worker);
      const std::string cause = it == v.exit_causes.end() ? "" : it->second;
      return judgement{verdict::crash,
                       "the task never completed and the worker that took it died",
                       {{"worker", run->worker}, {"exit", cause}},
                       fmt::format("the worker running the task died ({})", cause.empty() ? "exit" : cause)};
    }
    return judge_request_timeout(v, cs, std::max<std::int64_t>(0, t.t_reply - run->since) / ns_per_ms);
  }
  if (t.t_sent != 0 && t.t_worker_recv != 0) {
    // A late completion says when the task reached its worker.
    if (t.t_worker_recv >= t.t_reply ||
        t.t_worker_recv - t.t_submit >= dominant_share * (t.t_reply - t.t_submit)) {
      return judge_wait(v, cs, t.t_submit, std::min(t.t_reply, t.t_worker_recv), queued_base, losses,
                        decided);
    }
    return judge_request_timeout(v, cs, (t.t_reply - t.t_worker_recv) / ns_per_ms);
  }
  // In a pipeline the worker began on it when it became the head, not when it was written.
  const std::int64_t began = t.t_head     ? t.t_head
                             : t.t_sent   ? t.t_sent
                             : t.t_checkout ? t.t_checkout
                                          : t.t_submit;
  return judge_request_timeout(v, cs, std::max<std::int64_t>(0, t.t_reply - began) / ns_per_ms);
}

std::optional<judgement> judge(const case_view& v, const case_settings& cs, const timeline_record& t,
                               std::size_t index, const loss_verdicts& losses,
                               const decided_verdicts& decided) {
  const std::string& outcome = t.outcome;
  if (outcome == "checkout_timeout") return judge_checkout_timeout(v, cs, t, losses, decided);
  if (outcome == "request_timeout") return judge_timeout_in_pool(v, cs, t, index, losses, decided);
  if (outcome == "start_failed") return judge_start_failed(v, cs, t);
  if (outcome == "worker_crashed") {
    const auto it = v.exit_causes.find(t.worker);
    const std::string cause = it == v.exit_causes.end() ? "" : it->second;
    return judgement{verdict::crash, "the worker died during the request", {{"exit", cause}},
                     fmt::format("the worker died during the request ({})", cause.empty() ? "exit" : cause)};
  }
  if (outcome == "protocol_error") {
    const auto it = v.exit_causes.find(t.worker);
    const std::string cause = it == v.exit_causes.end() ? "" : it->second;
    return judgement{verdict::protocol, "the worker broke the framing or the message format",
                     {{"error", cause}}, fmt::format("the worker broke the protocol ({})", cause)};
  }
  if (outcome == "worker_error") {
    return judgement{verdict::workload, "the worker reported that the task failed", json::object(),
                     "the task failed in the worker"};
  }
  if (outcome == "queue_full") {
    return judgement{verdict::capacity, "the bounded queue was full", json::object(),
                     "the queue was full"};
  }
  // pool_stopped: the harness stopped the pool; cancelled: the caller took it back. Neither
  // went wrong. queued_behind_fault is judged from its cause (judge_collateral).
  return std::nullopt;
}

// The evidence every request killed behind another carries: which request it queued behind,
// how that one failed, and how far back in line it was.
json collateral_evidence(const timeline_record& t) {
  return {{"caused_by", t.caused_by}, {"cause", t.cause.value_or("")}, {"ahead", t.ahead}};
}

// A request killed with its worker behind the request that failed there takes that request's
// verdict, with its evidence. A cause the record left out (the failed-requests cap) still
// says a crash or a protocol error by its outcome; why a request timed out cannot be told
// without it.
judgement judge_collateral(const case_view& v, const case_settings& cs, const timeline_record& t,
                           const timeline_record* cause, const std::optional<judgement>& cause_judged) {
  json evidence = collateral_evidence(t);
  const std::string how = t.cause.value_or("an unrecorded failure");
  // Its cause ran out of its own time still in line and was judged as a wait; the worker was
  // killed later, when that request had been its head for a whole request timeout without an
  // answer. That is the failure this one died of.
  if (cause && never_at_head(*cause)) {
    judgement j = judge_request_timeout(v, cs, cs.request_timeout_ms);
    j.evidence.update(evidence);
    j.evidence["cause_timed_out_in_line"] = true;
    j.rule = fmt::format("it was queued behind a request that had timed out in line and then, as its "
                         "worker's head, did not answer within the request timeout either: {}",
                         j.rule);
    j.summary = fmt::format("killed with worker {} behind request {}, which got no answer within {:.0f} ms "
                            "as its head: {}",
                            t.worker, t.caused_by, cs.request_timeout_ms, j.summary);
    return j;
  }
  if (cause) {
    if (!cause_judged) return undecided("the request it queued behind was not judged");
    if (cause_judged->verdict.empty()) {
      return undecided(fmt::format("the request it queued behind could not be judged: {}", cause_judged->missing));
    }
    json merged = cause_judged->evidence.is_object() ? cause_judged->evidence : json::object();
    merged.update(evidence);
    judgement j{cause_judged->verdict,
                "it was written to a worker behind a request that failed and cost the worker its "
                "life; the verdict is that request's",
                std::move(merged)};
    j.summary = fmt::format("killed with worker {} while queued behind request {} ({}): {}", t.worker,
                            t.caused_by, how, cause_judged->summary);
    return j;
  }
  if (how == "worker_crashed") {
    return judgement{verdict::crash,
                     "it was queued behind a request whose worker died; that request is not in the "
                     "record, its outcome says the crash",
                     std::move(evidence),
                     fmt::format("killed with worker {} when it died serving request {}", t.worker, t.caused_by)};
  }
  if (how == "protocol_error") {
    return judgement{verdict::protocol,
                     "it was queued behind a request whose worker broke the protocol; that request "
                     "is not in the record, its outcome says the fault",
                     std::move(evidence),
                     fmt::format("killed with worker {} when it broke the protocol on request {}", t.worker,
                                 t.caused_by)};
  }
  return undecided(fmt::format("cause not recorded: the request it queued behind ({}) is not in the "
                               "record, so why it failed is unknown",
                               how));
}

}  // namespace

namespace {

// Whether a failed request's verdict may depend on the verdicts of others: a wait (for a lost
// worker's replacement, or behind abandoned tasks) or a timeout in an external pool.
bool depends_on_others(const timeline_record& t) {
  return t.outcome == "checkout_timeout" || (t.outcome == "request_timeout" && t.t_sent == 0) ||
         (t.outcome == "request_timeout" && t.t_worker_recv != 0) || never_at_head(t);
}

bool is_collateral(const timeline_record& t) { return t.outcome == "queued_behind_fault"; }

// Every failed request's judgement, in the order of `failed`. Requests that cost a worker
// its life are judged first, so that waits for its replacement can be charged to the same
// cause; the rest in the order they gave up, so that a wait behind an abandoned task finds
// that task's verdict already decided; the requests killed behind another last, taking the
// verdict of the one they queued behind. Only that one lost the worker: however many were
// behind it, a worker lost is one loss.
std::vector<std::optional<judgement>> judge_all(const case_view& v, const case_settings& cs,
                                                const std::vector<timeline_record>& failed) {
  loss_verdicts losses;
  decided_verdicts decided;
  std::vector<std::optional<judgement>> judged(failed.size());
  std::vector<std::size_t> later;
  std::vector<std::size_t> collateral;
  std::map<std::uint64_t, std::size_t> by_id;
  for (std::size_t i = 0; i < failed.size(); ++i) {
    const timeline_record& t = failed[i];
    if (t.request_id != 0) by_id.emplace(t.request_id, i);
    if (is_collateral(t)) {
      collateral.push_back(i);
      continue;
    }
    if (depends_on_others(t)) {
      later.push_back(i);
      continue;
    }
    judged[i] = judge(v, cs, t, i, losses, decided);
    if (judged[i] && !judged[i]->verdict.empty()) {
      decided.emplace(i, judged[i]->verdict);
      if (t.worker != 0) losses.emplace(t.worker, judged[i]->verdict);
    }
  }
  // Workers that died with a never-completed task lost it to a crash.
  for (const auto& run : v.abandoned.hidden) {
    if (run.died) losses.emplace(run.worker, verdict::crash);
  }
  std::stable_sort(later.begin(), later.end(),
                   [&](std::size_t a, std::size_t b) { return failed[a].t_reply < failed[b].t_reply; });
  for (const std::size_t i : later) {
    judged[i] = judge(v, cs, failed[i], i, losses, decided);
    if (judged[i] && !judged[i]->verdict.empty()) decided.emplace(i, judged[i]->verdict);
  }
  for (const std::size_t i : collateral) {
    const timeline_record& t = failed[i];
    const auto cause = t.caused_by != 0 ? by_id.find(t.caused_by) : by_id.end();
    if (cause == by_id.end()) {
      judged[i] = judge_collateral(v, cs, t, nullptr, std::nullopt);
    } else {
      judged[i] = judge_collateral(v, cs, t, &failed[cause->second], judged[cause->second]);
    }
  }
  return judged;
}

struct verdict_tally {
  std::uint64_t count = 0;
  finding_record finding;  // of the representative request
  double waited = -1;
};

// One finding per verdict, most frequent first, with the counts of the requests beyond the
// kept timelines added under the verdicts of the kept ones, in proportion.
std::vector<finding_record> findings_of(std::map<std::string, verdict_tally> by_verdict,
                                        std::uint64_t dropped, count_map& verdicts) {
  std::uint64_t judged_count = 0;
  for (const auto& [name, f] : by_verdict) judged_count += f.count;
  std::vector<std::pair<std::string, verdict_tally>> ordered(by_verdict.begin(), by_verdict.end());
  for (auto& [name, f] : ordered) {
    if (dropped && judged_count) f.count += dropped * f.count / judged_count;
    verdicts[name] = f.count;
  }
  std::stable_sort(ordered.begin(), ordered.end(),
                   [](const auto& a, const auto& b) { return a.second.count > b.second.count; });
  std::vector<finding_record> findings;
  for (auto& [name, f] : ordered) {
    f.finding.verdict = name;
    f.finding.count = f.count;
    findings.push_back(std::move(f.finding));
  }
  return findings;
}

}  // namespace

void diagnose_case(case_record& c, const scenario& s) {
  c.verdicts.clear();
  c.findings.emplace();
  c.unjudged.reset();
  if (!c.timelines) return;
  case_timelines& timelines = *c.timelines;
  const case_view v = rebuild_case_view(timelines, c.environment);
  const auto judged = judge_all(v, settings_of(s), timelines.requests_failed);
  std::map<std::string, verdict_tally> by_verdict;
  std::map<std::string, std::uint64_t> unjudged;  // missing evidence -> requests
  for (std::size_t i = 0; i < judged.size(); ++i) {
    const auto& j = judged[i];
    if (!j) continue;
    timeline_record& t = timelines.requests_failed[i];
    if (j->verdict.empty()) {
      ++unjudged[j->missing];
      continue;
    }
    t.verdict = std::string(j->verdict);
    t.evidence = j->evidence;
    verdict_tally& f = by_verdict[std::string(j->verdict)];
    ++f.count;
    // The representative request is the one that waited longest: the clearest evidence.
    const double waited = (t.t_reply - t.t_submit) / ns_per_ms;
    if (waited > f.waited) {
      f.waited = waited;
      f.finding.rule = j->rule;
      f.finding.evidence = j->evidence;
      f.finding.evidence["request_id"] = t.request_id;
      f.finding.summary = j->summary;
    }
  }
  c.findings = findings_of(std::move(by_verdict), timelines.requests_failed_dropped, c.verdicts);
  if (!unjudged.empty()) {
    c.unjudged.emplace();
    for (const auto& [missing, count] : unjudged) c.unjudged->push_back({count, missing});
  }
}

void diagnose_case(json& c, const scenario& s) {
  auto record = c.get<case_record>();
  diagnose_case(record, s);
  c = record;
}

}  // namespace procpool::harness
