#include "run/pressure.hpp"

#include <fcntl.h>
#include <sys/mman.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <limits>
#include <sstream>
#include <vector>

namespace procpool::harness {
namespace {

constexpr std::uint64_t mib = 1024 * 1024;
constexpr std::size_t page = 4096;

std::uint64_t read_number(const std::string& path) {
  std::ifstream in(path);
  std::string text;
  if (!(in >> text) || text == "max") return std::numeric_limits<std::uint64_t>::max();
  return std::strtoull(text.c_str(), nullptr, 10);
}

std::uint64_t mem_available_bytes() {
  std::ifstream in("/proc/meminfo");
  std::string key;
  std::uint64_t kib = 0;
  std::string unit;
  while (in >> key >> kib >> unit) {
    if (key == "MemAvailable:") return kib * 1024;
  }
  return 0;
}

// Room under the memory cgroup's limit: v2 ("0::/path") and v1 ("N:memory:/path") alike.
std::uint64_t cgroup_room_bytes() {
  std::ifstream in("/proc/self/cgroup");
  std::uint64_t room = std::numeric_limits<std::uint64_t>::max();
  for (std::string line; std::getline(in, line);) {
    const auto path = line.substr(line.rfind(':') + 1);
    std::vector<std::pair<std::string, std::string>> files;
    if (line.starts_with("0::")) {
      files.emplace_back("/sys/fs/cgroup" + path + "/memory.max", "/sys/fs/cgroup" + path + "/memory.current");
    } else if (line.find(":memory:") != std::string::npos) {
      // A container sees its own cgroup at the mount's root, not at `path`.
      for (const std::string& dir : {"/sys/fs/cgroup/memory" + path, std::string("/sys/fs/cgroup/memory")}) {
        files.emplace_back(dir + "/memory.limit_in_bytes", dir + "/memory.usage_in_bytes");
      }
    }
    for (const auto& [limit_file, usage_file] : files) {
      if (!std::filesystem::exists(limit_file)) continue;
      const std::uint64_t limit = read_number(limit_file);
      const std::uint64_t usage = read_number(usage_file);
      if (limit != std::numeric_limits<std::uint64_t>::max() && usage < limit) room = std::min(room, limit - usage);
      break;
    }
  }
  return room;
}

}  // namespace

std::uint64_t available_memory_bytes() { return std::min(mem_available_bytes(), cgroup_room_bytes()); }

std::uint64_t bounded_memory_hog_bytes(std::uint64_t requested, std::uint64_t available) {
  const std::uint64_t keep_free = std::max<std::uint64_t>(512 * mib, available / 4);
  const std::uint64_t most = available > keep_free ? available - keep_free : 0;
  return std::min(requested == 0 ? available / 2 : requested, most) / page * page;
}

memory_pressure::memory_pressure(std::uint64_t bytes) {
  if (bytes == 0) return;
  void* region = ::mmap(nullptr, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
  if (region == MAP_FAILED) return;
  region_ = static_cast<char*>(region);
  bytes_ = bytes;
  // Should memory run out after all, the OOM killer takes this process (and the run it
  // degrades) rather than anyone else's work; restored on destruction.
  std::ifstream("/proc/self/oom_score_adj") >> previous_oom_score_adj_;
  std::ofstream("/proc/self/oom_score_adj") << std::max(previous_oom_score_adj_, 500);
  touch(1);
  toucher_ = std::thread([this] {
    for (unsigned pass = 2; !stopping_; ++pass) {
      for (int slept = 0; slept < 50 && !stopping_; ++slept) std::this_thread::sleep_for(std::chrono::milliseconds(10));
      if (!stopping_) touch(pass);
    }
  });
}

void memory_pressure::touch(unsigned pass) noexcept {
  // A byte a page, never the same value twice in a row: every page is dirty, none is zero.
  for (std::uint64_t offset = 0; offset < bytes_ && !stopping_; offset += page) {
    region_[offset] = static_cast<char>(1 + (pass + offset / page) % 250);
  }
}

memory_pressure::~memory_pressure() {
  stopping_ = true;
  if (toucher_.joinable()) toucher_.join();
  if (region_ == nullptr) return;
  ::munmap(region_, bytes_);
  std::ofstream("/proc/self/oom_score_adj") << previous_oom_score_adj_;
}

io_pressure::io_pressure(const std::filesystem::path& dir) {
  std::string name = (dir / ".procpool-io-pressure-").string() + std::to_string(::getpid()) + "-XXXXXX";
  fd_ = ::mkostemp(name.data(), O_CLOEXEC);
  if (fd_ < 0) {
    error_ = "cannot create a scratch file in " + dir.string() + ": " + std::strerror(errno);
    return;
  }
  path_ = name;
  writers_[0] = std::thread([this] { write_loop(0); });
  writers_[1] = std::thread([this] { write_loop(32 * mib); });
}

void io_pressure::write_loop(off_t base) noexcept {
  constexpr std::size_t chunk = mib;
  constexpr off_t span = 32 * mib;
  std::vector<char> buffer(chunk);
  off_t offset = 0;
  for (unsigned n = 0; !stopping_; ++n) {
    std::fill(buffer.begin(), buffer.end(), static_cast<char>(n));  // new data each time
    if (::pwrite(fd_, buffer.data(), chunk, base + offset) < 0 || ::fsync(fd_) != 0) {
      std::this_thread::sleep_for(std::chrono::milliseconds(10));  // a full disk: keep trying, gently
    }
    offset = (offset + static_cast<off_t>(chunk)) % span;
  }
}

io_pressure::~io_pressure() {
  stopping_ = true;
  for (auto& writer : writers_) {
    if (writer.joinable()) writer.join();
  }
  if (fd_ < 0) return;
  ::close(fd_);
  ::unlink(path_.c_str());
}

}  // namespace procpool::harness
