#include "run/worker_states.hpp"

#include <algorithm>
#include <unordered_map>

namespace procpool::harness {
namespace {

// A template readies the pool's workers but is none of them: counting it would make a pool
// of N look ready with N - 1 workers, and sample its memory as a worker's.
bool is_pool_worker(const worker_event& e) noexcept { return e.role == worker_role::worker; }

bool is_ready(worker_state s) noexcept {
  return s == worker_state::idle || s == worker_state::busy || s == worker_state::pinging;
}

// The events in time order. Each worker's events arrive in order, but the pool's threads may
// interleave different workers' events out of stamp order.
std::vector<const worker_event*> in_time_order(std::span<const worker_event> events) {
  std::vector<const worker_event*> out;
  out.reserve(events.size());
  for (const auto& e : events) out.push_back(&e);
  std::stable_sort(out.begin(), out.end(),
                   [](const worker_event* a, const worker_event* b) { return a->t_ns < b->t_ns; });
  return out;
}

}  // namespace

std::optional<double> ready_ms(std::span<const worker_event> events, std::int64_t t_created_ns,
                               std::size_t pool_size) {
  if (pool_size == 0) return std::nullopt;
  std::unordered_map<std::uint64_t, bool> ready;  // worker -> ready after its last event
  std::size_t ready_count = 0;
  for (const worker_event* e : in_time_order(events)) {
    if (!is_pool_worker(*e)) continue;
    bool& was = ready[e->worker];
    const bool now = is_ready(e->to);
    if (now != was) now ? ++ready_count : --ready_count;
    was = now;
    if (ready_count >= pool_size) return static_cast<double>(e->t_ns - t_created_ns) / 1e6;
  }
  return std::nullopt;
}

std::vector<std::int64_t> live_worker_pids(std::span<const worker_event> events) {
  struct seen {
    std::int64_t pid = 0;  // the last one an event named: not every source names it each time
    bool alive = true;
  };
  std::vector<std::uint64_t> order;  // workers by first appearance
  std::unordered_map<std::uint64_t, seen> workers;
  for (const worker_event* e : in_time_order(events)) {
    if (!is_pool_worker(*e)) continue;
    const auto [it, first] = workers.try_emplace(e->worker);
    if (first) order.push_back(e->worker);
    if (e->pid > 0) it->second.pid = e->pid;
    it->second.alive = e->to != worker_state::exited;
  }
  std::vector<std::int64_t> pids;
  for (const auto worker : order) {
    const seen& w = workers[worker];
    if (w.alive && w.pid > 0) pids.push_back(w.pid);
  }
  return pids;
}

}  // namespace procpool::harness
