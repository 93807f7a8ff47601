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

#include <cstddef>
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
