#include "scenario/text_checks.hpp"

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

// The offset of the first non-ASCII byte outside strings and comments, or nullopt. For valid
// TOML the strings and comments found are exactly the document's; for invalid TOML the parser
// stops at the first error, which is never after a byte this finds (an unterminated
// single-line string ends at its newline here and there).
std::optional<std::size_t> non_ascii_outside_strings(std::string_view text) {
  lexer_state state = lexer_state::bare;
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
  for (std::size_t i = 0; i < text.size();) {
    const char c = text[i];
    switch (state) {
      case lexer_state::bare:
        if (static_cast<unsigned char>(c) >= 0x80) return i;
        if (c == '#') {
          state = lexer_state::comment;
        } else if (starts(i, R"(""")")) {
          state = lexer_state::multiline_basic;
          i += 3;
          continue;
        } else if (starts(i, "'''")) {
          state = lexer_state::multiline_literal;
          i += 3;
          continue;
        } else if (c == '"') {
          state = lexer_state::basic;
        } else if (c == '\'') {
          state = lexer_state::literal;
        }
        ++i;
        break;
      case lexer_state::comment:
        if (c == '\n') state = lexer_state::bare;
        ++i;
        break;
      case lexer_state::basic:
        if (c == '\\') {
          // The escaped byte, a quote or not, does not close the string; a newline does.
          if (i + 1 < text.size() && text[i + 1] == '\n') state = lexer_state::bare;
          i += 2;
          break;
        }
        if (c == '"' || c == '\n') state = lexer_state::bare;
        ++i;
        break;
      case lexer_state::literal:
        if (c == '\'' || c == '\n') state = lexer_state::bare;
        ++i;
        break;
      case lexer_state::multiline_basic:
        if (c == '\\') {
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
  if (auto at = non_ascii_outside_strings(text)) {
    return toml_text_problem{
        line_at(text, *at),
        fmt::format("a non-ASCII character outside a string or comment (byte 0x{:02x} at "
                    "offset {}): a bare key may use only A-Z a-z 0-9 _ -, so quote the key",
                    static_cast<unsigned char>(text[*at]), *at)};
  }
  return std::nullopt;
}

}  // namespace procpool::harness
