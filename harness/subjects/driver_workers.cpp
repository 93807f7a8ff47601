#include "subjects/driver_workers.hpp"

#include <fmt/format.h>

namespace procpool::harness {

driver_workers::known_worker& driver_workers::find_or_add(std::uint64_t pid, std::int64_t t_ns) {
  if (auto it = workers_.find(pid); it != workers_.end()) return it->second;
  if (!named_) {
    named_ = true;
    retire_anonymous(t_ns);
  }
  known_worker w;
  if (!free_slots_.empty()) {
    w.slot = *free_slots_.begin();
    free_slots_.erase(free_slots_.begin());
  } else {
    w.slot = next_slot_++;
  }
  w.facts = {.worker = pid, .slot = w.slot, .pid = static_cast<std::int64_t>(pid)};
  return workers_.emplace(pid, w).first->second;
}

void driver_workers::change(known_worker& w, std::int64_t t_ns, worker_state to,
                            std::string_view cause, exit_kind exit) {
  if (!emit_) {
    w.state = to;
    return;
  }
  worker_event e = make_worker_event(w.facts, w.state, to, cause, exit);
  e.t_ns = t_ns;  // the driver's time of the change, not when its line arrived
  w.state = to;
  emit_(e);
}

void driver_workers::started(std::int64_t t_ns, const std::vector<std::uint64_t>& pids) {
  for (const auto pid : pids) {
    if (pid == 0 || gone_.contains(pid)) continue;
    known_worker& w = find_or_add(pid, t_ns);
    if (w.state == worker_state::pending) change(w, t_ns, worker_state::idle, "ready at started");
  }
}

void driver_workers::lifecycle(const driver_worker& d) {
  if (gone_.contains(d.pid)) return;
  known_worker& w = find_or_add(d.pid, d.t_ns);
  if (d.t_spawn_ns) w.facts.t_spawn_ns = d.t_spawn_ns;
  if (d.t_main_ns) w.facts.t_main_ns = d.t_main_ns;
  if (d.t_init_done_ns) w.facts.t_init_done_ns = d.t_init_done_ns;
  switch (d.state) {
    case driver_worker_state::spawned:
      if (w.state == worker_state::pending) {
        if (!w.facts.t_spawn_ns) w.facts.t_spawn_ns = d.t_ns;
        change(w, w.facts.t_spawn_ns, worker_state::starting, "spawned");
      }
      return;
    case driver_worker_state::ready:
      // A worker first seen busy (its done line came before this event) is ready already.
      if (w.state == worker_state::pending || w.state == worker_state::starting) {
        change(w, d.t_init_done_ns ? d.t_init_done_ns : d.t_ns, worker_state::idle, "init done");
      }
      return;
    case driver_worker_state::exited: {
      const std::string cause = d.cause.empty() ? std::string("exited") : d.cause;
      change(w, d.t_ns, worker_state::exited, d.planned ? fmt::format("retired: {}", cause) : cause,
             d.planned ? exit_kind::recycled : exit_kind::fault);
      free_slots_.insert(w.slot);
      workers_.erase(d.pid);
      gone_.insert(d.pid);
      return;
    }
  }
}

void driver_workers::ran(std::uint64_t pid, std::int64_t t_recv, std::int64_t t_done) {
  if (pid == 0 || t_recv == 0 || t_done < t_recv) return;
  if (gone_.contains(pid)) return;  // reported after its exit: the exit closed its lane
  known_worker& w = find_or_add(pid, t_recv);
  change(w, t_recv, worker_state::busy, "task");
  change(w, t_done, worker_state::idle, "task done");
}

void driver_workers::crashed(std::uint64_t pid, std::int64_t t_ns, const std::string& why) {
  if (pid == 0 || gone_.contains(pid)) return;
  known_worker& w = find_or_add(pid, t_ns);
  change(w, t_ns, worker_state::exited, fmt::format("crashed: {}", why), exit_kind::fault);
  free_slots_.insert(w.slot);
  workers_.erase(pid);
  gone_.insert(pid);
}

void driver_workers::sampled(const driver_pool_sample& s) {
  if (named_) return;
  constexpr std::uint64_t anonymous_id = std::uint64_t{1} << 32;  // above any pid
  while (anonymous_.size() < s.alive) {
    known_worker w;
    w.slot = anonymous_.size();
    w.facts = {.worker = anonymous_id + anonymous_.size(), .slot = w.slot};
    anonymous_.push_back(w);
  }
  for (std::size_t k = 0; k < anonymous_.size(); ++k) {
    known_worker& w = anonymous_[k];
    if (k >= s.alive) {
      if (w.state != worker_state::exited && w.state != worker_state::pending) {
        change(w, s.t_ns, worker_state::exited, "no longer counted alive", exit_kind::recycled);
        w.state = worker_state::pending;  // may be counted alive again: a new worker
      }
      continue;
    }
    const worker_state to = k < s.busy ? worker_state::busy : worker_state::idle;
    if (w.state != to) change(w, s.t_ns, to, k < s.busy ? "counted busy" : "counted idle");
  }
}

void driver_workers::retire_anonymous(std::int64_t t_ns) {
  for (auto& w : anonymous_) {
    if (w.state != worker_state::pending) {
      change(w, t_ns, worker_state::exited, "the driver named its workers", exit_kind::planned_stop);
    }
  }
  anonymous_.clear();
}

void driver_workers::pool_stopped(std::int64_t t_ns) {
  retire_anonymous(t_ns);
  for (auto& [pid, w] : workers_) {
    change(w, t_ns, worker_state::exited, "pool stopping", exit_kind::planned_stop);
    gone_.insert(pid);
  }
  workers_.clear();
}

}  // namespace procpool::harness
