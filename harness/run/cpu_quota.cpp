#include "run/cpu_quota.hpp"

#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <chrono>
#include <csignal>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <thread>

#include <fmt/format.h>

namespace procpool::harness {
namespace {

constexpr long period_us = 100'000;

// Writes `text` to a cgroup file in one write(), as the kernel wants; errno-style message on failure.
std::string write_cgroup_file(const std::string& path, const std::string& text) {
  std::ofstream out(path);
  if (!out) return fmt::format("cannot open {}: {}", path, std::strerror(errno));
  out << text << std::flush;
  if (!out) return fmt::format("cannot write {} to {}: {}", text, path, std::strerror(errno));
  return {};
}

std::string read_line(const std::string& path) {
  std::ifstream in(path);
  std::string line;
  std::getline(in, line);
  return line;
}

bool has_word(const std::string& words, const std::string& word) {
  std::istringstream in(words);
  for (std::string w; in >> w;) {
    if (w == word) return true;
  }
  return false;
}

// The directory of this process's cgroup v2, from /proc/self/mountinfo and /proc/self/cgroup;
// empty, with `why` set, when there is none.
std::string own_cgroup_dir(std::string& why) {
  std::ifstream mounts("/proc/self/mountinfo");
  std::string mount_point;
  for (std::string line; std::getline(mounts, line);) {
    const auto dash = line.find(" - cgroup2 ");
    if (dash == std::string::npos) continue;
    std::istringstream fields(line.substr(0, dash));
    std::string id, parent, dev, root;
    fields >> id >> parent >> dev >> root >> mount_point;
    break;
  }
  std::ifstream groups("/proc/self/cgroup");
  std::string path;
  for (std::string line; std::getline(groups, line);) {
    if (line.starts_with("0::")) path = line.substr(3);
  }
  if (mount_point.empty() || path.empty()) {
    why = "no cgroup v2 hierarchy is mounted";
    return {};
  }
  // A container often sees its own cgroup as "/" at a mount of its subtree.
  const std::string dir = mount_point + (path == "/" ? "" : path);
  if (!std::filesystem::is_directory(dir)) why = fmt::format("the cgroup {} is not at {}", path, dir);
  return std::filesystem::is_directory(dir) ? dir : std::string();
}

// Makes the cpu controller available to `parent`'s children; empty, or why not. `enabled`
// says whether this call turned it on, so that it can be turned off again.
std::string enable_cpu_controller(const std::string& parent, bool& enabled) {
  if (!has_word(read_line(parent + "/cgroup.controllers"), "cpu")) {
    return fmt::format("the cpu controller is not available in the cgroup v2 {} (cgroup.controllers: \"{}\")",
                       parent, read_line(parent + "/cgroup.controllers"));
  }
  if (has_word(read_line(parent + "/cgroup.subtree_control"), "cpu")) return {};
  std::string why = write_cgroup_file(parent + "/cgroup.subtree_control", "+cpu");
  enabled = why.empty();
  return why;
}

std::atomic<unsigned> created{0};

}  // namespace

cpu_quota::cpu_quota(double percent_of_one_cpu) {
  parent_ = own_cgroup_dir(why_not_);
  if (parent_.empty()) return;
  if (why_not_ = enable_cpu_controller(parent_, enabled_controller_); !why_not_.empty()) return;
  const std::string dir = fmt::format("{}/procpool-triage-{}-{}", parent_, ::getpid(), created++);
  if (::mkdir(dir.c_str(), 0755) != 0) {
    why_not_ = fmt::format("cannot create the cgroup {}: {}", dir, std::strerror(errno));
    restore_controllers();
    return;
  }
  const long quota_us = std::max(1000L, static_cast<long>(percent_of_one_cpu / 100 * period_us));
  if (why_not_ = write_cgroup_file(dir + "/cpu.max", fmt::format("{} {}", quota_us, period_us)); !why_not_.empty()) {
    ::rmdir(dir.c_str());
    restore_controllers();
    return;
  }
  path_ = dir;
}

void cpu_quota::restore_controllers() noexcept {
  // Only what this object changed; it fails harmlessly while another cgroup still uses it.
  if (enabled_controller_) write_cgroup_file(parent_ + "/cgroup.subtree_control", "-cpu");
  enabled_controller_ = false;
}

bool cpu_quota::adopt(pid_t pid) {
  if (path_.empty()) return false;
  why_not_ = write_cgroup_file(path_ + "/cgroup.procs", std::to_string(pid));
  return why_not_.empty();
}

cpu_quota::~cpu_quota() {
  if (path_.empty()) return;
  // Whatever the command left running in the cgroup goes with it; a cgroup with processes
  // cannot be removed. cgroup.kill (Linux 5.14) does it at once, else each pid is killed.
  if (!write_cgroup_file(path_ + "/cgroup.kill", "1").empty()) {
    std::ifstream procs(path_ + "/cgroup.procs");
    for (pid_t pid; procs >> pid;) ::kill(pid, SIGKILL);
  }
  for (int tries = 0; tries < 200 && ::rmdir(path_.c_str()) != 0 && errno == EBUSY; ++tries) {
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  restore_controllers();
}

}  // namespace procpool::harness
