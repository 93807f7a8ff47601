// `procpool run` and `procpool merge`: the scenario runner's command line.
#pragma once

#include <CLI/CLI.hpp>

namespace procpool::harness {

// Exit codes shared by every command (DESIGN.md, "Reports and CLI").
inline constexpr int exit_ok = 0;
inline constexpr int exit_failed = 1;   // an assertion or regression failed, or interrupted
inline constexpr int exit_usage = 2;    // usage or configuration error
inline constexpr int exit_internal = 3;

void add_run_command(CLI::App& app, int& exit_code);
void add_merge_command(CLI::App& app, int& exit_code);

}  // namespace procpool::harness
