// Reads /proc/PID/smaps_rollup: see procpool/smaps_rollup.hpp.
#include "procpool/smaps_rollup.hpp"

#include <cerrno>
#include <charconv>
#include <cstring>
#include <fstream>
#include <sstream>

#include <fmt/format.h>

namespace procpool {
namespace {

// The kB figure of a "Name:   1234 kB" line whose name is `name`.
bool read_line_value(std::string_view line, std::string_view name, std::uint64_t& out) {
  if (!line.starts_with(name) || line.size() <= name.size() || line[name.size()] != ':') {
    return false;
  }
  auto rest = line.substr(name.size() + 1);
  const auto start = rest.find_first_not_of(" \t");
  if (start == std::string_view::npos) return false;
  rest = rest.substr(start);
  return std::from_chars(rest.data(), rest.data() + rest.size(), out).ec == std::errc{};
}

}  // namespace

result<smaps_rollup, std::string> parse_smaps_rollup(std::string_view text) {
  smaps_rollup m;
  std::uint64_t private_clean = 0, private_dirty = 0;
  int found = 0;  // one bit per line the figures need
  while (!text.empty()) {
    const auto end = text.find('\n');
    const auto line = text.substr(0, end);
    text = end == std::string_view::npos ? std::string_view{} : text.substr(end + 1);
    if (read_line_value(line, "Rss", m.rss_kib)) found |= 1;
    if (read_line_value(line, "Pss", m.pss_kib)) found |= 2;
    if (read_line_value(line, "Private_Clean", private_clean)) found |= 4;
    if (read_line_value(line, "Private_Dirty", private_dirty)) found |= 8;
  }
  if (found != 15) return std::string("smaps_rollup lacks Rss, Pss, Private_Clean or Private_Dirty");
  m.uss_kib = private_clean + private_dirty;
  return m;
}

result<smaps_rollup, std::string> read_smaps_rollup(std::int64_t pid) {
  const std::string path = fmt::format("/proc/{}/smaps_rollup", pid);
  std::ifstream in(path);
  if (!in) return fmt::format("cannot open {}: {}", path, std::strerror(errno));
  std::ostringstream text;
  text << in.rdbuf();
  auto m = parse_smaps_rollup(text.str());
  if (!m) return fmt::format("{}: {}", path, m.error());
  return m;
}

}  // namespace procpool
