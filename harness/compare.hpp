// `procpool compare BASE.json NEW.json`: regressions between two runs. Cases are matched by
// their params; latency and throughput are compared with the Mann-Whitney U test.
#pragma once

#include <CLI/CLI.hpp>

namespace procpool::harness {

void add_compare_command(CLI::App& app, int& exit_code);

}  // namespace procpool::harness
