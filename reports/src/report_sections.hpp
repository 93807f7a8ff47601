// The text of report.md and report.html as format-neutral blocks (paragraphs, lists, tables,
// code), built once from a results document so that both files say the same thing in the same
// order: conclusion, assertions, findings, sweep analyses, cases, environment, how to reproduce.
// The Markdown and HTML writers only choose the markup.
//
//   for (const auto& s : report_sections::sections_of(results, doc)) {
//     out += "## " + s.title + "\n";
//     for (const auto& b : s.blocks) render(b);
//   }
#pragma once

#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "report_model.hpp"

namespace procpool::harness::report_sections {

struct span {
  enum class style { plain, code, strong } kind = style::plain;
  std::string text;
  std::string swatch;  // a colour shown before the text in HTML (verdict colours)
};
using line = std::vector<span>;

span plain(std::string text);
span code(std::string text);
span strong(std::string text);

struct table {
  std::vector<std::string> header;
  std::vector<bool> numeric;  // per column: right-aligned
  std::vector<std::vector<line>> rows;
};

struct block {
  enum class kind { paragraph, bullets, table, code } type = kind::paragraph;
  std::vector<line> lines;  // paragraph: one line; bullets: one per item
  report_sections::table table;
  std::string code;  // shell text
};

block paragraph(line l);
block bullets(std::vector<line> items);
block table_block(report_sections::table t);
block code_block(std::string shell);

struct section {
  std::string id;  // HTML anchor
  std::string title;
  std::vector<block> blocks;
};

// Every section in order. The HTML writer puts its charts after the section named "assertions".
std::vector<section> sections_of(const nlohmann::json& results, const report_model::document& doc);

}  // namespace procpool::harness::report_sections
