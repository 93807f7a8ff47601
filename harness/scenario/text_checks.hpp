// Checks on scenario text before it reaches the TOML parser, and before it can reach a JSON
// dump: a scenario file and a --set value are UTF-8 text without NUL bytes.
//
// The TOML parser (toml++ 3.3) is not safe on every input: a bare key holding a non-ASCII
// character reaches undefined behaviour inside it, and a NUL byte or a table header such as
// "[#a]" trips its internal assertions (which, built without assertions, are assumptions: also
// undefined behaviour). Text that fails check_toml_text() is refused with a syntax error
// instead, so the parser only ever sees UTF-8 without NUL bytes, with ASCII outside strings and
// comments, and with table headers that start with a key, as valid TOML has anyway. And
// nlohmann::json's dump() throws on invalid UTF-8, so no text that fails
// invalid_utf8_offset() may be stored in the scenario.
//
//   if (auto problem = check_toml_text(text)) return syntax_error(problem->line, problem->message);
#pragma once

#include <cstddef>
#include <optional>
#include <string>
#include <string_view>

namespace procpool::harness {

// The offset of the first byte that is not part of a well-formed UTF-8 sequence (overlong
// forms, UTF-16 surrogates and code points above U+10FFFF are not), or nullopt when all are.
std::optional<std::size_t> invalid_utf8_offset(std::string_view text) noexcept;

// What makes `text` unfit to be a string value: a NUL byte or invalid UTF-8, with the
// offending byte and its offset ("is not valid UTF-8 (byte 0xe9 at offset 3)"), or nullopt.
std::optional<std::string> text_value_problem(std::string_view text);

// `text` with the bytes of invalid UTF-8 and the ASCII control characters written as \xNN:
// safe to quote in an error message and to dump as JSON.
std::string escape_text(std::string_view text);

struct toml_text_problem {
  int line = 0;  // 1-based
  std::string message;
};

// Why `text` must not be handed to the TOML parser, at the first line at fault: a NUL byte,
// invalid UTF-8, a non-ASCII character outside strings and comments (a bare key allows only
// A-Z a-z 0-9 _ -), or a table header whose key starts with neither such a character nor a
// quote; nullopt when it may be parsed.
std::optional<toml_text_problem> check_toml_text(std::string_view text);

}  // namespace procpool::harness
