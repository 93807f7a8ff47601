// `procpool roundtrip`: start one worker, do the handshake, time a burst of echo round trips
// and print start-up, init and round-trip figures. The quickest check that a worker speaks
// the protocol and how fast.
#pragma once

#include <CLI/CLI.hpp>

namespace procpool::harness {

// Registers the subcommand; the callback sets `exit_code`.
void add_roundtrip_command(CLI::App& app, int& exit_code);

}  // namespace procpool::harness
