#include "results/journal.hpp"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <map>
#include <system_error>

#include <fmt/format.h>

#include "procpool/wire/file_io.hpp"
#include "results/files.hpp"
#include "results/flatten.hpp"
#include "run/record_fields.hpp"

namespace procpool::harness {

using json = nlohmann::json;

constexpr auto fields_of(std::type_identity<journal_header>) {
  using h = journal_header;
  return std::tuple{field{"scenario", &h::scenario}, field{"shard_index", &h::shard_index},
                    field{"shard_count", &h::shard_count}, field{"total_cases", &h::total_cases},
                    field{"case_positions", &h::case_positions}, field{"command", &h::command}};
}

namespace {

std::filesystem::path journal_path(const std::filesystem::path& dir) { return dir / journal_file_name; }

error malformed(const std::filesystem::path& path, std::string_view why) {
  return error{errc::invalid_options, fmt::format("{}: {}", path.string(), why)};
}

// Text that is not UTF-8 (a description in Latin-1) is replaced, never thrown: a case must
// not be lost to one byte of its scenario.
std::string text_of(const json& j) { return j.dump(-1, ' ', false, json::error_handler_t::replace); }
std::string line_of(const json& j) { return text_of(j) + '\n'; }

json header_json(const journal_header& h) {
  json j = json::object();
  write_fields(j, h);
  j["schema"] = journal_schema;
  return j;
}

result<std::string> read_text(const std::filesystem::path& path) {
  unique_fd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
  if (!fd) return io_failure("cannot read", path, std::generic_category().message(errno));
  std::string text;
  if (auto r = read_all(fd.get(), text); !r) return io_failure("cannot read", path, r.error().message());
  return text;
}

}  // namespace

result<journal_writer> journal_writer::create(const std::filesystem::path& dir, const journal_header& header) {
  const auto path = journal_path(dir);
  unique_fd fd(::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_APPEND | O_CLOEXEC, 0666));
  if (!fd) return io_failure("cannot create", path, std::generic_category().message(errno));
  journal_writer writer(path, std::move(fd));
  if (auto written = writer.append_line(header_json(header)); !written) return std::move(written).error();
  return writer;
}

result<journal_writer> journal_writer::reopen(const std::filesystem::path& dir, const journal_contents& read) {
  const auto path = journal_path(dir);
  unique_fd fd(::open(path.c_str(), O_WRONLY | O_APPEND | O_CLOEXEC));
  if (!fd) return io_failure("cannot write", path, std::generic_category().message(errno));
  if (::ftruncate(fd.get(), static_cast<off_t>(read.complete_bytes)) != 0) {
    return io_failure("cannot write", path, std::generic_category().message(errno));
  }
  return journal_writer(path, std::move(fd));
}

result<void> journal_writer::append(const case_record& c) { return append_line(json(c)); }

result<void> journal_writer::append_line(const json& line) {
  std::string text = line_of(line);
  std::string_view pending = text;
  if (auto written = write_all(fd_.get(), pending); !written) {
    return io_failure("cannot write", path_, written.error().message());
  }
  // The point of the journal: the case is on disk before the next one starts.
  if (::fdatasync(fd_.get()) != 0) return io_failure("cannot sync", path_, std::generic_category().message(errno));
  return {};
}

result<journal_contents> read_journal(const std::filesystem::path& dir) {
  const auto path = journal_path(dir);
  auto text = read_text(path);
  if (!text) return std::move(text).error();
  journal_contents out;
  std::size_t line_number = 0;
  for (std::size_t begin = 0, end; (end = text->find('\n', begin)) != std::string::npos; begin = end + 1) {
    ++line_number;
    const json line = json::parse(std::string_view(*text).substr(begin, end - begin), nullptr, false);
    if (line_number == 1) {
      if (!line.is_object() || line.value("schema", json()) != journal_schema) {
        return malformed(path, fmt::format("not a {} journal", journal_schema));
      }
      read_fields(line, out.header);
    } else if (!line.is_object() || !line.contains("id")) {
      return malformed(path, fmt::format("line {} is not a case record", line_number));
    } else {
      out.cases.push_back(line.get<case_record>());
    }
    out.complete_bytes = end + 1;
  }
  if (line_number == 0) return malformed(path, "empty: the run it belongs to wrote nothing");
  return out;
}

std::string journal_mismatch(const journal_header& journal, const journal_header& now) {
  if (journal.shard_index != now.shard_index || journal.shard_count != now.shard_count) {
    return fmt::format("the shard: {}/{} here, {}/{} in the journal", now.shard_index, now.shard_count,
                       journal.shard_index, journal.shard_count);
  }
  if (journal.case_positions != now.case_positions) {
    return fmt::format("the shard's cases: {} here, {} in the journal (another --balance-from?)",
                       now.case_positions.size(), journal.case_positions.size());
  }
  std::map<std::string, json> before, after;
  flatten(journal.scenario, before);
  flatten(now.scenario, after);
  for (const auto& [key, value] : after) {
    const auto it = before.find(key);
    if (it == before.end() || it->second != value) {
      return fmt::format("{}: {} here, {} in the journal", key, text_of(value),
                         it == before.end() ? "(absent)" : text_of(it->second));
    }
  }
  for (const auto& [key, value] : before) {
    if (!after.contains(key)) return fmt::format("{}: (absent) here, {} in the journal", key, text_of(value));
  }
  return {};
}

}  // namespace procpool::harness
