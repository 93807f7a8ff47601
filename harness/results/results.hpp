// results.json: the canonical, schema-versioned record of a run (schema procpool.results/1,
// documented in harness/results/README.md), the assertions checked against it, and the merge
// of shard outputs.
#pragma once

#include <filesystem>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "procpool/result.hpp"
#include "results/files.hpp"
#include "scenario/scenario.hpp"

namespace procpool::harness {

inline constexpr std::string_view results_schema = "procpool.results/1";

struct run_info {
  std::string command_line;
  std::size_t shard_index = 0;
  std::size_t shard_count = 1;
  std::size_t total_cases = 0;  // in the unsharded run
};

// The document's skeleton: schema, scenario as run, machine, no cases yet.
nlohmann::json new_results(const scenario& s, const run_info& info);

// The assertions of a results document's scenario ([assert]) against its cases: one entry per
// assertion with whether it held and the figure that decided. Reads only the document, so a
// merge of shards is checked as the unsharded run would be.
nlohmann::json check_assertions(const nlohmann::json& results);

// reports/out/<name>-<YYYYmmdd-HHMMSS>: where a command writes when it is given no --out.
std::string default_out_dir(std::string_view name);

// Writes DIR/results.json (creating DIR). Returns the path.
result<std::filesystem::path> write_results(const std::filesystem::path& dir, const nlohmann::json& results);
result<nlohmann::json> read_results(const std::filesystem::path& path);

// Joins shard outputs: the cases of all of them in the unsharded order, not yet diagnosed
// as a run (diagnosis/diagnosis.hpp's diagnose_run, then check_assertions, do that). Fails when the
// inputs come from different scenarios or schemas, or a case appears twice.
result<nlohmann::json> merge_results(const std::vector<nlohmann::json>& shards);

}  // namespace procpool::harness
