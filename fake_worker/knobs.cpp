#include "knobs.hpp"

#include <algorithm>
#include <array>
#include <cmath>

#include <fmt/format.h>
#include <fmt/ranges.h>

namespace procpool::fake {
namespace {

using json = nlohmann::json;

constexpr knob_spec row(std::string_view name, knob_field field) {
  return {find_knob(name), field};
}

// Member by member, in knob_table's order (checked below).
constexpr std::array bindings = {
    row("startup_ms", &knobs::startup_ms),
    row("init_ms", &knobs::init_ms),
    row("service_dist", &knobs::service_dist),
    row("service_ms", &knobs::service_ms),
    row("service_min_ms", &knobs::service_min_ms),
    row("service_max_ms", &knobs::service_max_ms),
    row("service_sigma", &knobs::service_sigma),
    row("service_cpu", &knobs::service_cpu),
    row("seed", &knobs::seed),
    row("crash_after", &knobs::crash_after),
    row("crash_probability", &knobs::crash_probability),
    row("crash_mode", &knobs::crash_mode),
    row("crash_exit_code", &knobs::crash_exit_code),
    row("hang_probability", &knobs::hang_probability),
    row("hang_mode", &knobs::hang_mode),
    row("slow_probability", &knobs::slow_probability),
    row("slow_ms", &knobs::slow_ms),
    row("garbage_probability", &knobs::garbage_probability),
    row("truncated_probability", &knobs::truncated_probability),
    row("oversize_probability", &knobs::oversize_probability),
    row("wrong_id_probability", &knobs::wrong_id_probability),
    row("exit_during_init", &knobs::exit_during_init),
    row("never_ready", &knobs::never_ready),
    row("stderr_flood_mb", &knobs::stderr_flood_mb),
    row("memory_growth_kb", &knobs::memory_growth_kb),
    row("ignore_sigterm", &knobs::ignore_sigterm),
    row("grandchild", &knobs::grandchild),
};

// The member's type must be the one the table gives the knob.
template <class T>
constexpr bool holds(knob_type type) {
  switch (type) {
    case knob_type::number: return std::is_same_v<T, double>;
    case knob_type::count: return std::is_same_v<T, std::uint64_t>;
    case knob_type::integer: return std::is_same_v<T, int>;
    case knob_type::boolean: return std::is_same_v<T, bool>;
    case knob_type::choice: return std::is_same_v<T, std::string>;
  }
  return false;
}

static_assert([] {
  if (bindings.size() != knob_table.size()) return false;
  for (std::size_t i = 0; i < bindings.size(); ++i) {
    if (bindings[i].info != &knob_table[i]) return false;
    const bool typed = std::visit(
        [&](auto member) {
          using T = std::remove_reference_t<decltype(std::declval<knobs&>().*member)>;
          return holds<T>(knob_table[i].type);
        },
        bindings[i].field);
    if (!typed) return false;
  }
  return true;
}(), "every row of knob_table is bound, in order, to a member of its type");

std::string flag_name(std::string_view name) {
  std::string flag = fmt::format("--{}", name);
  std::replace(flag.begin(), flag.end(), '_', '-');
  return flag;
}

// Reads one JSON value into a knob; returns the problem when the type does not fit.
std::optional<std::string> assign(const knob_spec& spec, const json& value, knobs& k) {
  auto mistyped = [&](const char* want) {
    return fmt::format("knob '{}' must be {}, got {}", spec.info->name, want, value.dump());
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

std::optional<std::string> check_range(const knob_info& info, double v) {
  if (v >= info.min && v <= info.max) return std::nullopt;
  if (std::isinf(info.max)) {
    return fmt::format("knob '{}' must be >= {}, got {}", info.name, info.min, v);
  }
  return fmt::format("knob '{}' must be in [{}, {}], got {}", info.name, info.min, info.max, v);
}

std::optional<std::string> check_choice(const knob_info& info, const std::string& v) {
  if (std::find(info.choices.begin(), info.choices.end(), v) != info.choices.end()) {
    return std::nullopt;
  }
  const auto last = info.choices.size() - 1;
  return fmt::format("knob '{}' must be {} or {}, got '{}'", info.name,
                     fmt::join(info.choices.first(last), ", "), info.choices[last], v);
}

// One knob's value against its row of the table.
std::optional<std::string> check(const knob_spec& spec, const knobs& k) {
  return std::visit(
      [&](auto member) -> std::optional<std::string> {
        using T = std::remove_cvref_t<decltype(k.*member)>;
        if constexpr (std::is_same_v<T, std::string>) {
          return check_choice(*spec.info, k.*member);
        } else if constexpr (std::is_same_v<T, bool>) {
          return std::nullopt;
        } else {
          return check_range(*spec.info, static_cast<double>(k.*member));
        }
      },
      spec.field);
}

json default_json(const knob_info& info) {
  switch (info.type) {
    case knob_type::number: return info.default_value;
    case knob_type::count: return info.default_as<std::uint64_t>();
    case knob_type::integer: return info.default_as<int>();
    case knob_type::boolean: return info.default_value != 0;
    case knob_type::choice: return info.default_choice();
  }
  return nullptr;
}

constexpr std::string_view type_name(knob_type type) {
  switch (type) {
    case knob_type::number: return "number";
    case knob_type::count: return "count";
    case knob_type::integer: return "integer";
    case knob_type::boolean: return "boolean";
    case knob_type::choice: return "choice";
  }
  return "?";
}

json bound(double v) { return std::isfinite(v) ? json(v) : json(nullptr); }

}  // namespace

knobs::knobs() {
  for (const auto& spec : bindings) {
    std::visit(
        [&](auto member) {
          using T = std::remove_reference_t<decltype(this->*member)>;
          if constexpr (std::is_same_v<T, std::string>) {
            this->*member = std::string(spec.info->default_choice());
          } else {
            this->*member = spec.info->default_as<T>();
          }
        },
        spec.field);
  }
}

std::span<const knob_spec> knob_bindings() { return bindings; }

void add_knob_flags(CLI::App& app, knobs& k) {
  for (const auto& spec : bindings) {
    const std::string help(spec.info->help);
    std::visit(
        [&](auto member) {
          using T = std::remove_reference_t<decltype(k.*member)>;
          if constexpr (std::is_same_v<T, bool>) {
            app.add_flag(flag_name(spec.info->name), k.*member, help);
          } else {
            auto* option = app.add_option(flag_name(spec.info->name), k.*member, help);
            option->capture_default_str();
            if constexpr (std::is_same_v<T, std::string>) {
              option->type_name(fmt::format("{{{}}}", fmt::join(spec.info->choices, ",")));
            }
          }
        },
        spec.field);
  }
}

std::optional<std::string> apply_init_args(const json& args, knobs& k) {
  if (args.is_null()) return std::nullopt;
  if (!args.is_object()) return "init args must be an object of knobs";
  knobs updated = k;
  for (const auto& [key, value] : args.items()) {
    auto spec = std::find_if(bindings.begin(), bindings.end(),
                             [&](const knob_spec& s) { return key == s.info->name; });
    if (spec == bindings.end()) return fmt::format("unknown knob '{}'", key);
    if (auto problem = assign(*spec, value, updated)) return problem;
  }
  if (auto problem = validate(updated)) return problem;
  k = std::move(updated);
  return std::nullopt;
}

std::optional<std::string> validate(const knobs& k) {
  for (const auto& spec : bindings) {
    if (auto problem = check(spec, k)) return problem;
  }
  if (k.service_max_ms < k.service_min_ms) {
    return "knob 'service_max_ms' must be >= service_min_ms";
  }
  return std::nullopt;
}

json knob_table_json() {
  json out = json::array();
  for (const auto& info : knob_table) {
    out.push_back({{"name", info.name},
                   {"type", type_name(info.type)},
                   {"default", default_json(info)},
                   {"min", info.type == knob_type::choice ? json(nullptr) : bound(info.min)},
                   {"max", info.type == knob_type::choice ? json(nullptr) : bound(info.max)},
                   {"choices", std::vector(info.choices.begin(), info.choices.end())},
                   {"help", info.help}});
  }
  return out;
}

}  // namespace procpool::fake
