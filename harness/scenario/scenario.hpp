// The scenario model: a TOML scenario file read into typed settings, checked against one
// key schema, overridden from the command line (--set), expanded into sweep cases and split
// into shards.
//
//   std::vector<std::string> sets = {"pool.size=8"};             // from --set
//   auto file = procpool::harness::load_scenario("scenarios/quickstart.toml", sets);
//   if (!file) { fmt::print(stderr, "{}\n", file.error().describe()); return 2; }
//   for (const auto& c : shard_cases(expand(*file), 0, 1)) run(c.id, c.scenario);
//
// The file format is a contract, documented in harness/scenario/README.md, whose key table is
// schema_markdown()'s output. Every key has a default: the member initialisers below are those
// defaults. Nothing here throws; errors are config_error values naming the file, line and key
// at fault.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <map>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <type_traits>
#include <utility>
#include <variant>
#include <vector>

#include <nlohmann/json.hpp>

#include "fake_worker/knob_table.hpp"
#include "procpool/pool_options.hpp"
#include "procpool/result.hpp"

namespace procpool::harness {

// ---- Enumerations, each spelt in scenario files as its enum_traits names (same order). ----

// subject_kind (subject.hpp) covers the in-process subjects; this adds `external`.
enum class subject_type { procpool, serial_manager, sequential_init, external };
enum class worker_type { fake, python, command };
// How the pool starts a worker: spawn a process each time, or fork it from a template that has
// run the preload once (pool/ZYGOTE.md).
enum class worker_start_mode { spawn, zygote };
enum class service_dist { fixed, uniform, exponential, lognormal };
enum class load_model { closed, open };
enum class load_start { cold, warm };
enum class arrival_process { constant, poisson };
enum class load_command { echo, sleep, burn };
// Who issues the requests: caller threads blocking in call(), or one generator thread through
// subject::submit, so that many outstanding requests cost no thread each.
enum class load_issue { threads, submit };
enum class crash_mode { exit, segv, kill };
enum class hang_mode { sleep, spin };

template <class E>
struct enum_traits;
template <>
struct enum_traits<subject_type> {
  static constexpr auto names = std::to_array<std::string_view>(
      {"procpool", "serial-manager", "sequential-init", "external"});
};
template <>
struct enum_traits<worker_type> {
  static constexpr auto names = std::to_array<std::string_view>({"fake", "python", "command"});
};
template <>
struct enum_traits<worker_start_mode> {
  static constexpr auto names = std::to_array<std::string_view>({"spawn", "zygote"});
};
template <>
struct enum_traits<service_dist> {
  static constexpr auto names = fake::service_dists;
};
template <>
struct enum_traits<prewarm_mode> {
  static constexpr auto names = std::to_array<std::string_view>({"none", "sequential", "parallel"});
};
template <>
struct enum_traits<load_model> {
  static constexpr auto names = std::to_array<std::string_view>({"closed", "open"});
};
template <>
struct enum_traits<load_start> {
  static constexpr auto names = std::to_array<std::string_view>({"cold", "warm"});
};
template <>
struct enum_traits<arrival_process> {
  static constexpr auto names = std::to_array<std::string_view>({"constant", "poisson"});
};
template <>
struct enum_traits<load_command> {
  static constexpr auto names = std::to_array<std::string_view>({"echo", "sleep", "burn"});
};
template <>
struct enum_traits<load_issue> {
  static constexpr auto names = std::to_array<std::string_view>({"threads", "submit"});
};
template <>
struct enum_traits<crash_mode> {
  static constexpr auto names = fake::crash_modes;
};
template <>
struct enum_traits<hang_mode> {
  static constexpr auto names = fake::hang_modes;
};

template <class E>
concept named_enum = std::is_enum_v<E> && requires { enum_traits<E>::names; };

template <named_enum E>
constexpr std::string_view to_string(E value) noexcept {
  return enum_traits<E>::names[static_cast<std::size_t>(value)];
}

template <named_enum E>
constexpr std::optional<E> parse_enum(std::string_view name) noexcept {
  const auto& names = enum_traits<E>::names;
  for (std::size_t i = 0; i < names.size(); ++i) {
    if (names[i] == name) return static_cast<E>(i);
  }
  return std::nullopt;
}

// ---- The settings, one aggregate per TOML table. Meanings: harness/scenario/README.md. ----

struct subject_config {
  subject_type kind = subject_type::procpool;
  std::vector<std::string> command = {};  // external: the driver's command line
};

struct service_config {
  service_dist dist = service_dist::fixed;
  double ms = 1.0;
  double min_ms = 0;
  double max_ms = 0;
  double sigma = 0.5;
  bool cpu = false;
};

struct worker_config {
  worker_type kind = worker_type::fake;
  worker_start_mode start_mode = worker_start_mode::spawn;
  double startup_ms = 0;
  double init_ms = 0;
  service_config service;
  std::vector<std::string> preload;  // python
  std::vector<std::string> command;  // command
};

// Each key sets the pool_options member its row of the key table names (pool_options_for).
struct pool_config {
  std::size_t size = 4;
  prewarm_mode prewarm = prewarm_mode::parallel;
  std::size_t max_concurrent_starts = 0;
  std::int64_t start_timeout_ms = 10'000;
  std::int64_t init_timeout_ms = 10'000;
  std::int64_t request_timeout_ms = 1'000;
  std::int64_t checkout_timeout_ms = 1'000;
  std::size_t max_queue = 0;
  std::uint64_t recycle_after_requests = 0;
  std::uint64_t recycle_jitter = 0;
  std::int64_t recycle_after_age_ms = 0;
  std::uint64_t recycle_above_rss_kib = 0;
  std::int64_t idle_ping_interval_ms = 0;
  std::int64_t ping_timeout_ms = 1'000;
  std::int64_t restart_backoff_ms = 10;
  std::int64_t restart_backoff_max_ms = 2'000;
  std::size_t crash_loop_failures = 5;
  std::int64_t crash_loop_window_ms = 10'000;
  std::size_t max_frame_bytes = std::size_t{16} << 20;
  std::size_t pipeline_depth = 1;
};

struct load_config {
  load_model model = load_model::closed;
  std::size_t concurrency = 4;
  std::uint64_t requests = 1'000;
  std::int64_t duration_ms = 0;  // 0: run `requests` requests
  load_start start = load_start::cold;
  double rate = 100;  // open: arrivals per second
  arrival_process arrivals = arrival_process::poisson;
  double think_ms = 0;
  load_command command = load_command::echo;
  load_issue issue = load_issue::threads;
  std::size_t in_flight = 256;  // submit: outstanding requests (closed) or their cap (open)
};

struct environment_config {
  std::size_t cpu_hogs = 0;
  std::size_t cpus = 0;  // 0: all
};

// The worker's fault knobs ([faults]), with the knob table's names and defaults.
struct fault_config {
  std::uint64_t crash_after = fake::knob("crash_after").default_as<std::uint64_t>();
  double crash_probability = fake::knob("crash_probability").default_as<double>();
  harness::crash_mode crash_mode = fake::knob("crash_mode").default_as<harness::crash_mode>();
  int crash_exit_code = fake::knob("crash_exit_code").default_as<int>();
  double hang_probability = fake::knob("hang_probability").default_as<double>();
  harness::hang_mode hang_mode = fake::knob("hang_mode").default_as<harness::hang_mode>();
  double slow_probability = fake::knob("slow_probability").default_as<double>();
  double slow_ms = fake::knob("slow_ms").default_as<double>();
  double garbage_probability = fake::knob("garbage_probability").default_as<double>();
  double truncated_probability = fake::knob("truncated_probability").default_as<double>();
  double oversize_probability = fake::knob("oversize_probability").default_as<double>();
  double wrong_id_probability = fake::knob("wrong_id_probability").default_as<double>();
  bool exit_during_init = fake::knob("exit_during_init").default_as<bool>();
  bool never_ready = fake::knob("never_ready").default_as<bool>();
  double stderr_flood_mb = fake::knob("stderr_flood_mb").default_as<double>();
  double memory_growth_kb = fake::knob("memory_growth_kb").default_as<double>();
  bool ignore_sigterm = fake::knob("ignore_sigterm").default_as<bool>();
  bool grandchild = fake::knob("grandchild").default_as<bool>();
};

struct assert_config {
  std::optional<double> max_timeout_rate;
  std::optional<double> p99_ms;
  std::vector<std::string> forbid_verdicts;  // glob patterns: "architectural.*"
};

struct sweep_axis {
  std::string key;  // dotted, e.g. "load.concurrency"
  std::vector<nlohmann::json> values;
};

struct scenario {
  std::string name = "scenario";
  std::string description;
  std::uint64_t repetitions = 1;
  std::uint64_t seed = 1;
  subject_config subject;
  worker_config worker;
  pool_config pool;
  load_config load;
  environment_config environment;
  fault_config faults;
  std::vector<sweep_axis> sweep;  // in file order; the first axis varies slowest
  assert_config assertions;       // the [assert] table
};

// ---- Errors ----

struct config_error {
  std::string file;  // the scenario's path or source name, "--set" or "--shard"
  int line = 0;      // 1-based; 0 when no line applies
  std::string key;   // dotted; empty for TOML syntax errors
  std::string message;

  // "scenarios/x.toml:12: pool.size: must be at least 1 (got 0)"; parts without a value
  // (line 0, empty key) are left out.
  std::string describe() const;
};

// A value or a config_error; the same shape as procpool::result.
template <class T>
using config_result = result<T, config_error>;

// ---- Loading and overriding ----

struct key_origin {
  std::string file;
  int line = 0;
};

struct scenario_file {
  std::string source;  // the path or source name errors are reported against
  harness::scenario scenario;
  // Where each key, and each sweep axis as "sweep.<key>", was last set: errors found after
  // parsing (cross-key rules, overrides) point there.
  std::map<std::string, key_origin, std::less<>> origins;
};

// Parses a scenario, applies each "KEY=VALUE" override in order, then runs check_scenario.
config_result<scenario_file> parse_scenario(std::string_view text, std::string_view source_name,
                                            std::span<const std::string> overrides = {});
config_result<scenario_file> load_scenario(const std::filesystem::path& path,
                                           std::span<const std::string> overrides = {});

// One `--set KEY=VALUE`. VALUE is a TOML value (8, 0.5, true, "x", ["json"]); string keys
// also take a bare word (load.model=open). Setting a swept key removes its sweep axis;
// `sweep.KEY=[...]` adds or replaces an axis. Checks the key and value only: call
// check_scenario after the last override, since rules across keys may hold only then.
std::optional<config_error> apply_override(scenario_file& file, std::string_view assignment);

// The rules across keys (e.g. worker.service.max_ms >= min_ms), in every sweep combination.
std::optional<config_error> check_scenario(const scenario_file& file);

// ---- Cases and shards ----

struct scenario_case {
  std::string id;  // "load.concurrency=4,worker.startup_ms=500#r1"; "r0" with no sweep
  std::vector<std::pair<std::string, nlohmann::json>> params;  // swept values, axis order
  std::size_t repetition = 0;
  harness::scenario scenario;  // with this case's params applied, and no sweep
};

// Every combination of the sweep axes (the first axis varies slowest), for repetition 0,
// then all again for repetition 1, and so on: drift on the machine spreads over every
// combination instead of landing on a few. REQUIRES: `file` passed check_scenario.
std::vector<scenario_case> expand(const scenario_file& file);

struct shard {
  std::size_t index = 0;  // from 0
  std::size_t count = 1;
};

// "I/N" with 0 <= I < N.
config_result<shard> parse_shard(std::string_view text);

// The cases whose position in `cases` is index modulo count: shards are disjoint, their union
// is `cases`, and the split depends only on the case list. REQUIRES: index < count.
std::vector<scenario_case> shard_cases(const std::vector<scenario_case>& cases,
                                       std::size_t index, std::size_t count);

// ---- Output ----

// Every key with its value (defaults filled in) as nested objects by dotted key ("assert"
// for the assertions, null for an unset optional), and "sweep" as [{"key", "values"}].
nlohmann::json scenario_to_json(const scenario& s);

struct key_doc {
  std::string key;
  std::string type;     // "integer", "number", "boolean", "string", "array of strings", ...
  std::string allowed;  // "at least 1", "`closed` | `open`", ...
  nlohmann::json default_value;
  std::string meaning;
  bool sweepable = true;
};
std::vector<key_doc> scenario_schema();

// The key table of harness/scenario/README.md: a Markdown table, header included.
std::string schema_markdown();

// ---- Mapping onto the workers and the pool ----

// The init args for the fake and Python workers, keyed by their knob names: init_ms, the
// service_* knobs and seed always; each [faults] key only when it differs from its default.
nlohmann::json worker_init_args(const scenario& s);

// Command-line flags for the worker: --startup-ms (fake; it happens before the handshake, so
// it cannot be an init arg) and --preload (python).
std::vector<std::string> worker_extra_flags(const scenario& s);

// The [pool] settings, seed and init args as pool_options; `worker` and `observer` are left
// for the caller.
pool_options pool_options_for(const scenario& s);

// Glob match of an [assert] forbid_verdicts pattern ('*' any run, '?' one character).
bool verdict_matches(std::string_view pattern, std::string_view verdict) noexcept;

}  // namespace procpool::harness
