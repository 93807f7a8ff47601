// `procpool driver-check -- COMMAND...`: holds an external-pool driver to the driver protocol
// (harness/subjects/DRIVERS.md), for the people who write drivers. It launches the driver
// several times, each run in a process group of its own that is killed and reaped afterwards,
// and prints one line per check, PASS, WARN, FAIL or SKIP, quoting what the driver wrote (or
// what did not come) when a check fails, then a summary:
//
//   PASS start (started in 291 ms; pids 5673, 5674; 0 worker and 0 pool lines)
//   FAIL echo: the done line for id 1 is not protocol (...): `{"event":"done",...}`
//   WARN cold start: the driver ignores "warm": false and starts warm ...
//
// Exit 0 when no check failed, 1 when one did, 2 on a usage error.
#pragma once

#include <CLI/CLI.hpp>

namespace procpool::harness {

// Registers the subcommand; the callback sets `exit_code`.
void add_driver_check_command(CLI::App& app, int& exit_code);

}  // namespace procpool::harness
