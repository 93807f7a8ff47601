// Text helpers shared by the report writers: escaping for XML/HTML, CSV (RFC 4180) and
// Markdown, and the short number formats the reports print.
//
//   out += "<td>" + xml_escape(case_id) + "</td>";
//   row.push_back(csv_field(case_id));
//   md += "| " + markdown_code(case_id) + " |";
//
// Case ids, params and messages can hold anything a scenario or a worker put there (quotes,
// commas, newlines, markup, non-ASCII, even bytes that are not UTF-8): every writer passes
// such text through these functions, never raw.
#pragma once

#include <string>
#include <string_view>

#include <nlohmann/json.hpp>

namespace procpool::harness::report_text {

// Replaces bytes that are not valid UTF-8 with U+FFFD, so a document stays well-formed.
std::string valid_utf8(std::string_view text);

// Escapes & < > " ' for element content and attribute values alike. Control characters XML 1.0
// forbids become U+FFFD; tab, newline and carriage return become character references, so an
// attribute keeps them instead of normalising them to spaces.
std::string xml_escape(std::string_view text);

// One CSV field (RFC 4180): quoted when it holds a comma, quote, CR or LF, with quotes doubled.
std::string csv_field(std::string_view text);

// Prose inside Markdown (a paragraph or a table cell): Markdown and HTML punctuation escaped
// and line breaks turned into spaces, so a table row stays one row.
std::string markdown_text(std::string_view text);

// An inline code span for ids and keys: fenced with enough backticks, `|` escaped for tables.
std::string markdown_code(std::string_view text);

// A JSON scalar as people write it: strings bare, numbers and booleans as in JSON.
std::string plain(const nlohmann::json& value);

// Three significant digits: 0.0123, 1.23, 123, 12300.
std::string significant(double value);

// Microseconds as milliseconds with three significant digits: "1.04".
std::string ms_from_us(double us);

// A fraction as a percentage: "0%", "0.25%", "12.5%".
std::string percent(double fraction);

}  // namespace procpool::harness::report_text
