// The worker lifecycle chart of report.html: one row per worker process of a case, its states
// as coloured bars (start-up and init phases marked inside its start), the recorded requests
// drawn on the worker that served them, timeouts in a distinct colour, and checkout timeouts,
// which never reached a worker, on a separate "waiting" row. A zygote template has a row of
// its own, labelled as the template: its start is the start every worker waits for.
//
// The page must stay small whatever the case: rows stop at max_rows workers, request marks at
// max_requests (failures first), and state bars narrower than a pixel merge into their
// neighbours until at most max_state_bars remain. The caption says when any of this happened.
#include <algorithm>
#include <cmath>
#include <limits>
#include <map>
#include <optional>
#include <set>

#include <fmt/format.h>

#include "report_charts.hpp"
#include "report_svg.hpp"
#include "report_text.hpp"
#include "results/worker_intervals.hpp"
#include "run/records.hpp"

namespace procpool::harness::report_charts {
namespace {

using json = nlohmann::json;
using report_model::find;
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
constexpr std::string_view cancelled_colour = "#9ca3af";

struct span {
  double from = 0, to = 0;  // ns from the case's first event
  std::string state;
};

struct worker_row {
  std::uint64_t id = 0;
  std::string slot, pid;
  bool zygote_template = false;
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

struct placed_request {
  const timeline_record* r;
  bool failed, timeout;
  bool cancelled;  // taken back by its caller before a worker had it: not a failure
  std::size_t row;  // 0: waiting; else the worker row + 1
  double from, to;  // ns from the case's first event
};

// The case's time span: from the first thing that happened to the last.
struct time_span {
  double t0 = std::numeric_limits<double>::infinity();
  double t_end = 0;
  double ns() const { return t_end - t0; }
};

time_span span_of(const case_timelines& tl, const std::vector<const timeline_record*>& requests) {
  time_span s;
  const auto see = [&](double t) {
    if (t <= 0) return;
    s.t0 = std::min(s.t0, t);
    s.t_end = std::max(s.t_end, t);
  };
  for (const auto& e : tl.workers) {
    see(static_cast<double>(e.t_ns));
    see(static_cast<double>(e.t_spawn_ns));
  }
  for (const auto* r : requests) {
    for (const auto t : {r->t_submit, r->t_checkout, r->t_sent, r->t_worker_recv, r->t_worker_done, r->t_reply}) {
      see(static_cast<double>(t));
    }
  }
  if (!(s.t_end > s.t0)) s.t_end = s.t0 + 1;
  return s;
}

// One row per worker, in order of each worker's first event, at most max_rows of them.
struct worker_rows {
  std::vector<worker_row> rows;
  std::map<std::uint64_t, std::size_t> row_of;  // past max_rows: npos
  std::size_t omitted_workers = 0, state_changes = 0;
  std::size_t templates = 0;  // of the rows and the omitted: not among the pool's workers
  static constexpr std::size_t npos = std::numeric_limits<std::size_t>::max();
};

worker_rows rows_of(const case_timelines& tl, const time_span& span) {
  worker_rows out;
  for (const worker_event* e : in_time_order(tl.workers)) {
    auto it = out.row_of.find(e->worker);
    if (it == out.row_of.end()) {
      if (e->role == worker_role::zygote_template) ++out.templates;
      if (out.rows.size() >= max_rows) {
        out.row_of.emplace(e->worker, worker_rows::npos);
        ++out.omitted_workers;
        continue;
      }
      it = out.row_of.emplace(e->worker, out.rows.size()).first;
      worker_row& row = out.rows.emplace_back();
      row.id = e->worker;
      row.slot = std::to_string(e->slot);
      row.pid = std::to_string(e->pid);
      row.zygote_template = e->role == worker_role::zygote_template;
    }
    if (it->second == worker_rows::npos) continue;
    worker_row& row = out.rows[it->second];
    ++out.state_changes;
    if (e->t_spawn_ns > 0) row.spawn = static_cast<double>(e->t_spawn_ns) - span.t0;
    if (e->t_main_ns > 0) row.main = static_cast<double>(e->t_main_ns) - span.t0;
    if (e->t_init_done_ns > 0) row.init_done = static_cast<double>(e->t_init_done_ns) - span.t0;
  }
  const auto t_end = std::isfinite(span.t_end) ? static_cast<std::int64_t>(span.t_end) : 0;
  for (const auto& i : worker_intervals(tl.workers, t_end)) {
    const std::size_t row = out.row_of.at(i.worker);
    if (row == worker_rows::npos) continue;
    out.rows[row].states.push_back({static_cast<double>(i.begin) - span.t0,
                                    static_cast<double>(i.end) - span.t0, std::string(to_string(i.state))});
  }
  return out;
}

// Where one request is drawn: on the worker that served it from send to reply, or on the
// waiting row from submission when it never reached a worker. nullopt when it has no time.
std::optional<placed_request> place(const timeline_record& r, const worker_rows& rows, const time_span& span,
                                    std::size_t& off_chart) {
  placed_request p{&r, is_failure_outcome(r.outcome), is_timeout_outcome(r.outcome), r.outcome == "cancelled", 0,
                     static_cast<double>(r.t_submit), 0};
  if (r.worker != 0) {
    const auto row = rows.row_of.find(r.worker);
    if (row == rows.row_of.end() || row->second >= rows.rows.size()) {
      ++off_chart;
      return std::nullopt;
    }
    p.row = row->second + 1;
    p.from = static_cast<double>(r.t_sent > 0 ? r.t_sent : r.t_checkout > 0 ? r.t_checkout : r.t_submit);
  }
  p.to = static_cast<double>(r.t_reply > 0 ? r.t_reply : r.t_worker_done > 0 ? r.t_worker_done : 0);
  if (p.from <= 0) return std::nullopt;
  if (p.to < p.from) p.to = span.t_end;
  p.from -= span.t0;
  p.to -= span.t0;
  return p;
}

// The requests to draw: failures first, then the successful sample, within max_requests.
struct placed_requests {
  std::vector<placed_request> placed;
  std::size_t recorded = 0, off_chart = 0;
};

placed_requests place_all(const std::vector<const timeline_record*>& requests, const worker_rows& rows,
                          const time_span& span) {
  std::vector<const timeline_record*> marks = requests;
  std::stable_partition(marks.begin(), marks.end(),
                        [](const timeline_record* r) { return is_failure_outcome(r->outcome); });
  placed_requests out;
  out.recorded = marks.size();
  if (marks.size() > max_requests) marks.resize(max_requests);
  for (const auto* r : marks) {
    if (auto p = place(*r, rows, span, out.off_chart)) out.placed.push_back(*p);
  }
  return out;
}

// Waiting requests overlap in time: each goes to the first lane free at its start.
struct waiting_lanes {
  std::vector<double> ends;          // one per lane
  std::vector<std::size_t> lane_of;  // per placed request
};

waiting_lanes lanes_of(const std::vector<placed_request>& placed) {
  waiting_lanes lanes;
  lanes.lane_of.assign(placed.size(), 0);
  std::vector<std::size_t> waiting;
  for (std::size_t i = 0; i < placed.size(); ++i) {
    if (placed[i].row == 0) waiting.push_back(i);
  }
  std::stable_sort(waiting.begin(), waiting.end(), [&](std::size_t a, std::size_t b) { return placed[a].from < placed[b].from; });
  auto& ends = lanes.ends;
  for (const std::size_t i : waiting) {
    auto lane = std::find_if(ends.begin(), ends.end(), [&](double end) { return end <= placed[i].from; });
    if (lane == ends.end() && ends.size() < max_waiting_lanes) lane = ends.insert(ends.end(), 0.0);
    if (lane == ends.end()) lane = std::min_element(ends.begin(), ends.end());
    *lane = placed[i].to;
    lanes.lane_of[i] = static_cast<std::size_t>(lane - ends.begin());
  }
  return lanes;
}

// Worker rows as tall as a few workers allow and thin enough for many; the waiting row above
// them, one thin lane per overlapping wait.
struct chart_layout {
  double row_height = 0, waiting_height = 0;
  static constexpr double lane_height = 4;
  report_svg::plot_area area;
  report_svg::scale x;
  double span_ns = 0;

  chart_layout(std::size_t rows, std::size_t lanes, double span)
      : row_height(std::clamp(260.0 / static_cast<double>(rows + 1), 14.0, 26.0)),
        waiting_height(lanes == 0 ? 0
                                  : std::max(row_height, lane_height * static_cast<double>(lanes) + 2) + row_gap),
        area{label_width, 14, chart_width - label_width - 20,
             waiting_height + (row_height + row_gap) * static_cast<double>(rows)},
        x(report_svg::scale::linear(0, span / 1e6, area.left, area.right())),
        span_ns(span) {}

  double at(double ns) const { return x(ns / 1e6); }
  double row_top(std::size_t i) const {
    return area.top + waiting_height + (row_height + row_gap) * static_cast<double>(i) + row_gap / 2;
  }

 private:
  static constexpr double label_width = 120;
};

// Bars narrower than a pixel merge until the page stays within its budget. Sets `merged`
// when any did.
std::vector<std::vector<span>> bars_of(const std::vector<worker_row>& rows, const chart_layout& l, bool& merged) {
  std::vector<std::vector<span>> bars(rows.size());
  for (double min_px = 0.75;; min_px *= 2) {
    merged = false;
    std::size_t total = 0;
    const double min_ns = min_px * l.span_ns / l.area.width;
    for (std::size_t i = 0; i < rows.size(); ++i) {
      bars[i] = coalesce(rows[i].states, min_ns, merged);
      total += bars[i].size();
    }
    if (total <= max_state_bars || min_px > l.area.width) break;
  }
  return bars;
}

void draw_labels(report_svg::canvas& canvas, const chart_layout& l, const std::vector<worker_row>& rows,
                 bool waiting_row) {
  report_svg::x_axis(canvas, l.area, l.x, "time since the case's first event (ms)");
  canvas.decorating(true);
  if (waiting_row) canvas.text(l.area.left - 7, l.area.top + l.waiting_height / 2 + 4, "waiting", "end", 11);
  for (std::size_t i = 0; i < rows.size(); ++i) {
    canvas.text(l.area.left - 7, l.row_top(i) + l.row_height / 2 + 4,
                rows[i].zygote_template
                    ? std::string("zygote template")
                    : fmt::format("w{}{}", rows[i].id, rows[i].slot.empty() ? "" : " slot " + rows[i].slot),
                "end", 11);
  }
  canvas.line(l.area.left, l.area.top, l.area.left, l.area.bottom(), "#6b7280");
  canvas.decorating(false);
}

// What the legend shows: the states, phases and request kinds that were drawn.
struct drawn_marks {
  std::set<std::string> states;
  bool phases = false, ok = false, timeout = false, failure = false, cancelled = false;
  std::size_t requests = 0, failed = 0;
};

void draw_start_phases(report_svg::canvas& canvas, const chart_layout& l, const worker_row& row, double top,
                       drawn_marks& drawn) {
  if (row.spawn < 0 || row.main <= row.spawn) return;
  drawn.phases = true;
  // A template's init is its preload, the phase a zygote pool pays once for all its workers.
  const std::string who = fmt::format("{} {} (pid {})", row.zygote_template ? "zygote template" : "worker",
                                      row.id, row.pid);
  canvas.rect(l.at(row.spawn), top, std::max(l.at(row.main) - l.at(row.spawn), 0.5), l.row_height * 0.35,
              startup_colour,
              fmt::format("{}: start-up (spawn to main) {} ms", who,
                          report_text::significant((row.main - row.spawn) / 1e6)));
  if (row.init_done > row.main) {
    canvas.rect(l.at(row.main), top, std::max(l.at(row.init_done) - l.at(row.main), 0.5), l.row_height * 0.35,
                init_colour,
                fmt::format("{}: {} {} ms", who,
                            row.zygote_template ? "preload (main to preload done)" : "init (main to init done)",
                            report_text::significant((row.init_done - row.main) / 1e6)));
  }
}

void draw_rows(report_svg::canvas& canvas, const chart_layout& l, const std::vector<worker_row>& rows,
               const std::vector<std::vector<span>>& bars, drawn_marks& drawn) {
  for (std::size_t i = 0; i < rows.size(); ++i) {
    const double top = l.row_top(i);
    for (const auto& b : bars[i]) {
      drawn.states.insert(b.state);
      canvas.rect(l.at(b.from), top, std::max(l.at(b.to) - l.at(b.from), 0.5), l.row_height, state_colour(b.state));
    }
    draw_start_phases(canvas, l, rows[i], top, drawn);
  }
}

void draw_requests(report_svg::canvas& canvas, const chart_layout& l, const std::vector<worker_row>& rows,
                   const std::vector<placed_request>& placed, const waiting_lanes& lanes, drawn_marks& drawn) {
  // Successes first so that failures are drawn over them.
  for (std::size_t k = placed.size(); k-- > 0;) {
    const placed_request& p = placed[k];
    const std::string_view colour = p.cancelled ? cancelled_colour
                                    : !p.failed  ? ok_colour
                                    : p.timeout  ? timeout_colour
                                                 : failure_colour;
    const double top = p.row == 0 ? l.area.top + 1 + chart_layout::lane_height * static_cast<double>(lanes.lane_of[k])
                                  : l.row_top(p.row - 1) + l.row_height * 0.55;
    const double h = p.row == 0 ? chart_layout::lane_height - 1 : l.row_height * 0.4;
    ++drawn.requests;
    drawn.ok = drawn.ok || (!p.failed && !p.cancelled);
    drawn.cancelled = drawn.cancelled || p.cancelled;
    drawn.timeout = drawn.timeout || p.timeout;
    drawn.failure = drawn.failure || (p.failed && !p.timeout);
    if (!p.failed) {
      canvas.rect(l.at(p.from), top, std::max(l.at(p.to) - l.at(p.from), 1.0), h, colour, {}, 0.75);
      continue;
    }
    ++drawn.failed;
    const timeline_record& r = *p.r;
    std::string tooltip = fmt::format("request {} {}: {}, from {} ms to {} ms", r.request_id,
                                      p.row == 0 ? "waiting for a worker" : fmt::format("on worker {}", rows[p.row - 1].id),
                                      r.outcome, report_text::significant(p.from / 1e6),
                                      report_text::significant(p.to / 1e6));
    if (r.verdict && !r.verdict->empty()) tooltip += "; verdict " + *r.verdict;
    canvas.rect(l.at(p.from), top, std::max(l.at(p.to) - l.at(p.from), 1.0), h, colour, tooltip, p.row == 0 ? 0.6 : 0.9);
    canvas.circle(l.at(p.to), top + h / 2, p.row == 0 ? 2 : 2.5, colour);  // the bar carries the tooltip
  }
}

double draw_legend(report_svg::canvas& canvas, const chart_layout& l, const drawn_marks& drawn) {
  std::vector<legend_entry> entries;
  for (const auto& [name, colour] : state_colours()) {
    if (drawn.states.count(name)) entries.push_back({name, colour, legend_entry::mark::swatch});
  }
  if (drawn.phases) {
    entries.push_back({"start-up (spawn to main)", std::string(startup_colour), legend_entry::mark::swatch});
    entries.push_back({"init (main to init done)", std::string(init_colour), legend_entry::mark::swatch});
  }
  if (drawn.ok) entries.push_back({"request ok", std::string(ok_colour), legend_entry::mark::swatch});
  if (drawn.timeout) entries.push_back({"request timed out", std::string(timeout_colour), legend_entry::mark::dot});
  if (drawn.failure) entries.push_back({"request failed otherwise", std::string(failure_colour), legend_entry::mark::dot});
  if (drawn.cancelled) {
    entries.push_back({"request cancelled before a worker had it", std::string(cancelled_colour),
                       legend_entry::mark::swatch});
  }
  return report_svg::legend(canvas, l.area.left, l.area.bottom() + 46, l.area.width, entries);
}

std::string caption_of(const report_model::case_row& c, std::string_view why_this_case, const case_timelines& tl,
                       const worker_rows& rows, const placed_requests& requests, const drawn_marks& drawn,
                       bool merged) {
  std::string caption = fmt::format(
      "Workers of case {} ({}): {} worker processes{}, {} state changes; {} of the case's recorded requests "
      "drawn ({} failed, each failed request is recorded, successes are a sample). Requests sit on the "
      "worker that served them, from send to reply; requests that never reached a worker (checkout "
      "timeouts) sit on the waiting row at the top, from submission, one lane per overlapping wait.",
      c.id, why_this_case, rows.rows.size() + rows.omitted_workers - rows.templates,
      rows.templates == 0 ? std::string()
      : rows.templates == 1 ? std::string(" and a zygote template")
                            : fmt::format(" and {} zygote template launches", rows.templates),
      rows.state_changes, drawn.requests, drawn.failed);
  if (rows.omitted_workers > 0) {
    caption += fmt::format(" Only the first {} workers are drawn; {} more are left out, with {} of their requests.",
                           max_rows, rows.omitted_workers, requests.off_chart);
  }
  if (requests.recorded > max_requests) {
    caption += fmt::format(" Requests are capped at {} marks of {} recorded.", max_requests, requests.recorded);
  }
  if (merged) caption += " States shorter than a pixel are merged into the state that filled most of the pixel.";
  if (tl.worker_events_dropped || tl.requests_failed_dropped) {
    caption += fmt::format(" The run itself dropped {} worker events and {} failed requests beyond its limits.",
                           tl.worker_events_dropped, tl.requests_failed_dropped);
  }
  return caption;
}

}  // namespace

std::string lifecycle(const report_model::case_row& c, std::string_view why_this_case) {
  const case_timelines tl = c.record.timelines.value_or(case_timelines{});
  if (tl.workers.empty()) {
    return note("lifecycle", fmt::format("No worker lifecycle chart: case {} recorded no worker events{}.", c.id,
                                         c.error ? " (its subject could not be created)" : ""));
  }
  std::vector<const timeline_record*> requests;
  for (const auto* list : {&tl.requests_failed, &tl.requests_sampled}) {
    for (const auto& r : *list) requests.push_back(&r);
  }
  const time_span span = span_of(tl, requests);
  const worker_rows rows = rows_of(tl, span);
  const placed_requests placed = place_all(requests, rows, span);
  const waiting_lanes lanes = lanes_of(placed.placed);
  const chart_layout layout(rows.rows.size(), lanes.ends.size(), span.ns());
  bool merged = false;
  const auto bars = bars_of(rows.rows, layout, merged);

  report_svg::canvas canvas("lifecycle", fmt::format("Worker lifecycle of case {}", c.id), chart_width);
  draw_labels(canvas, layout, rows.rows, !lanes.ends.empty());
  drawn_marks drawn;
  draw_rows(canvas, layout, rows.rows, bars, drawn);
  draw_requests(canvas, layout, rows.rows, placed.placed, lanes, drawn);
  const double bottom = draw_legend(canvas, layout, drawn);
  return figure("lifecycle", canvas.finish(bottom),
                caption_of(c, why_this_case, tl, rows, placed, drawn, merged));
}

}  // namespace procpool::harness::report_charts
