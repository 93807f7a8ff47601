// The forked child's side of a zygote `fork` (pool/ZYGOTE.md, "What the template does for
// one fork", child steps 1-6): own process group, parent-death signal with the getppid()
// race check, the received pipes on 0-2, every other descriptor closed, default signals, the
// request's environment. Runs in the child of a single-threaded template, right after fork().
#pragma once

#include <sys/types.h>

#include <array>
#include <optional>
#include <string>
#include <utility>
#include <vector>

namespace procpool::fake {

struct child_setup {
  pid_t template_pid;      // read before fork(): the parent the child must still have
  std::array<int, 3> fds;  // the received stdin (read end), stdout and stderr (write ends)
  std::vector<std::pair<std::string, std::string>> env;  // the request's `env`
};

// The exit code of a child whose set-up failed (as a failed exec would be).
inline constexpr int exit_child_setup_failed = 127;

// Prepares this process to be a worker. Returns what failed (the caller, the child, then
// reports it on whatever stderr it has and _exits with exit_child_setup_failed).
std::optional<std::string> become_worker(const child_setup& setup);

}  // namespace procpool::fake
