// `procpool history add|changes|report --db FILE`: keeps runs in a SQLite history and finds
// the runs where a case's figures shifted (analysis/history_changes.hpp).
//
//   procpool history add out/results.json --db perf.sqlite --label "$GIT_COMMIT"
//   procpool history changes --db perf.sqlite        # exit 1: a regression holds
//   procpool history report --db perf.sqlite --out history/
#pragma once

#include <CLI/CLI.hpp>

namespace procpool::harness {

void add_history_command(CLI::App& app, int& exit_code);

}  // namespace procpool::harness
