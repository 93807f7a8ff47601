#include "run/records.hpp"

#include "run/record_fields.hpp"

#include <algorithm>
#include <array>

namespace procpool::harness {
namespace {

using json = nlohmann::json;

constexpr std::array<worker_state, 7> all_states = {
    worker_state::pending, worker_state::starting, worker_state::idle,   worker_state::busy,
    worker_state::pinging, worker_state::stopping, worker_state::exited};

constexpr std::array<exit_kind, 4> all_exit_kinds = {exit_kind::none, exit_kind::planned_stop,
                                                     exit_kind::recycled, exit_kind::fault};

}  // namespace

std::optional<worker_state> parse_worker_state(std::string_view name) noexcept {
  for (const auto s : all_states) {
    if (to_string(s) == name) return s;
  }
  return std::nullopt;
}

std::optional<exit_kind> parse_exit_kind(std::string_view name) noexcept {
  for (const auto k : all_exit_kinds) {
    if (to_string(k) == name) return k;
  }
  return std::nullopt;
}

void keep_results_sample(case_timelines& t) {
  if (t.workers.size() <= max_results_worker_events) return;
  std::stable_sort(t.workers.begin(), t.workers.end(),
                   [](const worker_event& a, const worker_event& b) { return a.t_ns < b.t_ns; });
  t.worker_events_dropped += t.workers.size() - max_results_worker_events;
  t.workers.resize(max_results_worker_events);
}

bool is_failure_outcome(std::string_view outcome) noexcept {
  return outcome != "ok" && outcome != "cancelled";
}

bool is_timeout_outcome(std::string_view outcome) noexcept {
  return outcome == "checkout_timeout" || outcome == "request_timeout";
}

timeline_record timeline_record::of(const request_timeline& t) {
  timeline_record r;
  static_cast<request_timing&>(r) = t;
  r.request_id = t.request_id;
  r.worker = t.worker;
  if (t.outcome) r.outcome = to_string(*t.outcome);
  r.ahead = t.ahead;
  r.caused_by = t.caused_by;
  if (t.cause) r.cause = std::string(to_string(*t.cause));
  return r;
}

std::uint64_t case_record::requests() const noexcept {
  std::uint64_t n = 0;
  for (const auto& [name, count] : outcomes) n += count;
  return n;
}

std::uint64_t case_record::failed() const noexcept {
  std::uint64_t n = 0;
  for (const auto& [name, count] : outcomes) {
    if (is_failure_outcome(name)) n += count;
  }
  return n;
}

std::uint64_t case_record::timeouts() const noexcept {
  std::uint64_t n = 0;
  for (const auto& [name, count] : outcomes) {
    if (is_timeout_outcome(name)) n += count;
  }
  return n;
}

// The field tables: each record's keys, once, for its writer and its reader.
constexpr auto fields_of(std::type_identity<timeline_record>) {
  using r = timeline_record;
  // caused_by and cause only on a queued_behind_fault: every other record would carry a 0.
  return std::tuple{field{"request_id", &r::request_id},
                    field{"worker", &r::worker},
                    field{"t_submit", &r::t_submit},
                    field{"t_checkout", &r::t_checkout},
                    field{"t_sent", &r::t_sent},
                    field{"t_head", &r::t_head},
                    field{"t_worker_recv", &r::t_worker_recv},
                    field{"t_worker_done", &r::t_worker_done},
                    field{"t_reply", &r::t_reply},
                    field{"outcome", &r::outcome},
                    field{"ahead", &r::ahead},
                    field{"caused_by", &r::caused_by, written::unless_default},
                    field{"cause", &r::cause},
                    field{"verdict", &r::verdict},
                    field{"evidence", &r::evidence}};
}

constexpr auto fields_of(std::type_identity<case_timelines>) {
  using r = case_timelines;
  return std::tuple{field{"requests_failed", &r::requests_failed},
                    field{"requests_failed_dropped", &r::requests_failed_dropped},
                    field{"requests_sampled", &r::requests_sampled}, field{"workers", &r::workers},
                    field{"worker_events_dropped", &r::worker_events_dropped}};
}

constexpr auto fields_of(std::type_identity<latency_record>) {
  using r = latency_record;
  return std::tuple{field{"p50", &r::p50}, field{"p90", &r::p90},   field{"p99", &r::p99},
                    field{"p999", &r::p999}, field{"max", &r::max}, field{"mean", &r::mean},
                    field{"count", &r::count}};
}

constexpr auto fields_of(std::type_identity<finding_record>) {
  using r = finding_record;
  return std::tuple{field{"verdict", &r::verdict}, field{"count", &r::count}, field{"rule", &r::rule},
                    field{"summary", &r::summary}, field{"evidence", &r::evidence}};
}

constexpr auto fields_of(std::type_identity<unjudged_record>) {
  return std::tuple{field{"count", &unjudged_record::count}, field{"missing", &unjudged_record::missing}};
}

constexpr auto fields_of(std::type_identity<spread_record>) {
  return std::tuple{field{"mean", &spread_record::mean}, field{"max", &spread_record::max}};
}

constexpr auto fields_of(std::type_identity<memory_record>) {
  using r = memory_record;
  return std::tuple{field{"workers", &r::workers}, field{"uss_kib", &r::uss_kib},
                    field{"pss_kib", &r::pss_kib}};
}

constexpr auto fields_of(std::type_identity<case_error>) {
  return std::tuple{field{"type", &case_error::type}, field{"message", &case_error::message}};
}

constexpr auto fields_of(std::type_identity<case_record>) {
  using r = case_record;
  return std::tuple{field{"id", &r::id},
                    field{"index", &r::index},
                    field{"params", &r::params},
                    field{"repetition", &r::repetition},
                    field{"outcomes", &r::outcomes},
                    field{"latency_us", &r::latency_us},
                    field{"throughput_rps", &r::throughput_rps},
                    field{"wall_ms", &r::wall_ms},
                    field{"load_wall_ms", &r::load_wall_ms},
                    field{"late_starts", &r::late_starts},
                    field{"ready_ms", &r::ready_ms, written::null_when_unset},
                    field{"memory", &r::memory},
                    field{"interrupted", &r::interrupted, written::unless_default},
                    field{"environment", &r::environment},
                    field{"timelines", &r::timelines},
                    field{"verdicts", &r::verdicts},
                    field{"findings", &r::findings},
                    field{"unjudged", &r::unjudged},
                    field{"error", &r::error}};
}

PROCPOOL_RECORD_JSON(timeline_record)
PROCPOOL_RECORD_JSON(case_timelines)
PROCPOOL_RECORD_JSON(latency_record)
PROCPOOL_RECORD_JSON(finding_record)
PROCPOOL_RECORD_JSON(unjudged_record)
PROCPOOL_RECORD_JSON(spread_record)
PROCPOOL_RECORD_JSON(memory_record)
PROCPOOL_RECORD_JSON(case_error)

void to_json(json& j, const case_record& c) {
  j = c.extra.is_object() ? c.extra : json::object();
  write_fields(j, c);
}

void from_json(const json& j, case_record& c) {
  read_fields(j, c);
  c.extra = json::object();
  if (!j.is_object()) return;
  for (const auto& [key, value] : j.items()) {
    if (!is_field<case_record>(key)) c.extra[key] = value;
  }
}

}  // namespace procpool::harness

// worker_event is the pool's type: its table sits in the pool's namespace, where the field
// functions look for it, but only this file uses it.
namespace procpool {
constexpr auto fields_of(std::type_identity<worker_event>) {
  using harness::field;
  using harness::written;
  using e = worker_event;
  return std::tuple{field{"t_ns", &e::t_ns},
                    field{"worker", &e::worker},
                    field{"slot", &e::slot},
                    field{"cause", &e::cause},
                    field{"pid", &e::pid},
                    field{"t_spawn_ns", &e::t_spawn_ns, written::unless_default},
                    field{"t_main_ns", &e::t_main_ns, written::unless_default},
                    field{"t_init_done_ns", &e::t_init_done_ns, written::unless_default}};
}
}  // namespace procpool

// The states, the exit kind and the role are written by name; they are the fields the table
// lacks. The role only when it is not worker: a worker's event reads the same as before roles
// existed, so older documents and their readers stay as they were.
void nlohmann::adl_serializer<procpool::worker_event>::to_json(json& j, const procpool::worker_event& e) {
  j = json::object();
  procpool::harness::write_fields(j, e);
  j["from"] = to_string(e.from);
  j["to"] = to_string(e.to);
  if (e.exit != procpool::exit_kind::none) j["exit_kind"] = to_string(e.exit);
  if (e.role != procpool::worker_role::worker) j["role"] = to_string(e.role);
}

// An unknown name reads as the default: pending, the state before anything happened; no exit;
// a worker (every event before roles existed was one).
void nlohmann::adl_serializer<procpool::worker_event>::from_json(const json& j, procpool::worker_event& e) {
  e = {};
  procpool::harness::read_fields(j, e);
  std::string from, to, exit, role;
  if (j.is_object()) {
    if (const auto it = j.find("from"); it != j.end()) procpool::harness::read_value(*it, from);
    if (const auto it = j.find("to"); it != j.end()) procpool::harness::read_value(*it, to);
    if (const auto it = j.find("exit_kind"); it != j.end()) procpool::harness::read_value(*it, exit);
    if (const auto it = j.find("role"); it != j.end()) procpool::harness::read_value(*it, role);
  }
  e.from = procpool::harness::parse_worker_state(from).value_or(procpool::worker_state::pending);
  e.to = procpool::harness::parse_worker_state(to).value_or(procpool::worker_state::pending);
  e.exit = procpool::harness::parse_exit_kind(exit).value_or(procpool::exit_kind::none);
  e.role = procpool::worker_role_from_string(role).value_or(procpool::worker_role::worker);
}
