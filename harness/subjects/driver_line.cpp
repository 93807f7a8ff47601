#include "subjects/driver_line.hpp"

#include <limits>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

namespace procpool::harness {
namespace {

using json = nlohmann::json;

error bad_done(std::string what) {
  return error{errc::protocol_error, fmt::format("driver's done line: {}", what)};
}

// A stamp fits in 64 signed bits. json holds a non-negative integer as unsigned, and
// get<std::int64_t>() would wrap one above INT64_MAX to a negative number.
bool read_stamp(const json& line, const char* key, std::int64_t& out) {
  const auto it = line.find(key);
  if (it == line.end() || !it->is_number_integer()) return false;
  constexpr auto max = static_cast<std::uint64_t>(std::numeric_limits<std::int64_t>::max());
  if (it->is_number_unsigned() && it->get<std::uint64_t>() > max) return false;
  out = it->get<std::int64_t>();
  return true;
}

result<driver_done> parse_done(const json& line) {
  driver_done d;
  const auto id = line.find("id");
  if (id == line.end() || !id->is_number_unsigned()) {
    return bad_done("'id' must be an unsigned integer");
  }
  d.id = id->get<std::uint64_t>();
  d.reply.id = d.id;
  const auto ok = line.find("ok");
  if (ok == line.end() || !ok->is_boolean()) return bad_done("'ok' must be a boolean");
  d.reply.ok = ok->get<bool>();
  if (d.reply.ok) {
    if (const auto r = line.find("result"); r != line.end()) d.reply.result = *r;
  } else {
    const auto e = line.find("error");
    if (e == line.end() || !e->is_object()) {
      return bad_done("'error' must be an object when ok is false");
    }
    const auto type = e->find("type");
    const auto message = e->find("message");
    if (type == e->end() || !type->is_string() || message == e->end() || !message->is_string()) {
      return bad_done("'error' needs string 'type' and 'message'");
    }
    d.reply.failure = {type->get<std::string>(), message->get<std::string>()};
  }
  if (!read_stamp(line, "t_start_ns", d.t_start_ns) ||
      !read_stamp(line, "t_worker_recv_ns", d.reply.t_recv_ns) ||
      !read_stamp(line, "t_worker_done_ns", d.reply.t_done_ns) ||
      !read_stamp(line, "t_done_ns", d.t_done_ns)) {
    return bad_done(
        "t_start_ns, t_worker_recv_ns, t_worker_done_ns and t_done_ns must be integers that "
        "fit in 64 signed bits");
  }
  if (const auto pid = line.find("worker_pid"); pid != line.end()) {
    if (!pid->is_number_unsigned()) return bad_done("'worker_pid' must be an unsigned integer");
    d.worker_pid = pid->get<std::uint64_t>();
  }
  return d;
}

error bad_event(std::string_view event, std::string what) {
  return error{errc::protocol_error, fmt::format("driver's {} line: {}", event, what)};
}

bool read_count(const json& line, const char* key, std::uint64_t& out) {
  const auto it = line.find(key);
  if (it == line.end() || !it->is_number_unsigned()) return false;
  out = it->get<std::uint64_t>();
  return true;
}

// An optional stamp: absent reads as 0, present must be a signed 64-bit integer.
bool read_optional_stamp(const json& line, const char* key, std::int64_t& out) {
  return !line.contains(key) || read_stamp(line, key, out);
}

result<driver_worker> parse_worker(const json& line) {
  driver_worker w;
  if (!read_count(line, "pid", w.pid) || w.pid == 0) {
    return bad_event("worker", "'pid' must be an integer >= 1");
  }
  const auto state = line.find("state");
  const std::string name = state != line.end() && state->is_string() ? state->get<std::string>() : "";
  if (name == "spawned") {
    w.state = driver_worker_state::spawned;
  } else if (name == "ready") {
    w.state = driver_worker_state::ready;
  } else if (name == "exited") {
    w.state = driver_worker_state::exited;
  } else {
    return bad_event("worker", "'state' must be \"spawned\", \"ready\" or \"exited\"");
  }
  if (!read_stamp(line, "t_ns", w.t_ns) || !read_optional_stamp(line, "t_spawn_ns", w.t_spawn_ns) ||
      !read_optional_stamp(line, "t_main_ns", w.t_main_ns) ||
      !read_optional_stamp(line, "t_init_done_ns", w.t_init_done_ns)) {
    return bad_event("worker",
                     "t_ns (required), t_spawn_ns, t_main_ns and t_init_done_ns must be "
                     "integers that fit in 64 signed bits");
  }
  if (const auto cause = line.find("cause"); cause != line.end()) {
    if (!cause->is_string()) return bad_event("worker", "'cause' must be a string");
    w.cause = cause->get<std::string>();
  }
  if (const auto planned = line.find("planned"); planned != line.end()) {
    if (!planned->is_boolean()) return bad_event("worker", "'planned' must be a boolean");
    w.planned = planned->get<bool>();
  }
  return w;
}

result<driver_pool_sample> parse_pool(const json& line) {
  driver_pool_sample p;
  if (!read_stamp(line, "t_ns", p.t_ns) || !read_count(line, "queued", p.queued) ||
      !read_count(line, "busy", p.busy) || !read_count(line, "alive", p.alive)) {
    return bad_event("pool",
                     "t_ns must be a signed 64-bit integer and queued, busy and alive "
                     "integers >= 0");
  }
  return p;
}

error malformed(std::string_view what, std::string_view text) {
  return error{errc::protocol_error, fmt::format("{}: {:.200}", what, text)};
}

}  // namespace

result<driver_line> parse_driver_line(std::string_view text) {
  if (!text.empty() && text.back() == '\r') text.remove_suffix(1);
  if (text.empty()) return driver_line{};
  const json line = json::parse(text, nullptr, /*allow_exceptions=*/false);
  if (line.is_discarded() || !line.is_object()) return malformed("not a JSON object", text);
  const auto event = line.find("event");
  if (event == line.end() || !event->is_string()) return malformed("no 'event' string", text);
  const auto& name = event->get_ref<const std::string&>();
  driver_line out;
  if (name == "done") {
    auto done = parse_done(line);
    if (!done) return std::move(done).error();
    out.event = driver_event::done;
    out.done = std::move(*done);
  } else if (name == "started") {
    out.event = driver_event::started;
    const auto warm = line.find("warm");
    out.cold = warm != line.end() && warm->is_boolean() && !warm->get<bool>();
    // Both optional, and read leniently as before: they inform the charts, not the protocol.
    if (!read_stamp(line, "t_ns", out.t_ns)) out.t_ns = 0;
    if (const auto pids = line.find("pids"); pids != line.end() && pids->is_array()) {
      for (const auto& pid : *pids) {
        if (pid.is_number_unsigned() && pid.get<std::uint64_t>() > 0) out.pids.push_back(pid.get<std::uint64_t>());
      }
    }
  } else if (name == "worker") {
    auto worker = parse_worker(line);
    if (!worker) return std::move(worker).error();
    out.event = driver_event::worker;
    out.worker = std::move(*worker);
  } else if (name == "pool") {
    auto pool = parse_pool(line);
    if (!pool) return std::move(pool).error();
    out.event = driver_event::pool;
    out.pool = *pool;
  } else if (name == "error") {
    out.event = driver_event::error;
    const auto message = line.find("message");
    out.message = message != line.end() && message->is_string() ? message->get<std::string>()
                                                                 : std::string(text);
  } else if (name == "stats") {
    out.event = driver_event::stats;
  } else if (name == "stopped") {
    out.event = driver_event::stopped;
  } else {
    return error{errc::protocol_error, fmt::format("unexpected event '{:.200}'", name)};
  }
  return out;
}

}  // namespace procpool::harness
