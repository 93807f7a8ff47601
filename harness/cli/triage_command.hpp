// `procpool triage`: is a failure environmental or architectural? Reruns a scenario case, or
// any test command, under idealised, as-is and degraded environments and compares failure
// rates with Fisher's exact test.
#pragma once

#include <CLI/CLI.hpp>

namespace procpool::harness {

void add_triage_command(CLI::App& app, int& exit_code);

}  // namespace procpool::harness
