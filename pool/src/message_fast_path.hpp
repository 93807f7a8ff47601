// Internal to message.cpp and its tests: the two ways a request is encoded and a response is
// decoded.
//
// Every call pays for encode(request) and decode_response, so both avoid building an
// nlohmann::json document for the envelope: encode writes the bytes directly, and
// decode_response reads a plain ok:true envelope by hand and parses only its result. The
// general paths below, which go through nlohmann::json for the whole message, remain the
// definition of the wire format: the direct paths must produce exactly what they produce,
// and anything the hand reader is unsure of is handed to the general decoder, which alone
// words protocol errors. They are declared here so that tests can hold one to the other.
#pragma once

#include <bit>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <optional>
#include <string>
#include <string_view>

#include "procpool/wire/message.hpp"

namespace procpool::message_internals {

// Whether every byte is printable ASCII other than '"' and '\\': a string json's dump() writes
// as it is, between quotes.
bool is_plain_string(std::string_view s);

// The number of leading bytes of `s` that are plain in that sense: the index of the first
// byte that is not, or s.size().
std::size_t plain_prefix_length(std::string_view s);

// Whether the eight bytes at `p` are all ASCII digits; if so, their value goes to `value`.
// Reads exactly eight bytes, which the caller makes sure exist. Inline, with a bool and an
// out parameter rather than an optional: it is on every reply's path, and a value passed
// back through memory costs a stalled load as long as the whole computation.
//
// Every reply carries two stamps, CLOCK_MONOTONIC nanoseconds: fourteen digits or more once
// a machine has been up for a day. A digit at a time is a chain of dependent multiply-adds:
// eight are checked and combined at once in a 64-bit word. The first byte in memory is the
// most significant digit, the lowest byte of a little-endian load.
inline bool read_eight_digits(const char* p, std::uint32_t& value) {
  if constexpr (std::endian::native == std::endian::little) {
    std::uint64_t v;
    std::memcpy(&v, p, sizeof v);
    // A digit's high nibble is 3, and stays 3 when 6 is added. A byte that carries into the
    // next one (0xfa and up) fails its own test, so the carry cannot mislead the next.
    constexpr std::uint64_t high_nibbles = 0xf0f0f0f0f0f0f0f0u;
    const std::uint64_t high = v & high_nibbles;
    const std::uint64_t high_plus_6 = (v + 0x0606060606060606u) & high_nibbles;
    if ((high | (high_plus_6 >> 4)) != 0x3333333333333333u) return false;
    v -= 0x3030303030303030u;
    v = v * 10 + (v >> 8);  // each even byte: the two-digit number it starts
    constexpr std::uint64_t pairs = 0x000000ff000000ffu;
    v = ((v & pairs) * (100 + (1000000ull << 32)) + ((v >> 16) & pairs) * (1 + (10000ull << 32))) >>
        32;
    value = static_cast<std::uint32_t>(v);
    return true;
  } else {
    std::uint32_t n = 0;
    for (int i = 0; i < 8; ++i) {
      if (p[i] < '0' || p[i] > '9') return false;
      n = n * 10 + static_cast<std::uint32_t>(p[i] - '0');
    }
    value = n;
    return true;
  }
}

// Serialises the request as a json object; encode(request) must match it byte for byte.
std::string encode_request_as_json(const request& r);

// Parses the whole payload with nlohmann::json; the source of every protocol error.
result<response> decode_response_as_json(std::string_view payload);

// Reads an envelope holding only id, ok:true, result and the stamps, each at most once.
// Returns nullopt for anything else, malformed or not, so that the caller falls back on
// decode_response_as_json; never accepts a payload that decode_response_as_json rejects,
// and yields the same response for those it accepts.
std::optional<response> try_decode_plain_response(std::string_view payload);

}  // namespace procpool::message_internals
