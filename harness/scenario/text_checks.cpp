#include "scenario/text_checks.hpp"

#include <utility>

#include <fmt/format.h>

namespace procpool::harness {
namespace {

bool is_continuation(unsigned char byte) { return (byte & 0xC0) == 0x80; }

// The length of the well-formed UTF-8 sequence starting at `at` (RFC 3629's table: no overlong
// forms, no surrogates, nothing above U+10FFFF), or 0 when none starts there.
std::size_t sequence_length(std::string_view text, std::size_t at) noexcept {
  const auto byte = [&](std::size_t i) { return static_cast<unsigned char>(text[at + i]); };
  const unsigned char lead = byte(0);
  if (lead < 0x80) return 1;
  std::size_t length = 0;
  unsigned char low = 0x80;  // the range the second byte must fall in
  unsigned char high = 0xBF;
  if (lead >= 0xC2 && lead <= 0xDF) {
    length = 2;
  } else if (lead >= 0xE0 && lead <= 0xEF) {
    length = 3;
    if (lead == 0xE0) low = 0xA0;   // overlong
    if (lead == 0xED) high = 0x9F;  // surrogates
  } else if (lead >= 0xF0 && lead <= 0xF4) {
    length = 4;
    if (lead == 0xF0) low = 0x90;   // overlong
    if (lead == 0xF4) high = 0x8F;  // above U+10FFFF
  } else {
    return 0;  // a continuation byte, an overlong lead (C0, C1) or F5..FF
  }
  if (text.size() - at < length) return 0;
  if (byte(1) < low || byte(1) > high) return 0;
  for (std::size_t i = 2; i < length; ++i) {
    if (!is_continuation(byte(i))) return 0;
  }
  return length;
}

// The first NUL byte or invalid UTF-8 in `text`: its offset and what is wrong there.
struct bad_byte {
  std::size_t offset;
  std::string message;
};

std::optional<bad_byte> first_bad_byte(std::string_view text) {
  for (std::size_t i = 0; i < text.size();) {
    if (text[i] == '\0') return bad_byte{i, fmt::format("contains a NUL byte (at offset {})", i)};
    const std::size_t length = sequence_length(text, i);
    if (length == 0) {
      return bad_byte{i, fmt::format("is not valid UTF-8 (byte 0x{:02x} at offset {})",
                                     static_cast<unsigned char>(text[i]), i)};
    }
    i += length;
  }
  return std::nullopt;
}

int line_at(std::string_view text, std::size_t offset) {
  int line = 1;
  for (std::size_t i = 0; i < offset && i < text.size(); ++i) {
    if (text[i] == '\n') ++line;
  }
  return line;
}

// Where TOML's lexer is: bytes in strings and comments may be any UTF-8; elsewhere only ASCII
// can be valid.
enum class lexer_state { bare, comment, basic, literal, multiline_basic, multiline_literal };

bool is_blank(char c) { return c == ' ' || c == '\t' || c == '\r'; }

bool is_ascii(char c) { return static_cast<unsigned char>(c) < 0x80; }

bool is_bare_key_byte(char c) {
  return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
         c == '_' || c == '-';
}

// Where the parser stops reading a bare value (a number, a boolean, a date).
bool ends_bare_value(char c) {
  return is_blank(c) || c == '\n' || c == ']' || c == '}' || c == ',' || c == '#';
}

// Whether the table header opening at `open` starts as the parser expects: its key (after
// blanks, and after the second '[' of an array of tables) begins with a bare key character or
// a quote; or the header is empty ("[]"), which the parser refuses by itself. A non-ASCII byte
// passes here, to be reported as one next.
bool header_starts_well(std::string_view text, std::size_t open) {
  std::size_t i = open + 1;
  const auto skip_blanks = [&] {
    while (i < text.size() && (text[i] == ' ' || text[i] == '\t')) ++i;
  };
  skip_blanks();
  if (i < text.size() && text[i] == '[' && i == open + 1) {
    ++i;
    skip_blanks();
  }
  if (i == text.size()) return true;  // the parser reports the end of file
  const char c = text[i];
  return is_bare_key_byte(c) || c == '"' || c == '\'' || c == ']' || !is_ascii(c);
}

std::string non_ascii_message(std::string_view where, std::string_view text, std::size_t at) {
  return fmt::format("a non-ASCII character {} (byte 0x{:02x} at offset {})", where,
                     static_cast<unsigned char>(text[at]), at);
}

// The first byte that the parser must not see where it is:
// - a non-ASCII byte outside strings and comments (only they may hold one);
// - a non-ASCII byte after a backslash and any blanks in a multi-line basic string, even
//   where TOML allows it (a line-ending backslash, then "é" on the next line): the parser tests
//   it with a whitespace check that is undefined for some non-ASCII characters;
// - the '[' of a table header whose key starts with neither a key character nor a quote
//   ("[#a]", "[=]", "[" then a newline), or a '}' where an array expects a value ("[1, }"),
//   which trip the parser's assertions.
// It follows the parser's own reading: a quote opens a string only where a key or a value
// starts; a bare value (a number, say) runs to a blank, newline, ']', '}', ',' or '#', whatever
// it holds (quotes included); a '[' opens a table header when it is the first non-blank byte
// of a line outside any array or inline table. For valid TOML the strings, comments and headers
// found are exactly the document's. For invalid TOML the parser stops at its first error,
// which comes no later than a byte found here: where the text stops making sense this reads on
// outside strings (an unterminated single-line string ends at its newline).
//
// Long, as one state machine over the bytes: every state reads and moves the same position,
// bracket stack and last token, and split into functions they would pass all of it back and
// forth; the states are the cases of one switch, each short.
std::optional<bad_byte> bare_text_problem(std::string_view text) {
  lexer_state state = lexer_state::bare;
  std::string open;       // the headers ('h'), arrays ('a') and inline tables ('t') open
  char previous = '\n';   // the last token outside strings and comments; 'w' for a bare value
  bool in_value = false;  // within a bare value
  const auto starts = [&](std::size_t i, std::string_view token) {
    return text.substr(i).starts_with(token);
  };
  // Just past the run of `quote` bytes that closes a multi-line string at `i`: the closing
  // delimiter is the run's last three, and up to two more belong to the string.
  const auto past_quotes = [&](std::size_t i, char quote) {
    std::size_t end = i;
    while (end < text.size() && text[end] == quote && end - i < 5) ++end;
    return end;
  };
  // Ends a string or comment; a newline ends a line too.
  const auto to_bare = [&](char c) {
    state = lexer_state::bare;
    if (c == '\n') previous = '\n';
  };
  for (std::size_t i = 0; i < text.size();) {
    const char c = text[i];
    switch (state) {
      case lexer_state::bare: {
        if (!is_ascii(c)) {
          return bad_byte{i, non_ascii_message("outside a string or comment: a bare key may use "
                                               "only A-Z a-z 0-9 _ -, so quote the key",
                                               text, i)};
        }
        ++i;
        if (in_value) {
          if (!ends_bare_value(c)) break;
          in_value = false;
        }
        if (is_blank(c)) break;
        const bool in_array = !open.empty() && open.back() == 'a';
        const bool value_starts = previous == '=' || (in_array && (previous == '[' ||
                                                                   previous == ',' ||
                                                                   previous == '\n'));
        const bool key_or_value_starts = value_starts || previous == '\n' || previous == '[' ||
                                         previous == '{' || previous == ',' || previous == '.';
        const char before = std::exchange(previous, c);
        if (c == '[') {
          const bool header = open.empty() && before == '\n';
          if (header && !header_starts_well(text, i - 1)) {
            return bad_byte{i - 1, fmt::format("a table header's key must start with A-Z a-z "
                                               "0-9 _ - or a quote (the header opens at offset "
                                               "{})",
                                               i - 1)};
          }
          open += header || (!open.empty() && open.back() == 'h' && before == '[') ? 'h' : 'a';
        } else if (c == '{') {
          open += 't';
        } else if (c == ']' || c == '}') {
          if (c == '}' && in_array && value_starts) {
            return bad_byte{i - 1, fmt::format("a '}}' where an array expects a value or ']' (at "
                                               "offset {})",
                                               i - 1)};
          }
          if (!open.empty()) open.pop_back();
        } else if (c == '#') {
          state = lexer_state::comment;
        } else if (c == '"' || c == '\'') {
          if (!key_or_value_starts) break;  // a byte of a bare word, as the parser reads it
          const bool multiline = starts(i, std::string(2, c));
          if (multiline) i += 2;
          state = c == '"' ? (multiline ? lexer_state::multiline_basic : lexer_state::basic)
                           : (multiline ? lexer_state::multiline_literal : lexer_state::literal);
        } else if (value_starts && c != '\n') {
          in_value = true;
          previous = 'w';
        }
        break;
      }
      case lexer_state::comment:
        if (c == '\n') to_bare(c);
        ++i;
        break;
      case lexer_state::basic:
        if (c == '\\') {
          // The escaped byte, a quote or not, does not close the string; a newline does.
          if (i + 1 < text.size() && text[i + 1] == '\n') to_bare('\n');
          i += 2;
          break;
        }
        if (c == '"' || c == '\n') to_bare(c);
        ++i;
        break;
      case lexer_state::literal:
        if (c == '\'' || c == '\n') to_bare(c);
        ++i;
        break;
      case lexer_state::multiline_basic:
        if (c == '\\') {
          std::size_t next = i + 1;
          while (next < text.size() && (is_blank(text[next]) || text[next] == '\n')) ++next;
          if (next < text.size() && !is_ascii(text[next])) {
            return bad_byte{next, non_ascii_message("after a backslash in a multi-line string: "
                                                    "write it as an escape, \\uXXXX",
                                                    text, next)};
          }
          i += 2;
        } else if (starts(i, R"(""")")) {
          state = lexer_state::bare;
          i = past_quotes(i, '"');
        } else {
          ++i;
        }
        break;
      case lexer_state::multiline_literal:
        if (starts(i, "'''")) {
          state = lexer_state::bare;
          i = past_quotes(i, '\'');
        } else {
          ++i;
        }
        break;
    }
  }
  return std::nullopt;
}

}  // namespace

std::optional<std::size_t> invalid_utf8_offset(std::string_view text) noexcept {
  for (std::size_t i = 0; i < text.size();) {
    const std::size_t length = sequence_length(text, i);
    if (length == 0) return i;
    i += length;
  }
  return std::nullopt;
}

std::optional<std::string> text_value_problem(std::string_view text) {
  if (auto bad = first_bad_byte(text)) return std::move(bad->message);
  return std::nullopt;
}

std::string escape_text(std::string_view text) {
  std::string out;
  out.reserve(text.size());
  for (std::size_t i = 0; i < text.size();) {
    const auto byte = static_cast<unsigned char>(text[i]);
    const std::size_t length = sequence_length(text, i);
    if (length == 0 || byte < 0x20 || byte == 0x7f) {
      out += fmt::format("\\x{:02x}", byte);
      ++i;
    } else {
      out.append(text.substr(i, length));
      i += length;
    }
  }
  return out;
}

std::optional<toml_text_problem> check_toml_text(std::string_view text) {
  if (auto bad = first_bad_byte(text)) {
    return toml_text_problem{line_at(text, bad->offset), "the text " + bad->message};
  }
  if (auto bad = bare_text_problem(text)) {
    return toml_text_problem{line_at(text, bad->offset), std::move(bad->message)};
  }
  return std::nullopt;
}

}  // namespace procpool::harness
