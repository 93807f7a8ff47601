// report.md: the report's sections (report_sections.hpp) as GitHub-flavoured Markdown, for a
// pull request comment or a CI job summary.
#include <algorithm>

#include <fmt/format.h>

#include "report_model.hpp"
#include "report_sections.hpp"
#include "report_text.hpp"
#include "reports.hpp"

namespace procpool::harness {
namespace {

using namespace report_sections;

std::string markdown(const line& l) {
  std::string out;
  for (const auto& s : l) {
    switch (s.kind) {
      case span::style::plain: out += report_text::markdown_text(s.text); break;
      case span::style::code: out += report_text::markdown_code(s.text); break;
      case span::style::strong: out += "**" + report_text::markdown_text(s.text) + "**"; break;
    }
  }
  return out;
}

void render(std::string& out, const block& b) {
  switch (b.type) {
    case block::kind::paragraph:
      out += markdown(b.lines.front()) + "\n\n";
      break;
    case block::kind::bullets:
      for (const auto& item : b.lines) out += "- " + markdown(item) + "\n";
      out += "\n";
      break;
    case block::kind::table: {
      const auto& t = b.table;
      out += "|";
      for (const auto& h : t.header) out += " " + report_text::markdown_text(h) + " |";
      out += "\n|";
      for (std::size_t i = 0; i < t.header.size(); ++i) out += i < t.numeric.size() && t.numeric[i] ? " ---: |" : " --- |";
      out += "\n";
      for (const auto& row : t.rows) {
        out += "|";
        for (const auto& cell : row) out += " " + markdown(cell) + " |";
        out += "\n";
      }
      out += "\n";
      break;
    }
    case block::kind::code: {
      // A fence longer than any backtick run inside, so a command cannot close it.
      std::size_t longest = 0, run = 0;
      for (const char ch : b.code) {
        run = ch == '`' ? run + 1 : 0;
        longest = std::max(longest, run);
      }
      const std::string fence(std::max<std::size_t>(3, longest + 1), '`');
      out += fence + "sh\n" + report_text::valid_utf8(b.code) + "\n" + fence + "\n\n";
      break;
    }
  }
}

}  // namespace

std::string render_markdown(const nlohmann::json& results) {
  const auto doc = report_model::read_document(results);
  std::string out = fmt::format("# procpool report: {}\n\n", report_text::markdown_text(doc.name));
  if (!doc.description.empty()) out += report_text::markdown_text(doc.description) + "\n\n";
  for (const auto& s : sections_of(results, doc)) {
    out += "## " + report_text::markdown_text(s.title) + "\n\n";
    for (const auto& b : s.blocks) render(out, b);
  }
  out += "The charts (throughput with its USL fit, latency, timeouts by swept value, worker "
         "lifecycles, verdicts) are in report.html.\n";
  return out;
}

}  // namespace procpool::harness
