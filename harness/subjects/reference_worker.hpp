// The worker both reference pools (reference_pools.hpp) keep per process: its connection and
// what their worker events report. Which thread may do I/O on the connection is each pool's
// own rule, written where the pool is.
//
//   auto w = std::make_shared<reference_worker>(id, slot, std::move(*connection));
//   w->state = worker_state::starting;
#pragma once

#include <cstddef>
#include <cstdint>

#include <string_view>

#include "procpool/pool_events.hpp"
#include "procpool/pool_options.hpp"
#include "procpool/pool_stats.hpp"
#include "procpool/wire/worker_connection.hpp"

namespace procpool::harness {

struct reference_worker {
  reference_worker(std::uint64_t id_, std::size_t slot_, worker_connection conn_)
      : id(id_), slot(slot_), conn(std::move(conn_)) {}

  const std::uint64_t id;
  const std::size_t slot;
  worker_connection conn;
  worker_state state = worker_state::pending;
  std::int64_t t_main_ns = 0;
  std::int64_t t_init_done_ns = 0;
  exit_kind leaving = exit_kind::none;  // set once a planned stop begins

  // Moves to `to` and tells the observer. `exit` marks a planned departure; the worker's
  // later events keep it. REQUIRES: the pool's lock held.
  void set_state(worker_state to, std::string_view cause, exit_kind exit, const pool_observer& observer) {
    const worker_state from = state;
    state = to;
    if (exit != exit_kind::none) leaving = exit;
    if (!observer.on_worker_event) return;
    observer.on_worker_event(make_worker_event({.worker = id,
                                                .slot = slot,
                                                .pid = conn.process().pid(),
                                                .t_spawn_ns = conn.process().t_spawn_ns(),
                                                .t_main_ns = t_main_ns,
                                                .t_init_done_ns = t_init_done_ns},
                                               from, to, cause, leaving));
  }
};

// Counts a worker in `s` by its state; pending is each pool's own business.
inline void count_worker(pool_stats& s, worker_state state) {
  switch (state) {
    case worker_state::starting: ++s.starting; break;
    case worker_state::idle: ++s.idle; break;
    case worker_state::busy: ++s.busy; break;
    default: ++s.other; break;
  }
}

}  // namespace procpool::harness
