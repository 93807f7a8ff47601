// The scenario schema and everything it drives: parsing, checking, --set, sweeps, shards,
// JSON and the documentation table. Each key is one row of key_table(); the code below is
// generic over the rows, so a new key is a new member and a new row, nothing else.
#include "scenario/scenario.hpp"

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <cmath>
#include <cstring>
#include <fstream>
#include <limits>
#include <sstream>

#include <fmt/format.h>
#include <fmt/ranges.h>
#include <toml++/toml.h>

#include "scenario/text_checks.hpp"
#include "scenario/verdicts.hpp"

namespace procpool::harness {
namespace {

using nlohmann::json;

constexpr double inf = std::numeric_limits<double>::infinity();
// Guards against a sweep that would take forever to expand, let alone run.
constexpr std::size_t max_cases = 1'000'000;

// The verdict names, so that a mistyped forbid_verdicts pattern is caught before a run
// instead of silently matching nothing.
constexpr auto known_verdicts = [] {
  std::array<std::string_view, verdict_table.size()> names{};
  for (std::size_t i = 0; i < names.size(); ++i) names[i] = verdict_table[i].name;
  return names;
}();

enum class value_type { integer, number, optional_number, boolean, string, choice, string_list };

struct limits {
  double min = -inf;
  double max = inf;
  bool above_min = false;  // min itself is not allowed
  bool sweepable = true;
  std::optional<std::string> (*rule)(const json&) = nullptr;  // beyond type and range
  std::string_view allowed = {};  // the docs' "allowed" text when `rule` narrows it
};

std::optional<std::string> check_verdict_patterns(const json& patterns);

constexpr limits non_negative{.min = 0};
constexpr limits probability{.min = 0, .max = 1};
constexpr limits at_least_one{.min = 1};
constexpr limits run_level{.sweepable = false};

struct key_spec {
  std::string_view key;
  std::string_view meaning;
  value_type type;
  limits range;
  std::span<const std::string_view> choices;
  json (*get)(const scenario&);
  void (*set)(scenario&, const json&);  // REQUIRES: check_value accepted the value
  const fake::knob_info* knob = nullptr;  // the worker knob the key feeds, if any
  void (*to_options)(const scenario&, pool_options&) = nullptr;  // the pool option it sets
};

template <auto... path, class S>
auto& member(S& s) {
  return (s .* ... .* path);
}

template <class T>
constexpr value_type type_of() {
  if constexpr (std::is_same_v<T, bool>) {
    return value_type::boolean;
  } else if constexpr (named_enum<T>) {
    return value_type::choice;
  } else if constexpr (std::is_integral_v<T>) {
    return value_type::integer;
  } else if constexpr (std::is_floating_point_v<T>) {
    return value_type::number;
  } else if constexpr (std::is_same_v<T, std::optional<double>>) {
    return value_type::optional_number;
  } else if constexpr (std::is_same_v<T, std::string>) {
    return value_type::string;
  } else {
    static_assert(std::is_same_v<T, std::vector<std::string>>, "no value_type for this member");
    return value_type::string_list;
  }
}

template <class T>
json to_json_value(const T& v) {
  if constexpr (named_enum<T>) {
    return std::string(to_string(v));
  } else if constexpr (std::is_same_v<T, std::optional<double>>) {
    return v ? json(*v) : json();
  } else {
    return json(v);
  }
}

template <class T>
void from_json_value(const json& j, T& v) {
  if constexpr (named_enum<T>) {
    v = *parse_enum<T>(j.get<std::string>());
  } else if constexpr (std::is_same_v<T, std::optional<double>>) {
    v = j.get<double>();
  } else {
    v = j.get<T>();
  }
}

// One row of the schema for the member at `path`; its type and choices follow the member's.
template <auto... path>
key_spec field(std::string_view key, std::string_view meaning, limits range = {}) {
  using T = std::remove_cvref_t<decltype(member<path...>(std::declval<scenario&>()))>;
  if constexpr (std::is_integral_v<T> && !std::is_same_v<T, bool>) {
    range.min = std::max(range.min, static_cast<double>(std::numeric_limits<T>::min()));
    if constexpr (sizeof(T) < sizeof(std::int64_t)) {
      range.max = std::min(range.max, static_cast<double>(std::numeric_limits<T>::max()));
    }
  }
  std::span<const std::string_view> choices;
  if constexpr (named_enum<T>) choices = enum_traits<T>::names;
  return key_spec{key,
                  meaning,
                  type_of<T>(),
                  range,
                  choices,
                  [](const scenario& s) { return to_json_value(member<path...>(s)); },
                  [](scenario& s, const json& v) { from_json_value(v, member<path...>(s)); },
                  nullptr,
                  nullptr};
}

// A row for a key that feeds a worker knob: its range, and its meaning unless the scenario
// says more, are the knob table's.
template <auto... path>
key_spec knob_field(std::string_view key, const fake::knob_info& knob,
                    std::string_view meaning = {}) {
  limits range;
  if (knob.type != fake::knob_type::boolean && knob.type != fake::knob_type::choice) {
    range.min = knob.min;
    range.max = knob.max;
  }
  key_spec spec = field<path...>(key, meaning.empty() ? knob.help : meaning, range);
  spec.knob = &knob;
  return spec;
}

// A [pool] key is the pool option of the same meaning, in milliseconds where the option is a
// duration.
template <class Option, class Value>
void set_option(Option& option, const Value& value) {
  if constexpr (std::is_same_v<Option, std::chrono::milliseconds>) {
    option = std::chrono::milliseconds(value);
  } else {
    option = value;
  }
}

template <auto option, auto... path>
key_spec pool_field(std::string_view key, std::string_view meaning, limits range = {}) {
  key_spec spec = field<path...>(key, meaning, range);
  spec.to_options = [](const scenario& s, pool_options& o) {
    set_option(o.*option, member<path...>(s));
  };
  return spec;
}

using O = pool_options;
using S = scenario;
using W = worker_config;
using SV = service_config;
using P = pool_config;
using L = load_config;
using F = fault_config;

// Long on purpose: one row per scenario key, read as a table; split up, the keys would no
// longer be seen together in one place.
const std::vector<key_spec>& key_table() {
  static const std::vector<key_spec> table = {
      field<&S::name>("name", "names the run: report titles and the default --out directory",
                      run_level),
      field<&S::description>("description", "the question the experiment answers", run_level),
      field<&S::repetitions>("repetitions", "runs of each sweep combination",
                             {.min = 1, .sweepable = false}),
      knob_field<&S::seed>("seed", fake::knob("seed"),
                           "seed for the workers' service times and fault draws and the pool's "
                           "recycling jitter; each worker mixes in its own id"),

      field<&S::subject, &subject_config::kind>(
          "subject.kind",
          "the pool under test: procpool, a reference pool with a known flaw (serial-manager: "
          "every request through one manager thread; sequential-init: workers started one at "
          "a time), or an external pool driven over stdio"),
      field<&S::subject, &subject_config::command>(
          "subject.command", "external: the driver's command line (required for external)"),

      field<&S::worker, &W::kind>(
          "worker.kind",
          "the worker program: the C++ fake worker, the Python SDK's example worker, or "
          "worker.command"),
      field<&S::worker, &W::start_mode>(
          "worker.start_mode",
          "how the pool starts a worker: spawn a process each time, or fork it from a template "
          "that ran the preload once (zygote; subject.kind = \"procpool\" only)"),
      field<&S::worker, &W::startup_ms>(
          "worker.startup_ms",
          "injected start-up latency (ms): delay before the worker reaches its main loop "
          "(fake and python)",
          non_negative),
      knob_field<&S::worker, &W::init_ms>(
          "worker.init_ms", fake::knob("init_ms"),
          "injected init overhead (ms): delay inside the init handshake"),
      knob_field<&S::worker, &W::service, &SV::dist>("worker.service.dist",
                                                     fake::knob("service_dist"),
                                                     "distribution of echo's service time"),
      knob_field<&S::worker, &W::service, &SV::ms>(
          "worker.service.ms", fake::knob("service_ms"),
          "fixed: the service time; exponential: its mean; lognormal: its median (ms); also "
          "the ms of sleep and burn requests"),
      knob_field<&S::worker, &W::service, &SV::min_ms>(
          "worker.service.min_ms", fake::knob("service_min_ms"), "uniform: lower bound (ms)"),
      knob_field<&S::worker, &W::service, &SV::max_ms>(
          "worker.service.max_ms", fake::knob("service_max_ms"),
          "uniform: upper bound (ms); at least min_ms"),
      knob_field<&S::worker, &W::service, &SV::sigma>(
          "worker.service.sigma", fake::knob("service_sigma"),
          "lognormal: sigma of the underlying normal"),
      knob_field<&S::worker, &W::service, &SV::cpu>(
          "worker.service.cpu", fake::knob("service_cpu"),
          "burn CPU for the service time instead of sleeping"),
      field<&S::worker, &W::preload>(
          "worker.preload",
          "python: modules imported inside the init handshake (counted as init overhead)"),
      field<&S::worker, &W::command>(
          "worker.command",
          "command: the command line of a program that speaks the protocol (required for "
          "command)"),

      pool_field<&O::size, &S::pool, &P::size>(
          "pool.size", "workers in the pool", at_least_one),
      pool_field<&O::prewarm, &S::pool, &P::prewarm>(
          "pool.prewarm",
          "start workers on demand (none), at creation one at a time (sequential), or at "
          "creation up to max_concurrent_starts at once (parallel)"),
      pool_field<&O::max_concurrent_starts, &S::pool, &P::max_concurrent_starts>(
          "pool.max_concurrent_starts", "cap on workers starting at once; 0 = the number of cores"),
      pool_field<&O::start_timeout, &S::pool, &P::start_timeout_ms>(
          "pool.start_timeout_ms",
          "time allowed for a worker's start; with init_timeout_ms it forms one deadline from "
          "spawn to init reply",
          at_least_one),
      pool_field<&O::init_timeout, &S::pool, &P::init_timeout_ms>(
          "pool.init_timeout_ms",
          "time allowed for the init handshake", non_negative),
      pool_field<&O::request_timeout, &S::pool, &P::request_timeout_ms>(
          "pool.request_timeout_ms",
          "deadline of each request; on expiry the worker is killed and replaced", at_least_one),
      pool_field<&O::checkout_timeout, &S::pool, &P::checkout_timeout_ms>(
          "pool.checkout_timeout_ms",
          "longest wait for a free worker", non_negative),
      pool_field<&O::max_queue, &S::pool, &P::max_queue>(
          "pool.max_queue",
          "callers allowed to wait for a worker at once (one more is rejected with "
          "queue_full); 0 = unbounded"),
      pool_field<&O::recycle_after_requests, &S::pool, &P::recycle_after_requests>(
          "pool.recycle_after_requests", "replace a worker after this many requests; 0 = never"),
      pool_field<&O::recycle_jitter, &S::pool, &P::recycle_jitter>(
          "pool.recycle_jitter",
          "up to this many more requests before recycling, drawn per worker"),
      pool_field<&O::recycle_after_age, &S::pool, &P::recycle_after_age_ms>(
          "pool.recycle_after_age_ms",
          "replace a worker after this age (ms); 0 = never", non_negative),
      pool_field<&O::recycle_above_rss_kib, &S::pool, &P::recycle_above_rss_kib>(
          "pool.recycle_above_rss_kib",
          "replace a worker whose resident set exceeds this (KiB); 0 = never"),
      pool_field<&O::idle_ping_interval, &S::pool, &P::idle_ping_interval_ms>(
          "pool.idle_ping_interval_ms",
          "ping idle workers this often (ms); 0 = never", non_negative),
      pool_field<&O::ping_timeout, &S::pool, &P::ping_timeout_ms>(
          "pool.ping_timeout_ms",
          "a ping unanswered this long (ms) replaces the worker", at_least_one),
      pool_field<&O::restart_backoff_initial, &S::pool, &P::restart_backoff_ms>(
          "pool.restart_backoff_ms",
          "delay before restarting a slot after a failure (ms), doubled for each consecutive "
          "failure",
          non_negative),
      pool_field<&O::restart_backoff_max, &S::pool, &P::restart_backoff_max_ms>(
          "pool.restart_backoff_max_ms",
          "cap on the restart delay (ms); at least restart_backoff_ms", non_negative),
      pool_field<&O::crash_loop_failures, &S::pool, &P::crash_loop_failures>(
          "pool.crash_loop_failures",
          "failed starts within crash_loop_window_ms that make the pool degraded (failing "
          "fast instead of restarting in a loop)",
          at_least_one),
      pool_field<&O::crash_loop_window, &S::pool, &P::crash_loop_window_ms>(
          "pool.crash_loop_window_ms", "window of the crash-loop guard (ms)", at_least_one),
      pool_field<&O::max_frame_bytes, &S::pool, &P::max_frame_bytes>(
          "pool.max_frame_bytes",
          "largest frame accepted from a worker; a larger length is a protocol fault", {.min = 64}),
      pool_field<&O::pipeline_depth, &S::pool, &P::pipeline_depth>(
          "pool.pipeline_depth",
          "requests written to one worker before its earlier replies are back (a call joins "
          "them only when no worker is free); procpool only: reference pools and external "
          "drivers ignore it",
          {.min = 1, .max = 1024}),

      field<&S::load, &L::model>(
          "load.model",
          "closed: each caller sends, waits for the reply, thinks, repeats; open: requests "
          "arrive at load.rate whatever the replies, latency counted from each arrival's "
          "scheduled time"),
      field<&S::load, &L::concurrency>(
          "load.concurrency",
          "closed: callers; open: caller threads taking requests from the arrival schedule "
          "(load.issue threads only)",
          at_least_one),
      field<&S::load, &L::requests>("load.requests", "requests per case (when duration_ms is 0)",
                                    at_least_one),
      field<&S::load, &L::duration_ms>("load.duration_ms",
                                       "run each case this long (ms) instead; 0 = use requests",
                                       non_negative),
      field<&S::load, &L::start>(
          "load.start",
          "cold: load begins as the pool starts, so start-up effects show; warm: load begins "
          "once every worker is ready"),
      field<&S::load, &L::rate>("load.rate", "open: arrivals per second",
                                {.min = 0, .above_min = true}),
      field<&S::load, &L::arrivals>("load.arrivals",
                                    "open: evenly spaced (constant) or Poisson arrivals"),
      field<&S::load, &L::think_ms>("load.think_ms",
                                    "closed: pause between a reply and the caller's next "
                                    "request (ms); load.issue threads only",
                                    non_negative),
      field<&S::load, &L::command>(
          "load.command",
          "the request sent: echo (the worker applies worker.service), sleep or burn (wall or "
          "CPU time of worker.service.ms)"),
      field<&S::load, &L::issue>(
          "load.issue",
          "threads: load.concurrency caller threads, each blocking in a call; submit: one "
          "generator thread submitting without waiting (procpool and external subjects), "
          "load.in_flight requests outstanding"),
      field<&S::load, &L::in_flight>(
          "load.in_flight",
          "submit only: closed: requests kept outstanding (think_ms must be 0); open: most "
          "requests outstanding at once, an arrival finding them all out waits and starts late",
          at_least_one),

      field<&S::environment, &environment_config::cpu_hogs>(
          "environment.cpu_hogs", "busy processes started for the run, competing for CPU"),
      field<&S::environment, &environment_config::cpus>(
          "environment.cpus", "restrict the subject and its workers to this many CPUs; 0 = all"),

      knob_field<&S::faults, &F::crash_after>("faults.crash_after", fake::knob("crash_after")),
      knob_field<&S::faults, &F::crash_probability>("faults.crash_probability",
                                                    fake::knob("crash_probability")),
      knob_field<&S::faults, &F::crash_mode>("faults.crash_mode", fake::knob("crash_mode")),
      knob_field<&S::faults, &F::crash_exit_code>("faults.crash_exit_code",
                                                  fake::knob("crash_exit_code")),
      knob_field<&S::faults, &F::hang_probability>("faults.hang_probability",
                                                   fake::knob("hang_probability")),
      knob_field<&S::faults, &F::hang_mode>("faults.hang_mode", fake::knob("hang_mode")),
      knob_field<&S::faults, &F::slow_probability>("faults.slow_probability",
                                                   fake::knob("slow_probability")),
      knob_field<&S::faults, &F::slow_ms>("faults.slow_ms", fake::knob("slow_ms")),
      knob_field<&S::faults, &F::garbage_probability>("faults.garbage_probability",
                                                      fake::knob("garbage_probability")),
      knob_field<&S::faults, &F::truncated_probability>("faults.truncated_probability",
                                                        fake::knob("truncated_probability")),
      knob_field<&S::faults, &F::oversize_probability>("faults.oversize_probability",
                                                       fake::knob("oversize_probability")),
      knob_field<&S::faults, &F::wrong_id_probability>("faults.wrong_id_probability",
                                                       fake::knob("wrong_id_probability")),
      knob_field<&S::faults, &F::exit_during_init>("faults.exit_during_init",
                                                   fake::knob("exit_during_init")),
      knob_field<&S::faults, &F::never_ready>("faults.never_ready", fake::knob("never_ready")),
      knob_field<&S::faults, &F::stderr_flood_mb>("faults.stderr_flood_mb",
                                                  fake::knob("stderr_flood_mb")),
      knob_field<&S::faults, &F::memory_growth_kb>("faults.memory_growth_kb",
                                                   fake::knob("memory_growth_kb")),
      knob_field<&S::faults, &F::ignore_sigterm>("faults.ignore_sigterm",
                                                 fake::knob("ignore_sigterm")),
      knob_field<&S::faults, &F::grandchild>("faults.grandchild", fake::knob("grandchild")),

      field<&S::assertions, &assert_config::max_timeout_rate>(
          "assert.max_timeout_rate",
          "fail when a case's share of timed-out requests exceeds this; unset = no limit",
          {.min = 0, .max = 1, .sweepable = false}),
      field<&S::assertions, &assert_config::p99_ms>(
          "assert.p99_ms", "fail when a case's p99 latency exceeds this (ms); unset = no limit",
          {.min = 0, .sweepable = false}),
      field<&S::assertions, &assert_config::forbid_verdicts>(
          "assert.forbid_verdicts",
          "fail when a request gets a verdict matching one of these glob patterns, e.g. "
          "\"architectural.*\"",
          {.sweepable = false,
           .rule = check_verdict_patterns,
           .allowed = "glob patterns (`*`, `?`) each matching some verdict"}),
  };
  return table;
}

const key_spec* find_spec(std::string_view key) {
  for (const auto& spec : key_table()) {
    if (spec.key == key) return &spec;
  }
  return nullptr;
}

// True for "pool" and "worker.service": the tables that hold keys.
bool is_table_prefix(std::string_view path) {
  return std::any_of(key_table().begin(), key_table().end(), [&](const key_spec& spec) {
    return spec.key.size() > path.size() && spec.key.starts_with(path) &&
           spec.key[path.size()] == '.';
  });
}

// Optimal string alignment distance: a transposed pair costs 1, the commonest typo.
std::size_t edit_distance(std::string_view a, std::string_view b) {
  std::vector<std::vector<std::size_t>> d(a.size() + 1, std::vector<std::size_t>(b.size() + 1));
  for (std::size_t i = 0; i <= a.size(); ++i) d[i][0] = i;
  for (std::size_t j = 0; j <= b.size(); ++j) d[0][j] = j;
  for (std::size_t i = 1; i <= a.size(); ++i) {
    for (std::size_t j = 1; j <= b.size(); ++j) {
      const std::size_t cost = a[i - 1] == b[j - 1] ? 0 : 1;
      d[i][j] = std::min({d[i - 1][j] + 1, d[i][j - 1] + 1, d[i - 1][j - 1] + cost});
      if (i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1]) {
        d[i][j] = std::min(d[i][j], d[i - 2][j - 2] + 1);
      }
    }
  }
  return d[a.size()][b.size()];
}

template <class Range>
std::optional<std::string_view> closest(std::string_view word, const Range& candidates) {
  std::optional<std::string_view> best;
  std::size_t best_distance = std::max<std::size_t>(2, word.size() / 4) + 1;
  for (std::string_view candidate : candidates) {
    const std::size_t distance = edit_distance(word, candidate);
    if (distance < best_distance) {
      best = candidate;
      best_distance = distance;
    }
  }
  return best;
}

std::string_view last_segment(std::string_view key) {
  const auto dot = key.rfind('.');
  return dot == std::string_view::npos ? key : key.substr(dot + 1);
}

std::string unknown_key_message(std::string_view path) {
  std::vector<std::string_view> keys;
  for (const auto& spec : key_table()) keys.push_back(spec.key);
  auto guess = closest(path, keys);
  if (!guess) {  // the right name in the wrong table: pool.concurrency for load.concurrency
    auto same_leaf = std::find_if(keys.begin(), keys.end(), [&](std::string_view key) {
      return last_segment(key) == last_segment(path);
    });
    if (same_leaf != keys.end()) guess = *same_leaf;
  }
  if (guess) return fmt::format("unknown key; did you mean {}?", *guess);
  return "unknown key; harness/scenario/README.md lists every key";
}

std::string show_number(double x) { return fmt::format("{}", x); }

// "at least 1", "between 0 and 1", "greater than 0"; nullopt when any number is allowed.
std::optional<std::string> range_text(const limits& range) {
  const bool has_min = std::isfinite(range.min);
  const bool has_max = std::isfinite(range.max);
  if (has_min && has_max) {
    return fmt::format("between {} and {}", show_number(range.min), show_number(range.max));
  }
  if (has_min) {
    return fmt::format("{} {}", range.above_min ? "greater than" : "at least",
                       show_number(range.min));
  }
  if (has_max) return fmt::format("at most {}", show_number(range.max));
  return std::nullopt;
}

std::string_view type_name(value_type type) {
  switch (type) {
    case value_type::integer:
      return "integer";
    case value_type::number:
    case value_type::optional_number:
      return "number";
    case value_type::boolean:
      return "boolean";
    case value_type::string:
    case value_type::choice:
      return "string";
    case value_type::string_list:
      return "array of strings";
  }
  return "?";
}

std::string_view a_type_name(value_type type) {
  switch (type) {
    case value_type::integer:
      return "an integer";
    case value_type::number:
    case value_type::optional_number:
      return "a number";
    case value_type::boolean:
      return "a boolean (true or false)";
    case value_type::string:
    case value_type::choice:
      return "a string";
    case value_type::string_list:
      return "an array of strings";
  }
  return "?";
}

std::string choice_list(std::span<const std::string_view> choices) {
  return fmt::format("{}", fmt::join(choices, ", "));
}

// A value as error messages quote it. Values come from checked text, but a message must never
// be what throws: bytes that are not UTF-8 are written as U+FFFD.
std::string shown(const json& v) {
  return v.dump(-1, ' ', false, json::error_handler_t::replace);
}

// Checks a value against its key's type, range and rule; returns the problem.
std::optional<std::string> check_value(const key_spec& spec, const json& v) {
  auto mistyped = [&] {
    return fmt::format("must be {} (got {})", a_type_name(spec.type), shown(v));
  };
  switch (spec.type) {
    case value_type::integer:
      if (!v.is_number_integer()) return mistyped();
      break;
    case value_type::number:
    case value_type::optional_number:
      if (!v.is_number()) return mistyped();
      if (!std::isfinite(v.get<double>())) {
        return fmt::format("must be a finite number (got {})", shown(v));
      }
      break;
    case value_type::boolean:
      if (!v.is_boolean()) return mistyped();
      break;
    case value_type::string:
      if (!v.is_string()) return mistyped();
      break;
    case value_type::choice: {
      if (!v.is_string()) {
        return fmt::format("must be one of {} (got {})", choice_list(spec.choices), shown(v));
      }
      const auto& name = v.get_ref<const std::string&>();
      if (std::find(spec.choices.begin(), spec.choices.end(), name) == spec.choices.end()) {
        auto guess = closest(name, spec.choices);
        return fmt::format("must be one of {} (got {}){}", choice_list(spec.choices), shown(v),
                           guess ? fmt::format("; did you mean {}?", *guess) : "");
      }
      break;
    }
    case value_type::string_list:
      if (!v.is_array() ||
          !std::all_of(v.begin(), v.end(), [](const json& e) { return e.is_string(); })) {
        return mistyped();
      }
      break;
  }
  if (v.is_number()) {
    const double x = v.get<double>();
    const auto& r = spec.range;
    if (x < r.min || (r.above_min && x == r.min) || x > r.max) {
      return fmt::format("must be {} (got {})", *range_text(r), shown(v));
    }
  }
  if (spec.range.rule) return spec.range.rule(v);
  return std::nullopt;
}

std::optional<std::string> check_verdict_patterns(const json& patterns) {
  for (const auto& p : patterns) {
    const auto& pattern = p.get_ref<const std::string&>();
    if (std::none_of(known_verdicts.begin(), known_verdicts.end(),
                     [&](std::string_view v) { return verdict_matches(pattern, v); })) {
      return fmt::format("pattern \"{}\" matches no verdict; the verdicts are {}", pattern,
                         choice_list(known_verdicts));
    }
  }
  return std::nullopt;
}

// The problem with a sweep axis's values, and the index of the value at fault (or none when
// the list as a whole is wrong).
struct axis_problem {
  std::optional<std::size_t> index;
  std::string message;
};

std::optional<axis_problem> check_axis(const key_spec& spec, const std::vector<json>& values) {
  if (!spec.range.sweepable) {
    return axis_problem{{}, "cannot be swept: it applies to the whole run"};
  }
  if (values.empty()) return axis_problem{{}, "sweeps no values: list at least one"};
  for (std::size_t i = 0; i < values.size(); ++i) {
    if (auto problem = check_value(spec, values[i])) return axis_problem{i, *problem};
    for (std::size_t j = 0; j < i; ++j) {
      if (values[j] == values[i]) {  // two cases would share one id
        return axis_problem{i, fmt::format("repeats the value {}", shown(values[i]))};
      }
    }
  }
  return std::nullopt;
}

void set_axis(scenario& s, std::string key, std::vector<json> values) {
  auto axis = std::find_if(s.sweep.begin(), s.sweep.end(),
                           [&](const sweep_axis& a) { return a.key == key; });
  if (axis != s.sweep.end()) {
    axis->values = std::move(values);
  } else {
    s.sweep.push_back({std::move(key), std::move(values)});
  }
}

// ---- TOML ----

std::optional<json> from_toml(const toml::node& node) {
  if (auto v = node.as_integer()) return json(v->get());
  if (auto v = node.as_floating_point()) return json(v->get());
  if (auto v = node.as_boolean()) return json(v->get());
  if (auto v = node.as_string()) return json(v->get());
  if (auto array = node.as_array()) {
    json out = json::array();
    for (const auto& element : *array) {
      auto value = from_toml(element);
      if (!value) return std::nullopt;
      out.push_back(std::move(*value));
    }
    return out;
  }
  if (auto table = node.as_table()) {
    json out = json::object();
    for (auto&& [key, element] : *table) {
      auto value = from_toml(element);
      if (!value) return std::nullopt;
      out[std::string(key.str())] = std::move(*value);
    }
    return out;
  }
  return std::nullopt;  // dates and times: no key takes one
}

int line_of(const toml::source_region& region) { return static_cast<int>(region.begin.line); }

// A key = value found in the file: `path` is its dotted key (under [sweep], the axis's key).
struct entry {
  std::string path;
  const toml::node* node;
  toml::source_position where;  // of the key
  bool swept;
};

void collect(const toml::table& table, const std::string& prefix, bool swept,
             std::vector<entry>& out) {
  for (auto&& [key, node] : table) {
    const std::string path =
        prefix.empty() ? std::string(key.str()) : fmt::format("{}.{}", prefix, key.str());
    const auto* sub = node.as_table();
    if (!swept && prefix.empty() && path == "sweep" && sub) {
      collect(*sub, "", true, out);
    } else if (sub && !sub->empty() && (swept || !find_spec(path))) {
      collect(*sub, path, swept, out);
    } else {
      out.push_back({path, &node, key.source().begin, swept});
    }
  }
}

std::optional<config_error> read_key(scenario_file& file, const entry& e) {
  const int key_line = static_cast<int>(e.where.line);
  auto fail = [&](int line, std::string message) {
    return config_error{file.source, line, e.path, std::move(message)};
  };
  const key_spec* spec = find_spec(e.path);
  if (!spec) {
    if (e.path == "sweep") {
      if (e.node->is_table()) return std::nullopt;
      return fail(key_line, "must be a table of \"dotted.key\" = [values]");
    }
    if (is_table_prefix(e.path)) {
      if (e.node->is_table()) return std::nullopt;
      return fail(key_line, "must be a table");
    }
    return fail(key_line, unknown_key_message(e.path));
  }
  const int value_line = line_of(e.node->source());
  auto value = from_toml(*e.node);
  if (!value) {
    return fail(value_line,
                fmt::format("must be {} (got a date or time)", a_type_name(spec->type)));
  }
  if (auto problem = check_value(*spec, *value)) return fail(value_line, *problem);
  // "pool.size" = 1 and [pool] size = 2 name one key: the later must not win in silence.
  if (const auto earlier = file.origins.find(e.path); earlier != file.origins.end()) {
    return fail(key_line, fmt::format("is set twice: also on line {}", earlier->second.line));
  }
  spec->set(file.scenario, *value);
  file.origins[e.path] = {file.source, key_line};
  return std::nullopt;
}

std::optional<config_error> read_axis(scenario_file& file, const entry& e) {
  const std::string key = "sweep." + e.path;
  const int key_line = static_cast<int>(e.where.line);
  auto fail = [&](int line, std::string message) {
    return config_error{file.source, line, key, std::move(message)};
  };
  const key_spec* spec = find_spec(e.path);
  if (!spec) return fail(key_line, unknown_key_message(e.path));
  const auto* array = e.node->as_array();
  if (!array) return fail(key_line, "must be an array of the values to sweep, e.g. [1, 2, 4]");
  if (const auto earlier = file.origins.find(key); earlier != file.origins.end()) {
    return fail(key_line, fmt::format("is swept twice: also on line {}", earlier->second.line));
  }
  std::vector<json> values;
  for (const auto& element : *array) {
    auto value = from_toml(element);
    if (!value) return fail(line_of(element.source()), "a date or time cannot be swept");
    values.push_back(std::move(*value));
  }
  if (auto problem = check_axis(*spec, values)) {
    const int line = problem->index ? line_of((*array)[*problem->index].source()) : key_line;
    return fail(line, problem->message);
  }
  set_axis(file.scenario, std::string(e.path), std::move(values));
  file.origins[key] = {file.source, key_line};
  return std::nullopt;
}

// ---- --set ----

std::string_view trim(std::string_view s) {
  const auto first = s.find_first_not_of(" \t");
  if (first == std::string_view::npos) return {};
  const auto last = s.find_last_not_of(" \t");
  return s.substr(first, last - first + 1);
}

std::optional<json> parse_toml_value(std::string_view text) {
  const std::string document = fmt::format("value = {}", text);
  if (check_toml_text(document)) return std::nullopt;  // not for the parser: text_checks.hpp
  try {
    const toml::table table = toml::parse(std::string_view(document), std::string_view("--set"));
    if (table.size() != 1 || !table.contains("value")) return std::nullopt;
    return from_toml(*table.get("value"));
  } catch (const toml::parse_error&) {
    return std::nullopt;
  }
}

// ---- Cases ----

// The subjects that implement subject::submit (subject.hpp), known here so that a scenario
// asking another for submitted load is refused before it runs.
bool submits(subject_type kind) {
  return kind == subject_type::procpool || kind == subject_type::external;
}

// Rules across keys, checked on every combination of the sweep.
struct cross_rule {
  std::string_view key;  // the key the error names
  std::optional<std::string> (*broken)(const scenario&);
};

const cross_rule cross_rules[] = {
    {"worker.service.max_ms",
     [](const scenario& s) -> std::optional<std::string> {
       const auto& service = s.worker.service;
       if (service.max_ms >= service.min_ms) return std::nullopt;
       return fmt::format("must be at least worker.service.min_ms ({}) (got {})", service.min_ms,
                          service.max_ms);
     }},
    {"subject.command",
     [](const scenario& s) -> std::optional<std::string> {
       if (s.subject.kind != subject_type::external || !s.subject.command.empty()) {
         return std::nullopt;
       }
       return "must name the driver's command line when subject.kind is external";
     }},
    {"worker.command",
     [](const scenario& s) -> std::optional<std::string> {
       if (s.worker.kind != worker_type::command || !s.worker.command.empty()) return std::nullopt;
       return "must name the worker's command line when worker.kind is command";
     }},
    {"load.issue",
     [](const scenario& s) -> std::optional<std::string> {
       if (s.load.issue != load_issue::submit || submits(s.subject.kind)) return std::nullopt;
       return fmt::format("\"submit\" needs a subject that implements submit (procpool, "
                          "external); a {} subject only takes calls: use \"threads\"",
                          to_string(s.subject.kind));
     }},
    {"load.think_ms",
     [](const scenario& s) -> std::optional<std::string> {
       if (s.load.issue != load_issue::submit || s.load.model != load_model::closed ||
           s.load.think_ms == 0) {
         return std::nullopt;
       }
       // One generator serves every outstanding request: a pause would stall them all.
       return fmt::format("must be 0 with load.issue \"submit\" and load.model \"closed\" "
                          "(got {})",
                          s.load.think_ms);
     }},
    {"pool.restart_backoff_max_ms",
     [](const scenario& s) -> std::optional<std::string> {
       if (s.pool.restart_backoff_max_ms >= s.pool.restart_backoff_ms) return std::nullopt;
       return fmt::format("must be at least pool.restart_backoff_ms ({}) (got {})",
                          s.pool.restart_backoff_ms, s.pool.restart_backoff_max_ms);
     }},
};

// Sweep combinations, or nullopt past max_cases.
std::optional<std::size_t> combination_count(const scenario& s) {
  std::size_t count = 1;
  for (const auto& axis : s.sweep) {
    if (axis.values.size() > max_cases / count) return std::nullopt;
    count *= axis.values.size();
  }
  return count;
}

std::string id_part(const json& value) {
  return value.is_string() ? value.get<std::string>() : value.dump();
}

// Combination `combination` of the sweep, counted with the last axis varying fastest.
// Makes the cases of one scenario. A case is one point of the sweep, so its scenario carries
// no axes: a case then costs the same memory however many values they hold (two axes of 1,000
// values would otherwise copy 2,000 values into each of a million cases). The axes' key specs
// are looked up once, not once per case.
class case_maker {
 public:
  explicit case_maker(const scenario& base) : axes_(base.sweep), point_(base) {
    point_.sweep.clear();
    for (const auto& axis : axes_) specs_.push_back(find_spec(axis.key));
  }

  scenario_case operator()(std::size_t combination, std::size_t repetition) const {
    scenario_case c{.id = {}, .params = {}, .repetition = repetition, .scenario = point_};
    std::vector<std::size_t> position(axes_.size());
    for (std::size_t i = axes_.size(); i-- > 0;) {
      position[i] = combination % axes_[i].values.size();
      combination /= axes_[i].values.size();
    }
    std::string id;
    for (std::size_t i = 0; i < axes_.size(); ++i) {
      const json& value = axes_[i].values[position[i]];
      specs_[i]->set(c.scenario, value);
      c.params.emplace_back(axes_[i].key, value);
      id += fmt::format("{}{}={}", i ? "," : "", axes_[i].key, id_part(value));
    }
    c.id = id.empty() ? fmt::format("r{}", repetition) : fmt::format("{}#r{}", id, repetition);
    return c;
  }

 private:
  const std::vector<sweep_axis>& axes_;
  std::vector<const key_spec*> specs_;
  scenario point_;
};

key_origin origin_of(const scenario_file& file, std::string_view key) {
  if (auto it = file.origins.find(key); it != file.origins.end()) return it->second;
  if (auto it = file.origins.find(fmt::format("sweep.{}", key)); it != file.origins.end()) {
    return it->second;
  }
  return {file.source, 0};
}

void insert_at(json& root, std::string_view dotted, json value) {
  json* node = &root;
  std::size_t start = 0;
  for (auto dot = dotted.find('.'); dot != std::string_view::npos; dot = dotted.find('.', start)) {
    node = &(*node)[std::string(dotted.substr(start, dot - start))];
    start = dot + 1;
  }
  (*node)[std::string(dotted.substr(start))] = std::move(value);
}

std::optional<std::size_t> parse_count(std::string_view text) {
  std::size_t value = 0;
  const auto* end = text.data() + text.size();
  auto [ptr, ec] = std::from_chars(text.data(), end, value);
  if (text.empty() || ec != std::errc() || ptr != end) return std::nullopt;
  return value;
}

}  // namespace

std::string config_error::describe() const {
  std::string out = file;
  if (line > 0) out += fmt::format(":{}", line);
  out += ": ";
  if (!key.empty()) out += key + ": ";
  return out + message;
}

config_result<scenario_file> parse_scenario(std::string_view text, std::string_view source_name,
                                            std::span<const std::string> overrides) {
  scenario_file file{.source = std::string(source_name), .scenario = {}, .origins = {}};
  if (auto problem = check_toml_text(text)) {
    return config_error{file.source, problem->line, "",
                        fmt::format("TOML syntax error: {}", problem->message)};
  }
  toml::table root;
  try {
    root = toml::parse(text, source_name);
  } catch (const toml::parse_error& e) {
    return config_error{file.source, line_of(e.source()), "",
                        fmt::format("TOML syntax error: {}", e.description())};
  }
  std::vector<entry> entries;
  collect(root, "", false, entries);
  // toml++ tables are sorted by key: put entries back in file order, so that the first error
  // reported is the first in the file and sweep axes keep the order they were written in.
  std::stable_sort(entries.begin(), entries.end(), [](const entry& a, const entry& b) {
    return std::pair(a.where.line, a.where.column) < std::pair(b.where.line, b.where.column);
  });
  for (const auto& e : entries) {
    if (auto error = e.swept ? read_axis(file, e) : read_key(file, e)) return *error;
  }
  for (const auto& assignment : overrides) {
    if (auto error = apply_override(file, assignment)) return *error;
  }
  if (auto error = check_scenario(file)) return *error;
  return file;
}

config_result<scenario_file> load_scenario(const std::filesystem::path& path,
                                           std::span<const std::string> overrides) {
  std::error_code ec;
  if (std::filesystem::is_directory(path, ec)) {
    return config_error{path.string(), 0, "", "is a directory, not a scenario file"};
  }
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    return config_error{path.string(), 0, "", fmt::format("cannot open: {}", std::strerror(errno))};
  }
  std::ostringstream text;
  text << in.rdbuf();
  return parse_scenario(text.str(), path.string(), overrides);
}

std::optional<config_error> apply_override(scenario_file& file, std::string_view assignment) {
  const auto equals = assignment.find('=');
  if (equals == std::string_view::npos) {
    return config_error{
        "--set", 0, "",
        fmt::format("expected KEY=VALUE, e.g. pool.size=8 (got \"{}\")",
                    escape_text(assignment))};
  }
  const std::string key(trim(assignment.substr(0, equals)));
  const std::string_view text = trim(assignment.substr(equals + 1));
  auto fail = [&](std::string message) {
    return config_error{"--set", 0, key, std::move(message)};
  };
  // Stored text must be UTF-8 (results.json is JSON), and the value may reach the TOML parser.
  if (auto problem = text_value_problem(key)) {
    return config_error{"--set", 0, escape_text(key), fmt::format("the key {}", *problem)};
  }
  if (auto problem = text_value_problem(text)) return fail(fmt::format("the value {}", *problem));

  const bool swept = key.starts_with("sweep.");
  const std::string_view target = swept ? std::string_view(key).substr(6) : std::string_view(key);
  const key_spec* spec = find_spec(target);
  if (!spec) return fail(unknown_key_message(target));

  auto value = parse_toml_value(text);
  const bool takes_word = spec->type == value_type::string || spec->type == value_type::choice;
  // Not TOML, or a bare word for a string key: take the text as it is, so that a type error
  // shows what was given.
  if (!value || (!swept && takes_word && !value->is_string())) value = json(std::string(text));

  if (swept) {
    if (!value->is_array()) return fail("must be an array of the values to sweep, e.g. [1, 2, 4]");
    std::vector<json> values(value->begin(), value->end());
    if (auto problem = check_axis(*spec, values)) {
      return fail(problem->index
                      ? fmt::format("value {}: {}", *problem->index + 1, problem->message)
                      : problem->message);
    }
    set_axis(file.scenario, std::string(target), std::move(values));
  } else {
    if (auto problem = check_value(*spec, *value)) return fail(*problem);
    spec->set(file.scenario, *value);
    // The override pins the key, so it no longer varies.
    std::erase_if(file.scenario.sweep, [&](const sweep_axis& a) { return a.key == target; });
    file.origins.erase(fmt::format("sweep.{}", target));
  }
  file.origins[key] = {"--set", 0};
  return std::nullopt;
}

std::optional<config_error> check_scenario(const scenario_file& file) {
  const auto combinations = combination_count(file.scenario);
  const std::uint64_t repetitions = std::max<std::uint64_t>(file.scenario.repetitions, 1);
  if (!combinations || *combinations > max_cases / repetitions) {
    const auto origin = origin_of(file, "sweep");
    return config_error{origin.file, origin.line, "sweep",
                        fmt::format("the sweep times repetitions exceeds {} cases", max_cases)};
  }
  const case_maker make_case(file.scenario);
  for (std::size_t i = 0; i < *combinations; ++i) {
    const auto c = make_case(i, 0);
    for (const auto& rule : cross_rules) {
      auto problem = rule.broken(c.scenario);
      if (!problem) continue;
      if (!c.params.empty()) *problem += fmt::format(" in case {}", c.id);
      const auto origin = origin_of(file, rule.key);
      return config_error{origin.file, origin.line, std::string(rule.key), *problem};
    }
  }
  return std::nullopt;
}

std::vector<scenario_case> expand(const scenario_file& file) {
  const std::size_t combinations = combination_count(file.scenario).value_or(0);
  std::vector<scenario_case> cases;
  cases.reserve(combinations * file.scenario.repetitions);
  const case_maker make_case(file.scenario);
  for (std::size_t r = 0; r < file.scenario.repetitions; ++r) {
    for (std::size_t i = 0; i < combinations; ++i) cases.push_back(make_case(i, r));
  }
  return cases;
}

config_result<shard> parse_shard(std::string_view text) {
  auto fail = [&](std::string why) {
    return config_error{"--shard", 0, "", fmt::format("\"{}\": {}", text, why)};
  };
  const auto slash = text.find('/');
  if (slash == std::string_view::npos) {
    return fail("expected I/N, shard I of N with I from 0, e.g. 0/4");
  }
  const auto index = parse_count(text.substr(0, slash));
  const auto count = parse_count(text.substr(slash + 1));
  if (!index || !count) return fail("I and N must be whole numbers, e.g. 0/4");
  if (*count == 0) return fail("N must be at least 1");
  if (*index >= *count) {
    return fail(fmt::format("I must be less than N: shards are numbered 0 to {}", *count - 1));
  }
  return shard{*index, *count};
}

std::vector<scenario_case> shard_cases(const std::vector<scenario_case>& cases, std::size_t index,
                                       std::size_t count) {
  std::vector<scenario_case> out;
  for (std::size_t i = index; i < cases.size(); i += count) out.push_back(cases[i]);
  return out;
}

nlohmann::json scenario_to_json(const scenario& s) {
  json out = json::object();
  for (const auto& spec : key_table()) insert_at(out, spec.key, spec.get(s));
  json sweep = json::array();
  for (const auto& axis : s.sweep) sweep.push_back({{"key", axis.key}, {"values", axis.values}});
  out["sweep"] = std::move(sweep);
  return out;
}

std::vector<key_doc> scenario_schema() {
  const scenario defaults;
  std::vector<key_doc> docs;
  for (const auto& spec : key_table()) {
    std::string allowed;
    switch (spec.type) {
      case value_type::integer:
      case value_type::number:
      case value_type::optional_number:
        allowed = range_text(spec.range).value_or("any");
        break;
      case value_type::boolean:
        allowed = "`true`, `false`";
        break;
      case value_type::choice:
        for (auto name : spec.choices) {
          allowed += fmt::format("{}`{}`", allowed.empty() ? "" : ", ", name);
        }
        break;
      case value_type::string:
      case value_type::string_list:
        allowed = "any";
        break;
    }
    if (!spec.range.allowed.empty()) allowed = spec.range.allowed;
    docs.push_back({std::string(spec.key), std::string(type_name(spec.type)), allowed,
                    spec.get(defaults), std::string(spec.meaning), spec.range.sweepable});
  }
  return docs;
}

std::string schema_markdown() {
  std::string out =
      "| key | type | default | allowed | meaning |\n"
      "|---|---|---|---|---|\n";
  for (const auto& doc : scenario_schema()) {
    const std::string default_text =
        doc.default_value.is_null() ? "unset" : fmt::format("`{}`", doc.default_value.dump());
    out += fmt::format("| `{}` | {} | {} | {} | {}{} |\n", doc.key, doc.type, default_text,
                       doc.allowed, doc.meaning, doc.sweepable ? "" : " (not sweepable)");
  }
  return out;
}

nlohmann::json worker_init_args(const scenario& s) {
  const scenario defaults;
  json args = json::object();
  for (const auto& spec : key_table()) {
    if (!spec.knob) continue;
    json value = spec.get(s);
    // Faults at their defaults are left out, so that a worker's init args show what was
    // injected and nothing else.
    if (spec.knob->group == fake::knob_group::fault && value == spec.get(defaults)) continue;
    args[std::string(spec.knob->name)] = std::move(value);
  }
  return args;
}

std::vector<std::string> worker_extra_flags(const scenario& s) {
  std::vector<std::string> flags;
  if (s.worker.kind == worker_type::command) return flags;
  // The Python worker takes t_main_ns at its first statement, so it cannot delay itself
  // before it: the runner delays its exec instead (see worker_launch_for).
  if (s.worker.kind == worker_type::fake && s.worker.startup_ms > 0) {
    flags.push_back(fmt::format("--startup-ms={}", s.worker.startup_ms));
  }
  if (s.worker.kind == worker_type::python && !s.worker.preload.empty()) {
    flags.push_back(fmt::format("--preload={}", fmt::join(s.worker.preload, ",")));
  }
  return flags;
}

pool_options pool_options_for(const scenario& s) {
  pool_options o;
  for (const auto& spec : key_table()) {
    if (spec.to_options) spec.to_options(s, o);
  }
  o.init_args = worker_init_args(s);
  o.seed = s.seed;
  return o;
}

bool verdict_matches(std::string_view pattern, std::string_view verdict) noexcept {
  // Iterative glob: on a mismatch, let the last '*' absorb one more character.
  std::size_t p = 0, v = 0, star = std::string_view::npos, resume = 0;
  while (v < verdict.size()) {
    if (p < pattern.size() && (pattern[p] == '?' || pattern[p] == verdict[v])) {
      ++p;
      ++v;
    } else if (p < pattern.size() && pattern[p] == '*') {
      star = p++;
      resume = v;
    } else if (star != std::string_view::npos) {
      p = star + 1;
      v = ++resume;
    } else {
      return false;
    }
  }
  while (p < pattern.size() && pattern[p] == '*') ++p;
  return p == pattern.size();
}

}  // namespace procpool::harness
