// `procpool compare BASE.json NEW.json`: wires analysis/compare.hpp to the command line.
#pragma once

#include <CLI/CLI.hpp>

namespace procpool::harness {

void add_compare_command(CLI::App& app, int& exit_code);

}  // namespace procpool::harness
