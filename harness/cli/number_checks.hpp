// Validators for numeric options whose messages a person can read: CLI11's own range checks
// print their bounds in full, so "not negative" becomes a 300-digit number.
//
//   cmd->add_option("--rate", rate, "...")->check(procpool::harness::positive_number());
#pragma once

#include <string>

#include <CLI/CLI.hpp>

namespace procpool::harness {

// A number above 0.
CLI::Validator positive_number();
// A number of 0 or more.
CLI::Validator non_negative_number();

}  // namespace procpool::harness
