// The run history as pages: history.html (one offline file, charts inline as SVG, no scripts
// or external assets) and history.md (its charts as SVG files beside it, in charts/). One
// trend chart per case and figure (throughput, p50, p99, timeout rate, verdict counts), each
// change point a dashed line at the first run after the shift.
//
//   auto changes = find_history_changes(*store->runs(), *store->cases(), {});
//   auto pages = render_history_report(changes, *store->cases());
//   write_file_atomically(dir / "history.html", pages.html);
//   for (const auto& [name, svg] : pages.charts) write_file_atomically(dir / name, svg);
#pragma once

#include <string>
#include <utility>
#include <vector>

#include "analysis/history_changes.hpp"

namespace procpool::harness {

struct history_report {
  std::string html = {};
  std::string markdown = {};  // links charts/<n>.svg
  std::vector<std::pair<std::string, std::string>> charts = {};  // "charts/<n>.svg" -> standalone SVG
};

history_report render_history_report(const history_changes& changes, const std::vector<history_case>& cases);

}  // namespace procpool::harness
