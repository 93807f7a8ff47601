// The fake worker's knobs: latency, service time and fault injection.
//
// Every knob is a command-line flag (--init-ms) and can be overridden per worker by the same
// name in the init request's args ({"init_ms": 500}). The table below is the single source
// for both, and for --help.
#pragma once

#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <variant>

#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>

namespace procpool::fake {

struct knobs {
  double startup_ms = 0;
  double init_ms = 0;
  std::string service_dist = "fixed";
  double service_ms = 0;
  double service_min_ms = 0;
  double service_max_ms = 0;
  double service_sigma = 0.5;
  bool service_cpu = false;
  std::uint64_t seed = 1;
  std::uint64_t crash_after = 0;
  double crash_probability = 0;
  std::string crash_mode = "exit";
  int crash_exit_code = 3;
  double hang_probability = 0;
  std::string hang_mode = "sleep";
  double slow_probability = 0;
  double slow_ms = 1000;
  double garbage_probability = 0;
  double truncated_probability = 0;
  double oversize_probability = 0;
  double wrong_id_probability = 0;
  bool exit_during_init = false;
  bool never_ready = false;
  double stderr_flood_mb = 0;
  double memory_growth_kb = 0;
  bool ignore_sigterm = false;
  bool grandchild = false;
};

using knob_field = std::variant<double knobs::*, std::uint64_t knobs::*, int knobs::*,
                                bool knobs::*, std::string knobs::*>;

struct knob_spec {
  const char* name;  // init-args key; the flag is the same with '-' for '_'
  knob_field field;
  const char* help;
};

std::span<const knob_spec> knob_table();

void add_knob_flags(CLI::App& app, knobs& k);

// Applies init args on top of `k`. Returns the reason when a key is unknown, mistyped or
// the result is invalid; `k` is left unchanged then.
std::optional<std::string> apply_init_args(const nlohmann::json& args, knobs& k);

// Checks ranges and enumerations; returns the first problem.
std::optional<std::string> validate(const knobs& k);

}  // namespace procpool::fake
