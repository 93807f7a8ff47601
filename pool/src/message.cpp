#include "procpool/wire/message.hpp"

#include <algorithm>
#include <charconv>
#include <cstddef>
#include <cstring>
#include <limits>

#if defined(__SSE2__)
#include <emmintrin.h>
#endif

#include <fmt/format.h>

#include "message_fast_path.hpp"

namespace procpool {
namespace {

using nlohmann::json;

error malformed(std::string_view what, std::string detail) {
  return error{errc::protocol_error, fmt::format("malformed {}: {}", what, detail)};
}

// The first bytes of a payload, printable, for error messages about garbage.
std::string excerpt(std::string_view payload) {
  constexpr std::size_t limit = 48;
  std::string out;
  for (unsigned char c : payload.substr(0, limit)) {
    if (c >= 0x20 && c < 0x7f && c != '\\') {
      out += static_cast<char>(c);
    } else {
      out += fmt::format("\\x{:02x}", c);
    }
  }
  if (payload.size() > limit) out += "...";
  return out;
}

result<json> parse_object(std::string_view what, std::string_view payload) {
  json doc = json::parse(payload, nullptr, /*allow_exceptions=*/false);
  if (doc.is_discarded()) {
    return malformed(what, fmt::format("payload is not JSON: \"{}\"", excerpt(payload)));
  }
  if (!doc.is_object()) return malformed(what, "payload is not a JSON object");
  return doc;
}

// Reads a required unsigned id. JSON numbers that are negative or fractional are rejected.
result<std::uint64_t> read_id(std::string_view what, const json& doc) {
  auto it = doc.find("id");
  if (it == doc.end()) return malformed(what, "missing field 'id'");
  if (!it->is_number_unsigned()) {
    return malformed(what, "field 'id' must be an unsigned integer");
  }
  return it->get<std::uint64_t>();
}

// Reads a signed 64-bit integer field. json holds a non-negative integer as unsigned, and
// get<std::int64_t>() would wrap one above INT64_MAX to a negative number: out of range instead.
result<std::int64_t> read_int64(std::string_view what, const json& value, std::string_view key) {
  if (!value.is_number_integer()) {
    return malformed(what, fmt::format("field '{}' must be an integer", key));
  }
  constexpr auto max = static_cast<std::uint64_t>(std::numeric_limits<std::int64_t>::max());
  if (value.is_number_unsigned() && value.get<std::uint64_t>() > max) {
    return malformed(what, fmt::format("field '{}' is out of range: {} is above {}", key,
                                       value.get<std::uint64_t>(), max));
  }
  return value.get<std::int64_t>();
}

// Reads an optional integer stamp; absent means the worker did not stamp (0).
result<std::int64_t> read_stamp(std::string_view what, const json& doc, const char* key) {
  auto it = doc.find(key);
  if (it == doc.end() || it->is_null()) return std::int64_t{0};
  return read_int64(what, *it, key);
}

json to_json(const response& r) {
  json doc = {{"id", r.id}, {"ok", r.ok}};
  if (r.ok) {
    doc["result"] = r.result;
  } else {
    doc["error"] = {{"type", r.failure.type}, {"message", r.failure.message}};
  }
  doc["t_recv_ns"] = r.t_recv_ns;
  doc["t_done_ns"] = r.t_done_ns;
  return doc;
}

result<response> from_json(std::string_view what, const json& doc) {
  response r;
  auto id = read_id(what, doc);
  if (!id) return std::move(id).error();
  r.id = *id;

  auto ok = doc.find("ok");
  if (ok == doc.end()) return malformed(what, "missing field 'ok'");
  if (!ok->is_boolean()) return malformed(what, "field 'ok' must be a boolean");
  r.ok = ok->get<bool>();

  if (r.ok) {
    if (auto it = doc.find("result"); it != doc.end()) r.result = *it;
  } else {
    auto it = doc.find("error");
    if (it == doc.end()) return malformed(what, "ok is false but field 'error' is missing");
    if (!it->is_object()) return malformed(what, "field 'error' must be an object");
    auto type = it->find("type");
    auto message = it->find("message");
    if (type == it->end() || !type->is_string()) {
      return malformed(what, "field 'error.type' must be a string");
    }
    if (message == it->end() || !message->is_string()) {
      return malformed(what, "field 'error.message' must be a string");
    }
    r.failure = {type->get<std::string>(), message->get<std::string>()};
  }

  auto recv = read_stamp(what, doc, "t_recv_ns");
  if (!recv) return std::move(recv).error();
  auto done = read_stamp(what, doc, "t_done_ns");
  if (!done) return std::move(done).error();
  r.t_recv_ns = *recv;
  r.t_done_ns = *done;
  return r;
}

// Printable ASCII other than the quote and the backslash: the bytes that json's dump() writes
// unescaped and that need no UTF-8 validation, so a string of them is its own JSON body.
bool is_plain_string_byte(char c) {
  const auto byte = static_cast<unsigned char>(c);
  return byte >= 0x20 && byte < 0x7f && byte != '"' && byte != '\\';
}

std::size_t plain_bytes_one_at_a_time(std::string_view s) {
  std::size_t i = 0;
  while (i < s.size() && is_plain_string_byte(s[i])) ++i;
  return i;
}

#if defined(__SSE2__)
// A bit per byte of the 16 at `p`, set where the byte is not plain. A signed compare with
// 0x20 catches the control bytes and, as negative numbers, every byte from 0x80.
unsigned not_plain_mask(const char* p) {
  const __m128i v = _mm_loadu_si128(reinterpret_cast<const __m128i*>(p));
  const __m128i outside = _mm_or_si128(_mm_cmplt_epi8(v, _mm_set1_epi8(0x20)),
                                       _mm_cmpeq_epi8(v, _mm_set1_epi8(0x7f)));
  const __m128i special = _mm_or_si128(_mm_cmpeq_epi8(v, _mm_set1_epi8('"')),
                                       _mm_cmpeq_epi8(v, _mm_set1_epi8('\\')));
  return static_cast<unsigned>(_mm_movemask_epi8(_mm_or_si128(outside, special)));
}
#endif

}  // namespace

namespace message_internals {

// Sixteen bytes at a time where SSE2 is there: every call scans its arguments as it encodes
// them and its result as it decodes it, and a byte-at-a-time scan of a short string cost a
// visible share of a round trip. The last block overlaps the one before it rather than
// falling back to bytes. The tests hold this to is_plain_string_byte at every length and
// position.
std::size_t plain_prefix_length(std::string_view s) {
#if defined(__SSE2__)
  constexpr std::size_t block = 16;
  if (s.size() < block) return plain_bytes_one_at_a_time(s);
  std::size_t i = 0;
  for (; i + block <= s.size(); i += block) {
    if (const unsigned mask = not_plain_mask(s.data() + i); mask != 0) {
      return i + static_cast<std::size_t>(__builtin_ctz(mask));
    }
  }
  if (i == s.size()) return i;
  const std::size_t last = s.size() - block;
  const unsigned unseen = ~0u << (i - last);  // the bytes the loop has not looked at
  if (const unsigned mask = not_plain_mask(s.data() + last) & unseen; mask != 0) {
    return last + static_cast<std::size_t>(__builtin_ctz(mask));
  }
  return s.size();
#else
  return plain_bytes_one_at_a_time(s);
#endif
}

bool is_plain_string(std::string_view s) { return plain_prefix_length(s) == s.size(); }

}  // namespace message_internals

namespace {

using message_internals::is_plain_string;

void append_quoted(std::string& out, std::string_view plain) {
  out += '"';
  out += plain;
  out += '"';
}

// Anything needing escapes or UTF-8 checks is left to json, whose dump() also throws on
// invalid UTF-8 exactly as the json-built request does.
void append_json_string(std::string& out, std::string_view s) {
  if (is_plain_string(s)) {
    append_quoted(out, s);
  } else {
    out += json(std::string(s)).dump();
  }
}

void append_json(std::string& out, const json& value) {
  if (value.is_string() && is_plain_string(value.get_ref<const std::string&>())) {
    append_quoted(out, value.get_ref<const std::string&>());
  } else if (value.is_null()) {
    out += "null";
  } else {
    out += value.dump();
  }
}

void append_unsigned(std::string& out, std::uint64_t n) {
  char digits[std::numeric_limits<std::uint64_t>::digits10 + 1];
  out.append(digits, std::to_chars(std::begin(digits), std::end(digits), n).ptr);
}

bool is_digit(char c) { return c >= '0' && c <= '9'; }

bool is_json_space(char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r'; }

// Bytes that can make up a bare literal or number. A run of them is only a candidate: json
// decides whether it is valid.
bool is_scalar_byte(char c) {
  return is_digit(c) || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
         c == '-' || c == '+' || c == '.';
}

// Reads one response envelope by hand. Each step either understands the bytes in front of
// it exactly as json would, or gives up; giving up is always safe because the caller then
// parses the whole payload the general way.
class plain_response_reader {
 public:
  explicit plain_response_reader(std::string_view text) : text_(text) {}

  std::optional<response> read() {
    response r;
    unsigned seen = 0;
    skip_space();
    if (!consume('{')) return std::nullopt;
    do {
      skip_space();
      const auto key = read_key();
      // A duplicate key is valid JSON (json keeps the last), but rare enough to leave out.
      if (!key || (seen & *key) != 0) return std::nullopt;
      seen |= *key;
      skip_space();
      if (!consume(':')) return std::nullopt;
      skip_space();
      if (!read_field(*key, r)) return std::nullopt;
      skip_space();
    } while (consume(','));
    if (!consume('}')) return std::nullopt;
    skip_space();
    if (pos_ != text_.size()) return std::nullopt;
    // Without id or ok the payload is malformed; the general path words the error.
    if ((seen & field_id) == 0 || (seen & field_ok) == 0) return std::nullopt;
    return r;
  }

 private:
  // Bits for the fields seen so far.
  static constexpr unsigned field_id = 1;
  static constexpr unsigned field_ok = 2;
  static constexpr unsigned field_result = 4;
  static constexpr unsigned field_t_recv_ns = 8;
  static constexpr unsigned field_t_done_ns = 16;

  bool at_end() const { return pos_ >= text_.size(); }

  void skip_space() {
    while (!at_end() && is_json_space(text_[pos_])) ++pos_;
  }

  bool consume(char c) {
    if (at_end() || text_[pos_] != c) return false;
    ++pos_;
    return true;
  }

  bool consume(std::string_view word) {
    if (!text_.substr(pos_).starts_with(word)) return false;
    pos_ += word.size();
    return true;
  }

  // The known keys are plain ASCII, so a key containing an escape is never one of them:
  // a quote preceded by a backslash ends the candidate early and the name matches nothing.
  std::optional<unsigned> read_key() {
    if (!consume('"')) return std::nullopt;
    const std::size_t close = text_.find('"', pos_);
    if (close == std::string_view::npos) return std::nullopt;
    const std::string_view name = text_.substr(pos_, close - pos_);
    pos_ = close + 1;
    if (name == "id") return field_id;
    if (name == "ok") return field_ok;
    if (name == "result") return field_result;
    if (name == "t_recv_ns") return field_t_recv_ns;
    if (name == "t_done_ns") return field_t_done_ns;
    return std::nullopt;  // "error" (the field of ok:false replies) included
  }

  bool read_field(unsigned key, response& r) {
    switch (key) {
      case field_id: {
        const auto id = read_unsigned();
        if (!id) return false;
        r.id = *id;
        return true;
      }
      case field_ok:
        // ok:false replies need their error object checked; those go the general way.
        r.ok = true;
        return consume("true");
      case field_result: {
        auto value = read_result();
        if (!value) return false;
        r.result = std::move(*value);
        return true;
      }
      case field_t_recv_ns:
      case field_t_done_ns: {
        const auto stamp = read_stamp();
        if (!stamp) return false;
        (key == field_t_recv_ns ? r.t_recv_ns : r.t_done_ns) = *stamp;
        return true;
      }
      default:
        return false;
    }
  }

  // The digits of a JSON integer. A fraction or exponent is left unread, and the caller
  // then finds neither ',' nor '}' after the value and gives up.
  std::optional<std::uint64_t> read_unsigned() {
    // JSON forbids leading zeros: a '0' is the whole number, and a digit after it is left
    // in place to be refused like any other stray byte.
    if (consume('0')) return std::uint64_t{0};
    // Nineteen digits cannot overflow 64 bits, and ids and stamps have fewer: those are read
    // here without from_chars' check at every digit. A longer number goes to from_chars.
    constexpr std::size_t safe_digits = std::numeric_limits<std::uint64_t>::digits10;
    std::uint64_t n = 0;
    std::size_t i = pos_;
    const std::size_t safe_end = std::min(text_.size(), pos_ + safe_digits);
    std::uint32_t eight = 0;
    for (; i + 8 <= safe_end && message_internals::read_eight_digits(text_.data() + i, eight);
         i += 8) {
      n = n * 100'000'000 + eight;
    }
    while (i < safe_end && is_digit(text_[i])) {
      n = n * 10 + static_cast<unsigned>(text_[i] - '0');
      ++i;
    }
    // No digits: a sign, a quote, a literal.
    if (i == pos_) return std::nullopt;
    if (i == safe_end && i < text_.size() && is_digit(text_[i])) {
      const char* first = text_.data() + pos_;
      const auto [end, ec] = std::from_chars(first, text_.data() + text_.size(), n);
      // More than 64 bits: json reads it as a float, which the general path refuses.
      if (ec != std::errc{}) return std::nullopt;
      i = pos_ + static_cast<std::size_t>(end - first);
    }
    pos_ = i;
    return n;
  }

  // A stamp is an integer that fits in 64 signed bits, or null (not stamped). Values out of
  // that range are left to the general path, which words the error.
  std::optional<std::int64_t> read_stamp() {
    if (consume("null")) return std::int64_t{0};
    const bool negative = consume('-');
    const auto magnitude = read_unsigned();
    if (!magnitude) return std::nullopt;
    constexpr auto max = static_cast<std::uint64_t>(std::numeric_limits<std::int64_t>::max());
    if (negative) {
      if (*magnitude > max + 1) return std::nullopt;  // json reads it as a float
      return static_cast<std::int64_t>(0 - *magnitude);
    }
    if (*magnitude > max) return std::nullopt;
    return static_cast<std::int64_t>(*magnitude);
  }

  // Finds the extent of the result value and has json parse just that; the common scalars
  // are built directly. The extent is only located here, not validated: json's parse of the
  // slice validates it, and the bytes around it are checked by read().
  std::optional<json> read_result() {
    if (auto plain = read_plain_string()) return json(std::string(*plain));
    const std::size_t start = pos_;
    const auto end = find_value_end();
    if (!end) return std::nullopt;
    pos_ = *end;
    const std::string_view slice = text_.substr(start, *end - start);
    if (slice == "null") return json(nullptr);
    if (slice == "true") return json(true);
    if (slice == "false") return json(false);
    json value = json::parse(slice, nullptr, /*allow_exceptions=*/false);
    if (value.is_discarded()) return std::nullopt;
    return value;
  }

  // A string of plain bytes only, read in one scan: its end is the first byte that is not
  // plain, when that byte is a quote. Anything else is left in place for the general read.
  std::optional<std::string_view> read_plain_string() {
    if (at_end() || text_[pos_] != '"') return std::nullopt;
    const std::string_view rest = text_.substr(pos_ + 1);
    const std::size_t length = message_internals::plain_prefix_length(rest);
    if (length == rest.size() || rest[length] != '"') return std::nullopt;
    pos_ += length + 2;
    return rest.substr(0, length);
  }

  std::optional<std::size_t> find_value_end() const {
    if (at_end()) return std::nullopt;
    const char first = text_[pos_];
    if (first == '"') return find_string_end(pos_);
    if (first == '{' || first == '[') {
      // Openers and closers are counted without matching their kinds: a mismatch makes the
      // slice invalid, and json's parse of it refuses it.
      std::size_t depth = 0;
      std::size_t i = pos_;
      while (i < text_.size()) {
        const char c = text_[i];
        if (c == '"') {
          const auto after = find_string_end(i);
          if (!after) return std::nullopt;
          i = *after;
          continue;
        }
        if (c == '{' || c == '[') {
          ++depth;
        } else if ((c == '}' || c == ']') && --depth == 0) {
          return i + 1;
        }
        ++i;
      }
      return std::nullopt;
    }
    std::size_t i = pos_;
    while (i < text_.size() && is_scalar_byte(text_[i])) ++i;
    if (i == pos_) return std::nullopt;
    return i;
  }

  // Just past the quote that closes the string opening at `open`.
  // The common string has no escape: memchr finds its closing quote, and a second one proves
  // there is no backslash before it; otherwise the bytes are walked one at a time.
  std::optional<std::size_t> find_string_end(std::size_t open) const {
    const std::size_t from = open + 1;
    if (from > text_.size()) return std::nullopt;
    const char* begin = text_.data() + from;
    const std::size_t rest = text_.size() - from;
    const auto* quote = static_cast<const char*>(std::memchr(begin, '"', rest));
    if (quote == nullptr) return std::nullopt;  // unterminated
    const auto length = static_cast<std::size_t>(quote - begin);
    if (std::memchr(begin, '\\', length) == nullptr) return from + length + 1;
    for (std::size_t i = from; i < text_.size(); ++i) {
      if (text_[i] == '\\') {
        ++i;  // the escaped byte, a quote or not, does not close the string
      } else if (text_[i] == '"') {
        return i + 1;
      }
    }
    return std::nullopt;
  }

  std::string_view text_;
  std::size_t pos_ = 0;
};

}  // namespace

namespace message_internals {

std::string encode_request_as_json(const request& r) {
  return json{{"id", r.id}, {"command", r.command}, {"args", r.args}}.dump();
}

result<response> decode_response_as_json(std::string_view payload) {
  auto doc = parse_object("response", payload);
  if (!doc) return std::move(doc).error();
  return from_json("response", *doc);
}

std::optional<response> try_decode_plain_response(std::string_view payload) {
  return plain_response_reader(payload).read();
}

}  // namespace message_internals

request make_init_request(nlohmann::json args) {
  return request{init_request_id, std::string(init_command), std::move(args)};
}

void encode_into(std::string& out, const request_ref& r) {
  // The keys go in the order of json's std::map-backed objects, so that the bytes are those
  // of encode_request_as_json.
  out.reserve(out.size() + 64 + r.command.size() +
              (r.args.is_string() ? r.args.get_ref<const std::string&>().size() : 0));
  out += R"({"args":)";
  append_json(out, r.args);
  out += R"(,"command":)";
  append_json_string(out, r.command);
  out += R"(,"id":)";
  append_unsigned(out, r.id);
  out += '}';
}

std::string encode(const request& r) {
  std::string out;
  encode_into(out, r);
  return out;
}

std::string encode(const response& r) { return to_json(r).dump(); }

std::string encode(const init_reply& r) {
  json doc = to_json(r.base);
  doc["pid"] = r.pid;
  doc["t_main_ns"] = r.t_main_ns;
  doc["t_init_done_ns"] = r.t_init_done_ns;
  return doc.dump();
}

result<request> decode_request(std::string_view payload) {
  auto doc = parse_object("request", payload);
  if (!doc) return std::move(doc).error();
  request r;
  auto id = read_id("request", *doc);
  if (!id) return std::move(id).error();
  r.id = *id;
  auto command = doc->find("command");
  if (command == doc->end()) return malformed("request", "missing field 'command'");
  if (!command->is_string()) return malformed("request", "field 'command' must be a string");
  r.command = command->get<std::string>();
  if (auto args = doc->find("args"); args != doc->end()) r.args = std::move(*args);
  return r;
}

result<response> decode_response(std::string_view payload) {
  if (auto plain = message_internals::try_decode_plain_response(payload)) {
    return std::move(*plain);
  }
  return message_internals::decode_response_as_json(payload);
}

result<init_reply> decode_init_reply(std::string_view payload) {
  auto doc = parse_object("init reply", payload);
  if (!doc) return std::move(doc).error();
  auto base = from_json("init reply", *doc);
  if (!base) return std::move(base).error();
  init_reply r{.base = std::move(*base)};
  if (!r.base.ok) return r;  // a refused init carries no process facts
  for (auto [key, field] : {std::pair{"pid", &r.pid}, std::pair{"t_main_ns", &r.t_main_ns},
                            std::pair{"t_init_done_ns", &r.t_init_done_ns}}) {
    auto it = doc->find(key);
    if (it == doc->end()) return malformed("init reply", fmt::format("missing field '{}'", key));
    auto value = read_int64("init reply", *it, key);
    if (!value) return std::move(value).error();
    *field = *value;
  }
  return r;
}

}  // namespace procpool
