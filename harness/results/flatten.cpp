#include "results/flatten.hpp"

namespace procpool::harness {

void flatten(const nlohmann::json& value, std::map<std::string, nlohmann::json>& out, const std::string& prefix) {
  if (value.is_object() && !value.empty()) {
    for (const auto& [key, child] : value.items()) flatten(child, out, prefix.empty() ? key : prefix + "." + key);
    return;
  }
  out[prefix] = value;
}

}  // namespace procpool::harness
