// The worker lifecycle chart of report.html: one row per worker process of a case, its states
// as coloured bars (start-up and init phases marked inside its start), the recorded requests
// drawn on the worker that served them, timeouts in a distinct colour, and checkout timeouts,
// which never reached a worker, on a separate "waiting" row.
//
// The page must stay small whatever the case: rows stop at max_rows workers, request marks at
// max_requests (failures first), and state bars narrower than a pixel merge into their
// neighbours until at most max_state_bars remain. The caption says when any of this happened.
#include <algorithm>
#include <cmath>
#include <limits>
#include <map>
#include <set>

#include <fmt/format.h>

#include "report_charts.hpp"
#include "report_svg.hpp"
#include "report_text.hpp"
#include "run/runner.hpp"

namespace procpool::harness::report_charts {
namespace {

using json = nlohmann::json;
using report_model::find;
using report_model::number;
using report_model::whole;
using report_model::text;
using report_svg::legend_entry;

constexpr std::size_t max_rows = 64;
constexpr std::size_t max_requests = 3000;
constexpr std::size_t max_state_bars = 4000;
constexpr std::size_t max_waiting_lanes = 12;
constexpr double chart_width = 760;
constexpr double row_gap = 4;

const std::vector<std::pair<std::string, std::string>>& state_colours() {
  static const std::vector<std::pair<std::string, std::string>> colours = {
      {"pending", "#e5e7eb"}, {"starting", "#fde68a"}, {"idle", "#dcfce7"}, {"busy", "#22c55e"},
      {"pinging", "#60a5fa"}, {"stopping", "#c4b5fd"}};
  return colours;
}

std::string state_colour(std::string_view state) {
  for (const auto& [name, colour] : state_colours()) {
    if (name == state) return colour;
  }
  return "#d1d5db";
}

constexpr std::string_view startup_colour = "#92400e";
constexpr std::string_view init_colour = "#f59e0b";
constexpr std::string_view ok_colour = "#1e3a8a";
constexpr std::string_view timeout_colour = "#dc2626";
constexpr std::string_view failure_colour = "#9333ea";

struct span {
  double from = 0, to = 0;  // ns from the case's first event
  std::string state;
};

struct worker_row {
  std::uint64_t id = 0;
  std::string slot, pid;
  std::vector<span> states;
  double spawn = -1, main = -1, init_done = -1;  // start phases, when recorded
};

// Merges runs narrower than `min_ns` into one bar coloured by the state that filled most of it.
std::vector<span> coalesce(const std::vector<span>& spans, double min_ns, bool& merged) {
  std::vector<span> out;
  std::map<std::string, double> filled;
  double from = 0, to = 0;
  const auto flush = [&] {
    if (filled.empty()) return;
    const auto top = std::max_element(filled.begin(), filled.end(),
                                      [](const auto& a, const auto& b) { return a.second < b.second; });
    if (filled.size() > 1) merged = true;
    if (!out.empty() && out.back().state == top->first && out.back().to >= from) {
      out.back().to = to;
    } else {
      out.push_back({from, to, top->first});
    }
    filled.clear();
  };
  for (const auto& s : spans) {
    if (!filled.empty() && s.from > to) flush();  // a gap (an exited worker) ends the run
    if (filled.empty()) from = s.from;
    to = s.to;
    filled[s.state] += s.to - s.from;
    if (to - from >= min_ns) flush();
  }
  flush();
  return out;
}

struct request_mark {
  const json* r;
  bool failed;
};

struct placed_request {
  const json* r;
  bool failed, timeout;
  std::size_t row;  // 0: waiting; else the worker row + 1
  double from, to;  // ns from the case's first event
};

}  // namespace

std::string lifecycle(const report_model::case_row& c, std::string_view why_this_case) {
  const json& timelines = report_model::object_at(*c.doc, "timelines");
  const json* events = find(timelines, "workers");
  if (!events || !events->is_array() || events->empty()) {
    return note("lifecycle", fmt::format("No worker lifecycle chart: case {} recorded no worker events{}.", c.id,
                                         c.error ? " (its subject could not be created)" : ""));
  }
  std::vector<const json*> requests;
  for (const char* list : {"requests_failed", "requests_sampled"}) {
    if (const json* rs = find(timelines, list); rs && rs->is_array()) {
      for (const auto& r : *rs) requests.push_back(&r);
    }
  }

  // The time origin: the first thing that happened in the case.
  double t0 = std::numeric_limits<double>::infinity(), t_end = 0;
  const auto see = [&](double t) {
    if (t <= 0) return;
    t0 = std::min(t0, t);
    t_end = std::max(t_end, t);
  };
  for (const auto& e : *events) {
    see(number(e, "t_ns"));
    see(number(e, "t_spawn_ns"));
  }
  for (const auto* r : requests) {
    for (const char* k : {"t_submit", "t_checkout", "t_sent", "t_worker_recv", "t_worker_done", "t_reply"}) see(number(*r, k));
  }
  if (!(t_end > t0)) t_end = t0 + 1;
  const double span_ns = t_end - t0;

  // Rows, in order of each worker's first event.
  std::vector<worker_row> rows;
  std::map<std::uint64_t, std::size_t> row_of;
  std::map<std::uint64_t, std::pair<double, std::string>> open;  // worker -> (since, state)
  std::size_t omitted_workers = 0, state_changes = 0;
  std::vector<const json*> sorted;
  for (const auto& e : *events) sorted.push_back(&e);
  std::stable_sort(sorted.begin(), sorted.end(),
                   [](const json* a, const json* b) { return number(*a, "t_ns") < number(*b, "t_ns"); });
  for (const json* e : sorted) {
    const auto id = whole(*e, "worker");
    auto it = row_of.find(id);
    if (it == row_of.end()) {
      if (rows.size() >= max_rows) {
        if (row_of.emplace(id, std::numeric_limits<std::size_t>::max()).second) ++omitted_workers;
        continue;
      }
      it = row_of.emplace(id, rows.size()).first;
      worker_row row;
      row.id = id;
      if (const json* slot = find(*e, "slot")) row.slot = report_text::plain(*slot);
      if (const json* pid = find(*e, "pid")) row.pid = report_text::plain(*pid);
      rows.push_back(std::move(row));
    }
    if (it->second == std::numeric_limits<std::size_t>::max()) continue;
    worker_row& row = rows[it->second];
    ++state_changes;
    const double t = number(*e, "t_ns") - t0;
    if (auto o = open.find(id); o != open.end()) {
      row.states.push_back({o->second.first, t, o->second.second});
      open.erase(o);
    }
    const std::string to = text(*e, "to");
    if (to != "exited") open[id] = {t, to};
    if (const double s = number(*e, "t_spawn_ns"); s > 0) row.spawn = s - t0;
    if (const double m = number(*e, "t_main_ns"); m > 0) row.main = m - t0;
    if (const double d = number(*e, "t_init_done_ns"); d > 0) row.init_done = d - t0;
  }
  for (const auto& [id, since] : open) rows[row_of[id]].states.push_back({since.first, span_ns, since.second});

  // Requests to draw: failures first, then the successful sample, within the cap.
  std::vector<request_mark> marks;
  for (const auto* r : requests) {
    const std::string outcome = text(*r, "outcome", "ok");
    marks.push_back({r, outcome != "ok"});
  }
  std::stable_partition(marks.begin(), marks.end(), [](const request_mark& m) { return m.failed; });
  const std::size_t recorded_requests = marks.size();
  if (marks.size() > max_requests) marks.resize(max_requests);
  std::size_t off_chart = 0;
  std::vector<placed_request> placed;
  for (const auto& m : marks) {
    const json& r = *m.r;
    placed_request p{&r, m.failed, is_timeout_outcome(text(r, "outcome", "ok")), 0, 0, 0};
    const auto worker = whole(r, "worker");
    // On a worker: from send to reply. Waiting (never reached a worker): from submission.
    p.from = number(r, "t_submit");
    if (worker != 0) {
      const auto row = row_of.find(worker);
      if (row == row_of.end() || row->second >= rows.size()) {
        ++off_chart;
        continue;
      }
      p.row = row->second + 1;
      for (const char* k : {"t_sent", "t_checkout", "t_submit"}) {
        if (number(r, k) > 0) {
          p.from = number(r, k);
          break;
        }
      }
    }
    for (const char* k : {"t_reply", "t_worker_done"}) {
      if (number(r, k) > 0) {
        p.to = number(r, k);
        break;
      }
    }
    if (p.from <= 0) continue;
    if (p.to < p.from) p.to = t_end;
    p.from -= t0;
    p.to -= t0;
    placed.push_back(p);
  }
  // Waiting requests overlap in time: each goes to the first lane free at its start.
  std::vector<double> lane_ends;
  std::vector<std::size_t> lane_of(placed.size(), 0);
  std::vector<std::size_t> waiting;
  for (std::size_t i = 0; i < placed.size(); ++i) {
    if (placed[i].row == 0) waiting.push_back(i);
  }
  std::stable_sort(waiting.begin(), waiting.end(), [&](std::size_t a, std::size_t b) { return placed[a].from < placed[b].from; });
  for (const std::size_t i : waiting) {
    auto lane = std::find_if(lane_ends.begin(), lane_ends.end(), [&](double end) { return end <= placed[i].from; });
    if (lane == lane_ends.end() && lane_ends.size() < max_waiting_lanes) lane = lane_ends.insert(lane_ends.end(), 0.0);
    if (lane == lane_ends.end()) lane = std::min_element(lane_ends.begin(), lane_ends.end());
    *lane = placed[i].to;
    lane_of[i] = static_cast<std::size_t>(lane - lane_ends.begin());
  }

  // Layout: worker rows as tall as a few workers allow and thin enough for many; the waiting
  // row above them, one thin lane per overlapping wait.
  const double row_height = std::clamp(260.0 / static_cast<double>(rows.size() + 1), 14.0, 26.0);
  const double lane_height = 4;
  const double waiting_height =
      lane_ends.empty() ? 0 : std::max(row_height, lane_height * static_cast<double>(lane_ends.size()) + 2) + row_gap;
  const double label_w = 120;
  const report_svg::plot_area area{label_w, 14, chart_width - label_w - 20,
                                   waiting_height + (row_height + row_gap) * static_cast<double>(rows.size())};
  const auto x = report_svg::scale::linear(0, span_ns / 1e6, area.left, area.right());
  const auto at = [&](double ns) { return x(ns / 1e6); };
  const auto row_top = [&](std::size_t i) {
    return area.top + waiting_height + (row_height + row_gap) * static_cast<double>(i) + row_gap / 2;
  };

  // Bars narrower than a pixel merge until the page stays within its budget.
  bool merged = false;
  std::vector<std::vector<span>> bars(rows.size());
  for (double min_px = 0.75;; min_px *= 2) {
    merged = false;
    std::size_t total = 0;
    const double min_ns = min_px * span_ns / area.width;
    for (std::size_t i = 0; i < rows.size(); ++i) {
      bars[i] = coalesce(rows[i].states, min_ns, merged);
      total += bars[i].size();
    }
    if (total <= max_state_bars || min_px > area.width) break;
  }

  report_svg::canvas canvas("lifecycle", fmt::format("Worker lifecycle of case {}", c.id), chart_width);
  report_svg::x_axis(canvas, area, x, "time since the case's first event (ms)");
  canvas.decorating(true);
  if (!lane_ends.empty()) canvas.text(area.left - 7, area.top + waiting_height / 2 + 4, "waiting", "end", 11);
  for (std::size_t i = 0; i < rows.size(); ++i) {
    canvas.text(area.left - 7, row_top(i) + row_height / 2 + 4,
                fmt::format("w{}{}", rows[i].id, rows[i].slot.empty() ? "" : " slot " + rows[i].slot), "end", 11);
  }
  canvas.line(area.left, area.top, area.left, area.bottom(), "#6b7280");
  canvas.decorating(false);

  std::set<std::string> states_seen;
  bool phases = false;
  for (std::size_t i = 0; i < rows.size(); ++i) {
    const double top = row_top(i);
    for (const auto& b : bars[i]) {
      states_seen.insert(b.state);
      canvas.rect(at(b.from), top, std::max(at(b.to) - at(b.from), 0.5), row_height, state_colour(b.state));
    }
    const worker_row& row = rows[i];
    if (row.spawn >= 0 && row.main > row.spawn) {
      phases = true;
      canvas.rect(at(row.spawn), top, std::max(at(row.main) - at(row.spawn), 0.5), row_height * 0.35, startup_colour,
                  fmt::format("worker {} (pid {}): start-up (spawn to main) {} ms", row.id, row.pid,
                              report_text::significant((row.main - row.spawn) / 1e6)));
      if (row.init_done > row.main) {
        canvas.rect(at(row.main), top, std::max(at(row.init_done) - at(row.main), 0.5), row_height * 0.35, init_colour,
                    fmt::format("worker {} (pid {}): init (main to init done) {} ms", row.id, row.pid,
                                report_text::significant((row.init_done - row.main) / 1e6)));
      }
    }
  }

  std::size_t drawn = 0, drawn_failed = 0;
  bool any_ok = false, any_timeout = false, any_failure = false;
  // Successes first so that failures are drawn over them.
  for (std::size_t k = placed.size(); k-- > 0;) {
    const placed_request& p = placed[k];
    const std::string_view colour = !p.failed ? ok_colour : p.timeout ? timeout_colour : failure_colour;
    const double top = p.row == 0 ? area.top + 1 + lane_height * static_cast<double>(lane_of[k])
                                  : row_top(p.row - 1) + row_height * 0.55;
    const double h = p.row == 0 ? lane_height - 1 : row_height * 0.4;
    ++drawn;
    any_ok = any_ok || !p.failed;
    any_timeout = any_timeout || p.timeout;
    any_failure = any_failure || (p.failed && !p.timeout);
    if (!p.failed) {
      canvas.rect(at(p.from), top, std::max(at(p.to) - at(p.from), 1.0), h, colour, {}, 0.75);
      continue;
    }
    ++drawn_failed;
    const json& r = *p.r;
    const json* id = find(r, "request_id");
    std::string tooltip = fmt::format("request {} {}: {}, from {} ms to {} ms", id ? report_text::plain(*id) : "?",
                                      p.row == 0 ? "waiting for a worker" : fmt::format("on worker {}", rows[p.row - 1].id),
                                      text(r, "outcome", "?"), report_text::significant(p.from / 1e6),
                                      report_text::significant(p.to / 1e6));
    if (const std::string verdict = text(r, "verdict"); !verdict.empty()) tooltip += "; verdict " + verdict;
    canvas.rect(at(p.from), top, std::max(at(p.to) - at(p.from), 1.0), h, colour, tooltip, p.row == 0 ? 0.6 : 0.9);
    canvas.circle(at(p.to), top + h / 2, p.row == 0 ? 2 : 2.5, colour);  // the bar carries the tooltip
  }

  std::vector<legend_entry> entries;
  for (const auto& [name, colour] : state_colours()) {
    if (states_seen.count(name)) entries.push_back({name, colour, legend_entry::mark::swatch});
  }
  if (phases) {
    entries.push_back({"start-up (spawn to main)", std::string(startup_colour), legend_entry::mark::swatch});
    entries.push_back({"init (main to init done)", std::string(init_colour), legend_entry::mark::swatch});
  }
  if (any_ok) entries.push_back({"request ok", std::string(ok_colour), legend_entry::mark::swatch});
  if (any_timeout) entries.push_back({"request timed out", std::string(timeout_colour), legend_entry::mark::dot});
  if (any_failure) entries.push_back({"request failed otherwise", std::string(failure_colour), legend_entry::mark::dot});
  const double bottom = report_svg::legend(canvas, area.left, area.bottom() + 46, area.width, entries);

  std::string caption = fmt::format(
      "Workers of case {} ({}): {} worker processes, {} state changes; {} of the case's recorded requests "
      "drawn ({} failed, each failed request is recorded, successes are a sample). Requests sit on the "
      "worker that served them, from send to reply; requests that never reached a worker (checkout "
      "timeouts) sit on the waiting row at the top, from submission, one lane per overlapping wait.",
      c.id, why_this_case, rows.size() + omitted_workers, state_changes, drawn, drawn_failed);
  if (omitted_workers > 0) {
    caption += fmt::format(" Only the first {} workers are drawn; {} more are left out, with {} of their requests.",
                           max_rows, omitted_workers, off_chart);
  }
  if (recorded_requests > max_requests) {
    caption += fmt::format(" Requests are capped at {} marks of {} recorded.", max_requests, recorded_requests);
  }
  if (merged) caption += " States shorter than a pixel are merged into the state that filled most of the pixel.";
  const auto dropped_events = whole(timelines, "worker_events_dropped");
  const auto dropped_failed = whole(timelines, "requests_failed_dropped");
  if (dropped_events || dropped_failed) {
    caption += fmt::format(" The run itself dropped {} worker events and {} failed requests beyond its limits.",
                           dropped_events, dropped_failed);
  }
  return figure("lifecycle", canvas.finish(bottom), caption);
}

}  // namespace procpool::harness::report_charts
