// A bounded buffer holding the most recent bytes a worker wrote to stderr.
//
// Workers' stderr is drained continuously (a full 64 KiB pipe would block the worker
// forever); only the tail is kept so that error reports can quote the last lines.
//
//   procpool::stderr_tail tail(64 * 1024);
//   tail.append(chunk);
//   report(tail.last_lines(20));
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

namespace procpool {

class stderr_tail {
 public:
  explicit stderr_tail(std::size_t capacity_bytes = 64 * 1024) : capacity_(capacity_bytes) {}

  void append(std::string_view bytes);
  // The last `max_lines` lines (fewer when the buffer holds fewer), joined with '\n'.
  std::string last_lines(std::size_t max_lines) const;
  std::uint64_t total_bytes() const noexcept { return total_bytes_; }

 private:
  std::string buffer_;
  std::size_t capacity_;
  std::uint64_t total_bytes_ = 0;
};

}  // namespace procpool
