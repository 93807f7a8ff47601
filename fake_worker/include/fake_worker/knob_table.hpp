// The worker knobs, one table: each knob's name, type, default, range and help. The fake
// worker's flags, init-args parsing and checks are driven by it, and so are the scenario's
// worker.init_ms, worker.service.*, faults.* and seed keys; the Python worker keeps its own
// list, which python/tests/test_knob_table.py holds to this one (through the fake worker's
// hidden --knobs-json flag). Header-only and free of dependencies, so that both the worker
// and the harness include it.
#pragma once

#include <array>
#include <cstddef>
#include <limits>
#include <span>
#include <string_view>
#include <type_traits>

namespace procpool::fake {

enum class knob_type {
  number,   // a double
  count,    // an unsigned 64-bit integer
  integer,  // an int
  boolean,
  choice,   // one of `choices`
};

enum class knob_group { start, service, fault };

inline constexpr auto service_dists =
    std::to_array<std::string_view>({"fixed", "uniform", "exponential", "lognormal"});
inline constexpr auto crash_modes = std::to_array<std::string_view>({"exit", "segv", "kill"});
inline constexpr auto hang_modes = std::to_array<std::string_view>({"sleep", "spin"});

struct knob_info {
  std::string_view name;  // the init-args key; the flag is the same with '-' for '_'
  knob_type type;
  knob_group group;
  // Numbers and integers: the value; booleans: 0 or 1; choices: the index into `choices`.
  double default_value = 0;
  double min = -std::numeric_limits<double>::infinity();
  double max = std::numeric_limits<double>::infinity();
  std::span<const std::string_view> choices = {};
  std::string_view help = {};

  // The default as a member of type T (an enum spelt by `choices` takes the index).
  template <class T>
  constexpr T default_as() const {
    if constexpr (std::is_enum_v<T>) {
      return static_cast<T>(static_cast<std::size_t>(default_value));
    } else {
      return static_cast<T>(default_value);
    }
  }
  constexpr std::string_view default_choice() const {
    return choices[static_cast<std::size_t>(default_value)];
  }
};

namespace detail {
constexpr double inf = std::numeric_limits<double>::infinity();
constexpr knob_info ms(std::string_view name, knob_group group, double value,
                       std::string_view help) {
  return {name, knob_type::number, group, value, 0, inf, {}, help};
}
constexpr knob_info probability(std::string_view name, std::string_view help) {
  return {name, knob_type::number, knob_group::fault, 0, 0, 1, {}, help};
}
constexpr knob_info flag(std::string_view name, knob_group group, std::string_view help) {
  return {name, knob_type::boolean, group, 0, 0, 1, {}, help};
}
constexpr knob_info choice(std::string_view name, knob_group group,
                           std::span<const std::string_view> choices, std::string_view help) {
  return {name, knob_type::choice, group, 0, -inf, inf, choices, help};
}
}  // namespace detail

// In the order of the protocol's knob list (and of the Python worker's).
inline constexpr auto knob_table = [] {
  using namespace detail;
  using g = knob_group;
  return std::to_array<knob_info>({
      ms("startup_ms", g::start, 0,
         "delay before the worker takes t_main_ns and first reads (models a slow process start; "
         "flag only: it happens before the handshake)"),
      ms("init_ms", g::start, 0, "delay inside the init handshake"),
      choice("service_dist", g::service, service_dists, "echo service time distribution"),
      ms("service_ms", g::service, 0,
         "fixed: the time; exponential: the mean; lognormal: the median (ms)"),
      ms("service_min_ms", g::service, 0, "uniform: lower bound (ms)"),
      ms("service_max_ms", g::service, 0, "uniform: upper bound (ms); at least service_min_ms"),
      ms("service_sigma", g::service, 0.5, "lognormal: sigma of the underlying normal"),
      flag("service_cpu", g::service, "burn CPU time for the service time instead of sleeping"),
      {"seed", knob_type::count, g::start, 1, 0, inf, {},
       "seed for service times and fault draws (mixed with PROCPOOL_WORKER_ID, which a pool "
       "sets, so that each worker draws its own sequence)"},
      {"crash_after", knob_type::count, g::fault, 0, 0, inf, {},
       "crash on the request after this many; 0 = never"},
      probability("crash_probability", "per-request probability of a crash"),
      choice("crash_mode", g::fault, crash_modes,
             "how a crash happens: exit with crash_exit_code, SIGSEGV, or SIGKILL itself"),
      {"crash_exit_code", knob_type::integer, g::fault, 3, 0, 255, {},
       "exit code of crash_mode exit"},
      probability("hang_probability", "per-request probability of never answering again"),
      choice("hang_mode", g::fault, hang_modes, "a hang sleeps (no CPU use) or spins (burns CPU)"),
      probability("slow_probability", "per-request probability of adding slow_ms"),
      ms("slow_ms", g::fault, 1000, "extra delay of a slow reply (ms)"),
      probability("garbage_probability",
                  "per-request probability of a well-framed reply that is not JSON"),
      probability("truncated_probability",
                  "per-request probability of writing part of a frame, then exiting"),
      probability("oversize_probability",
                  "per-request probability of an oversize length prefix, then silence"),
      probability("wrong_id_probability", "per-request probability of answering with a wrong id"),
      flag("exit_during_init", g::fault, "exit when the init request arrives"),
      flag("never_ready", g::fault, "never answer the init request"),
      ms("stderr_flood_mb", g::fault, 0, "MiB written to stderr during init, before the reply"),
      ms("memory_growth_kb", g::fault, 0, "KiB allocated, touched and kept per request"),
      flag("ignore_sigterm", g::fault,
           "ignore SIGTERM, so that stopping must escalate to SIGKILL"),
      flag("grandchild", g::fault,
           "fork a grandchild at start-up that lives until its process group is killed"),
  });
}();

constexpr const knob_info* find_knob(std::string_view name) noexcept {
  for (const auto& k : knob_table) {
    if (k.name == name) return &k;
  }
  return nullptr;
}

// The knob named `name`, failing to compile when the table lacks it.
consteval const knob_info& knob(std::string_view name) { return *find_knob(name); }

}  // namespace procpool::fake
