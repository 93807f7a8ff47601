#include "procpool/wire/file_io.hpp"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>

#include "procpool/wire/fd.hpp"

namespace procpool {
namespace {

std::error_code last_error() noexcept { return {errno, std::generic_category()}; }

}  // namespace

void unique_fd::reset(int fd) noexcept {
  if (fd_ >= 0 && fd_ != fd) ::close(fd_);
  fd_ = fd;
}

bool would_block(const std::error_code& ec) noexcept {
  return ec == std::errc::resource_unavailable_try_again ||
         ec == std::errc::operation_would_block;
}

io_result<std::size_t> read_some(int fd, std::span<char> buffer) noexcept {
  while (true) {
    const ssize_t n = ::read(fd, buffer.data(), buffer.size());
    if (n >= 0) return static_cast<std::size_t>(n);
    if (errno != EINTR) return last_error();
  }
}

io_result<read_end> read_all(int fd, std::string& out) {
  char buffer[64 * 1024];
  return read_all(fd, buffer, [&](std::string_view chunk) { out.append(chunk); });
}

io_result<void> write_all(int fd, std::string_view& pending) noexcept {
  while (!pending.empty()) {
    const ssize_t n = ::write(fd, pending.data(), pending.size());
    if (n > 0) {
      pending.remove_prefix(static_cast<std::size_t>(n));
    } else if (n == 0) {
      return std::make_error_code(std::errc::io_error);  // no progress: never loop on it
    } else if (errno != EINTR) {
      return last_error();
    }
  }
  return {};
}

int poll_timeout_ms(deadline until) noexcept {
  return poll_timeout_ms(until, std::chrono::steady_clock::now());
}

int poll_timeout_ms(deadline until, deadline now) noexcept {
  const auto left = until - now;
  if (left <= std::chrono::steady_clock::duration::zero()) return 0;
  // Compared as durations before the cast, so a far deadline cannot overflow the int.
  const auto ms = std::chrono::ceil<std::chrono::milliseconds>(left);
  return static_cast<int>(std::min<std::chrono::milliseconds::rep>(ms.count(), poll_cap_ms));
}

io_result<int> poll_until(std::span<pollfd> fds, deadline until) noexcept {
  return poll_until(fds, until, std::chrono::steady_clock::now());
}

io_result<int> poll_until(std::span<pollfd> fds, deadline until, deadline now) noexcept {
  int timeout = poll_timeout_ms(until, now);
  while (true) {
    const int ready = ::poll(fds.data(), fds.size(), timeout);
    if (ready > 0) return ready;
    if (ready < 0 && errno != EINTR) return last_error();
    if (ready == 0 && timeout == 0) return 0;
    // Interrupted, or woken by the cap (or a rounding) before the deadline: wait again, and
    // say the deadline passed only once it truly has.
    now = std::chrono::steady_clock::now();
    if (ready == 0 && now >= until) return 0;
    timeout = poll_timeout_ms(until, now);
  }
}

io_result<pipe_ends> open_pipe(int flags) noexcept {
  int fds[2];
  if (::pipe2(fds, flags) != 0) return last_error();
  return pipe_ends{unique_fd(fds[0]), unique_fd(fds[1])};
}

io_result<void> set_nonblocking(int fd) noexcept {
  const int flags = ::fcntl(fd, F_GETFL);
  if (flags < 0 || ::fcntl(fd, F_SETFL, flags | O_NONBLOCK) != 0) return last_error();
  return {};
}

}  // namespace procpool
