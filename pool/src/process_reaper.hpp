// Internal: who reaps a worker_process that is not the pool's child (a worker forked by a
// zygote template, pool/ZYGOTE.md). worker_process::try_wait calls it after the worker's
// pidfd turned readable and its group was SIGKILLed.
#pragma once

#include <cstdint>
#include <optional>

#include "procpool/result.hpp"
#include "procpool/wire/worker_process.hpp"

namespace procpool::detail {

class process_reaper {
 public:
  virtual ~process_reaper() = default;
  // The exit status of process `id`; an empty optional while it has not exited; an error
  // when nobody can tell any more (the template died or broke its channel).
  virtual result<std::optional<exit_status>> reap(std::uint64_t id) = 0;
};

}  // namespace procpool::detail
