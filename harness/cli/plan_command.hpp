// `procpool plan RESULTS.json --rate R --p99-ms T`: wires analysis/plan.hpp to the command line.
#pragma once

#include <CLI/CLI.hpp>

namespace procpool::harness {

void add_plan_command(CLI::App& app, int& exit_code);

}  // namespace procpool::harness
