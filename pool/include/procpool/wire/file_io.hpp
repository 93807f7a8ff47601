// Descriptor I/O written once: reads and writes that retry EINTR and finish partial writes,
// and poll() against a deadline. Errors are values: the errno that stopped the call, as a
// std::error_code; on a non-blocking descriptor "nothing now" is would_block(ec).
//
// Each helper makes exactly the system calls a hand-written loop would (one read or write
// per chunk, one poll per wait), so the pool's request path uses them as they are.
//
//   std::string_view pending = frame;
//   while (true) {
//     auto sent = procpool::write_all(fd, pending);        // consumes what it wrote
//     if (sent) break;
//     if (!procpool::would_block(sent.error())) return fail(sent.error());
//     pollfd p{fd, POLLOUT, 0};
//     auto ready = procpool::poll_until({&p, 1}, until);  // 0: the deadline passed
//     if (ready && *ready == 0) return timed_out();
//   }
#pragma once

#include <fcntl.h>
#include <poll.h>

#include <cerrno>
#include <cstddef>
#include <span>
#include <string>
#include <string_view>
#include <system_error>

#include "procpool/clock.hpp"
#include "procpool/result.hpp"
#include "procpool/wire/fd.hpp"

namespace procpool {

template <class T>
using io_result = result<T, std::error_code>;

// True for EAGAIN/EWOULDBLOCK: a non-blocking descriptor has nothing to read or no room.
bool would_block(const std::error_code& ec) noexcept;

// One read of at most buffer.size() bytes, retried on EINTR. 0 means end of file.
io_result<std::size_t> read_some(int fd, std::span<char> buffer) noexcept;

// How read_all stopped when it did not fail.
enum class read_end { end_of_file, would_block };

// Reads until end of file or, on a non-blocking descriptor, until nothing is left, handing
// each chunk to `sink(std::string_view)` straight from `buffer` (no copy is made here).
template <class Sink>
io_result<read_end> read_all(int fd, std::span<char> buffer, Sink&& sink) {
  while (true) {
    auto n = read_some(fd, buffer);
    if (!n) {
      if (would_block(n.error())) return read_end::would_block;
      return n.error();
    }
    if (*n == 0) return read_end::end_of_file;
    sink(std::string_view(buffer.data(), *n));
  }
}

// read_all appending to `out`.
io_result<read_end> read_all(int fd, std::string& out);

// Writes `pending` whole, retrying EINTR and partial writes, and removes what was written
// from its front. On error `pending` holds what is left: on a non-blocking descriptor a
// full pipe is would_block(error), and the caller waits for POLLOUT and calls again.
io_result<void> write_all(int fd, std::string_view& pending) noexcept;

// The longest single wait poll_timeout_ms returns: one minute. It keeps a far deadline from
// overflowing poll's int; poll_until waits again, so callers never see the cap.
inline constexpr int poll_cap_ms = 60'000;

// Milliseconds until `until` for poll(): rounded up, so that a sub-millisecond remainder is
// waited for rather than spun on; 0 once it has passed; at most poll_cap_ms.
// `now`: the time, for a caller that has just read the clock.
int poll_timeout_ms(deadline until) noexcept;
int poll_timeout_ms(deadline until, deadline now) noexcept;

// poll() until a descriptor is ready or `until` passes, retrying EINTR (and waits cut short
// by poll_cap_ms) with the time left. Returns how many descriptors have revents, 0 only once
// the deadline has passed. A descriptor of -1 is ignored, as poll() does. `now`, when given,
// is the time a caller has just read, for the first wait: one clock read fewer on a request
// path; later waits read the clock again.
io_result<int> poll_until(std::span<pollfd> fds, deadline until) noexcept;
io_result<int> poll_until(std::span<pollfd> fds, deadline until, deadline now) noexcept;

// Calls `call` (a system call returning -1 and setting errno on failure) again for as long
// as it fails with EINTR, and returns its last result. For the calls the helpers above do
// not cover: waitpid, waitid, ...
template <class Call>
auto retry_eintr(Call&& call) noexcept(noexcept(call())) {
  auto r = call();
  while (r < 0 && errno == EINTR) r = call();
  return r;
}

struct pipe_ends {
  unique_fd read;
  unique_fd write;
};

// pipe2(flags): both ends owned.
io_result<pipe_ends> open_pipe(int flags = O_CLOEXEC) noexcept;

// Adds O_NONBLOCK to the descriptor's status flags.
io_result<void> set_nonblocking(int fd) noexcept;

}  // namespace procpool
