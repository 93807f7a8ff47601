// Every leaf of a nested JSON object by its dotted key, the way the scenario's keys are
// named (`pool.size` for {"pool": {"size": 2}}): two documents' settings compared key by key.
//
//   std::map<std::string, nlohmann::json> leaves;
//   flatten(results["scenario"], leaves);   // leaves["pool.size"] == 2
#pragma once

#include <map>
#include <string>

#include <nlohmann/json.hpp>

namespace procpool::harness {

// Arrays and empty objects are leaves. Keys are added to `out` under `prefix`.
void flatten(const nlohmann::json& value, std::map<std::string, nlohmann::json>& out,
             const std::string& prefix = {});

}  // namespace procpool::harness
