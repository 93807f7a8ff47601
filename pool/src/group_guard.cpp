#include "group_guard.hpp"

#include <linux/close_range.h>
#include <sys/wait.h>
#include <unistd.h>

#include <csignal>
#include <vector>

#include "procpool/wire/file_io.hpp"

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
    const auto n = read_some(read_fd, {reinterpret_cast<char*>(&value), sizeof value});
    if (!n || *n != sizeof value) break;  // end of file: the pool is gone
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
  auto pipe = open_pipe();
  if (!pipe) return;
  std::vector<pid_t> table(capacity);
  const pid_t pid = ::fork();
  if (pid == 0) guard_main(pipe->read.get(), table.data(), table.size());
  if (pid < 0) return;
  pid_ = pid;
  write_fd_ = std::move(pipe->write);
}

group_guard::~group_guard() {
  write_fd_.reset();  // end of file for the guard, which then kills what is registered
  if (pid_ > 0) retry_eintr([&] { return ::waitpid(pid_, nullptr, 0); });
}

void group_guard::send(pid_t value) noexcept {
  if (!write_fd_) return;
  // A 4-byte write to a pipe is atomic; the guard reads faster than groups come and go.
  std::string_view bytes(reinterpret_cast<const char*>(&value), sizeof value);
  (void)write_all(write_fd_.get(), bytes);
}

void group_guard::add(pid_t pgid) noexcept { send(pgid); }
void group_guard::remove(pid_t pgid) noexcept { send(-pgid); }

}  // namespace procpool
