// The machine around a case: CPU hogs and a CPU affinity limit to degrade it on purpose, and
// readings (cores, load average, pressure stall information) that say how it really was.
//
//   cpu_hogs hogs(2);                    // two busy processes until `hogs` is destroyed
//   cpu_affinity_limit limit(1);         // this thread, and all it starts, on 1 CPU
//   auto before = read_environment();
//   ...
//   auto during = environment_delta(before, read_environment());
#pragma once

#include <sched.h>

#include <cstddef>
#include <cstdint>
#include <vector>

#include <nlohmann/json.hpp>

#include "procpool/wire/worker_process.hpp"

namespace procpool::harness {

struct environment_reading {
  std::size_t cores = 0;          // CPUs this thread may run on
  double load_average_1m = 0;
  bool psi_available = false;     // /proc/pressure exists (Linux >= 4.20 with PSI enabled)
  double cpu_some_avg10 = 0;      // % of time some task waited for CPU, last 10 s
  double memory_some_avg10 = 0;
  std::uint64_t cpu_some_total_us = 0;
  std::uint64_t memory_some_total_us = 0;
  std::uint64_t steal_ticks = 0;  // /proc/stat: time stolen by the hypervisor
  std::int64_t t_ns = 0;
  // CPU time of reaped children (workers, once stopped), from getrusage.
  std::int64_t children_cpu_us = 0;
  // CPU time of this process: the subject's threads and the load's callers.
  std::int64_t self_cpu_us = 0;
};

environment_reading read_environment();

// What changed between two readings, as results.json records it: PSI stall time over the
// case as a percentage of its wall time, the avg10 values at its end, steal, children's CPU.
nlohmann::json environment_json(const environment_reading& before, const environment_reading& after);

// N processes spinning on the CPU, each in its own process group; killed and reaped on
// destruction.
class cpu_hogs {
 public:
  explicit cpu_hogs(std::size_t count);
  std::size_t count() const noexcept { return hogs_.size(); }

 private:
  std::vector<worker_process> hogs_;
};

// Restricts the calling thread, and every thread and process it creates afterwards, to the
// first `cpus` CPUs it may use (0: no limit); restores the previous set on destruction.
class cpu_affinity_limit {
 public:
  explicit cpu_affinity_limit(std::size_t cpus);
  ~cpu_affinity_limit();
  cpu_affinity_limit(const cpu_affinity_limit&) = delete;
  cpu_affinity_limit& operator=(const cpu_affinity_limit&) = delete;

 private:
  cpu_set_t previous_{};
  bool applied_ = false;
};

}  // namespace procpool::harness
