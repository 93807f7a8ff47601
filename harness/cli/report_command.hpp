// `procpool report RESULTS.json [--out DIR]`: wires reports.hpp to the command line.
#pragma once

#include <CLI/CLI.hpp>

namespace procpool::harness {

void add_report_command(CLI::App& app, int& exit_code);

}  // namespace procpool::harness
