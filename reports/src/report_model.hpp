// What the report writers read from a results document (harness/results/README.md), gathered
// once: per-case figures, verdict counts, the per-case assertion checks and the conclusion.
// Every field is optional here: documents written before the diagnosis existed lack verdicts,
// findings and analyses, and a case whose subject could not be created lacks most figures.
//
//   const auto doc = report_model::read_document(results);
//   for (const auto& c : doc.cases) fmt::print("{} {:.0f} req/s\n", c.id, c.throughput_rps);
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "run/records.hpp"

namespace procpool::harness::report_model {

using counts = std::map<std::string, std::uint64_t, std::less<>>;

// Null-safe lookups: nullptr / the fallback when `object` is not an object, lacks the key, or
// holds another type there.
const nlohmann::json* find(const nlohmann::json& object, std::string_view key);
double number(const nlohmann::json& object, std::string_view key, double fallback = 0);
std::string text(const nlohmann::json& object, std::string_view key, std::string fallback = {});
// A count or id: a non-negative whole number, 0 when missing, negative or not a number.
std::uint64_t whole(const nlohmann::json& object, std::string_view key);
// The object at `key`, or an empty object.
const nlohmann::json& object_at(const nlohmann::json& object, std::string_view key);
// {name: count} read from an object of numbers; anything else gives {}.
counts counts_of(const nlohmann::json* object);

struct latency {
  double p50 = 0, p90 = 0, p99 = 0, p999 = 0, max = 0, mean = 0;  // microseconds
};

struct case_row {
  harness::case_record record;  // the case as read, for timelines, findings and environment
  std::string id;
  std::uint64_t repetition = 0;
  nlohmann::json params = nlohmann::json::object();  // swept key -> value
  double throughput_rps = 0;
  double wall_ms = 0;
  report_model::latency latency;
  counts outcomes;
  std::uint64_t requests = 0;
  std::uint64_t timeouts = 0;  // checkout_timeout and request_timeout
  std::uint64_t failed = 0;    // every outcome but ok
  double timeout_rate = 0;
  counts verdicts;
  std::string top_verdict;  // the verdict with the highest count; empty when none
  std::optional<std::string> error;  // "type: message" when the subject could not be created
  bool interrupted = false;
};

struct run_verdict {
  std::string verdict;
  std::uint64_t count = 0;
  std::string evidence;  // from the analysis that found it, when it says
};

struct document {
  std::string name;
  std::string description;
  std::vector<std::string> swept_keys;  // in sweep order
  std::vector<case_row> cases;
  counts verdicts;  // run level: the cases' sums plus sweep-level verdicts
  std::vector<run_verdict> sweep_verdicts;  // found by sweep analyses, not in any case
  std::uint64_t requests = 0, timeouts = 0, failed = 0;
  std::uint64_t unexplained = 0;  // failed requests without a verdict
  std::string conclusion;  // the document's, or one composed from the counts
  bool partial = false;
  std::vector<std::string> warnings;  // the document's: e.g. shards merged from unlike hosts
};

// Reads the figures of every case, the run's verdicts and its conclusion from a results document.
document read_document(const nlohmann::json& results);

// The verdict with the highest count (ties: the first name); empty for no counts.
std::string top_of(const counts& verdicts);

// ---- Verdicts ----

// Lookups in the verdict table (scenario/verdicts.hpp), for the writers' convenience.
std::string_view family_of(std::string_view verdict) noexcept;
// One colour per family, a shade of it per verdict, so charts and legends agree.
std::string family_colour(std::string_view family);
std::string verdict_colour(std::string_view verdict);
// The verdict's one-line meaning; empty for names the table does not know.
std::string_view verdict_meaning(std::string_view verdict) noexcept;

// ---- The scenario's [assert] table against one case ----

struct case_check {
  std::string assertion;  // max_timeout_rate, p99_ms, forbid_verdicts
  bool held = true;
  std::string detail;     // the figures that decided, in a sentence
  std::vector<std::string> verdicts;  // forbid_verdicts: the forbidden verdicts found
};

std::vector<case_check> check_case(const nlohmann::json& assert_section, const case_row& c);

// The forbid_verdicts patterns a sweep-level verdict matches (empty when allowed).
std::vector<std::string> forbidding_patterns(const nlohmann::json& assert_section,
                                             std::string_view verdict);

// The verdict family a case's failures belong to: one family name when all its verdicts share
// it, "mixed" when they do not, "unknown" when the case has no verdicts.
std::string failure_family(const case_row& c);

// ---- Sweeps ----

// The swept key throughput and latency are drawn against: load.concurrency, else pool.size,
// else any swept key whose values are all numbers; nullopt when there is none.
std::optional<std::string> scaling_axis(const document& doc);

// "worker.startup_ms=100, worker.init_ms=0", keys in `order` (the sweep's) first; "all cases"
// for an empty group.
std::string group_label(const nlohmann::json& group, const std::vector<std::string>& order);

struct series_point {
  double x = 0;
  std::vector<const case_row*> cases;  // every repetition at this x
};
struct series {
  nlohmann::json group = nlohmann::json::object();  // the other swept keys, held fixed
  std::vector<series_point> points;                 // by x ascending
};

// The cases (without errors) split by the values of every swept key but `axis`, each series
// ordered by the case's value of `axis`.
std::vector<series> series_along(const document& doc, const std::string& axis);

}  // namespace procpool::harness::report_model
