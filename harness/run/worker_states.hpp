// What a case's worker events say about the pool's workers as a whole, replayed in time order:
// when every configured worker was first ready (ready_ms), and which workers are alive now
// (the pids whose memory the runner samples before it stops the subject). A zygote template
// (worker_role::zygote_template) is not one of the pool's workers: both leave it out.
//
//   const auto ms = ready_ms(events, t_created_ns, pool_size);  // nullopt: never all ready
//   for (const auto pid : live_worker_pids(events)) sample(pid);
//
// Pure functions of the events, so that they are tested on hand-built events and work alike
// for procpool, the reference pools and external subjects (whose drivers' events become
// worker events too).
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <vector>

#include "procpool/pool_events.hpp"

namespace procpool::harness {

// Milliseconds from `t_created_ns` (CLOCK_MONOTONIC, as the events' t_ns) to the first event
// after which `pool_size` workers were ready at once (idle, busy or pinging: a busy worker was
// ready before its checkout). nullopt when that never happened, or for a pool_size of 0.
std::optional<double> ready_ms(std::span<const worker_event> events, std::int64_t t_created_ns,
                               std::size_t pool_size);

// The pids of the workers whose last event leaves them alive (any state but exited), in order
// of first appearance; workers without a pid (0: an external driver's anonymous workers) are
// left out.
std::vector<std::int64_t> live_worker_pids(std::span<const worker_event> events);

}  // namespace procpool::harness
