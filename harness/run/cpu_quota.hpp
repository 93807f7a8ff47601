// A CPU quota for one command: a child cgroup (v2) of this process's own, with `cpu.max` set
// to a share of one CPU, that the command's process is moved into. Where the machine does not
// let the quota be written (cgroup v1, no cpu controller delegated, no permission),
// `available()` is false and `why_not()` says why, so that the caller can fall back.
//
//   cpu_quota quota(25);                      // 25% of one CPU: cpu.max "25000 100000"
//   if (quota.available()) quota.adopt(pid);  // the process and what it starts from then on
//   ...                                       // the cgroup is emptied and removed on destruction
#pragma once

#include <sys/types.h>

#include <string>

namespace procpool::harness {

class cpu_quota {
 public:
  explicit cpu_quota(double percent_of_one_cpu);
  ~cpu_quota();
  cpu_quota(const cpu_quota&) = delete;
  cpu_quota& operator=(const cpu_quota&) = delete;

  bool available() const noexcept { return !path_.empty(); }
  const std::string& why_not() const noexcept { return why_not_; }
  const std::string& path() const noexcept { return path_; }  // the cgroup's directory
  // Moves the process into the cgroup; false (and why_not() set) when it cannot be.
  bool adopt(pid_t pid);

 private:
  void restore_controllers() noexcept;

  std::string parent_;
  std::string path_;
  std::string why_not_;
  bool enabled_controller_ = false;  // this object turned the cpu controller on in parent_
};

}  // namespace procpool::harness
