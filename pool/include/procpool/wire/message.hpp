// The JSON messages carried in frames: requests, responses and the init handshake.
//
// Request:  {"id": u64, "command": str, "args": any}
// Response: {"id", "ok": true, "result": any, "t_recv_ns", "t_done_ns"}
//        or {"id", "ok": false, "error": {"type", "message"}, "t_recv_ns", "t_done_ns"}
// Init:     the pool sends {"id": 0, "command": "init", "args": {...}}; the worker answers with
//           a response that also carries "pid", "t_main_ns" and "t_init_done_ns".
// Stamps are the worker's CLOCK_MONOTONIC in nanoseconds; 0 means the worker did not stamp.
//
// Decoding never throws: a payload that is not JSON, or lacks or mistypes a field, or holds an
// integer out of its field's range (stamps and the pid are signed 64-bit), is a protocol_error
// whose message names the field.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include <nlohmann/json.hpp>

#include "procpool/result.hpp"

namespace procpool {

inline constexpr std::uint64_t init_request_id = 0;
inline constexpr std::string_view init_command = "init";

struct request {
  std::uint64_t id = 0;
  std::string command;
  nlohmann::json args = nullptr;
};

struct worker_failure {
  std::string type;
  std::string message;
};

struct response {
  std::uint64_t id = 0;
  bool ok = true;
  nlohmann::json result = nullptr;  // meaningful when ok
  worker_failure failure = {};      // meaningful when !ok
  std::int64_t t_recv_ns = 0;
  std::int64_t t_done_ns = 0;
};

struct init_reply {
  response base;  // id 0, ok, stamps
  std::int64_t pid = 0;
  std::int64_t t_main_ns = 0;
  std::int64_t t_init_done_ns = 0;
};

// A request's fields, borrowed: encoding reads them where they are, so that a caller's
// arguments are never copied into a request just to be written out.
struct request_ref {
  request_ref(std::uint64_t id_, std::string_view command_, const nlohmann::json& args_)
      : id(id_), command(command_), args(args_) {}
  request_ref(const request& r) : id(r.id), command(r.command), args(r.args) {}  // NOLINT: implicit by design

  std::uint64_t id;
  std::string_view command;
  const nlohmann::json& args;
};

request make_init_request(nlohmann::json args);

// Appends the request's encoding to `out`, the bytes encode(request) returns.
void encode_into(std::string& out, const request_ref& r);
std::string encode(const request& r);
std::string encode(const response& r);
std::string encode(const init_reply& r);

result<request> decode_request(std::string_view payload);
result<response> decode_response(std::string_view payload);
// An ok:false init reply decodes successfully; the caller decides what a refused init means.
result<init_reply> decode_init_reply(std::string_view payload);

}  // namespace procpool
