// Internal: a tiny process that outlives the pool only to kill its workers' process groups.
//
// PR_SET_PDEATHSIG kills a worker when the pool dies, even by SIGKILL, but not what the
// worker forked: a grandchild is merely re-parented. The guard is forked when the pool
// starts, sits in its own process group, and reads group ids over a pipe: "+pgid" when a
// worker starts, "-pgid" once it is reaped. When the pipe reaches end of file, because the
// pool stopped or its process died however it died, the guard SIGKILLs every group still
// registered and exits.
#pragma once

#include <sys/types.h>

#include <cstddef>

#include "procpool/wire/fd.hpp"

namespace procpool {

class group_guard {
 public:
  // `capacity`: the most groups registered at once.
  explicit group_guard(std::size_t capacity);
  ~group_guard();  // closes the pipe and reaps the guard
  group_guard(const group_guard&) = delete;
  group_guard& operator=(const group_guard&) = delete;

  bool running() const noexcept { return pid_ > 0; }
  void add(pid_t pgid) noexcept;
  void remove(pid_t pgid) noexcept;

 private:
  void send(pid_t value) noexcept;
  pid_t pid_ = -1;
  unique_fd write_fd_;
};

}  // namespace procpool
