// The one clock procpool uses: CLOCK_MONOTONIC in nanoseconds.
//
// CLOCK_MONOTONIC is shared by every process on a Linux host, so a stamp taken inside a
// worker (t_recv_ns, t_done_ns, t_main_ns) can be compared with one taken in the pool.
// std::chrono::steady_clock is CLOCK_MONOTONIC on Linux; deadlines use it directly.
#pragma once

#include <chrono>
#include <cstdint>

namespace procpool {

using deadline = std::chrono::steady_clock::time_point;

inline std::int64_t monotonic_ns() noexcept {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(
             std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

inline deadline deadline_after(std::chrono::nanoseconds d) {
  return std::chrono::steady_clock::now() + d;
}

inline std::int64_t to_ns(deadline t) noexcept {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(t.time_since_epoch()).count();
}

// The time point of a monotonic_ns() stamp: a deadline counted from a stamp already taken
// costs no second clock read.
inline deadline from_ns(std::int64_t ns) noexcept {
  return deadline(std::chrono::duration_cast<deadline::duration>(std::chrono::nanoseconds(ns)));
}

}  // namespace procpool
