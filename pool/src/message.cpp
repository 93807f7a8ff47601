#include "procpool/message.hpp"

#include <fmt/format.h>

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

// Reads an optional integer stamp; absent means the worker did not stamp (0).
result<std::int64_t> read_stamp(std::string_view what, const json& doc, const char* key) {
  auto it = doc.find(key);
  if (it == doc.end() || it->is_null()) return std::int64_t{0};
  if (!it->is_number_integer()) {
    return malformed(what, fmt::format("field '{}' must be an integer", key));
  }
  return it->get<std::int64_t>();
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

}  // namespace

request make_init_request(nlohmann::json args) {
  return request{init_request_id, std::string(init_command), std::move(args)};
}

std::string encode(const request& r) {
  return json{{"id", r.id}, {"command", r.command}, {"args", r.args}}.dump();
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
  auto doc = parse_object("response", payload);
  if (!doc) return std::move(doc).error();
  return from_json("response", *doc);
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
    if (!it->is_number_integer()) {
      return malformed("init reply", fmt::format("field '{}' must be an integer", key));
    }
    *field = it->get<std::int64_t>();
  }
  return r;
}

}  // namespace procpool
