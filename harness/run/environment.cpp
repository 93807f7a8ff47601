#include "run/environment.hpp"

#include <sys/resource.h>
#include <unistd.h>

#include <fstream>
#include <sstream>
#include <string>

#include "procpool/clock.hpp"

namespace procpool::harness {
namespace {

// "some avg10=1.23 avg60=... avg300=... total=12345" from /proc/pressure/<resource>.
bool read_pressure(const char* path, double& avg10, std::uint64_t& total_us) {
  std::ifstream in(path);
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind("some ", 0) != 0) continue;
    std::istringstream fields(line.substr(5));
    for (std::string field; fields >> field;) {
      if (field.rfind("avg10=", 0) == 0) avg10 = std::stod(field.substr(6));
      if (field.rfind("total=", 0) == 0) total_us = std::stoull(field.substr(6));
    }
    return true;
  }
  return false;
}

std::uint64_t read_steal_ticks() {
  std::ifstream in("/proc/stat");
  std::string cpu;
  std::uint64_t user, nice, system, idle, iowait, irq, softirq, steal = 0;
  in >> cpu >> user >> nice >> system >> idle >> iowait >> irq >> softirq >> steal;
  return steal;
}

}  // namespace

environment_reading read_environment() {
  environment_reading r;
  r.t_ns = monotonic_ns();
  cpu_set_t set;
  CPU_ZERO(&set);
  if (::sched_getaffinity(0, sizeof set, &set) == 0) r.cores = static_cast<std::size_t>(CPU_COUNT(&set));
  std::ifstream("/proc/loadavg") >> r.load_average_1m;
  r.psi_available = read_pressure("/proc/pressure/cpu", r.cpu_some_avg10, r.cpu_some_total_us);
  read_pressure("/proc/pressure/memory", r.memory_some_avg10, r.memory_some_total_us);
  r.steal_ticks = read_steal_ticks();
  const auto cpu_us = [](int who) {
    rusage usage{};
    ::getrusage(who, &usage);
    return (usage.ru_utime.tv_sec + usage.ru_stime.tv_sec) * 1'000'000LL + usage.ru_utime.tv_usec +
           usage.ru_stime.tv_usec;
  };
  r.children_cpu_us = cpu_us(RUSAGE_CHILDREN);
  r.self_cpu_us = cpu_us(RUSAGE_SELF);
  return r;
}

nlohmann::json environment_json(const environment_reading& before, const environment_reading& after) {
  const double wall_us = std::max<double>(1, (after.t_ns - before.t_ns) / 1e3);
  nlohmann::json j = {
      {"cores", after.cores},
      {"load_average_1m", after.load_average_1m},
      {"psi_available", after.psi_available},
      {"steal_ticks", after.steal_ticks - before.steal_ticks},
  };
  if (after.psi_available) {
    j["psi"] = {
        {"cpu_some_avg10", after.cpu_some_avg10},
        {"memory_some_avg10", after.memory_some_avg10},
        {"cpu_some_total_us", after.cpu_some_total_us - before.cpu_some_total_us},
        {"memory_some_total_us", after.memory_some_total_us - before.memory_some_total_us},
        {"cpu_some_pct", 100.0 * (after.cpu_some_total_us - before.cpu_some_total_us) / wall_us},
        {"memory_some_pct",
         100.0 * (after.memory_some_total_us - before.memory_some_total_us) / wall_us},
    };
  }
  return j;
}

cpu_hogs::cpu_hogs(std::size_t count) {
  for (std::size_t i = 0; i < count; ++i) {
    auto hog = worker_process::launch({.argv = {"/bin/sh", "-c", "while :; do :; done"}});
    if (hog) hogs_.push_back(std::move(*hog));
  }
}

cpu_affinity_limit::cpu_affinity_limit(std::size_t cpus) {
  if (cpus == 0 || ::sched_getaffinity(0, sizeof previous_, &previous_) != 0) return;
  cpu_set_t limited;
  CPU_ZERO(&limited);
  std::size_t taken = 0;
  for (int cpu = 0; cpu < CPU_SETSIZE && taken < cpus; ++cpu) {
    if (CPU_ISSET(cpu, &previous_)) {
      CPU_SET(cpu, &limited);
      ++taken;
    }
  }
  applied_ = ::sched_setaffinity(0, sizeof limited, &limited) == 0;
}

cpu_affinity_limit::~cpu_affinity_limit() {
  if (applied_) ::sched_setaffinity(0, sizeof previous_, &previous_);
}

}  // namespace procpool::harness
