// unique_fd: the one owner of a file descriptor, closing it when it goes out of scope.
//
// Move-only, like std::unique_ptr: a descriptor has exactly one owner, and moving hands it
// over. -1 means "none".
//
//   procpool::unique_fd fd(::open(path, O_RDONLY | O_CLOEXEC));
//   if (!fd) return errno_error();
//   auto n = procpool::read_some(fd.get(), buffer);   // see file_io.hpp
//   int raw = fd.release();                            // hand it on; no longer closed here
#pragma once

#include <utility>

namespace procpool {

class unique_fd {
 public:
  unique_fd() noexcept = default;
  explicit unique_fd(int fd) noexcept : fd_(fd) {}
  unique_fd(unique_fd&& other) noexcept : fd_(other.release()) {}
  unique_fd& operator=(unique_fd&& other) noexcept {
    reset(other.release());
    return *this;
  }
  unique_fd(const unique_fd&) = delete;
  unique_fd& operator=(const unique_fd&) = delete;
  ~unique_fd() { reset(); }

  int get() const noexcept { return fd_; }
  explicit operator bool() const noexcept { return fd_ >= 0; }

  // Gives up ownership: the caller closes the returned descriptor.
  [[nodiscard]] int release() noexcept { return std::exchange(fd_, -1); }
  // Closes the descriptor held (close errors are ignored: the descriptor is gone either way,
  // and retrying close on Linux could close someone else's) and takes `fd`.
  void reset(int fd = -1) noexcept;

 private:
  int fd_ = -1;
};

}  // namespace procpool
