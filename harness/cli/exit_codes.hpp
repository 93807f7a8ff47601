// The exit codes every procpool command shares, documented in harness/cli/README.md. Scripts
// and CI jobs branch on them, so they are a contract.
#pragma once

namespace procpool::harness {

inline constexpr int exit_ok = 0;
inline constexpr int exit_failed = 1;   // an assertion or regression failed, or interrupted
inline constexpr int exit_usage = 2;    // usage or configuration error
inline constexpr int exit_internal = 3;

}  // namespace procpool::harness
