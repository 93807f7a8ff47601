#include "group_guard.hpp"

#include <fcntl.h>
#include <linux/close_range.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <csignal>
#include <vector>

namespace procpool {
namespace {

// Runs in the forked child of a multi-threaded process: async-signal-safe calls only, and
// no allocation (the table was sized before the fork).
[[noreturn]] void guard_main(int read_fd, pid_t* table, std::size_t capacity) {
  ::setpgid(0, 0);  // signals aimed at the pool's own group must not take the guard down
  sigset_t all;
  sigfillset(&all);
  ::sigprocmask(SIG_SETMASK, &all, nullptr);  // only SIGKILL/SIGSTOP can stop it
  ::close_range(0, static_cast<unsigned>(read_fd) - 1, 0);
  ::close_range(static_cast<unsigned>(read_fd) + 1, ~0U, 0);
  std::size_t count = 0;
  pid_t value = 0;
  while (true) {
    const ssize_t n = ::read(read_fd, &value, sizeof value);
    if (n < 0 && errno == EINTR) continue;
    if (n != static_cast<ssize_t>(sizeof value)) break;  // end of file: the pool is gone
    if (value > 0) {
      if (count < capacity) table[count++] = value;
    } else {
      for (std::size_t i = 0; i < count; ++i) {
        if (table[i] == -value) {
          table[i] = table[--count];
          break;
        }
      }
    }
  }
  for (std::size_t i = 0; i < count; ++i) ::kill(-table[i], SIGKILL);
  ::_exit(0);
}

}  // namespace

group_guard::group_guard(std::size_t capacity) {
  int fds[2];
  if (::pipe2(fds, O_CLOEXEC) != 0) return;
  std::vector<pid_t> table(capacity);
  const pid_t pid = ::fork();
  if (pid == 0) guard_main(fds[0], table.data(), table.size());
  ::close(fds[0]);
  if (pid < 0) {
    ::close(fds[1]);
    return;
  }
  pid_ = pid;
  write_fd_ = fds[1];
}

group_guard::~group_guard() {
  if (write_fd_ >= 0) ::close(write_fd_);
  if (pid_ > 0) {
    while (::waitpid(pid_, nullptr, 0) < 0 && errno == EINTR) {
    }
  }
}

void group_guard::send(pid_t value) noexcept {
  if (write_fd_ < 0) return;
  // A 4-byte write to a pipe is atomic; the guard reads faster than groups come and go.
  while (::write(write_fd_, &value, sizeof value) < 0 && errno == EINTR) {
  }
}

void group_guard::add(pid_t pgid) noexcept { send(pgid); }
void group_guard::remove(pid_t pgid) noexcept { send(-pgid); }

}  // namespace procpool
