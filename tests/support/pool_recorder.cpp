#include "pool_recorder.hpp"

#include <map>

namespace procpool::testing {

std::vector<std::pair<std::int64_t, std::int64_t>> pool_recorder::start_intervals() const {
  std::lock_guard lock(mutex_);
  std::map<std::uint64_t, std::int64_t> spawned;
  std::vector<std::pair<std::int64_t, std::int64_t>> out;
  for (const auto& e : events_) {
    if (e.to == worker_state::starting) spawned[e.worker] = e.t_ns;
    if (e.from == worker_state::starting && e.to != worker_state::exited && spawned.count(e.worker)) {
      out.emplace_back(spawned[e.worker], e.t_ns);
    }
  }
  return out;
}

std::size_t max_overlap(std::vector<std::pair<std::int64_t, std::int64_t>> intervals) {
  std::vector<std::pair<std::int64_t, int>> edges;
  for (const auto& [begin, end] : intervals) {
    edges.emplace_back(begin, +1);
    edges.emplace_back(end, -1);
  }
  // Ends sort before begins at the same instant: touching intervals do not overlap.
  std::sort(edges.begin(), edges.end());
  std::size_t best = 0;
  long current = 0;
  for (const auto& [t, delta] : edges) {
    current += delta;
    best = std::max(best, static_cast<std::size_t>(std::max(current, 0L)));
  }
  return best;
}

}  // namespace procpool::testing
