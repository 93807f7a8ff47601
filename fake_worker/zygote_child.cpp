// The forked child's set-up: see zygote_child.hpp. Steps in the order of pool/ZYGOTE.md.
#include "zygote_child.hpp"

#include <dirent.h>
#include <fcntl.h>
#include <sys/prctl.h>
#include <unistd.h>

#include <cerrno>
#include <csignal>
#include <cstdlib>
#include <cstring>

#include <fmt/format.h>

namespace procpool::fake {
namespace {

std::string failed(const char* what) { return fmt::format("{}: {}", what, std::strerror(errno)); }

// The three received descriptors onto 0, 1 and 2. They are above 2 when the template has
// 0-2 open, as it is launched; one that is not is first moved up, so no dup2 overwrites a
// source still to be copied.
std::optional<std::string> install_stdio(std::array<int, 3> fds) {
  for (int& fd : fds) {
    if (fd < 3 && (fd = ::fcntl(fd, F_DUPFD_CLOEXEC, 3)) < 0) return failed("fcntl(F_DUPFD)");
  }
  for (int target = 0; target < 3; ++target) {
    if (::dup2(fds[static_cast<std::size_t>(target)], target) < 0) return failed("dup2");
  }
  return std::nullopt;
}

// Every descriptor from 3 up: the control channel, other children's pidfds, the received
// originals, whatever the preload opened.
std::optional<std::string> close_from_3() {
  if (::close_range(3, ~0U, 0) == 0) return std::nullopt;
  if (errno != ENOSYS) return failed("close_range");
  // Before Linux 5.9: list first, then close (closing while reading the directory would
  // close the directory's own descriptor under it).
  DIR* dir = ::opendir("/proc/self/fd");
  if (!dir) return failed("opendir(/proc/self/fd)");
  std::vector<int> open;
  while (dirent* e = ::readdir(dir)) {
    if (e->d_name[0] != '.') open.push_back(std::atoi(e->d_name));
  }
  ::closedir(dir);
  for (int fd : open) {
    if (fd >= 3) ::close(fd);
  }
  return std::nullopt;
}

void default_signals() {
  sigset_t none;
  ::sigemptyset(&none);
  ::sigprocmask(SIG_SETMASK, &none, nullptr);
  for (int sig : {SIGPIPE, SIGCHLD, SIGTERM, SIGINT}) ::signal(sig, SIG_DFL);
}

std::optional<std::string> apply_env(const child_setup& setup) {
  for (const auto& [name, value] : setup.env) {
    if (::setenv(name.c_str(), value.c_str(), 1) != 0) return failed("setenv");
  }
  // The child is a worker, not a template: nothing it starts should take fd 0 for a channel.
  ::unsetenv("PROCPOOL_ZYGOTE_FD");
  return std::nullopt;
}

}  // namespace

std::optional<std::string> become_worker(const child_setup& setup) {
  if (::setpgid(0, 0) != 0) return failed("setpgid");
  // "Cleared for the child of a fork": set it again, tied to the template. If the template
  // died before this call no signal will ever come, so check that it is still the parent.
  if (::prctl(PR_SET_PDEATHSIG, SIGKILL) != 0) return failed("prctl(PR_SET_PDEATHSIG)");
  if (::getppid() != setup.template_pid) return "the template died before prctl";
  if (auto problem = install_stdio(setup.fds)) return problem;
  if (auto problem = close_from_3()) return problem;
  default_signals();
  return apply_env(setup);
}

}  // namespace procpool::fake
