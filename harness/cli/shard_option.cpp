#include "cli/shard_option.hpp"

#include <cstdlib>
#include <fstream>

#include <fmt/format.h>
#include <fmt/ranges.h>

namespace procpool::harness {
namespace {

// The first variable of `names` that is set: its name and value.
std::optional<std::pair<std::string_view, std::string>> first_set(std::span<const std::string_view> names,
                                                                  const env_lookup& env) {
  for (const auto name : names) {
    if (auto value = env(name); value && !value->empty()) return std::pair{name, *value};
  }
  return std::nullopt;
}

config_error shard_error(std::string message) { return config_error{"--shard", 0, "", std::move(message)}; }

}  // namespace

std::optional<std::string> getenv_lookup(std::string_view name) {
  const char* value = std::getenv(std::string(name).c_str());
  return value ? std::optional<std::string>(value) : std::nullopt;
}

config_result<shard> resolve_shard(std::string_view text, const env_lookup& env) {
  if (text != "auto" && !text.starts_with("auto/")) return parse_shard(text);
  const auto index = first_set(shard_index_variables, env);
  if (!index) {
    return shard_error(fmt::format("\"{}\": no shard index in the environment (looked for {})", text,
                                   fmt::join(shard_index_variables, ", ")));
  }
  std::string count;
  if (text.starts_with("auto/")) {
    count = std::string(text.substr(5));
  } else if (const auto from_env = first_set(shard_count_variables, env)) {
    count = from_env->second;
  } else {
    return shard_error(fmt::format("\"{}\": no shard count: write auto/N, or set one of {}", text,
                                   fmt::join(shard_count_variables, ", ")));
  }
  auto resolved = parse_shard(index->second + "/" + count);
  if (resolved) return resolved;
  config_error e = resolved.error();
  e.message += fmt::format(" (the index from {}={})", index->first, index->second);
  return e;
}

bool touch_shard_status_file(const env_lookup& env) {
  const auto path = env("TEST_SHARD_STATUS_FILE");
  if (!path || path->empty()) return true;
  std::ofstream touched(*path, std::ios::app);
  return static_cast<bool>(touched);
}

}  // namespace procpool::harness
