#include "results/files.hpp"

#include <fcntl.h>
#include <stdlib.h>
#include <unistd.h>

#include <cerrno>
#include <system_error>

#include <fmt/format.h>

#include "procpool/wire/fd.hpp"
#include "procpool/wire/file_io.hpp"

namespace procpool::harness {
namespace {

result<void> write_whole(const std::filesystem::path& path, std::string_view text, int flags) {
  unique_fd fd(::open(path.c_str(), O_WRONLY | O_CLOEXEC | flags, 0666));
  if (!fd) return io_failure("cannot write", path, std::generic_category().message(errno));
  if (auto written = write_all(fd.get(), text); !written) {
    return io_failure("cannot write", path, written.error().message());
  }
  return {};
}

bool exists_but_not_regular(const std::filesystem::path& path) {
  std::error_code ec;
  const auto status = std::filesystem::status(path, ec);
  return !ec && std::filesystem::exists(status) && !std::filesystem::is_regular_file(status);
}

}  // namespace

error io_failure(std::string_view what, const std::filesystem::path& path, std::string_view why) {
  return error{errc::io_error, fmt::format("{} {}: {}", what, path.string(), why)};
}

result<void> prepare_output_dir(const std::filesystem::path& dir) {
  std::error_code ec;
  std::filesystem::create_directories(dir, ec);
  if (ec) return io_failure("cannot create", dir, ec.message());
  // O_TMPFILE would leave no name behind, but not every file system has it: a named probe,
  // removed at once, works everywhere.
  auto probe = dir / ".procpool-write-check-XXXXXX";
  std::string name = probe.string();
  unique_fd fd(::mkostemp(name.data(), O_CLOEXEC));
  if (!fd) return io_failure("cannot write in", dir, std::generic_category().message(errno));
  ::unlink(name.c_str());
  return {};
}

result<void> write_file_atomically(const std::filesystem::path& path, std::string_view text) {
  if (exists_but_not_regular(path)) return write_whole(path, text, O_TRUNC);
  auto temporary = path;
  temporary += ".tmp";
  if (auto written = write_whole(temporary, text, O_CREAT | O_TRUNC); !written) {
    std::error_code ignored;
    std::filesystem::remove(temporary, ignored);
    return written;
  }
  std::error_code ec;
  std::filesystem::rename(temporary, path, ec);
  if (ec) {
    std::error_code ignored;
    std::filesystem::remove(temporary, ignored);
    return io_failure("cannot write", path, ec.message());
  }
  return {};
}

}  // namespace procpool::harness
