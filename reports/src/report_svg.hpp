// Small inline-SVG drawing helpers for report.html's charts: scales, a canvas that collects
// marks, axes with ticks and labels, and a wrapping legend. The SVG is meant to sit inside an
// HTML page (no xmlns, no scripts, no external references); tooltips are <title> elements,
// which browsers show without JavaScript.
//
//   report_svg::canvas c("throughput", "Throughput against concurrency", 760);
//   const report_svg::plot_area area{70, 20, 660, 280};
//   const auto x = report_svg::scale::linear(0, 16, area.left, area.right());
//   const auto y = report_svg::scale::linear(0, 5000, area.bottom(), area.top);
//   report_svg::x_axis(c, area, x, "concurrency (callers)");
//   report_svg::y_axis(c, area, y, "throughput (requests/s)");
//   c.circle(x(4), y(3100), 3, "#4e79a7", "4 callers: 3100 req/s");
//   std::string svg = c.finish(340);
#pragma once

#include <cstddef>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace procpool::harness::report_svg {

// Data to pixels, linear or base-10 logarithmic.
class scale {
 public:
  static scale linear(double lo, double hi, double from_px, double to_px);
  // REQUIRES: 0 < lo < hi.
  static scale log10(double lo, double hi, double from_px, double to_px);

  double operator()(double value) const;
  // Round values inside the domain: 1-2-5 steps, or powers of ten (and their 2x, 5x when
  // the domain spans few decades) on a log scale.
  std::vector<double> ticks(std::size_t about = 6) const;
  double lo() const { return lo_; }
  double hi() const { return hi_; }

 private:
  scale(double lo, double hi, double from_px, double to_px, bool log);
  double lo_, hi_, from_, to_;
  bool log_;
};

// The smallest 1-2-5 number at or above `value` (for an axis maximum); 1 for values <= 0.
double nice_ceiling(double value);

struct plot_area {
  double left = 0, top = 0, width = 0, height = 0;
  double right() const { return left + width; }
  double bottom() const { return top + height; }
};

// A distinct colour for the i-th series (wraps after ten).
std::string series_colour(std::size_t i);

// Coordinates with one decimal: enough on screen, half the bytes of full precision.
std::string px(double value);

class canvas {
 public:
  // `chart` becomes data-chart="..." (how tests and stylesheets find it); `title` its
  // accessible name.
  canvas(std::string chart, std::string title, double width);

  void rect(double x, double y, double w, double h, std::string_view fill,
            std::string_view tooltip = {}, double opacity = 1);
  void line(double x1, double y1, double x2, double y2, std::string_view stroke, double width = 1,
            std::string_view dash = {});
  void path(const std::vector<std::pair<double, double>>& points, std::string_view stroke,
            double width = 1.5, std::string_view dash = {});
  void circle(double cx, double cy, double r, std::string_view fill, std::string_view tooltip = {});
  // `anchor`: start, middle or end. `rotate` degrees about (x, y).
  void text(double x, double y, std::string_view content, std::string_view anchor = "start",
            double size = 12, double rotate = 0, std::string_view fill = "#222");

  // Data marks drawn so far (rects, paths, circles), not counting axes and legends.
  std::size_t marks() const { return marks_; }
  // While true, drawing counts as decoration (axes, legends) rather than data.
  void decorating(bool on) { decorating_ = on; }

  // The complete <svg> element, `height` pixels tall, with data-marks="<marks()>".
  std::string finish(double height) const;

 private:
  void mark() { marks_ += decorating_ ? 0 : 1; }
  std::string chart_, title_;
  double width_;
  std::string body_;
  std::size_t marks_ = 0;
  bool decorating_ = false;
};

// Axes along the bottom and left of `area`, with ticks, grid lines and a label.
void x_axis(canvas& c, const plot_area& area, const scale& x, std::string_view label);
void y_axis(canvas& c, const plot_area& area, const scale& y, std::string_view label);
// Category axes: one label centred in each of `labels.size()` equal bands. The y axis's title
// sits above it, unrotated, since a category axis is often too short for a rotated one: leave
// 20 pixels above `area`.
void x_categories(canvas& c, const plot_area& area, const std::vector<std::string>& labels,
                  std::string_view label);
void y_categories(canvas& c, const plot_area& area, const std::vector<std::string>& labels,
                  std::string_view label);

struct legend_entry {
  enum class mark { swatch, line, dashed, dotted, dot };
  std::string label;
  std::string colour;
  mark kind = mark::swatch;
};

// Lays the entries out left to right from (x, y), wrapping within `width`, after an optional
// title. Returns the y just below the legend.
double legend(canvas& c, double x, double y, double width, const std::vector<legend_entry>& entries,
              std::string_view title = {});

}  // namespace procpool::harness::report_svg
