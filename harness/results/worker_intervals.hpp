// Worker-state intervals rebuilt from a case's worker events: what each worker process was
// doing from one of its state changes to the next. The diagnosis judges requests against
// them and the lifecycle chart draws them, so both see the same history. A zygote template's
// events give it intervals like a worker's: the chart draws them on the template's own row,
// and the diagnosis, which counts the pool's workers, leaves them out before it calls this.
//
//   for (const auto& i : worker_intervals(timelines.workers, t_end)) draw(i.worker, i.state, ...);
#pragma once

#include <cstdint>
#include <vector>

#include "procpool/pool_events.hpp"

namespace procpool::harness {

struct state_interval {
  std::int64_t begin = 0;  // CLOCK_MONOTONIC ns, as the events
  std::int64_t end = 0;
  worker_state state = worker_state::pending;
  std::uint64_t worker = 0;
};

// Every state a worker was in until its next event, in the order the intervals closed (events
// in time order, ties in recorded order); the states still open at the end run to `t_end`,
// by worker id. A worker's exit closes its last interval and opens none: exited is not drawn
// or counted. `events` may be in any order.
std::vector<state_interval> worker_intervals(const std::vector<worker_event>& events, std::int64_t t_end);

// The events in time order, ties in recorded order.
std::vector<const worker_event*> in_time_order(const std::vector<worker_event>& events);

}  // namespace procpool::harness
