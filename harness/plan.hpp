// `procpool plan RESULTS.json --rate R --p99-ms T`: capacity planning from a measured sweep,
// by the Universal Scalability Law and Erlang C.
#pragma once

#include <CLI/CLI.hpp>

namespace procpool::harness {

void add_plan_command(CLI::App& app, int& exit_code);

}  // namespace procpool::harness
