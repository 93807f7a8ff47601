#include "scenario/shards.hpp"

#include <algorithm>
#include <numeric>

namespace procpool::harness {

std::vector<std::size_t> shard_positions(std::size_t total, shard s) {
  std::vector<std::size_t> out;
  for (std::size_t p = s.index; p < total; p += s.count) out.push_back(p);
  return out;
}

std::vector<std::size_t> balanced_shard_positions(const std::vector<scenario_case>& cases, shard s,
                                                  const std::map<std::string, double, std::less<>>& wall_ms_by_id) {
  std::vector<double> cost(cases.size(), 0);
  double known_sum = 0;
  std::size_t known = 0;
  for (std::size_t p = 0; p < cases.size(); ++p) {
    if (const auto it = wall_ms_by_id.find(cases[p].id); it != wall_ms_by_id.end() && it->second >= 0) {
      cost[p] = it->second;
      known_sum += it->second;
      ++known;
    } else {
      cost[p] = -1;
    }
  }
  const double mean = known ? known_sum / static_cast<double>(known) : 1.0;
  for (auto& c : cost) {
    if (c < 0) c = mean;
  }
  std::vector<std::size_t> order(cases.size());
  std::iota(order.begin(), order.end(), std::size_t{0});
  std::stable_sort(order.begin(), order.end(), [&](std::size_t a, std::size_t b) { return cost[a] > cost[b]; });
  std::vector<double> load(s.count, 0);
  std::vector<std::size_t> mine;
  for (const std::size_t p : order) {
    const auto lightest = static_cast<std::size_t>(std::min_element(load.begin(), load.end()) - load.begin());
    load[lightest] += cost[p];
    if (lightest == s.index) mine.push_back(p);
  }
  std::sort(mine.begin(), mine.end());
  return mine;
}

}  // namespace procpool::harness
