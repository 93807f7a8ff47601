// The one way the harness writes a file: whole or not at all.
//
// Results, reports, plans, comparisons and triage notes are read by people and scripts while
// runs are going on; a reader must never see half a file, nor a file half replaced.
//
//   if (auto w = procpool::harness::write_file_atomically(dir / "report.md", text); !w) {
//     fmt::print(stderr, "{}\n", w.error().message);   // errc::io_error, names the file
//   }
#pragma once

#include <filesystem>
#include <string_view>

#include "procpool/result.hpp"

namespace procpool::harness {

// Writes `text` to PATH.tmp beside `path` and renames it over `path`, so `path` holds either
// its old content or all of `text`. No fsync: this guards readers, not power cuts (a crash
// loses the run that was writing anyway). A `path` that exists and is not a regular file
// (/dev/stdout, a FIFO) cannot be replaced and is written in place. Errors: io_error, naming
// the file and the reason.
result<void> write_file_atomically(const std::filesystem::path& path, std::string_view text);

// Creates `dir` (and its parents) and proves a file can be created in it, so that a command
// refuses an output it cannot write before it spends any time, not after. Errors: io_error,
// naming the directory and the OS's reason.
result<void> prepare_output_dir(const std::filesystem::path& dir);

// An io_error naming what could not be done to which file, and why.
error io_failure(std::string_view what, const std::filesystem::path& path, std::string_view why);

}  // namespace procpool::harness
