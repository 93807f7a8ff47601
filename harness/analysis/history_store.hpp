// The run history: results.json documents kept in a SQLite file, one row per run and one per
// case repetition, so that `procpool history` can follow each case's figures across runs.
// The schema and its migrations are in harness/analysis/HISTORY.md.
//
//   auto store = history_store::open("perf.sqlite");           // creates or migrates it
//   if (!store) return fail(store.error().message);             // errc::io_error
//   auto doc = read_results("out/results.json");
//   auto id = store->add_run(*doc, "commit abc123");             // one transaction
//   auto runs = store->runs();                                   // oldest first
//   auto cases = store->cases();
#pragma once

#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "analysis/sqlite.hpp"
#include "procpool/result.hpp"
#include "run/records.hpp"

namespace procpool::harness {

// Version 1: runs (without label), cases, verdicts. Version 2 added the runs' label.
inline constexpr int history_schema_version = 2;

struct history_run {
  std::int64_t id = 0;
  std::string added_at = {};  // UTC, ISO 8601
  std::string label = {};     // empty when none was given
  std::string scenario_name = {};
  std::string scenario = {};  // the results document's "scenario", as JSON text
  // The host: results.json's "environment".
  std::int64_t cores = 0;
  std::string kernel = {};
  std::string cpu_model = {};
  std::optional<double> cpu_limit = {};

  // "label" when there is one, else "#id".
  std::string name() const { return label.empty() ? "#" + std::to_string(id) : label; }
};

// One repetition of one case in one run.
struct history_case {
  std::int64_t run_id = 0;
  std::string case_id = {};    // "load.concurrency=4#1"
  std::string case_name = {};  // without the repetition: "load.concurrency=4"; "(no sweep)"
  double throughput_rps = 0;
  double p50_us = 0;
  double p99_us = 0;
  std::uint64_t requests = 0;
  std::uint64_t timeouts = 0;
  double timeout_rate = 0;  // timeouts / requests; 0 without requests
  count_map verdicts = {};
};

class history_store {
 public:
  // Opens or creates the history at `path` and migrates it to `version` (the current one
  // unless a test wants an old schema). Errors: io_error; a database newer than this program.
  static result<history_store> open(const std::filesystem::path& path, int version = history_schema_version);

  int version() const { return version_; }

  // Stores a results document (schema procpool.results/1): its scenario, host and every case
  // repetition that ran (cases that could not start or were interrupted are left out).
  // Returns the run's id. `added_at` defaults to now.
  result<std::int64_t> add_run(const nlohmann::json& results, std::string_view label, std::string added_at = {});

  result<std::vector<history_run>> runs();    // oldest first
  result<std::vector<history_case>> cases();  // by run, then as stored

  sqlite_db& db() { return db_; }

 private:
  history_store(sqlite_db db, int version) : db_(std::move(db)), version_(version) {}
  result<void> migrate(int to);
  sqlite_db db_;
  int version_ = 0;
};

// A history read whole: what `history changes`, `history report` and `compare --baseline-db`
// work from.
struct history_contents {
  std::vector<history_run> runs;    // oldest first
  std::vector<history_case> cases;  // by run
};

// Opens the existing history at `path` and reads every run and case. Errors: io_error, also
// when there is no such file (opening would create an empty history).
result<history_contents> read_history(const std::filesystem::path& path);

}  // namespace procpool::harness
