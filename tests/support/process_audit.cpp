#include "process_audit.hpp"

#include <poll.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <csignal>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "procpool/wire/file_io.hpp"

namespace procpool::testing {
namespace {

std::string read_file(const std::string& path) {
  std::ifstream in(path);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

std::string describe(pid_t pid) {
  std::string cmd = read_file("/proc/" + std::to_string(pid) + "/cmdline");
  for (char& c : cmd) {
    if (c == '\0') c = ' ';
  }
  return std::to_string(pid) + " " + cmd;
}

}  // namespace

void become_subreaper() { ::prctl(PR_SET_CHILD_SUBREAPER, 1); }

std::vector<pid_t> child_pids() {
  std::vector<pid_t> out;
  const std::string self = std::to_string(::getpid());
  for (const auto& entry : std::filesystem::directory_iterator("/proc")) {
    const std::string name = entry.path().filename();
    if (name.empty() || name.find_first_not_of("0123456789") != std::string::npos) continue;
    const std::string stat = read_file(entry.path() / "stat");
    // The command name may contain spaces and parentheses: fields resume after the last ')'.
    const auto close = stat.rfind(')');
    if (close == std::string::npos) continue;
    std::istringstream fields(stat.substr(close + 2));
    std::string state, ppid;
    fields >> state >> ppid;
    if (ppid == self) out.push_back(static_cast<pid_t>(std::stoi(name)));
  }
  return out;
}

std::vector<std::string> reap_leftovers(std::chrono::milliseconds grace) {
  std::vector<std::string> killed;
  // Killing or reaping one child can re-parent its own children here (this process is a
  // subreaper), so look again until a pass finds nobody.
  for (std::vector<pid_t> found = child_pids(); !found.empty(); found = child_pids()) {
    for (pid_t pid : found) {
      const std::string what = describe(pid);
      const unique_fd pidfd(static_cast<int>(::syscall(SYS_pidfd_open, pid, 0)));
      bool exited = false;
      if (pidfd) {
        pollfd p{.fd = pidfd.get(), .events = POLLIN, .revents = 0};
        const auto ready = poll_until({&p, 1}, deadline_after(grace));
        exited = ready && *ready == 1;
      }
      if (!exited) {
        killed.push_back(what);
        ::kill(pid, SIGKILL);
      }
      retry_eintr([&] { return ::waitpid(pid, nullptr, 0); });
    }
  }
  return killed;
}

std::size_t open_fd_count() {
  std::size_t n = 0;
  for ([[maybe_unused]] const auto& entry : std::filesystem::directory_iterator("/proc/self/fd")) ++n;
  return n;
}

long rss_kib(pid_t pid) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/status");
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind("VmRSS:", 0) == 0) return std::stol(line.substr(6));
  }
  return -1;
}

bool process_exists(pid_t pid) { return ::kill(pid, 0) == 0 || errno != ESRCH; }

namespace {

std::vector<pid_t> children_of(pid_t pid) {
  std::vector<pid_t> out;
  std::error_code ec;
  // A process's children are listed under the thread that forked them.
  for (const auto& task : std::filesystem::directory_iterator("/proc/" + std::to_string(pid) + "/task", ec)) {
    std::ifstream in(task.path() / "children");
    for (pid_t child; in >> child;) out.push_back(child);
  }
  return out;
}

}  // namespace

std::vector<pid_t> descendants_of(pid_t root) {
  std::vector<pid_t> out;
  std::vector<pid_t> frontier{root};
  while (!frontier.empty()) {
    const pid_t next = frontier.back();
    frontier.pop_back();
    for (pid_t child : children_of(next)) {
      out.push_back(child);
      frontier.push_back(child);
    }
  }
  return out;
}

}  // namespace procpool::testing
