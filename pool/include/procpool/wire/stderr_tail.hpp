// A bounded buffer holding the most recent bytes a worker wrote to stderr.
//
// Workers' stderr is drained continuously (a full 64 KiB pipe would block the worker
// forever); only the tail is kept so that error reports can quote the last lines. Safe to use
// from several threads: the pool's supervisor appends while callers quote.
//
//   procpool::stderr_tail tail(64 * 1024);
//   tail.append(chunk);
//   report(tail.last_lines(20));
#pragma once

#include <cstddef>
#include <cstdint>
#include <mutex>
#include <string>
#include <string_view>

namespace procpool {

class stderr_tail {
 public:
  explicit stderr_tail(std::size_t capacity_bytes = 64 * 1024) : capacity_(capacity_bytes) {}
  stderr_tail(stderr_tail&& other) noexcept;
  stderr_tail& operator=(stderr_tail&& other) noexcept;

  void append(std::string_view bytes);
  // The last `max_lines` lines (fewer when the buffer holds fewer), joined with '\n'.
  std::string last_lines(std::size_t max_lines) const;
  std::uint64_t total_bytes() const;

 private:
  mutable std::mutex mutex_;
  std::string buffer_;
  std::size_t capacity_;
  std::uint64_t total_bytes_ = 0;
};

}  // namespace procpool
