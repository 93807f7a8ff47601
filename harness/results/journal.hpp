// journal.jsonl: the run's cases, each appended and synced to disk the moment it is diagnosed,
// so that a run killed by anything (SIGKILL, the OOM killer, a cancelled CI job) keeps every
// case it finished, and `procpool run --resume DIR` can run only the cases that are missing.
//
// One JSON document per line: first a header (what was run: the scenario with every default
// filled in, the shard, the command), then one case record per finished case, exactly as it
// goes into results.json. A line cut short by a kill is ignored when the journal is read and
// cut off before anything is appended.
//
//   auto journal = journal_writer::create(dir, header);   // a new run
//   journal->append(diagnosed_case);                       // after each case
//   auto earlier = read_journal(dir);                      // --resume
#pragma once

#include <filesystem>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "procpool/result.hpp"
#include "procpool/wire/fd.hpp"
#include "run/records.hpp"

namespace procpool::harness {

inline constexpr std::string_view journal_schema = "procpool.journal/1";
inline constexpr std::string_view journal_file_name = "journal.jsonl";

// What a journal's cases are a part of; a resumed run must match it.
struct journal_header {
  nlohmann::json scenario;  // scenario_to_json: every default filled in
  std::size_t shard_index = 0;
  std::size_t shard_count = 1;
  std::size_t total_cases = 0;  // in the unsharded run
  std::vector<std::size_t> case_positions;  // the shard's cases, by index in the unsharded run
  std::string command;
};

struct journal_contents {
  journal_header header;
  std::vector<case_record> cases;  // in the order they finished
  std::uintmax_t complete_bytes = 0;  // up to the end of the last whole line
};

class journal_writer {
 public:
  // Starts DIR/journal.jsonl afresh with `header`.
  static result<journal_writer> create(const std::filesystem::path& dir, const journal_header& header);
  // Continues a journal that read_journal read: what follows its last whole line is cut off.
  static result<journal_writer> reopen(const std::filesystem::path& dir, const journal_contents& read);

  // Appends the case and waits until it is on disk. Errors: io_error naming the journal.
  result<void> append(const case_record& c);

 private:
  journal_writer(std::filesystem::path path, unique_fd fd) : path_(std::move(path)), fd_(std::move(fd)) {}
  result<void> append_line(const nlohmann::json& line);

  std::filesystem::path path_;
  unique_fd fd_;
};

// Reads DIR/journal.jsonl. Errors: io_error when it cannot be read; invalid_options when it
// is not a journal, or a line before the last is not a case record (naming the line).
result<journal_contents> read_journal(const std::filesystem::path& dir);

// The first setting in which a run differs from the journal's, as "KEY: A here, B in the
// journal"; empty when they are the same run.
std::string journal_mismatch(const journal_header& journal, const journal_header& now);

}  // namespace procpool::harness
