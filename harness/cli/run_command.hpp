// `procpool run` and `procpool merge`: the scenario runner's command line.
#pragma once

#include <CLI/CLI.hpp>

#include "cli/exit_codes.hpp"

namespace procpool::harness {

void add_run_command(CLI::App& app, int& exit_code);
void add_merge_command(CLI::App& app, int& exit_code);

}  // namespace procpool::harness
