// Memory and I/O pressure on purpose, for rerunning a test in a degraded machine: a region of
// RAM held and kept resident, and a writer that writes and fsyncs a scratch file without
// pause. Both are scopes: when the object goes, so do the memory, the thread and the file.
//
//   {
//     memory_pressure memory(bounded_memory_hog_bytes(0, available_memory_bytes()));
//     io_pressure io("reports/out/triage-x");   // writes .procpool-io-pressure-<pid>-XXXXXX there
//     run_the_test();
//   }                                           // memory released, file removed
#pragma once

#include <atomic>
#include <cstdint>
#include <filesystem>
#include <string>
#include <thread>

#include <sys/types.h>

namespace procpool::harness {

// Bytes this process could still get: MemAvailable, or less when its memory cgroup (v2
// memory.max, v1 memory.limit_in_bytes) leaves less room under its limit.
std::uint64_t available_memory_bytes();

// How much a memory hog may take: `requested` bytes (0: half of `available`), never so much
// that less than a quarter of `available`, or 512 MiB, stays free.
std::uint64_t bounded_memory_hog_bytes(std::uint64_t requested, std::uint64_t available);

// Holds `bytes` of anonymous memory, every page written before the constructor returns, and
// written again every half second so that the kernel cannot reclaim or merge it.
class memory_pressure {
 public:
  explicit memory_pressure(std::uint64_t bytes);
  ~memory_pressure();
  memory_pressure(const memory_pressure&) = delete;
  memory_pressure& operator=(const memory_pressure&) = delete;

  std::uint64_t bytes() const noexcept { return bytes_; }  // 0 when the mapping failed

 private:
  void touch(unsigned pass) noexcept;

  char* region_ = nullptr;
  std::uint64_t bytes_ = 0;
  int previous_oom_score_adj_ = 0;
  std::atomic<bool> stopping_{false};
  std::thread toucher_;
};

// Two threads writing 1 MiB at a time and fsyncing after each write, each cycling through its
// own 32 MiB of a scratch file in `dir`, until destroyed; the file is removed then. Two, so
// that one is nearly always waiting on the disk while the other fills its buffer.
class io_pressure {
 public:
  explicit io_pressure(const std::filesystem::path& dir);
  ~io_pressure();
  io_pressure(const io_pressure&) = delete;
  io_pressure& operator=(const io_pressure&) = delete;

  bool running() const noexcept { return fd_ >= 0; }
  const std::string& error() const noexcept { return error_; }  // why it is not running

 private:
  void write_loop(off_t base) noexcept;

  std::string path_;
  std::string error_;
  int fd_ = -1;
  std::atomic<bool> stopping_{false};
  std::thread writers_[2];
};

}  // namespace procpool::harness
