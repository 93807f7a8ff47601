#include "diagnosis/abandoned_tasks.hpp"

#include <algorithm>
#include <limits>
#include <map>

#include "results/worker_intervals.hpp"

namespace procpool::harness {
namespace {

// A worker's last stretch of silence: from its last event, if that left it idle, to its exit
// or the end of the case.
struct silent_tail {
  std::uint64_t worker = 0;
  std::int64_t from = 0;
  std::int64_t until = 0;
  bool died = false;
  bool taken = false;
};

std::vector<silent_tail> silent_tails(const std::vector<worker_event>& events, std::int64_t t_end) {
  struct last_seen {
    const worker_event* last = nullptr;  // the last event before any exit
    const worker_event* exit = nullptr;
  };
  std::map<std::uint64_t, last_seen> workers;
  for (const worker_event* e : in_time_order(events)) {
    // A zygote template's silence hides no task: it never takes one.
    if (e->role == worker_role::zygote_template) continue;
    auto& w = workers[e->worker];
    if (e->to == worker_state::exited || e->to == worker_state::stopping) {
      if (!w.exit) w.exit = e;
    } else if (!w.exit) {
      w.last = e;
    }
  }
  std::vector<silent_tail> tails;
  for (const auto& [worker, w] : workers) {
    // A worker known only by the pool's counts (pid 0) is idle when the counts say so: no
    // task hides on it.
    if (!w.last || w.last->to != worker_state::idle || w.last->pid == 0) continue;
    const bool planned = w.exit && (w.exit->exit == exit_kind::planned_stop || w.exit->exit == exit_kind::recycled);
    tails.push_back({.worker = worker,
                     .from = w.last->t_ns,
                     .until = w.exit ? w.exit->t_ns : t_end,
                     .died = w.exit && !planned});
  }
  return tails;
}

// Whether a task handed to the pool after `t_submit` started on a worker: then a request
// submitted at t_submit that never started was not simply queued behind it.
bool later_task_started(const case_timelines& tl, std::int64_t t_submit) {
  for (const auto* list : {&tl.requests_failed, &tl.requests_sampled}) {
    for (const auto& t : *list) {
      if (t.t_submit > t_submit && t.t_worker_recv != 0) return true;
    }
  }
  return false;
}

// Whether a task handed to the pool before `t_submit` was still waiting at `t`: a pool that
// serves in order would have given a worker free at `t` that task first.
bool older_task_waiting(const case_timelines& tl, std::int64_t t_submit, std::int64_t t) {
  for (const auto* list : {&tl.requests_failed, &tl.requests_sampled}) {
    for (const auto& r : *list) {
      if (r.t_submit < t_submit && r.t_worker_recv > t) return true;
    }
  }
  return false;
}

// Whether the never-completed request `t` can be the task that kept `tail`'s worker silent:
// its worker died while the request waited; or tasks handed to the pool after it started
// (so it was not merely queued); or the worker, free when the request arrived or freed while
// it waited, stayed silent at least as long as the request's caller waited, with no older
// task still queued for it to take first.
bool explains(const silent_tail& tail, const timeline_record& t, const case_timelines& tl) {
  if (tail.taken || tail.from > t.t_reply || tail.until <= t.t_submit) return false;
  if (tail.died) return tail.until <= t.t_reply || later_task_started(tl, t.t_submit);
  if (later_task_started(tl, t.t_submit)) return true;
  const std::int64_t taken = std::max(tail.from, t.t_submit);
  return tail.until - taken >= t.t_reply - t.t_submit && !older_task_waiting(tl, t.t_submit, taken);
}

}  // namespace

bool never_completed(const timeline_record& t) noexcept {
  return t.outcome == "request_timeout" && t.worker == 0 && t.t_sent == 0 && t.t_worker_recv == 0;
}

abandoned_tasks find_abandoned_tasks(const case_timelines& tl, std::int64_t t_end) {
  abandoned_tasks out;
  // The longest task: from the requests' own stamps (late completions included), else from
  // the busy intervals the workers reported.
  for (const auto* list : {&tl.requests_failed, &tl.requests_sampled}) {
    for (const auto& t : *list) {
      if (t.t_worker_recv && t.t_worker_done > t.t_worker_recv) {
        out.longest_task_ns = std::max(out.longest_task_ns, t.t_worker_done - t.t_worker_recv);
      }
    }
  }
  if (out.longest_task_ns == 0) {
    for (const auto& i : worker_intervals(tl.workers, t_end)) {
      if (i.state == worker_state::busy) out.longest_task_ns = std::max(out.longest_task_ns, i.end - i.begin);
    }
  }
  // Late completions: the worker was busy with the task past its caller's deadline.
  for (std::size_t k = 0; k < tl.requests_failed.size(); ++k) {
    const auto& t = tl.requests_failed[k];
    if (t.outcome != "request_timeout" || t.worker == 0 || t.t_worker_recv == 0) continue;
    if (t.t_worker_done > t.t_reply) {
      out.spans.push_back({k, t.worker, std::max(t.t_reply, t.t_worker_recv), t.t_worker_done});
    }
  }
  // Never completed: placed on a silent worker that explains it, oldest requests first.
  std::vector<std::size_t> silent;
  for (std::size_t k = 0; k < tl.requests_failed.size(); ++k) {
    if (never_completed(tl.requests_failed[k])) silent.push_back(k);
  }
  std::sort(silent.begin(), silent.end(), [&](std::size_t a, std::size_t b) {
    return tl.requests_failed[a].t_submit < tl.requests_failed[b].t_submit;
  });
  auto tails = silent_tails(tl.workers, t_end);
  for (const std::size_t k : silent) {
    const auto& t = tl.requests_failed[k];
    silent_tail* best = nullptr;
    const auto distance = [&](const silent_tail& s) {
      return s.from > t.t_submit ? s.from - t.t_submit : t.t_submit - s.from;
    };
    // A worker that died while the request waited explains it best; then the one whose
    // silence began nearest to the request's arrival.
    const auto better = [&](const silent_tail& a, const silent_tail& b) {
      return a.died != b.died ? a.died : distance(a) < distance(b);
    };
    for (auto& tail : tails) {
      if (explains(tail, t, tl) && (!best || better(tail, *best))) best = &tail;
    }
    if (!best) {
      ++out.unplaced;
      continue;
    }
    best->taken = true;
    const std::int64_t since = std::max(best->from, t.t_submit);
    out.hidden.push_back({k, best->worker, since, best->until, best->died});
    if (best->until > t.t_reply) out.spans.push_back({k, best->worker, std::max(since, t.t_reply), best->until});
  }
  return out;
}

}  // namespace procpool::harness
