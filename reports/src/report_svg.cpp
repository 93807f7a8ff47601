#include "report_svg.hpp"

#include <algorithm>
#include <array>
#include <cmath>

#include <fmt/format.h>

#include "report_text.hpp"

namespace procpool::harness::report_svg {
namespace {

using report_text::xml_escape;

constexpr double char_width = 0.6;  // of the font size: a fair average for sans-serif text
constexpr std::string_view grid_colour = "#e5e7eb";
constexpr std::string_view axis_colour = "#6b7280";

std::string tooltip_element(std::string_view tooltip) {
  return tooltip.empty() ? std::string{} : fmt::format("<title>{}</title>", xml_escape(tooltip));
}

std::string shortened(const std::string& label, std::size_t max_chars) {
  if (label.size() <= max_chars) return label;
  std::size_t cut = max_chars - 1;
  while (cut > 0 && (static_cast<unsigned char>(label[cut]) & 0xC0) == 0x80) --cut;  // keep UTF-8 whole
  return label.substr(0, cut) + "\xE2\x80\xA6";  // an ellipsis
}

}  // namespace

scale::scale(double lo, double hi, double from_px, double to_px, bool log)
    : lo_(lo), hi_(hi), from_(from_px), to_(to_px), log_(log) {}

scale scale::linear(double lo, double hi, double from_px, double to_px) {
  if (!(hi > lo)) hi = lo + 1;
  return {lo, hi, from_px, to_px, false};
}

scale scale::log10(double lo, double hi, double from_px, double to_px) {
  lo = std::max(lo, 1e-12);
  if (!(hi > lo)) hi = lo * 10;
  return {lo, hi, from_px, to_px, true};
}

double scale::operator()(double value) const {
  double f = 0;
  if (log_) {
    f = (std::log10(std::max(value, lo_ / 10)) - std::log10(lo_)) / (std::log10(hi_) - std::log10(lo_));
  } else {
    f = (value - lo_) / (hi_ - lo_);
  }
  return from_ + f * (to_ - from_);
}

std::vector<double> scale::ticks(std::size_t about) const {
  std::vector<double> out;
  if (log_) {
    const int first = static_cast<int>(std::floor(std::log10(lo_)));
    const int last = static_cast<int>(std::ceil(std::log10(hi_)));
    const bool fine = last - first <= 2;
    for (int e = first; e <= last; ++e) {
      for (const double m : {1.0, 2.0, 5.0}) {
        if (m != 1.0 && !fine) continue;
        const double v = m * std::pow(10.0, e);
        if (v >= lo_ * 0.999 && v <= hi_ * 1.001) out.push_back(v);
      }
    }
    return out;
  }
  const double raw = (hi_ - lo_) / static_cast<double>(std::max<std::size_t>(about, 1));
  const double magnitude = std::pow(10.0, std::floor(std::log10(raw)));
  const double residual = raw / magnitude;
  const double step = magnitude * (residual < 1.5 ? 1 : residual < 3 ? 2 : residual < 7 ? 5 : 10);
  for (double v = std::ceil(lo_ / step) * step; v <= hi_ + step * 1e-9; v += step) {
    out.push_back(std::fabs(v) < step * 1e-9 ? 0.0 : v);
  }
  return out;
}

double nice_ceiling(double value) {
  if (!(value > 0) || !std::isfinite(value)) return 1;
  const double magnitude = std::pow(10.0, std::floor(std::log10(value)));
  for (const double m : {1.0, 2.0, 2.5, 5.0, 10.0}) {
    if (m * magnitude >= value * (1 - 1e-12)) return m * magnitude;
  }
  return 10 * magnitude;
}

std::string series_colour(std::size_t i) {
  static constexpr std::array<std::string_view, 10> palette = {
      "#4e79a7", "#f28e2b", "#59a14f", "#e15759", "#76b7b2",
      "#edc948", "#b07aa1", "#ff9da7", "#9c755f", "#bab0ac"};
  return std::string(palette[i % palette.size()]);
}

std::string px(double value) {
  if (!std::isfinite(value)) value = 0;
  std::string s = fmt::format("{:.1f}", value);
  if (s.size() > 2 && s.compare(s.size() - 2, 2, ".0") == 0) s.resize(s.size() - 2);
  return s == "-0" ? "0" : s;
}

canvas::canvas(std::string chart, std::string title, double width)
    : chart_(std::move(chart)), title_(std::move(title)), width_(width) {}

void canvas::rect(double x, double y, double w, double h, std::string_view fill,
                  std::string_view tooltip, double opacity) {
  mark();
  const std::string op = opacity < 1 ? fmt::format(" fill-opacity=\"{:.2f}\"", opacity) : "";
  const std::string tip = tooltip_element(tooltip);
  body_ += fmt::format("<rect x=\"{}\" y=\"{}\" width=\"{}\" height=\"{}\" fill=\"{}\"{}{}", px(x), px(y),
                       px(std::max(w, 0.0)), px(std::max(h, 0.0)), fill, op,
                       tip.empty() ? "/>" : ">" + tip + "</rect>");
}

void canvas::line(double x1, double y1, double x2, double y2, std::string_view stroke, double width,
                  std::string_view dash) {
  mark();
  body_ += fmt::format("<line x1=\"{}\" y1=\"{}\" x2=\"{}\" y2=\"{}\" stroke=\"{}\" stroke-width=\"{}\"{}/>",
                       px(x1), px(y1), px(x2), px(y2), stroke, px(width),
                       dash.empty() ? "" : fmt::format(" stroke-dasharray=\"{}\"", dash));
}

void canvas::path(const std::vector<std::pair<double, double>>& points, std::string_view stroke,
                  double width, std::string_view dash) {
  if (points.empty()) return;
  mark();
  std::string d;
  for (std::size_t i = 0; i < points.size(); ++i) {
    d += fmt::format("{}{} {}", i ? " L" : "M", px(points[i].first), px(points[i].second));
  }
  body_ += fmt::format("<path d=\"{}\" fill=\"none\" stroke=\"{}\" stroke-width=\"{}\"{}/>", d, stroke, px(width),
                       dash.empty() ? "" : fmt::format(" stroke-dasharray=\"{}\"", dash));
}

void canvas::circle(double cx, double cy, double r, std::string_view fill, std::string_view tooltip) {
  mark();
  const std::string tip = tooltip_element(tooltip);
  body_ += fmt::format("<circle cx=\"{}\" cy=\"{}\" r=\"{}\" fill=\"{}\"{}", px(cx), px(cy), px(r), fill,
                       tip.empty() ? "/>" : ">" + tip + "</circle>");
}

void canvas::text(double x, double y, std::string_view content, std::string_view anchor, double size,
                  double rotate, std::string_view fill) {
  body_ += fmt::format("<text x=\"{}\" y=\"{}\" font-size=\"{}\" text-anchor=\"{}\" fill=\"{}\"{}>{}</text>", px(x),
                       px(y), px(size), anchor, fill,
                       rotate != 0 ? fmt::format(" transform=\"rotate({} {} {})\"", px(rotate), px(x), px(y)) : "",
                       xml_escape(content));
}

std::string canvas::finish(double height) const {
  return fmt::format(
      "<svg class=\"chart\" data-chart=\"{}\" data-marks=\"{}\" viewBox=\"0 0 {} {}\" width=\"{}\" "
      "height=\"{}\" role=\"img\" aria-label=\"{}\">{}</svg>",
      xml_escape(chart_), marks_, px(width_), px(height), px(width_), px(height), xml_escape(title_), body_);
}

void x_axis(canvas& c, const plot_area& area, const scale& x, std::string_view label) {
  c.decorating(true);
  for (const double t : x.ticks()) {
    const double at = x(t);
    c.line(at, area.top, at, area.bottom(), grid_colour);
    c.line(at, area.bottom(), at, area.bottom() + 4, axis_colour);
    c.text(at, area.bottom() + 16, report_text::significant(t), "middle", 11);
  }
  c.line(area.left, area.bottom(), area.right(), area.bottom(), axis_colour);
  c.text(area.left + area.width / 2, area.bottom() + 34, label, "middle", 12);
  c.decorating(false);
}

void y_axis(canvas& c, const plot_area& area, const scale& y, std::string_view label) {
  c.decorating(true);
  for (const double t : y.ticks()) {
    const double at = y(t);
    c.line(area.left, at, area.right(), at, grid_colour);
    c.line(area.left - 4, at, area.left, at, axis_colour);
    c.text(area.left - 7, at + 4, report_text::significant(t), "end", 11);
  }
  c.line(area.left, area.top, area.left, area.bottom(), axis_colour);
  c.text(area.left - 52, area.top + area.height / 2, label, "middle", 12, -90);
  c.decorating(false);
}

void x_categories(canvas& c, const plot_area& area, const std::vector<std::string>& labels,
                  std::string_view label) {
  c.decorating(true);
  const double band = area.width / static_cast<double>(std::max<std::size_t>(labels.size(), 1));
  const auto fits = static_cast<std::size_t>(std::max(3.0, band / (11 * char_width)));
  for (std::size_t i = 0; i < labels.size(); ++i) {
    c.text(area.left + band * (static_cast<double>(i) + 0.5), area.bottom() + 16, shortened(labels[i], fits),
           "middle", 11);
  }
  c.line(area.left, area.bottom(), area.right(), area.bottom(), axis_colour);
  c.text(area.left + area.width / 2, area.bottom() + 34, label, "middle", 12);
  c.decorating(false);
}

void y_categories(canvas& c, const plot_area& area, const std::vector<std::string>& labels,
                  std::string_view label) {
  c.decorating(true);
  const double band = area.height / static_cast<double>(std::max<std::size_t>(labels.size(), 1));
  const auto fits = static_cast<std::size_t>(std::max(3.0, (area.left - 30) / (11 * char_width)));
  for (std::size_t i = 0; i < labels.size(); ++i) {
    c.text(area.left - 7, area.top + band * (static_cast<double>(i) + 0.5) + 4, shortened(labels[i], fits), "end", 11);
  }
  c.line(area.left, area.top, area.left, area.bottom(), axis_colour);
  if (!label.empty()) c.text(4, area.top - 8, label, "start", 12);
  c.decorating(false);
}

double legend(canvas& c, double x, double y, double width, const std::vector<legend_entry>& entries,
              std::string_view title) {
  c.decorating(true);
  constexpr double row = 18, size = 11, marker = 14, gap = 16;
  double at_x = x;
  double at_y = y;
  if (!title.empty()) {
    c.text(x, at_y + 12, title, "start", size, 0, "#444");
    at_x += static_cast<double>(title.size()) * size * char_width + 8;
  }
  for (const auto& e : entries) {
    const std::string label =
        shortened(e.label, static_cast<std::size_t>(std::max(10.0, (width - marker - 4) / (size * char_width))));
    const double w = marker + 4 + static_cast<double>(label.size()) * size * char_width + gap;
    if (at_x + w > x + width && at_x > x) {
      at_x = x;
      at_y += row;
    }
    const double mid = at_y + 8;
    switch (e.kind) {
      case legend_entry::mark::swatch: c.rect(at_x, at_y + 2, marker, 12, e.colour); break;
      case legend_entry::mark::line: c.line(at_x, mid, at_x + marker, mid, e.colour, 2); break;
      case legend_entry::mark::dashed: c.line(at_x, mid, at_x + marker, mid, e.colour, 2, "4 3"); break;
      case legend_entry::mark::dotted: c.line(at_x, mid, at_x + marker, mid, e.colour, 2, "1.5 2.5"); break;
      case legend_entry::mark::dot: c.circle(at_x + marker / 2, mid, 4, e.colour); break;
    }
    c.text(at_x + marker + 4, at_y + 12, label, "start", size);
    at_x += w;
  }
  c.decorating(false);
  return at_y + row + 4;
}

}  // namespace procpool::harness::report_svg
