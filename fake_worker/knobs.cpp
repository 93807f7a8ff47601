#include "knobs.hpp"

#include <algorithm>
#include <array>

#include <fmt/format.h>

namespace procpool::fake {
namespace {

const std::array knob_specs = {
    knob_spec{"startup_ms", &knobs::startup_ms,
              "delay before the worker takes t_main_ns and first reads (models a slow process "
              "start; flag only: it happens before the handshake)"},
    knob_spec{"init_ms", &knobs::init_ms, "delay inside the init handshake"},
    knob_spec{"service_dist", &knobs::service_dist,
              "echo service time distribution: fixed | uniform | exponential | lognormal"},
    knob_spec{"service_ms", &knobs::service_ms,
              "fixed: the time; exponential: the mean; lognormal: the median (ms)"},
    knob_spec{"service_min_ms", &knobs::service_min_ms, "uniform: lower bound (ms)"},
    knob_spec{"service_max_ms", &knobs::service_max_ms, "uniform: upper bound (ms)"},
    knob_spec{"service_sigma", &knobs::service_sigma, "lognormal: sigma"},
    knob_spec{"service_cpu", &knobs::service_cpu,
              "burn CPU time for the service time instead of sleeping"},
    knob_spec{"seed", &knobs::seed,
              "seed for service times and fault draws (mixed with PROCPOOL_WORKER_ID, which a "
              "pool sets, so that each worker draws its own sequence)"},
    knob_spec{"crash_after", &knobs::crash_after,
              "crash on the request after this many (0 = never)"},
    knob_spec{"crash_probability", &knobs::crash_probability, "per-request crash probability"},
    knob_spec{"crash_mode", &knobs::crash_mode,
              "exit (with crash_exit_code) | segv (SIGSEGV) | kill (SIGKILL itself)"},
    knob_spec{"crash_exit_code", &knobs::crash_exit_code, "exit code for crash_mode exit"},
    knob_spec{"hang_probability", &knobs::hang_probability,
              "per-request probability of never answering again"},
    knob_spec{"hang_mode", &knobs::hang_mode, "sleep (no CPU use) | spin (burns CPU)"},
    knob_spec{"slow_probability", &knobs::slow_probability,
              "per-request probability of adding slow_ms"},
    knob_spec{"slow_ms", &knobs::slow_ms, "extra delay of a slow reply (ms)"},
    knob_spec{"garbage_probability", &knobs::garbage_probability,
              "per-request probability of a well-framed reply that is not JSON"},
    knob_spec{"truncated_probability", &knobs::truncated_probability,
              "per-request probability of writing part of a frame, then exiting"},
    knob_spec{"oversize_probability", &knobs::oversize_probability,
              "per-request probability of a 0xFFFFFFF0 length prefix, then silence"},
    knob_spec{"wrong_id_probability", &knobs::wrong_id_probability,
              "per-request probability of answering with id + 1000000"},
    knob_spec{"exit_during_init", &knobs::exit_during_init,
              "exit with crash_exit_code when init arrives"},
    knob_spec{"never_ready", &knobs::never_ready, "never answer init"},
    knob_spec{"stderr_flood_mb", &knobs::stderr_flood_mb,
              "MiB written to stderr during init, before the reply"},
    knob_spec{"memory_growth_kb", &knobs::memory_growth_kb,
              "KiB allocated, touched and kept per request"},
    knob_spec{"ignore_sigterm", &knobs::ignore_sigterm, "ignore SIGTERM"},
    knob_spec{"grandchild", &knobs::grandchild,
              "fork a grandchild at start-up that lives until its process group is killed"},
};

std::string flag_name(const char* name) {
  std::string flag = std::string("--") + name;
  std::replace(flag.begin(), flag.end(), '_', '-');
  return flag;
}

// Reads one JSON value into a knob; returns the problem when the type does not fit.
std::optional<std::string> assign(const knob_spec& spec, const nlohmann::json& value, knobs& k) {
  auto mistyped = [&](const char* want) {
    return fmt::format("knob '{}' must be {}, got {}", spec.name, want, value.dump());
  };
  return std::visit(
      [&](auto member) -> std::optional<std::string> {
        using T = std::remove_reference_t<decltype(k.*member)>;
        if constexpr (std::is_same_v<T, double>) {
          if (!value.is_number()) return mistyped("a number");
          k.*member = value.get<double>();
        } else if constexpr (std::is_same_v<T, bool>) {
          if (!value.is_boolean()) return mistyped("a boolean");
          k.*member = value.get<bool>();
        } else if constexpr (std::is_same_v<T, std::string>) {
          if (!value.is_string()) return mistyped("a string");
          k.*member = value.get<std::string>();
        } else if constexpr (std::is_same_v<T, std::uint64_t>) {
          if (!value.is_number_unsigned()) return mistyped("an unsigned integer");
          k.*member = value.get<std::uint64_t>();
        } else {
          if (!value.is_number_integer()) return mistyped("an integer");
          k.*member = value.get<int>();
        }
        return std::nullopt;
      },
      spec.field);
}

}  // namespace

std::span<const knob_spec> knob_table() { return knob_specs; }

void add_knob_flags(CLI::App& app, knobs& k) {
  for (const auto& spec : knob_specs) {
    std::visit(
        [&](auto member) {
          using T = std::remove_reference_t<decltype(k.*member)>;
          if constexpr (std::is_same_v<T, bool>) {
            app.add_flag(flag_name(spec.name), k.*member, spec.help);
          } else {
            app.add_option(flag_name(spec.name), k.*member, spec.help)->capture_default_str();
          }
        },
        spec.field);
  }
}

std::optional<std::string> apply_init_args(const nlohmann::json& args, knobs& k) {
  if (args.is_null()) return std::nullopt;
  if (!args.is_object()) return "init args must be an object of knobs";
  knobs updated = k;
  for (const auto& [key, value] : args.items()) {
    auto spec = std::find_if(knob_specs.begin(), knob_specs.end(),
                             [&](const knob_spec& s) { return key == s.name; });
    if (spec == knob_specs.end()) return fmt::format("unknown knob '{}'", key);
    if (auto problem = assign(*spec, value, updated)) return problem;
  }
  if (auto problem = validate(updated)) return problem;
  k = std::move(updated);
  return std::nullopt;
}

std::optional<std::string> validate(const knobs& k) {
  for (const auto& [name, ms] :
       {std::pair{"startup_ms", k.startup_ms}, std::pair{"init_ms", k.init_ms},
        std::pair{"service_ms", k.service_ms}, std::pair{"service_min_ms", k.service_min_ms},
        std::pair{"service_max_ms", k.service_max_ms}, std::pair{"service_sigma", k.service_sigma},
        std::pair{"slow_ms", k.slow_ms}, std::pair{"stderr_flood_mb", k.stderr_flood_mb},
        std::pair{"memory_growth_kb", k.memory_growth_kb}}) {
    if (!(ms >= 0)) return fmt::format("knob '{}' must be >= 0, got {}", name, ms);
  }
  for (const auto& [name, p] :
       {std::pair{"crash_probability", k.crash_probability},
        std::pair{"hang_probability", k.hang_probability},
        std::pair{"slow_probability", k.slow_probability},
        std::pair{"garbage_probability", k.garbage_probability},
        std::pair{"truncated_probability", k.truncated_probability},
        std::pair{"oversize_probability", k.oversize_probability},
        std::pair{"wrong_id_probability", k.wrong_id_probability}}) {
    if (!(p >= 0 && p <= 1)) return fmt::format("knob '{}' must be in [0, 1], got {}", name, p);
  }
  if (k.service_max_ms < k.service_min_ms) {
    return "knob 'service_max_ms' must be >= service_min_ms";
  }
  auto one_of = [](const std::string& v, std::initializer_list<const char*> allowed) {
    return std::any_of(allowed.begin(), allowed.end(), [&](const char* a) { return v == a; });
  };
  if (!one_of(k.service_dist, {"fixed", "uniform", "exponential", "lognormal"})) {
    return fmt::format("knob 'service_dist' must be fixed, uniform, exponential or lognormal, "
                       "got '{}'", k.service_dist);
  }
  if (!one_of(k.crash_mode, {"exit", "segv", "kill"})) {
    return fmt::format("knob 'crash_mode' must be exit, segv or kill, got '{}'", k.crash_mode);
  }
  if (!one_of(k.hang_mode, {"sleep", "spin"})) {
    return fmt::format("knob 'hang_mode' must be sleep or spin, got '{}'", k.hang_mode);
  }
  return std::nullopt;
}

}  // namespace procpool::fake
