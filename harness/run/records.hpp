// The typed records of a results.json case (schema in reports/README.md): what the runner
// writes and what the diagnosis, the reports, compare and plan read back, with nlohmann
// to_json/from_json so that a case passes through them unchanged, byte for byte.
//
//   case_record r = ...;                     // run_case fills one
//   nlohmann::json j = r;                    // the results.json case
//   const auto back = j.get<case_record>();  // json(back) == j
//
// They live with the runner, the stage that writes them, because every later stage (results,
// diagnosis, analysis, reports) may include its headers and none of the earlier ones.
// Readers are tolerant: a key missing from an old or hand-written document reads as its
// default. Keys this version does not know are kept in `extra` and written back.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "procpool/pool_events.hpp"

namespace procpool::harness {

// An outcome name -> count; verdict name -> count.
using count_map = std::map<std::string, std::uint64_t, std::less<>>;

// One request as recorded: its steps (CLOCK_MONOTONIC ns, 0 when a step did not happen),
// its outcome ("ok" or an error type), and for a failed request the diagnosis's verdict.
struct timeline_record : request_timing {
  std::uint64_t request_id = 0;
  std::uint64_t worker = 0;  // 0 when no worker was checked out
  std::string outcome = "ok";
  // As in request_timeline: requests in flight on the worker when this one was written, and
  // for queued_behind_fault the request whose failure killed the worker and its outcome name.
  // A document from before pipelining has none of them and reads as depth 1.
  std::uint32_t ahead = 0;
  std::uint64_t caused_by = 0;
  std::optional<std::string> cause;
  std::optional<std::string> verdict;      // set by the diagnosis
  std::optional<nlohmann::json> evidence;  // the figures its rule decided on

  static timeline_record of(const request_timeline& t);
  bool ok() const noexcept { return outcome == "ok"; }
};

// A case's timelines: every failed request up to a cap, a sample of the successes, and
// every worker event (procpool::worker_event, its JSON defined below; a zygote template's
// events are among them, told apart by their role). In memory a case
// holds every event; results.json keeps the first max_results_worker_events of them and
// counts the rest in worker_events_dropped (keep_results_sample).
struct case_timelines {
  std::vector<timeline_record> requests_failed;
  std::uint64_t requests_failed_dropped = 0;
  std::vector<timeline_record> requests_sampled;
  std::vector<worker_event> workers;
  std::uint64_t worker_events_dropped = 0;
};

// Request latency in microseconds. The runner measures whole microseconds; a document from
// elsewhere may hold fractions, and they are kept.
struct latency_record {
  double p50 = 0, p90 = 0, p99 = 0, p999 = 0, max = 0;
  double mean = 0;
  std::uint64_t count = 0;
};

// One per verdict of a case, most frequent first.
struct finding_record {
  std::string verdict;
  std::uint64_t count = 0;
  std::string rule;     // the rule that decided, in words
  std::string summary;  // one sentence
  nlohmann::json evidence = nlohmann::json::object();  // of the request that waited longest
};

// Failed requests the diagnosis could not judge, grouped by what was missing to decide.
struct unjudged_record {
  std::uint64_t count = 0;
  std::string missing;  // the evidence the record lacks, in words
};

// A mean and a maximum over a case's workers.
struct spread_record {
  double mean = 0;
  double max = 0;
};

// The live workers' memory, sampled just before the subject was stopped (smaps_rollup.hpp):
// USS (pages a worker holds alone) against PSS (its share of what it shares) is what a
// zygote's copy-on-write sharing shows in.
struct memory_record {
  std::size_t workers = 0;  // the workers whose figures could be read
  spread_record uss_kib;
  spread_record pss_kib;
};

struct case_error {
  std::string type;
  std::string message;
};

struct case_record {
  std::string id;
  std::size_t index = 0;  // position in the unsharded expansion
  nlohmann::json params = nlohmann::json::object();  // swept key -> value
  std::size_t repetition = 0;
  count_map outcomes = {{"ok", 0}};
  latency_record latency_us;
  double throughput_rps = 0;
  double wall_ms = 0;
  std::optional<double> load_wall_ms;        // absent when the subject could not be created
  std::optional<std::uint64_t> late_starts;  // likewise
  // From the subject's creation until pool.size workers were first ready at once (written as
  // null when that never happened: worker_states.hpp).
  std::optional<double> ready_ms;
  std::optional<memory_record> memory;  // absent when no worker's memory could be read
  bool interrupted = false;
  nlohmann::json environment = nlohmann::json::object();  // environment_json's readings
  std::optional<case_timelines> timelines;
  count_map verdicts;                                // set by the diagnosis
  std::optional<std::vector<finding_record>> findings;  // likewise
  std::optional<std::vector<unjudged_record>> unjudged;  // likewise; absent when none
  std::optional<case_error> error;  // the subject could not be created
  nlohmann::json extra = nlohmann::json::object();  // keys not known here, kept as they were

  // Every outcome; the failures among them (is_failure_outcome); the timeouts among those
  // (is_timeout_outcome).
  std::uint64_t requests() const noexcept;
  std::uint64_t failed() const noexcept;
  std::uint64_t timeouts() const noexcept;
};

// The worker events a results.json case keeps; the diagnosis has seen them all by then.
inline constexpr std::size_t max_results_worker_events = 20'000;

// Trims a diagnosed case's worker events to max_results_worker_events, in time order,
// counting what it left out in worker_events_dropped.
void keep_results_sample(case_timelines& t);

// Parses what to_string(worker_state) / to_string(exit_kind) wrote; nullopt for other text.
std::optional<worker_state> parse_worker_state(std::string_view name) noexcept;
std::optional<exit_kind> parse_exit_kind(std::string_view name) noexcept;

// Outcomes that count as failures: every one but ok and cancelled (the caller took the
// request back before a worker had it; nothing went wrong).
bool is_failure_outcome(std::string_view outcome) noexcept;
// Outcomes that count as timeouts in rates and assertions. queued_behind_fault is not one:
// its own deadline did not pass, the worker ahead of it failed (its cause says how).
bool is_timeout_outcome(std::string_view outcome) noexcept;

void to_json(nlohmann::json& j, const timeline_record& t);
void from_json(const nlohmann::json& j, timeline_record& t);
void to_json(nlohmann::json& j, const case_timelines& t);
void from_json(const nlohmann::json& j, case_timelines& t);
void to_json(nlohmann::json& j, const latency_record& l);
void from_json(const nlohmann::json& j, latency_record& l);
void to_json(nlohmann::json& j, const finding_record& f);
void from_json(const nlohmann::json& j, finding_record& f);
void to_json(nlohmann::json& j, const unjudged_record& u);
void from_json(const nlohmann::json& j, unjudged_record& u);
void to_json(nlohmann::json& j, const spread_record& s);
void from_json(const nlohmann::json& j, spread_record& s);
void to_json(nlohmann::json& j, const memory_record& m);
void from_json(const nlohmann::json& j, memory_record& m);
void to_json(nlohmann::json& j, const case_error& e);
void from_json(const nlohmann::json& j, case_error& e);
void to_json(nlohmann::json& j, const case_record& c);
void from_json(const nlohmann::json& j, case_record& c);

}  // namespace procpool::harness

// procpool::worker_event is the pool's own type: its JSON form is defined here, for the
// harness, rather than in the pool's namespace.
template <>
struct nlohmann::adl_serializer<procpool::worker_event> {
  static void to_json(nlohmann::json& j, const procpool::worker_event& e);
  static void from_json(const nlohmann::json& j, procpool::worker_event& e);
};
