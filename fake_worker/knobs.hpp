// The fake worker's knobs: latency, service time and fault injection, read as typed members.
//
// Every knob is a command-line flag (--init-ms) and can be overridden per worker by the same
// name in the init request's args ({"init_ms": 500}). Names, types, defaults, ranges and help
// come from the knob table (fake_worker/include/fake_worker/knob_table.hpp), which the
// scenario's worker keys share; this file binds each row to its member.
#pragma once

#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <variant>

#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>

#include "fake_worker/knob_table.hpp"

namespace procpool::fake {

// Default-constructed, every member holds its knob's default.
struct knobs {
  knobs();

  double startup_ms;
  double init_ms;
  std::string service_dist;
  double service_ms;
  double service_min_ms;
  double service_max_ms;
  double service_sigma;
  bool service_cpu;
  std::uint64_t seed;
  std::uint64_t crash_after;
  double crash_probability;
  std::string crash_mode;
  int crash_exit_code;
  double hang_probability;
  std::string hang_mode;
  double slow_probability;
  double slow_ms;
  double garbage_probability;
  double truncated_probability;
  double oversize_probability;
  double wrong_id_probability;
  bool exit_during_init;
  bool never_ready;
  double stderr_flood_mb;
  double memory_growth_kb;
  bool ignore_sigterm;
  bool grandchild;
};

using knob_field = std::variant<double knobs::*, std::uint64_t knobs::*, int knobs::*,
                                bool knobs::*, std::string knobs::*>;

// A row of knob_table with the member it sets.
struct knob_spec {
  const knob_info* info;
  knob_field field;
};

// In knob_table's order, one per row.
std::span<const knob_spec> knob_bindings();

void add_knob_flags(CLI::App& app, knobs& k);

// Applies init args on top of `k`. Returns the reason when a key is unknown, mistyped or
// the result is invalid; `k` is left unchanged then.
std::optional<std::string> apply_init_args(const nlohmann::json& args, knobs& k);

// Checks ranges and enumerations; returns the first problem.
std::optional<std::string> validate(const knobs& k);

// The knob table as JSON, one object per knob: name, type, default, min and max (null when
// unbounded), choices, help. What --knobs-json prints, for checking other workers against.
nlohmann::json knob_table_json();

}  // namespace procpool::fake
