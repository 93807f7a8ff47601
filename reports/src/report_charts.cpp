// The sweep charts (throughput, latency, timeout heatmap) and the verdict counts of report.html.
#include "report_charts.hpp"

#include <algorithm>
#include <cmath>
#include <limits>
#include <optional>
#include <set>

#include <fmt/format.h>

#include "report_svg.hpp"
#include "report_text.hpp"
#include "scenario/verdicts.hpp"
#include "statistics/statistics.hpp"

namespace procpool::harness::report_charts {
namespace {

using json = nlohmann::json;
using report_model::find;
using report_model::number;
using report_model::text;
using report_svg::legend_entry;
using report_svg::plot_area;
using report_svg::scale;

constexpr double chart_width = 760;
constexpr std::size_t max_series = 8;
constexpr std::size_t max_latency_series = 6;

std::string axis_title(const std::string& key) {
  if (key == "load.concurrency") return "concurrency (callers)";
  if (key == "pool.size") return "pool size (workers)";
  if (key == "worker.startup_ms") return "worker start-up latency (ms)";
  if (key == "worker.init_ms") return "worker init latency (ms)";
  if (key == "environment.cpu_hogs") return "CPU hogs (processes)";
  if (key.size() > 3 && key.compare(key.size() - 3, 3, "_ms") == 0) return key + " (ms)";
  return key;
}

double mean_of(const report_model::series_point& p, double report_model::case_row::*field) {
  double total = 0;
  for (const auto* c : p.cases) total += c->*field;
  return p.cases.empty() ? 0 : total / static_cast<double>(p.cases.size());
}

double mean_latency(const report_model::series_point& p, double report_model::latency::*field) {
  double total = 0;
  for (const auto* c : p.cases) total += c->latency.*field;
  return p.cases.empty() ? 0 : total / static_cast<double>(p.cases.size());
}

std::string capped(std::size_t shown, std::size_t total, std::string_view what) {
  return shown < total ? fmt::format(" Showing the first {} of {} {}.", shown, total, what) : "";
}

// ---- Throughput ----

struct throughput_series {
  std::string label;
  std::vector<std::pair<double, double>> points;  // (n, requests/s)
  std::optional<usl_fit> fit;
};

std::string usl_label(const json& entry, const std::vector<std::string>& order) {
  std::string label = report_model::group_label(report_model::object_at(entry, "group"), order);
  label += fmt::format(": σ {}, κ {}, R² {}", report_text::significant(number(entry, "sigma")),
                       report_text::significant(number(entry, "kappa")),
                       report_text::significant(number(entry, "r_squared")));
  if (const json* peak = find(entry, "peak_n"); peak && peak->is_number()) {
    label += fmt::format(", peak at {}", report_text::significant(peak->get<double>()));
  }
  if (const std::string verdict = text(entry, "verdict"); !verdict.empty()) label += ", " + verdict;
  return label;
}

// The throughput chart is usually read against concurrency, so that axis wins when any fit
// is along it.
std::string usl_axis(const json& usl) {
  for (const auto& entry : usl) {
    if (text(entry, "axis") == "load.concurrency") return "load.concurrency";
  }
  return text(usl.front(), "axis");
}

throughput_series fitted_series(const json& entry, const std::vector<std::string>& order) {
  throughput_series s;
  s.label = usl_label(entry, order);
  if (const json* points = find(entry, "points"); points && points->is_array()) {
    for (const auto& p : *points) s.points.emplace_back(number(p, "n"), number(p, "throughput"));
  }
  usl_fit fit;
  fit.lambda = number(entry, "lambda");
  fit.sigma = number(entry, "sigma");
  fit.kappa = number(entry, "kappa");
  if (fit.lambda > 0) s.fit = fit;
  return s;
}

std::vector<throughput_series> fitted_series_along(const json& usl, const std::string& axis,
                                                   const std::vector<std::string>& order) {
  std::vector<throughput_series> all;
  for (const auto& entry : usl) {
    if (text(entry, "axis") == axis) all.push_back(fitted_series(entry, order));
  }
  return all;
}

// Without USL analyses in the results the chart still shows the measured throughput.
std::vector<throughput_series> measured_series_along(const report_model::document& doc,
                                                     const std::string& axis) {
  std::vector<throughput_series> all;
  for (const auto& s : report_model::series_along(doc, axis)) {
    throughput_series t;
    t.label = report_model::group_label(s.group, doc.swept_keys);
    for (const auto& p : s.points) t.points.emplace_back(p.x, mean_of(p, &report_model::case_row::throughput_rps));
    all.push_back(std::move(t));
  }
  return all;
}

struct throughput_extent {
  double min_x = std::numeric_limits<double>::infinity();
  double max_x = 0;
  double max_y = 0;
};

throughput_extent measured_extent(const std::vector<throughput_series>& all) {
  throughput_extent e;
  for (const auto& s : all) {
    for (const auto& [n, x] : s.points) {
      e.max_x = std::max(e.max_x, n);
      e.min_x = std::min(e.min_x, n);
      e.max_y = std::max(e.max_y, x);
    }
  }
  return e;
}

// A fitted curve can peak between or beyond the measured points; the y axis must hold it too.
double highest_fitted(const std::vector<throughput_series>& all, double min_x, double x_hi, double max_y) {
  for (const auto& s : all) {
    if (!s.fit) continue;
    for (int i = 0; i <= 40; ++i) max_y = std::max(max_y, usl_throughput(*s.fit, min_x + (x_hi - min_x) * i / 40.0));
  }
  return max_y;
}

// The plot's scales, and the span of x the fitted curves are drawn over.
struct throughput_frame {
  scale x, y;
  double min_x, x_hi;
};

std::vector<std::pair<double, double>> fitted_curve(const usl_fit& fit, const throughput_frame& f) {
  std::vector<std::pair<double, double>> curve;
  for (int k = 0; k <= 60; ++k) {
    const double n = f.min_x + (f.x_hi - f.min_x) * k / 60.0;
    curve.emplace_back(f.x(n), f.y(usl_throughput(fit, n)));
  }
  return curve;
}

// Returns the legend entry of each series drawn.
std::vector<legend_entry> draw_throughput_series(report_svg::canvas& c, const std::vector<throughput_series>& all,
                                                 const throughput_frame& f, const std::string& axis) {
  std::vector<legend_entry> entries;
  for (std::size_t i = 0; i < all.size(); ++i) {
    const auto& s = all[i];
    const std::string colour = report_svg::series_colour(i);
    if (s.fit) {
      c.path(fitted_curve(*s.fit, f), colour, 1.5, "6 4");
    } else {
      std::vector<std::pair<double, double>> joined;
      for (const auto& [n, v] : s.points) joined.emplace_back(f.x(n), f.y(v));
      c.path(joined, colour, 1, "2 3");
    }
    for (const auto& [n, v] : s.points) {
      c.circle(f.x(n), f.y(v), 3.5, colour,
               fmt::format("{}={}: {} requests/s ({})", axis, report_text::significant(n),
                           report_text::significant(v), s.label));
    }
    entries.push_back({s.label, colour, legend_entry::mark::dot});
  }
  return entries;
}

}  // namespace

std::string figure(std::string_view name, const std::string& svg, std::string_view caption) {
  return fmt::format("<figure class=\"chart-figure\" id=\"chart-{}\">\n{}\n<figcaption>{}</figcaption>\n</figure>\n",
                     report_text::xml_escape(name), svg, report_text::xml_escape(caption));
}

std::string note(std::string_view name, std::string_view text) {
  return fmt::format("<p class=\"note\" data-chart-note=\"{}\">{}</p>\n", report_text::xml_escape(name),
                     report_text::xml_escape(text));
}

std::string throughput(const json& results, const report_model::document& doc) {
  std::string axis;
  std::vector<throughput_series> all;
  const json* usl = find(report_model::object_at(results, "analyses"), "usl");
  if (usl && usl->is_array() && !usl->empty()) {
    axis = usl_axis(*usl);
    all = fitted_series_along(*usl, axis, doc.swept_keys);
  } else {
    const auto found = report_model::scaling_axis(doc);
    if (!found) {
      return note("throughput", "No throughput chart: the scenario sweeps no numeric key such as "
                                "load.concurrency or pool.size, so there is nothing to draw it against.");
    }
    axis = *found;
    all = measured_series_along(doc, axis);
  }
  const std::size_t total = all.size();
  if (all.size() > max_series) all.resize(max_series);
  const throughput_extent extent = measured_extent(all);
  if (extent.max_x <= 0) return note("throughput", "No throughput chart: no case has a throughput to draw.");
  const double x_hi = report_svg::nice_ceiling(extent.max_x * 1.05);
  const double max_y = highest_fitted(all, extent.min_x, x_hi, extent.max_y);

  report_svg::canvas c("throughput", fmt::format("Throughput against {}", axis_title(axis)), chart_width);
  const plot_area area{72, 14, chart_width - 72 - 20, 290};
  const throughput_frame frame{scale::linear(0, x_hi, area.left, area.right()),
                               scale::linear(0, report_svg::nice_ceiling(max_y * 1.05), area.bottom(), area.top),
                               extent.min_x, x_hi};
  report_svg::x_axis(c, area, frame.x, axis_title(axis));
  report_svg::y_axis(c, area, frame.y, "throughput (requests/s)");
  std::vector<legend_entry> entries = draw_throughput_series(c, all, frame, axis);
  const bool fitted = std::any_of(all.begin(), all.end(), [](const auto& s) { return s.fit.has_value(); });
  if (fitted) entries.push_back({"fitted USL curve", "#555", legend_entry::mark::dashed});
  const double bottom = report_svg::legend(c, area.left, area.bottom() + 46, area.width, entries);
  return figure("throughput", c.finish(bottom),
                fmt::format("Throughput against {}: dots are measured (the mean over repetitions){}.{}",
                            axis, fitted ? ", dashed lines the fitted Universal Scalability Law curves"
                                         : "; no USL fit is recorded in these results, dotted lines join the points",
                            capped(all.size(), total, "groups")));
}

// ---- Latency ----

namespace {

struct percentile {
  const char* name;
  double report_model::latency::*field;
  legend_entry::mark mark;
  const char* dash;
};
constexpr percentile percentiles[] = {{"p50", &report_model::latency::p50, legend_entry::mark::dotted, "1.5 2.5"},
                                      {"p90", &report_model::latency::p90, legend_entry::mark::dashed, "5 3"},
                                      {"p99", &report_model::latency::p99, legend_entry::mark::line, ""}};

struct latency_extent {
  double lo = std::numeric_limits<double>::infinity();  // the smallest latency above zero
  double hi = 0;
  double max_x = 0;
};

latency_extent latency_extent_of(const std::vector<report_model::series>& all) {
  latency_extent e;
  for (const auto& s : all) {
    for (const auto& p : s.points) {
      e.max_x = std::max(e.max_x, p.x);
      for (const auto& pc : percentiles) {
        const double ms = mean_latency(p, pc.field) / 1000.0;
        if (ms > 0) e.lo = std::min(e.lo, ms);
        e.hi = std::max(e.hi, ms);
      }
    }
  }
  return e;
}

// The plot's scales, the swept key along x, and the lowest latency y can show (a log scale
// has no zero, so smaller values sit on its floor).
struct latency_frame {
  scale x, y;
  std::string axis;
  double floor_ms;
};

void draw_latency_series(report_svg::canvas& c, const report_model::series& s, const std::string& colour,
                         const std::string& label, const latency_frame& f) {
  for (const auto& pc : percentiles) {
    std::vector<std::pair<double, double>> points;
    for (const auto& p : s.points) {
      const double ms = std::max(mean_latency(p, pc.field) / 1000.0, f.floor_ms);
      points.emplace_back(f.x(p.x), f.y(ms));
    }
    c.path(points, colour, 1.5, pc.dash);
    for (const auto& p : s.points) {
      const double ms = mean_latency(p, pc.field) / 1000.0;
      c.circle(f.x(p.x), f.y(std::max(ms, f.floor_ms)), 2.5, colour,
               fmt::format("{}={}: {} {} ms ({})", f.axis, report_text::significant(p.x), pc.name,
                           report_text::significant(ms), label));
    }
  }
}

}  // namespace

std::string latency(const report_model::document& doc) {
  const auto axis = report_model::scaling_axis(doc);
  if (!axis) {
    return note("latency", "No latency chart: the scenario sweeps no numeric key such as load.concurrency "
                           "or pool.size; the cases table lists each case's percentiles.");
  }
  auto all = report_model::series_along(doc, *axis);
  const std::size_t total = all.size();
  if (all.size() > max_latency_series) all.resize(max_latency_series);
  const latency_extent extent = latency_extent_of(all);
  if (extent.hi <= 0) return note("latency", "No latency chart: no case recorded a latency.");
  // A log scale when the tail is far above the median, so both stay readable.
  const bool log = extent.hi / extent.lo > 20;
  report_svg::canvas c("latency", fmt::format("Latency percentiles against {}", axis_title(*axis)), chart_width);
  const plot_area area{72, 14, chart_width - 72 - 20, 290};
  const auto x = scale::linear(0, report_svg::nice_ceiling(extent.max_x * 1.05), area.left, area.right());
  const auto y = log ? scale::log10(std::pow(10.0, std::floor(std::log10(extent.lo))),
                                    report_svg::nice_ceiling(extent.hi), area.bottom(), area.top)
                     : scale::linear(0, report_svg::nice_ceiling(extent.hi * 1.05), area.bottom(), area.top);
  report_svg::x_axis(c, area, x, axis_title(*axis));
  report_svg::y_axis(c, area, y, log ? "latency (ms, log scale)" : "latency (ms)");
  const latency_frame frame{x, y, *axis, log ? y.lo() : 0.0};
  std::vector<legend_entry> entries;
  for (std::size_t i = 0; i < all.size(); ++i) {
    const std::string colour = report_svg::series_colour(i);
    const std::string label = report_model::group_label(all[i].group, doc.swept_keys);
    draw_latency_series(c, all[i], colour, label, frame);
    entries.push_back({label, colour, legend_entry::mark::swatch});
  }
  for (const auto& pc : percentiles) entries.push_back({pc.name, "#555", pc.mark});
  const double bottom = report_svg::legend(c, area.left, area.bottom() + 46, area.width, entries);
  return figure("latency", c.finish(bottom),
                fmt::format("Latency percentiles against {} (the mean over repetitions), one colour per "
                            "combination of the other swept keys.{}",
                            *axis, capped(all.size(), total, "groups")));
}

// ---- Timeout heatmap ----

namespace {

// The distinct values of a swept key over the cases, numbers ascending, else in case order.
std::vector<json> values_of(const report_model::document& doc, const std::string& key) {
  std::vector<json> values;
  for (const auto& c : doc.cases) {
    const json* v = find(c.params, key);
    if (v && std::find(values.begin(), values.end(), *v) == values.end()) values.push_back(*v);
  }
  if (std::all_of(values.begin(), values.end(), [](const json& v) { return v.is_number(); })) {
    std::sort(values.begin(), values.end(), [](const json& a, const json& b) { return a.get<double>() < b.get<double>(); });
  }
  return values;
}

}  // namespace

namespace {

// The two swept keys the heatmap draws: the scaling axis across when it is swept, and the
// start-up or environment key most likely to explain timeouts up.
std::pair<std::string, std::string> heatmap_axes(const report_model::document& doc, const std::vector<std::string>& keys) {
  const auto scaling = report_model::scaling_axis(doc);
  std::string x_key = scaling && std::find(keys.begin(), keys.end(), *scaling) != keys.end() ? *scaling : keys[0];
  for (const char* preferred : {"worker.startup_ms", "worker.init_ms", "environment.cpu_hogs",
                                "pool.max_concurrent_starts", "pool.size"}) {
    if (preferred != x_key && std::find(keys.begin(), keys.end(), preferred) != keys.end()) {
      return {x_key, preferred};
    }
  }
  return {x_key, keys[0] == x_key ? keys[1] : keys[0]};
}

struct heat_cell {
  std::uint64_t requests = 0, timeouts = 0;
  report_model::counts verdicts;
};

// The cases summed into cells, rows in `ys` order, columns in `xs` order.
struct heat_grid {
  std::string x_key, y_key;
  std::vector<json> xs, ys;
  std::vector<std::vector<heat_cell>> cells;
  double max_rate = 0;
};

heat_grid grid_of(const report_model::document& doc, std::string x_key, std::string y_key) {
  heat_grid g{std::move(x_key), std::move(y_key), {}, {}, {}, 0};
  g.xs = values_of(doc, g.x_key);
  g.ys = values_of(doc, g.y_key);
  std::reverse(g.ys.begin(), g.ys.end());  // the largest value on top
  g.cells.assign(g.ys.size(), std::vector<heat_cell>(g.xs.size()));
  for (const auto& c : doc.cases) {
    const json* xv = find(c.params, g.x_key);
    const json* yv = find(c.params, g.y_key);
    if (c.error || !xv || !yv) continue;
    const auto xi = static_cast<std::size_t>(std::find(g.xs.begin(), g.xs.end(), *xv) - g.xs.begin());
    const auto yi = static_cast<std::size_t>(std::find(g.ys.begin(), g.ys.end(), *yv) - g.ys.begin());
    heat_cell& into = g.cells[yi][xi];
    into.requests += c.requests;
    into.timeouts += c.timeouts;
    for (const auto& [v, n] : c.verdicts) into.verdicts[v] += n;
  }
  for (const auto& row : g.cells) {
    for (const auto& k : row) {
      if (k.requests) g.max_rate = std::max(g.max_rate, static_cast<double>(k.timeouts) / static_cast<double>(k.requests));
    }
  }
  return g;
}

// What the legend shows: the kinds of cell that were drawn.
struct heat_marks {
  std::set<std::string> verdicts;
  bool unexplained = false, clean = false, empty = false;
};

struct cell_box {
  double left, top, w, h;
};

void draw_heat_cell(report_svg::canvas& c, const heat_cell& k, const cell_box& b, const std::string& where,
                    double max_rate, heat_marks& marks) {
  if (k.requests == 0) {
    marks.empty = true;
    c.rect(b.left + 1, b.top + 1, b.w - 2, b.h - 2, "#e5e7eb", where + ": no requests");
    c.text(b.left + b.w / 2, b.top + b.h / 2 + 4, "no data", "middle", 10, 0, "#6b7280");
    return;
  }
  const double rate = static_cast<double>(k.timeouts) / static_cast<double>(k.requests);
  const std::string top_verdict = report_model::top_of(k.verdicts);
  std::string tooltip = fmt::format("{}: {} timeouts in {} requests ({})", where, k.timeouts, k.requests,
                                    report_text::percent(rate));
  if (k.timeouts == 0) {
    marks.clean = true;
    c.rect(b.left + 1, b.top + 1, b.w - 2, b.h - 2, "#f3f4f6", tooltip);
    c.text(b.left + b.w / 2, b.top + b.h / 2 + 4, "0%", "middle", 10, 0, "#6b7280");
    return;
  }
  std::string colour;
  if (top_verdict.empty()) {
    marks.unexplained = true;
    colour = report_model::family_colour("");
  } else {
    marks.verdicts.insert(top_verdict);
    colour = report_model::verdict_colour(top_verdict);
    tooltip += fmt::format("; dominant verdict {}", top_verdict);
  }
  const double opacity = 0.25 + 0.75 * std::sqrt(rate / max_rate);
  c.rect(b.left + 1, b.top + 1, b.w - 2, b.h - 2, colour, tooltip, opacity);
  c.text(b.left + b.w / 2, b.top + b.h / 2 + 4, report_text::percent(rate), "middle", 10, 0,
         opacity > 0.6 ? "#ffffff" : "#111111");
}

double draw_heat_legend(report_svg::canvas& c, const plot_area& area, const heat_marks& marks) {
  std::vector<legend_entry> entries;
  for (const auto& v : marks.verdicts) entries.push_back({v, report_model::verdict_colour(v), legend_entry::mark::swatch});
  if (marks.unexplained) entries.push_back({"timeouts without a verdict", report_model::family_colour(""), legend_entry::mark::swatch});
  if (marks.clean) entries.push_back({"no timeouts", "#f3f4f6", legend_entry::mark::swatch});
  if (marks.empty) entries.push_back({"no requests", "#e5e7eb", legend_entry::mark::swatch});
  return report_svg::legend(c, area.left, area.bottom() + 46, area.width, entries, "dominant verdict:");
}

std::string heatmap_caption(const report_model::document& doc, const heat_grid& g) {
  std::vector<std::string> others;
  for (const auto& key : doc.swept_keys) {
    if (key != g.x_key && key != g.y_key) others.push_back(key);
  }
  const bool repeated = std::any_of(doc.cases.begin(), doc.cases.end(), [](const auto& k) { return k.repetition > 0; });
  if (repeated) others.push_back("repetitions");
  return fmt::format("Timeout rate (checkout and request timeouts over requests) for each {} and {}{}. "
                     "The colour is the cell's dominant verdict, its depth the rate relative to the "
                     "highest cell ({}).",
                     g.x_key, g.y_key,
                     others.empty() ? "" : fmt::format(", summed over {}", fmt::join(others, ", ")),
                     report_text::percent(g.max_rate));
}

}  // namespace

std::string timeout_heatmap(const report_model::document& doc) {
  std::vector<std::string> keys;
  for (const auto& key : doc.swept_keys) {
    if (values_of(doc, key).size() >= 2) keys.push_back(key);
  }
  if (keys.size() < 2) {
    return note("timeouts", keys.empty()
                                ? "No timeout heatmap: the scenario sweeps no key, so there is no grid to draw."
                                : fmt::format("No timeout heatmap: only one key ({}) is swept; the heatmap needs two. "
                                              "The cases table shows the timeout rate per value.",
                                              keys.front()));
  }
  auto [x_key, y_key] = heatmap_axes(doc, keys);
  const heat_grid g = grid_of(doc, std::move(x_key), std::move(y_key));

  report_svg::canvas c("timeouts", fmt::format("Timeout rate over {} and {}", g.x_key, g.y_key), chart_width);
  const double cell_h = std::clamp(300.0 / static_cast<double>(g.ys.size()), 18.0, 44.0);
  const plot_area area{150, 30, chart_width - 150 - 20, cell_h * static_cast<double>(g.ys.size())};
  const double cell_w = area.width / static_cast<double>(g.xs.size());
  heat_marks marks;
  for (std::size_t yi = 0; yi < g.ys.size(); ++yi) {
    for (std::size_t xi = 0; xi < g.xs.size(); ++xi) {
      const cell_box box{area.left + cell_w * static_cast<double>(xi), area.top + cell_h * static_cast<double>(yi),
                         cell_w, cell_h};
      const std::string where = fmt::format("{}={}, {}={}", g.x_key, report_text::plain(g.xs[xi]), g.y_key,
                                            report_text::plain(g.ys[yi]));
      draw_heat_cell(c, g.cells[yi][xi], box, where, g.max_rate, marks);
    }
  }
  std::vector<std::string> x_labels, y_labels;
  for (const auto& v : g.xs) x_labels.push_back(report_text::plain(v));
  for (const auto& v : g.ys) y_labels.push_back(report_text::plain(v));
  report_svg::x_categories(c, area, x_labels, axis_title(g.x_key));
  report_svg::y_categories(c, area, y_labels, axis_title(g.y_key));
  const double bottom = draw_heat_legend(c, area, marks);
  return figure("timeouts", c.finish(bottom), heatmap_caption(doc, g));
}

// ---- Verdict counts ----

std::string verdicts(const report_model::document& doc) {
  struct bar {
    std::string label;
    std::uint64_t count;
    std::string colour;
    std::string family;
  };
  const auto rank = [](std::string_view family) {
    const auto it = std::find_if(verdict_families.begin(), verdict_families.end(),
                                 [&](const auto& f) { return f.name == family; });
    return static_cast<std::size_t>(it - verdict_families.begin());
  };
  std::vector<bar> bars;
  for (const auto& [verdict, n] : doc.verdicts) {
    if (n == 0) continue;
    const bool sweep_level = std::any_of(doc.sweep_verdicts.begin(), doc.sweep_verdicts.end(),
                                         [&](const auto& v) { return v.verdict == verdict; });
    bars.push_back({sweep_level ? verdict + " (sweep)" : verdict, n, report_model::verdict_colour(verdict),
                    std::string(report_model::family_of(verdict))});
  }
  std::stable_sort(bars.begin(), bars.end(), [&](const bar& a, const bar& b) {
    return rank(a.family) != rank(b.family) ? rank(a.family) < rank(b.family) : a.count > b.count;
  });
  if (doc.unexplained > 0) bars.push_back({"no verdict", doc.unexplained, report_model::family_colour(""), ""});
  if (bars.empty()) {
    return note("verdicts", doc.failed == 0 ? "No verdict chart: no request failed or timed out."
                                            : "No verdict chart: the results carry no verdicts.");
  }
  std::uint64_t most = 0;
  for (const auto& b : bars) most = std::max(most, b.count);
  constexpr double bar_h = 20, gap = 6;
  report_svg::canvas c("verdicts", "Verdict counts", chart_width);
  const plot_area area{250, 10, chart_width - 250 - 50, (bar_h + gap) * static_cast<double>(bars.size())};
  // At least 0 to 5, so that small counts get whole-number ticks.
  const auto x = scale::linear(0, report_svg::nice_ceiling(static_cast<double>(std::max<std::uint64_t>(most, 5))),
                               area.left, area.right());
  report_svg::x_axis(c, area, x, doc.sweep_verdicts.empty() ? "failed requests (count)"
                                                             : "failed requests, or sweep findings (count)");
  std::set<std::string> families;
  for (std::size_t i = 0; i < bars.size(); ++i) {
    const auto& b = bars[i];
    const double top = area.top + (bar_h + gap) * static_cast<double>(i) + gap / 2;
    c.rect(area.left, top, x(static_cast<double>(b.count)) - area.left, bar_h, b.colour,
           fmt::format("{}: {}", b.label, b.count));
    c.text(area.left - 8, top + 14, b.label, "end", 11);
    c.text(x(static_cast<double>(b.count)) + 4, top + 14, fmt::format("{}", b.count), "start", 11);
    families.insert(b.family);
  }
  std::vector<legend_entry> entries;
  for (const auto& f : verdict_families) {
    const std::string name(f.name);
    if (families.count(name)) entries.push_back({name, std::string(f.colour), legend_entry::mark::swatch});
  }
  if (families.count("")) entries.push_back({"no verdict", report_model::family_colour(""), legend_entry::mark::swatch});
  const double bottom = report_svg::legend(c, area.left, area.bottom() + 44, area.width, entries, "family:");
  return figure("verdicts", c.finish(bottom),
                "Failed and timed-out requests by verdict over the run, grouped by family (one colour each, "
                "a shade per verdict). Sweep verdicts count the sweep analyses that found them.");
}

const report_model::case_row* timeline_case(const report_model::document& doc, std::string_view requested) {
  if (!requested.empty()) {
    const auto it = std::find_if(doc.cases.begin(), doc.cases.end(), [&](const auto& c) { return c.id == requested; });
    return it == doc.cases.end() ? nullptr : &*it;
  }
  const report_model::case_row* best = nullptr;
  for (const auto& c : doc.cases) {
    if (!best || c.timeouts > best->timeouts) best = &c;
  }
  return best;
}

}  // namespace procpool::harness::report_charts
