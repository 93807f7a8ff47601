#include "results/worker_intervals.hpp"

#include <algorithm>
#include <map>

namespace procpool::harness {

std::vector<const worker_event*> in_time_order(const std::vector<worker_event>& events) {
  std::vector<const worker_event*> sorted;
  sorted.reserve(events.size());
  for (const auto& e : events) sorted.push_back(&e);
  std::stable_sort(sorted.begin(), sorted.end(),
                   [](const worker_event* a, const worker_event* b) { return a->t_ns < b->t_ns; });
  return sorted;
}

std::vector<state_interval> worker_intervals(const std::vector<worker_event>& events, std::int64_t t_end) {
  struct open_state {
    worker_state state;
    std::int64_t since;
  };
  std::vector<state_interval> intervals;
  std::map<std::uint64_t, open_state> open;
  for (const worker_event* e : in_time_order(events)) {
    if (const auto it = open.find(e->worker); it != open.end()) {
      intervals.push_back({it->second.since, e->t_ns, it->second.state, e->worker});
    }
    if (e->to == worker_state::exited) {
      open.erase(e->worker);
    } else {
      open[e->worker] = {e->to, e->t_ns};
    }
  }
  for (const auto& [worker, st] : open) intervals.push_back({st.since, t_end, st.state, worker});
  return intervals;
}

}  // namespace procpool::harness
