// What a pool reports as it runs: worker state changes and per-request timelines.
//
// Subscribe by setting pool_options::observer. Callbacks run synchronously on the thread
// that caused the change (the supervisor or a caller), in order per worker, under the pool's
// lock: keep them short, and never call back into the pool from them. With no callback set,
// nothing is built or copied.
//
//   options.observer.on_worker_event = [&](const procpool::worker_event& e) { log(e); };
#pragma once

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <string_view>

#include "procpool/error.hpp"
#include "procpool/request_timing.hpp"

namespace procpool {

enum class worker_state {
  pending,   // waiting for a start slot or a backoff to expire
  starting,  // launched; init handshake under way
  idle,      // ready, free
  busy,      // checked out by a caller
  pinging,   // idle, being health-checked
  stopping,  // graceful stop under way
  exited,    // gone (reaped)
};

std::string_view to_string(worker_state s) noexcept;
// The state to_string names; nullopt for any other text.
std::optional<worker_state> worker_state_from_string(std::string_view name) noexcept;

// Why a worker is leaving the pool, carried by its stopping and exited events: a planned exit
// (the pool stopping, or a recycle at one of its limits) leaves no fault behind, whatever the
// exit itself looked like ("killed by SIGTERM" after a graceful stop ran out of time).
enum class exit_kind {
  none,          // the event is not a departure (or the record predates the field)
  planned_stop,  // the pool is stopping
  recycled,      // retired at its maximum requests, age or resident size
  fault,         // anything else: a crash, a failed start, a broken connection, a hang
};

std::string_view to_string(exit_kind k) noexcept;

// What a process in a pool's events is. A zygote template (pool/ZYGOTE.md) runs the preload
// once and forks the workers: it is reported like a worker (spawned, ready at the end of its
// preload, exited) so that a wait for it can be told apart, but it never takes a request and
// is not one of the pool's `size` workers. Its slot is the pool's size.
enum class worker_role { worker, zygote_template };
std::string_view to_string(worker_role r) noexcept;
std::optional<worker_role> worker_role_from_string(std::string_view name) noexcept;

struct worker_event {
  std::int64_t t_ns = 0;
  std::uint64_t worker = 0;  // unique per worker process for the pool's lifetime
  std::size_t slot = 0;      // the pool position the worker fills
  worker_state from = worker_state::pending;
  worker_state to = worker_state::pending;
  std::string cause;  // "spawned", "init done", "checkout", "crashed: killed by SIGSEGV", ...
  // For starts: the worker's own stamps, splitting start-up from init (0 until known).
  std::int64_t t_spawn_ns = 0;
  std::int64_t t_main_ns = 0;
  std::int64_t t_init_done_ns = 0;
  std::int64_t pid = 0;
  // On stopping and exited events: why the worker is leaving. An exit after a planned stop
  // keeps the stop's kind. none on every other event.
  exit_kind exit = exit_kind::none;
  // For a template: t_main_ns is its main, t_init_done_ns the end of its preload.
  worker_role role = worker_role::worker;
};

// What an event says about the worker itself, as opposed to the change it reports.
struct worker_facts {
  std::uint64_t worker = 0;
  std::size_t slot = 0;
  std::int64_t pid = 0;
  std::int64_t t_spawn_ns = 0;
  std::int64_t t_main_ns = 0;
  std::int64_t t_init_done_ns = 0;
  worker_role role = worker_role::worker;
};

// The event of one state change, stamped now. Every pool builds its events here, so that
// they agree on the stamps and on the exit kind: a departure (to stopping or exited) given
// no kind is a fault, and other changes carry none.
worker_event make_worker_event(const worker_facts& w, worker_state from, worker_state to,
                               std::string_view cause, exit_kind exit = exit_kind::none);

// A request's stamps (request_timing) with what the observer needs to place them.
struct request_timeline : request_timing {
  std::uint64_t request_id = 0;
  std::uint64_t worker = 0;  // 0 when no worker was checked out
  std::optional<errc> outcome = std::nullopt;  // empty: success
  // Pipelining (pool_options::pipeline_depth > 1): requests already in flight on the worker
  // when this one was written.
  std::uint32_t ahead = 0;
  // For errc::queued_behind_fault: the request whose failure killed the worker, and how it
  // failed. 0 and empty otherwise.
  std::uint64_t caused_by = 0;
  std::optional<errc> cause = std::nullopt;
};

struct pool_observer {
  std::function<void(const worker_event&)> on_worker_event;
  std::function<void(const request_timeline&)> on_request;
};

}  // namespace procpool
