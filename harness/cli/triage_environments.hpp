// The environments `procpool triage -- COMMAND` reruns a command in: each names the resource
// it takes away (CPU, memory, I/O), and `degraded_scope` applies one for the length of a run.
// Every part of a scope is RAII: no hog, scratch file or cgroup outlives it, whether the run
// passed, failed or was interrupted.
//
//   const auto plans = command_environments({.cores = 2, .scratch_dir = out_dir});
//   {
//     degraded_scope scope(plans[3]);   // e.g. memory: half the available RAM held
//     run(argv, [&](pid_t pid) { scope.adopt(pid); });
//   }                                   // released here
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <filesystem>
#include <memory>
#include <string>
#include <vector>

namespace procpool::harness {

struct environment_settings {
  std::size_t cores = 1;
  std::uint64_t memory_bytes = 0;    // the memory hog's size (already bounded)
  double cpu_quota_percent = 25;     // of one CPU
  std::filesystem::path scratch_dir = {};  // where the I/O writer's file goes
};

struct environment_plan {
  std::string name = {};
  std::string description = {};
  std::string resource = {};  // what it takes away: "" (nothing), cpu, memory or io
  std::size_t hogs = 0;
  std::size_t cpus = 0;  // CPU affinity limit, 0: none
  std::uint64_t memory_bytes = 0;
  bool io = false;
  double quota_percent = 0;  // a cgroup cpu.max quota; 0: none
};

// as-is, hogs, one-cpu, memory, io and quota. The quota is tried once here: where cpu.max
// cannot be written, the quota environment holds the command to one CPU instead, and its
// description says why.
std::vector<environment_plan> command_environments(const environment_settings& settings);

// One environment applied, from construction to destruction.
class degraded_scope {
 public:
  explicit degraded_scope(const environment_plan& plan, const std::filesystem::path& scratch_dir);
  ~degraded_scope();
  degraded_scope(const degraded_scope&) = delete;
  degraded_scope& operator=(const degraded_scope&) = delete;

  // Puts the command's process under the quota, if the environment has one.
  void adopt(pid_t pid);
  // What did not go as planned (an I/O writer that could not start, a quota refused).
  const std::string& problem() const noexcept { return problem_; }

 private:
  struct parts;
  std::unique_ptr<parts> parts_;
  std::string problem_;
};

// "CPU contention", "memory pressure", "I/O pressure" for a resource name.
std::string resource_phrase(const std::string& resource);

}  // namespace procpool::harness
