#include "run/records.hpp"

#include <algorithm>
#include <array>

namespace procpool::harness {
namespace {

using json = nlohmann::json;

template <typename T>
void read(const json& j, std::string_view key, T& out) {
  if (const auto it = j.find(key); it != j.end() && !it->is_null()) out = it->get<T>();
}

template <typename T>
void read(const json& j, std::string_view key, std::optional<T>& out) {
  if (const auto it = j.find(key); it != j.end() && !it->is_null()) out = it->get<T>();
}

// The keys case_record knows; every other key of a case goes to `extra`.
constexpr std::array<std::string_view, 16> case_keys = {
    "id",          "index",       "params",       "repetition",  "outcomes",    "latency_us",
    "throughput_rps", "wall_ms",  "load_wall_ms", "late_starts", "interrupted", "environment",
    "timelines",   "verdicts",    "findings",     "error"};

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

bool is_timeout_outcome(std::string_view outcome) noexcept {
  return outcome == "checkout_timeout" || outcome == "request_timeout";
}

timeline_record timeline_record::of(const request_timeline& t) {
  timeline_record r;
  static_cast<request_timing&>(r) = t;
  r.request_id = t.request_id;
  r.worker = t.worker;
  if (t.outcome) r.outcome = to_string(*t.outcome);
  return r;
}

std::uint64_t case_record::requests() const noexcept {
  std::uint64_t n = 0;
  for (const auto& [name, count] : outcomes) n += count;
  return n;
}

std::uint64_t case_record::failed() const noexcept {
  const auto ok = outcomes.find("ok");
  return requests() - (ok == outcomes.end() ? 0 : ok->second);
}

std::uint64_t case_record::timeouts() const noexcept {
  std::uint64_t n = 0;
  for (const auto& [name, count] : outcomes) {
    if (is_timeout_outcome(name)) n += count;
  }
  return n;
}

case_timelines timelines_of(const json& c) {
  case_timelines t;
  if (c.is_object()) read(c, "timelines", t);
  return t;
}

void to_json(json& j, const timeline_record& t) {
  j = {{"request_id", t.request_id},       {"worker", t.worker},
       {"t_submit", t.t_submit},           {"t_checkout", t.t_checkout},
       {"t_sent", t.t_sent},               {"t_worker_recv", t.t_worker_recv},
       {"t_worker_done", t.t_worker_done}, {"t_reply", t.t_reply},
       {"outcome", t.outcome}};
  if (t.verdict) j["verdict"] = *t.verdict;
  if (t.evidence) j["evidence"] = *t.evidence;
}

void from_json(const json& j, timeline_record& t) {
  read(j, "request_id", t.request_id);
  read(j, "worker", t.worker);
  read(j, "t_submit", t.t_submit);
  read(j, "t_checkout", t.t_checkout);
  read(j, "t_sent", t.t_sent);
  read(j, "t_worker_recv", t.t_worker_recv);
  read(j, "t_worker_done", t.t_worker_done);
  read(j, "t_reply", t.t_reply);
  read(j, "outcome", t.outcome);
  read(j, "verdict", t.verdict);
  read(j, "evidence", t.evidence);
}

void to_json(json& j, const case_timelines& t) {
  j = {{"requests_failed", t.requests_failed},
       {"requests_failed_dropped", t.requests_failed_dropped},
       {"requests_sampled", t.requests_sampled},
       {"workers", t.workers},
       {"worker_events_dropped", t.worker_events_dropped}};
}

void from_json(const json& j, case_timelines& t) {
  read(j, "requests_failed", t.requests_failed);
  read(j, "requests_failed_dropped", t.requests_failed_dropped);
  read(j, "requests_sampled", t.requests_sampled);
  read(j, "workers", t.workers);
  read(j, "worker_events_dropped", t.worker_events_dropped);
}

void to_json(json& j, const latency_record& l) {
  j = {{"p50", l.p50}, {"p90", l.p90}, {"p99", l.p99},     {"p999", l.p999},
       {"max", l.max}, {"mean", l.mean}, {"count", l.count}};
}

void from_json(const json& j, latency_record& l) {
  read(j, "p50", l.p50);
  read(j, "p90", l.p90);
  read(j, "p99", l.p99);
  read(j, "p999", l.p999);
  read(j, "max", l.max);
  read(j, "mean", l.mean);
  read(j, "count", l.count);
}

void to_json(json& j, const finding_record& f) {
  j = {{"verdict", f.verdict},
       {"count", f.count},
       {"rule", f.rule},
       {"summary", f.summary},
       {"evidence", f.evidence}};
}

void from_json(const json& j, finding_record& f) {
  read(j, "verdict", f.verdict);
  read(j, "count", f.count);
  read(j, "rule", f.rule);
  read(j, "summary", f.summary);
  read(j, "evidence", f.evidence);
}

void to_json(json& j, const case_record& c) {
  j = c.extra.is_object() ? c.extra : json::object();
  j["id"] = c.id;
  j["index"] = c.index;
  j["params"] = c.params;
  j["repetition"] = c.repetition;
  j["outcomes"] = c.outcomes;
  j["latency_us"] = c.latency_us;
  // A case whose subject could not be created has whole zeros here, as it always had.
  j["throughput_rps"] = c.error ? json(0) : json(c.throughput_rps);
  j["wall_ms"] = c.error ? json(0) : json(c.wall_ms);
  if (c.load_wall_ms) j["load_wall_ms"] = *c.load_wall_ms;
  if (c.late_starts) j["late_starts"] = *c.late_starts;
  if (c.interrupted) j["interrupted"] = true;
  j["environment"] = c.environment;
  if (c.timelines) j["timelines"] = *c.timelines;
  j["verdicts"] = c.verdicts;
  if (c.findings) j["findings"] = *c.findings;
  if (c.error) j["error"] = {{"type", c.error->type}, {"message", c.error->message}};
}

void from_json(const json& j, case_record& c) {
  read(j, "id", c.id);
  read(j, "index", c.index);
  read(j, "params", c.params);
  read(j, "repetition", c.repetition);
  read(j, "outcomes", c.outcomes);
  read(j, "latency_us", c.latency_us);
  read(j, "throughput_rps", c.throughput_rps);
  read(j, "wall_ms", c.wall_ms);
  read(j, "load_wall_ms", c.load_wall_ms);
  read(j, "late_starts", c.late_starts);
  read(j, "interrupted", c.interrupted);
  read(j, "environment", c.environment);
  read(j, "timelines", c.timelines);
  read(j, "verdicts", c.verdicts);
  read(j, "findings", c.findings);
  if (const auto it = j.find("error"); it != j.end() && it->is_object()) {
    c.error = case_error{it->value("type", ""), it->value("message", "")};
  }
  c.extra = json::object();
  for (const auto& [key, value] : j.items()) {
    if (std::find(case_keys.begin(), case_keys.end(), key) == case_keys.end()) c.extra[key] = value;
  }
}

}  // namespace procpool::harness

void nlohmann::adl_serializer<procpool::worker_event>::to_json(json& j, const procpool::worker_event& e) {
  j = {{"t_ns", e.t_ns},
       {"worker", e.worker},
       {"slot", e.slot},
       {"from", to_string(e.from)},
       {"to", to_string(e.to)},
       {"cause", e.cause},
       {"pid", e.pid}};
  if (e.t_spawn_ns) j["t_spawn_ns"] = e.t_spawn_ns;
  if (e.t_main_ns) j["t_main_ns"] = e.t_main_ns;
  if (e.t_init_done_ns) j["t_init_done_ns"] = e.t_init_done_ns;
  if (e.exit != procpool::exit_kind::none) j["exit_kind"] = to_string(e.exit);
}

void nlohmann::adl_serializer<procpool::worker_event>::from_json(const json& j, procpool::worker_event& e) {
  e.t_ns = j.value("t_ns", std::int64_t{0});
  e.worker = j.value("worker", std::uint64_t{0});
  e.slot = j.value("slot", std::size_t{0});
  // An unknown state reads as pending, the state before anything happened.
  e.from = procpool::harness::parse_worker_state(j.value("from", "")).value_or(procpool::worker_state::pending);
  e.to = procpool::harness::parse_worker_state(j.value("to", "")).value_or(procpool::worker_state::pending);
  e.cause = j.value("cause", "");
  e.pid = j.value("pid", std::int64_t{0});
  e.t_spawn_ns = j.value("t_spawn_ns", std::int64_t{0});
  e.t_main_ns = j.value("t_main_ns", std::int64_t{0});
  e.t_init_done_ns = j.value("t_init_done_ns", std::int64_t{0});
  e.exit = procpool::harness::parse_exit_kind(j.value("exit_kind", "none")).value_or(procpool::exit_kind::none);
}
