// An external pool's workers as procpool worker events. A driver reports its workers in three
// ways, each optional (harness/subjects/DRIVERS.md): the pids in "started", "worker" lifecycle
// events (spawned, ready, exited, with the stamps it has), and the pid and worker stamps of
// every "done" line, late ones included (a task that outlived its caller's deadline still
// ran). This turns them into the same worker events procpool's own pool emits (starting,
// idle, busy, exited, with the start's stamps), so that the diagnosis and the charts see an
// external pool's occupancy the way they see procpool's.
//
//   driver_workers workers(options.observer.on_worker_event);
//   workers.started(t_ns, pids);
//   workers.ran(pid, t_worker_recv_ns, t_worker_done_ns);   // for each done line
//   workers.pool_stopped(monotonic_ns());
//
// A worker's id is its pid (an anonymous worker's, from pool samples, is 2^32 + its index,
// with pid 0). Its slot is the lowest one free when it was first seen, and a slot is freed
// when its worker exits. Events for one worker are emitted in the order the
// driver reports them, stamped with the driver's times, so they may reach the observer out
// of time order: readers sort them (results/worker_intervals.hpp).
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <set>
#include <vector>

#include "procpool/pool_events.hpp"
#include "subjects/driver_line.hpp"

namespace procpool::harness {

class driver_workers {
 public:
  explicit driver_workers(std::function<void(const worker_event&)> emit) : emit_(std::move(emit)) {}

  // "started": the pids the driver listed are ready (idle) from t_ns on.
  void started(std::int64_t t_ns, const std::vector<std::uint64_t>& pids);
  // A "worker" lifecycle event.
  void lifecycle(const driver_worker& w);
  // A task ran on `pid` from t_recv to t_done (the worker's stamps of a done line).
  void ran(std::uint64_t pid, std::int64_t t_recv, std::int64_t t_done);
  // A done line said the process running the task died (worker_crashed), at t_ns.
  void crashed(std::uint64_t pid, std::int64_t t_ns, const std::string& why);
  // A "pool" sample. Used only while the driver has named no worker (no pid anywhere): the
  // pool is then `alive` anonymous workers, the first `busy` of them busy, so that a pool that
  // reports only its counts still has an occupancy. The first real worker retires them.
  void sampled(const driver_pool_sample& s);
  // The pool is stopping: every worker still known leaves, as planned.
  void pool_stopped(std::int64_t t_ns);

  std::size_t known() const noexcept { return workers_.size(); }

 private:
  struct known_worker {
    std::size_t slot = 0;
    worker_state state = worker_state::pending;
    worker_facts facts;
  };
  // A worker named by the driver; the first one retires the anonymous workers, at t_ns.
  known_worker& find_or_add(std::uint64_t pid, std::int64_t t_ns);
  void retire_anonymous(std::int64_t t_ns);
  void change(known_worker& w, std::int64_t t_ns, worker_state to, std::string_view cause,
              exit_kind exit = exit_kind::none);

  std::function<void(const worker_event&)> emit_;
  std::map<std::uint64_t, known_worker> workers_;  // live ones, by pid
  std::set<std::uint64_t> gone_;                   // pids that exited: never revived
  std::set<std::size_t> free_slots_;
  std::size_t next_slot_ = 0;
  std::vector<known_worker> anonymous_;  // from "pool" samples, while no worker is named
  bool named_ = false;                   // the driver has named a worker
};

}  // namespace procpool::harness
