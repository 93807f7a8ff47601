#include "cli/triage_environments.hpp"

#include <optional>

#include <fmt/format.h>

#include "run/cpu_quota.hpp"
#include "run/environment.hpp"
#include "run/pressure.hpp"

namespace procpool::harness {

std::vector<environment_plan> command_environments(const environment_settings& s) {
  std::vector<environment_plan> plans = {
      {.name = "as-is", .description = "the machine as it is"},
      {.name = "hogs", .description = fmt::format("{} CPU hogs (one per core)", s.cores), .resource = "cpu",
       .hogs = s.cores},
      {.name = "one-cpu", .description = fmt::format("{} CPU hogs and the command held to one CPU", s.cores),
       .resource = "cpu", .hogs = s.cores, .cpus = 1},
      {.name = "memory",
       .description = fmt::format("{} MiB of RAM held and kept resident by a hog", s.memory_bytes >> 20),
       .resource = "memory", .memory_bytes = s.memory_bytes},
      {.name = "io", .description = fmt::format("two writers fsyncing 1 MiB at a time in {}", s.scratch_dir.string()),
       .resource = "io", .io = true},
  };
  environment_plan quota{.name = "quota", .resource = "cpu"};
  if (cpu_quota probe(s.cpu_quota_percent); probe.available()) {
    quota.description = fmt::format("the command's cgroup held to {:g}% of one CPU (cpu.max)", s.cpu_quota_percent);
    quota.quota_percent = s.cpu_quota_percent;
  } else {
    quota.description = fmt::format("cpu.max cannot be written here ({}): the command held to one CPU instead",
                                    probe.why_not());
    quota.cpus = 1;
  }
  plans.push_back(quota);
  return plans;
}

struct degraded_scope::parts {
  // Declared in the order they are made; destroyed in reverse.
  std::optional<cpu_hogs> hogs;
  std::optional<cpu_affinity_limit> affinity;
  std::optional<memory_pressure> memory;
  std::optional<io_pressure> io;
  std::optional<cpu_quota> quota;
};

degraded_scope::degraded_scope(const environment_plan& plan, const std::filesystem::path& scratch_dir)
    : parts_(std::make_unique<parts>()) {
  if (plan.hogs > 0) parts_->hogs.emplace(plan.hogs);
  if (plan.cpus > 0) parts_->affinity.emplace(plan.cpus);
  if (plan.memory_bytes > 0) {
    parts_->memory.emplace(plan.memory_bytes);
    if (parts_->memory->bytes() == 0) problem_ = fmt::format("could not map {} MiB", plan.memory_bytes >> 20);
  }
  if (plan.io) {
    parts_->io.emplace(scratch_dir);
    if (!parts_->io->running()) problem_ = parts_->io->error();
  }
  if (plan.quota_percent > 0) {
    parts_->quota.emplace(plan.quota_percent);
    if (!parts_->quota->available()) problem_ = parts_->quota->why_not();
  }
}

degraded_scope::~degraded_scope() = default;

void degraded_scope::adopt(pid_t pid) {
  if (parts_->quota && parts_->quota->available() && !parts_->quota->adopt(pid)) problem_ = parts_->quota->why_not();
}

std::string resource_phrase(const std::string& resource) {
  if (resource == "cpu") return "CPU contention";
  if (resource == "memory") return "memory pressure";
  if (resource == "io") return "I/O pressure";
  return resource;
}

}  // namespace procpool::harness
