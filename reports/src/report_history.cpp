#include "report_history.hpp"

#include <algorithm>
#include <map>

#include <fmt/format.h>

#include "report_svg.hpp"
#include "report_text.hpp"

namespace procpool::harness {
namespace {

using report_svg::plot_area;
using report_svg::scale;
using report_text::markdown_text;
using report_text::xml_escape;

constexpr double chart_width = 760;

struct trend {
  std::string title = {};
  std::vector<std::pair<std::string, std::vector<std::pair<std::size_t, double>>>> lines = {};  // label -> (run, value)
  std::vector<const history_change*> changes = {};
};

// Vertical dashed lines halfway before the first run after each shift.
void draw_changes(report_svg::canvas& c, const plot_area& area, const scale& x, const trend& t,
                  const history_changes& h) {
  for (const auto* change : t.changes) {
    const double at = x(double(change->run) - 0.5);
    c.line(at, area.top, at, area.bottom(), change->regression ? "#d62728" : "#2ca02c", 1.5, "5,4");
    c.rect(at - 4, area.top, 8, area.height, "#000", fmt::format("change at run {}: {} -> {}, p = {:.4f}",
        h.runs[change->run].name(), report_text::significant(change->point.before_median),
        report_text::significant(change->point.after_median), change->point.p_value), 0.0);
  }
}

std::string draw_trend(const trend& t, const history_changes& h, std::size_t id) {
  report_svg::canvas c(fmt::format("trend-{}", id), t.title, chart_width);
  const plot_area area{72, 14, chart_width - 72 - 20, 220};
  double max_y = 0;
  for (const auto& [label, points] : t.lines) {
    for (const auto& [run, value] : points) max_y = std::max(max_y, value);
  }
  const auto x = scale::linear(-0.5, double(std::max<std::size_t>(h.runs.size(), 1)) - 0.5, area.left, area.right());
  const auto y = scale::linear(0, report_svg::nice_ceiling(max_y * 1.05), area.bottom(), area.top);
  c.decorating(true);
  report_svg::x_axis(c, area, x, "run (oldest first, from 0)");
  report_svg::y_axis(c, area, y, t.lines.size() == 1 ? t.title : "count");
  c.decorating(false);
  std::vector<report_svg::legend_entry> entries;
  for (std::size_t i = 0; i < t.lines.size(); ++i) {
    const auto& [label, points] = t.lines[i];
    const auto colour = report_svg::series_colour(i);
    std::vector<std::pair<double, double>> path;
    for (const auto& [run, value] : points) path.emplace_back(x(double(run)), y(value));
    if (path.size() > 1) c.path(path, colour);
    for (const auto& [run, value] : points) {
      c.circle(x(double(run)), y(value), 3, colour,
               fmt::format("{} {}: {}", h.runs[run].name(), label, report_text::significant(value)));
    }
    entries.push_back({label, colour, report_svg::legend_entry::mark::line});
  }
  draw_changes(c, area, x, t, h);
  c.decorating(true);
  const double bottom = t.lines.size() > 1 ? report_svg::legend(c, area.left, area.bottom() + 46, area.width, entries)
                                           : area.bottom() + 46;
  return c.finish(bottom);
}

// Verdict counts per run, summed over the case's repetitions: one line per verdict.
trend verdict_trend(const std::string& case_name, const history_changes& h, const std::vector<history_case>& cases) {
  std::map<std::int64_t, std::size_t> run_index;
  for (std::size_t i = 0; i < h.runs.size(); ++i) run_index[h.runs[i].id] = i;
  std::map<std::string, std::map<std::size_t, double>> counts;
  std::map<std::size_t, bool> present;
  for (const auto& c : cases) {
    if (c.case_name != case_name || !run_index.contains(c.run_id)) continue;
    present[run_index[c.run_id]] = true;
    for (const auto& [verdict, n] : c.verdicts) counts[verdict][run_index[c.run_id]] += double(n);
  }
  trend t{.title = "verdict counts"};
  for (const auto& [verdict, by_run] : counts) {
    std::vector<std::pair<std::size_t, double>> points;
    for (const auto& [run, yes] : present) points.emplace_back(run, by_run.contains(run) ? by_run.at(run) : 0.0);
    t.lines.emplace_back(verdict, std::move(points));
  }
  return t;
}

std::vector<std::pair<std::string, std::vector<trend>>> trends_by_case(const history_changes& h,
                                                                      const std::vector<history_case>& cases) {
  std::vector<std::pair<std::string, std::vector<trend>>> out;
  for (const auto& s : h.series) {
    if (out.empty() || out.back().first != s.case_name) out.emplace_back(s.case_name, std::vector<trend>{});
    trend t{.title = std::string(figure_name(s.figure))};
    std::vector<std::pair<std::size_t, double>> points;
    for (std::size_t i = 0; i < s.values.size(); ++i) points.emplace_back(s.runs[i], s.values[i]);
    t.lines.emplace_back(std::string(figure_name(s.figure)), std::move(points));
    for (const auto& c : h.changes) {
      if (c.case_name == s.case_name && c.figure == s.figure) t.changes.push_back(&c);
    }
    out.back().second.push_back(std::move(t));
  }
  for (auto& [name, trends] : out) {
    auto verdicts = verdict_trend(name, h, cases);
    if (!verdicts.lines.empty()) trends.push_back(std::move(verdicts));
  }
  return out;
}

std::string change_row_html(const history_changes& h, const history_change& c) {
  return fmt::format("<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{:.4f}</td><td>{}</td></tr>\n",
                     xml_escape(c.case_name), xml_escape(figure_name(c.figure)), xml_escape(h.runs[c.run].name()),
                     report_text::significant(c.point.before_median), report_text::significant(c.point.after_median),
                     c.point.p_value,
                     c.failing() ? "<strong>regression, holds</strong>" : c.regression ? "regression" : "improvement");
}

std::string change_row_markdown(const history_changes& h, const history_change& c) {
  return fmt::format("| {} | {} | {} | {} | {} | {:.4f} | {} |\n", markdown_text(c.case_name),
                     markdown_text(figure_name(c.figure)), markdown_text(h.runs[c.run].name()),
                     report_text::significant(c.point.before_median), report_text::significant(c.point.after_median),
                     c.point.p_value, c.failing() ? "**regression, holds**" : c.regression ? "regression" : "improvement");
}

// Flaky cases first: those that flip most often between passing and failing.
void add_flip_table(history_report& out, std::vector<case_flips> flips) {
  std::stable_sort(flips.begin(), flips.end(), [](const auto& a, const auto& b) { return a.rate() > b.rate(); });
  out.html += "<h2>Flip rate</h2>\n<table>\n<tr><th>case</th><th>runs</th><th>failing</th><th>flips</th>"
              "<th>flip rate</th></tr>\n";
  out.markdown += "\n## Flip rate\n\nA run fails a case when any repetition of it timed out; the flip rate is the "
                  "share of consecutive runs that disagree.\n\n| case | runs | failing | flips | flip rate |\n"
                  "|---|---:|---:|---:|---:|\n";
  for (const auto& f : flips) {
    out.html += fmt::format("<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>\n",
                            xml_escape(f.case_name), f.runs, f.failing, f.flips, report_text::percent(f.rate()));
    out.markdown += fmt::format("| {} | {} | {} | {} | {} |\n", markdown_text(f.case_name), f.runs, f.failing,
                                f.flips, report_text::percent(f.rate()));
  }
  out.html += "</table>\n";
}

std::string summary(const history_changes& h) {
  return fmt::format("{} runs, {} series, {} change points (alpha {}, minimum change {}%), {} regressions holding "
                     "in the newest run.",
                     h.runs.size(), h.series.size(), h.changes.size(), h.options.alpha,
                     h.options.min_relative_change * 100, h.failing());
}

}  // namespace

history_report render_history_report(const history_changes& h, const std::vector<history_case>& cases) {
  history_report out;
  out.html = "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n"
             "<title>procpool history</title>\n<style>body{font-family:sans-serif;max-width:800px;margin:auto}"
             "table{border-collapse:collapse}td,th{border:1px solid #ccc;padding:2px 6px}</style>\n</head>\n<body>\n"
             "<h1>procpool history</h1>\n";
  out.markdown = "# procpool history\n\n";
  out.html += fmt::format("<p>{}</p>\n", xml_escape(summary(h)));
  out.markdown += summary(h) + "\n\n";
  const std::string header = "case | figure | run | before | after | p-value | verdict";
  out.html += "<table>\n<tr><th>case</th><th>figure</th><th>run</th><th>before</th><th>after</th>"
              "<th>p-value</th><th>verdict</th></tr>\n";
  out.markdown += "| " + header + " |\n|---|---|---|---:|---:|---:|---|\n";
  for (const auto& c : h.changes) {
    out.html += change_row_html(h, c);
    out.markdown += change_row_markdown(h, c);
  }
  out.html += "</table>\n";
  add_flip_table(out, flip_rates(h.runs, cases));
  std::size_t id = 0;
  for (const auto& [name, trends] : trends_by_case(h, cases)) {
    out.html += fmt::format("<h2>{}</h2>\n", xml_escape(name));
    out.markdown += fmt::format("\n## {}\n\n", markdown_text(name));
    for (const auto& t : trends) {
      const std::string svg = draw_trend(t, h, id);
      const std::string file = fmt::format("charts/{}.svg", id++);
      out.html += fmt::format("<h3>{}</h3>\n{}\n", xml_escape(t.title), svg);
      out.markdown += fmt::format("![{}: {}]({})\n\n", markdown_text(name), markdown_text(t.title), file);
      // A standalone SVG file needs its namespace; inline in HTML it does not.
      out.charts.emplace_back(file, "<svg xmlns=\"http://www.w3.org/2000/svg\"" + svg.substr(4));
    }
  }
  out.html += "</body>\n</html>\n";
  return out;
}

}  // namespace procpool::harness
