// report.html: one self-contained page (inline CSS and SVG; no scripts, fonts, images or links
// to fetch) with the same sections as report.md and the charts after the assertions. It opens
// offline and reads the same with JavaScript off, since there is none.
#include <fmt/format.h>

#include "report_charts.hpp"
#include "report_model.hpp"
#include "report_sections.hpp"
#include "report_text.hpp"
#include "reports.hpp"

namespace procpool::harness {
namespace {

using namespace report_sections;
using report_text::xml_escape;

constexpr std::string_view stylesheet = R"css(
body{font-family:system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;margin:0;color:#1f2937;background:#fff;line-height:1.45}
main{max-width:1040px;margin:0 auto;padding:1.25rem 1.5rem 3rem}
h1{font-size:1.6rem;margin:.5rem 0}
h2{font-size:1.25rem;border-bottom:1px solid #e5e7eb;padding-bottom:.2rem;margin-top:2rem}
h3{font-size:1.05rem;margin:1.5rem 0 .4rem}
nav{font-size:.9rem;color:#4b5563}
nav a{color:#1d4ed8;margin-right:.8rem}
table{border-collapse:collapse;font-size:.85rem;margin:.5rem 0 1rem;display:block;overflow-x:auto;max-width:100%}
th,td{border:1px solid #e5e7eb;padding:.25rem .5rem;text-align:left;vertical-align:top}
th{background:#f9fafb;font-weight:600}
.num{text-align:right;font-variant-numeric:tabular-nums;white-space:nowrap}
code{font-family:ui-monospace,SFMono-Regular,Menlo,monospace;font-size:.88em;background:#f3f4f6;padding:0 .25em;border-radius:3px;overflow-wrap:anywhere}
pre{background:#f3f4f6;padding:.75rem 1rem;overflow-x:auto;border-radius:4px}
pre code{background:none;padding:0}
.swatch{display:inline-block;width:.8em;height:.8em;margin-right:.3em;vertical-align:-.05em;border-radius:2px}
.conclusion{font-size:1.05rem;background:#eff6ff;border-left:4px solid #2563eb;padding:.75rem 1rem;margin:.5rem 0 1rem}
.failed{color:#b91c1c}
.note{color:#4b5563;font-style:italic;background:#f9fafb;border:1px dashed #d1d5db;padding:.5rem .75rem}
figure{margin:1.25rem 0 2rem}
figcaption{font-size:.85rem;color:#4b5563;max-width:760px;margin-top:.3rem}
svg.chart{max-width:100%;height:auto;font-family:inherit;display:block}
)css";

std::string html(const line& l) {
  std::string out;
  for (const auto& s : l) {
    if (!s.swatch.empty()) {
      out += fmt::format("<span class=\"swatch\" style=\"background:{}\"></span>", xml_escape(s.swatch));
    }
    switch (s.kind) {
      case span::style::plain: out += xml_escape(s.text); break;
      case span::style::code: out += "<code>" + xml_escape(s.text) + "</code>"; break;
      case span::style::strong:
        out += (s.text == "FAILED" ? "<strong class=\"failed\">" : "<strong>") + xml_escape(s.text) + "</strong>";
        break;
    }
  }
  return out;
}

void render(std::string& out, const block& b, bool lead) {
  switch (b.type) {
    case block::kind::paragraph:
      out += (lead ? "<p class=\"conclusion\">" : "<p>") + html(b.lines.front()) + "</p>\n";
      break;
    case block::kind::bullets:
      out += "<ul>\n";
      for (const auto& item : b.lines) out += "<li>" + html(item) + "</li>\n";
      out += "</ul>\n";
      break;
    case block::kind::table: {
      const auto& t = b.table;
      const auto numeric = [&](std::size_t i) { return i < t.numeric.size() && t.numeric[i]; };
      out += "<table>\n<thead><tr>";
      for (std::size_t i = 0; i < t.header.size(); ++i) {
        out += fmt::format("<th{}>{}</th>", numeric(i) ? " class=\"num\"" : "", xml_escape(t.header[i]));
      }
      out += "</tr></thead>\n<tbody>\n";
      for (const auto& row : t.rows) {
        out += "<tr>";
        for (std::size_t i = 0; i < row.size(); ++i) {
          out += fmt::format("<td{}>{}</td>", numeric(i) ? " class=\"num\"" : "", html(row[i]));
        }
        out += "</tr>\n";
      }
      out += "</tbody>\n</table>\n";
      break;
    }
    case block::kind::code:
      out += "<pre><code>" + xml_escape(b.code) + "</code></pre>\n";
      break;
  }
}

std::string charts(const nlohmann::json& results, const report_model::document& doc, const report_options& options) {
  std::string out = "<h3>Throughput</h3>\n";
  out += report_charts::throughput(results, doc);
  out += "<h3>Latency</h3>\n";
  out += report_charts::latency(doc);
  out += "<h3>Timeouts by swept value</h3>\n";
  out += report_charts::timeout_heatmap(doc);
  out += "<h3>Worker lifecycle</h3>\n";
  if (const auto* c = report_charts::timeline_case(doc, options.timeline_case)) {
    std::string why;
    if (!options.timeline_case.empty()) {
      why = "chosen with --timeline-case";
    } else if (c->timeouts > 0) {
      why = fmt::format("the case with the most timeouts, {}", c->timeouts);
    } else {
      why = "the first case; no case timed out";
    }
    out += report_charts::lifecycle(*c, why);
  } else if (!options.timeline_case.empty()) {
    out += report_charts::note("lifecycle", fmt::format("No worker lifecycle chart: no case {} in these results.",
                                                        options.timeline_case));
  } else {
    out += report_charts::note("lifecycle", "No worker lifecycle chart: the results hold no cases.");
  }
  out += "<h3>Verdicts</h3>\n";
  out += report_charts::verdicts(doc);
  return out;
}

}  // namespace

std::string render_html(const nlohmann::json& results, const report_options& options) {
  const auto doc = report_model::read_document(results);
  const auto sections = sections_of(results, doc);
  std::string out = "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n"
                    "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n";
  out += fmt::format("<title>procpool report: {}</title>\n<style>{}</style>\n</head>\n<body>\n<main>\n",
                     xml_escape(doc.name), stylesheet);
  out += fmt::format("<h1>procpool report: {}</h1>\n", xml_escape(doc.name));
  if (!doc.description.empty()) out += "<p>" + xml_escape(doc.description) + "</p>\n";
  out += "<nav>";
  for (const auto& s : sections) {
    out += fmt::format("<a href=\"#{}\">{}</a>", s.id, xml_escape(s.title));
    if (s.id == "assertions") out += "<a href=\"#charts\">Charts</a>";
  }
  out += "</nav>\n";
  for (const auto& s : sections) {
    out += fmt::format("<section id=\"{}\">\n<h2>{}</h2>\n", s.id, xml_escape(s.title));
    for (std::size_t i = 0; i < s.blocks.size(); ++i) render(out, s.blocks[i], s.id == "conclusion" && i == 0);
    out += "</section>\n";
    if (s.id == "assertions") {
      out += "<section id=\"charts\">\n<h2>Charts</h2>\n" + charts(results, doc, options) + "</section>\n";
    }
  }
  out += "</main>\n</body>\n</html>\n";
  return out;
}

}  // namespace procpool::harness
