// A process's memory as /proc/PID/smaps_rollup sums it (Linux 4.14+): what it maps resident
// (Rss), its proportional share of pages it shares (Pss), and what is its alone (USS:
// Private_Clean + Private_Dirty). USS against PSS is what shows how much of a worker a zygote
// shares with its siblings.
//
//   const auto m = read_smaps_rollup(pid);
//   if (!m) log(m.error());  // "cannot open /proc/42/smaps_rollup: No such file or directory"
//   else use(m->uss_kib);
//
// Errors are values: a worker may exit between being listed and being read, and another
// user's process is unreadable (ptrace access mode), both ordinary outcomes for a sampler.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "procpool/result.hpp"

namespace procpool {

struct smaps_rollup {
  std::uint64_t rss_kib = 0;
  std::uint64_t pss_kib = 0;
  std::uint64_t uss_kib = 0;  // Private_Clean + Private_Dirty
};

// Reads /proc/<pid>/smaps_rollup; the error says which file and why.
result<smaps_rollup, std::string> read_smaps_rollup(std::int64_t pid);

// Parses the file's text ("Rss:  1234 kB" lines); an error when Rss, Pss or either Private
// line is missing (an empty file: the process exited, or is a kernel thread).
result<smaps_rollup, std::string> parse_smaps_rollup(std::string_view text);

}  // namespace procpool
