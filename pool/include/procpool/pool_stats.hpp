// A point-in-time snapshot of a pool: worker counts by state and running totals.
#pragma once

#include <cstddef>
#include <cstdint>

#include "procpool/smaps_rollup.hpp"

namespace procpool {

// One live worker's memory, from pool::workers_memory().
struct worker_memory {
  std::uint64_t worker = 0;
  std::int64_t pid = 0;
  smaps_rollup memory;
};

struct pool_stats {
  std::size_t size = 0;      // configured workers
  std::size_t pending = 0;   // slots waiting to start (backoff, start cap, or on demand)
  std::size_t starting = 0;
  std::size_t idle = 0;      // free, including a worker a caller kept for its next call
  std::size_t busy = 0;
  std::size_t other = 0;     // pinging or stopping
  std::size_t waiting_callers = 0;
  // Submitted requests (submit, map) not yet written to a worker, and written but unanswered.
  std::size_t queued = 0;
  std::size_t in_flight = 0;
  bool degraded = false;

  std::uint64_t calls = 0;           // requests finished: the three below together
  std::uint64_t calls_ok = 0;
  std::uint64_t worker_errors = 0;   // ok:false replies
  std::uint64_t failures = 0;        // every other error
  std::uint64_t starts = 0;          // successful starts
  std::uint64_t failed_starts = 0;
  std::uint64_t workers_lost = 0;    // crashed, timed out, broke the protocol or failed a ping
  std::uint64_t recycled = 0;

  std::size_t ready() const noexcept { return idle + busy; }
};

}  // namespace procpool
