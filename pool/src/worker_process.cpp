// Launching goes through Boost.Process v2's default launcher; the process-group, parent-death
// and signal set-up it lacks is an initializer of ours that runs in the child between fork
// and exec. After the launch the handle is detached: lifetime (pidfd, reaping, group kills)
// is managed here, where the pool's supervisor can poll it.
#include "procpool/wire/worker_process.hpp"

#include <fcntl.h>
#include <poll.h>
#include <linux/close_range.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <csignal>
#include <cstring>
#include <utility>

#include <boost/asio/io_context.hpp>
#include <boost/process/v2/environment.hpp>
#include <boost/process/v2/process.hpp>
#include <boost/process/v2/start_dir.hpp>
#include <boost/process/v2/stdio.hpp>
#include <fmt/format.h>

#include "procpool/clock.hpp"
#include "procpool/wire/file_io.hpp"
#include "process_reaper.hpp"

namespace procpool {
namespace bp = boost::process::v2;

namespace {

// Runs in the child after fork, before exec: async-signal-safe calls only.
struct worker_isolation {
  pid_t parent;

  template <class Launcher>
  boost::system::error_code on_exec_setup(Launcher&, const bp::filesystem::path&,
                                          const char* const*&) const {
    // Own process group: stopping the worker kills everything it forked.
    if (::setpgid(0, 0) != 0) return {errno, boost::system::system_category()};
    // Die with the launching thread; then check the parent did not die before prctl ran.
    if (::prctl(PR_SET_PDEATHSIG, SIGKILL) != 0) return {errno, boost::system::system_category()};
    if (::getppid() != parent) ::_exit(127);
    // Ignored signals and the signal mask survive exec; give the worker a clean slate.
    sigset_t none;
    sigemptyset(&none);
    ::sigprocmask(SIG_SETMASK, &none, nullptr);
    ::signal(SIGPIPE, SIG_DFL);
    // Boost 1.81's close_all skips the descriptors below its own error pipe (an index slip
    // in its gap loop), so descriptors the pool inherited would leak into every worker.
    // Marking them close-on-exec keeps that error pipe working until exec.
    if (::close_range(3, ~0U, CLOSE_RANGE_CLOEXEC) != 0) {
      rlimit limit{};
      ::getrlimit(RLIMIT_NOFILE, &limit);
      for (rlim_t fd = 3; fd < limit.rlim_cur; ++fd) ::fcntl(static_cast<int>(fd), F_SETFD, FD_CLOEXEC);
    }
    return {};
  }
};

unique_fd open_pidfd(pid_t pid) {
  return unique_fd(static_cast<int>(::syscall(SYS_pidfd_open, pid, 0)));
}

exit_status decode_wait_status(int status) {
  if (WIFEXITED(status)) return {.code = WEXITSTATUS(status), .signal = 0};
  if (WIFSIGNALED(status)) return {.code = -1, .signal = WTERMSIG(status)};
  return {};
}

std::vector<std::string> build_environment(const launch_options& options) {
  std::map<std::string, std::string> merged;
  if (options.inherit_environment) {
    for (char** entry = environ; *entry != nullptr; ++entry) {
      std::string_view kv = *entry;
      const auto eq = kv.find('=');
      if (eq == std::string_view::npos) continue;
      merged.emplace(std::string(kv.substr(0, eq)), std::string(kv.substr(eq + 1)));
    }
  }
  for (const auto& [key, value] : options.env) merged[key] = value;
  std::vector<std::string> out;
  out.reserve(merged.size());
  for (const auto& [key, value] : merged) out.push_back(key + "=" + value);
  return out;
}

error start_failed(std::string message) { return error{errc::start_failed, std::move(message)}; }

result<bp::filesystem::path> resolve_executable(const std::string& program) {
  if (program.find('/') != std::string::npos) {
    bp::filesystem::path executable = bp::filesystem::absolute(program);
    if (!bp::filesystem::exists(executable)) {
      return start_failed(fmt::format("worker binary '{}' does not exist", program));
    }
    return executable;
  }
  bp::filesystem::path executable = bp::environment::find_executable(program);
  if (executable.empty()) {
    return start_failed(fmt::format("worker binary '{}' not found in PATH", program));
  }
  return executable;
}

std::string no_pidfd(const bp::filesystem::path& executable, std::string_view why) {
  return fmt::format(
      "cannot watch worker '{}': pidfd_open failed: {} (procpool needs Linux 5.3 or later, with "
      "pidfd_open allowed by any seccomp filter, and a descriptor to spare per worker)",
      executable.string(), why);
}

// The launcher has no "stay where you are" start directory: without one, it must not be given
// the initializer at all.
//
// The launcher opens a pidfd for the child it has just started and throws when it cannot
// (pidfd_open refused, or no descriptor left), which leaves that child running with no
// handle. The launcher still knows its pid: the child is killed and reaped here, and the
// launch fails.
result<bp::process> spawn_child(boost::asio::io_context& context,
                                const bp::filesystem::path& executable,
                                const std::vector<std::string>& args, bp::process_stdio&& stdio,
                                const std::vector<std::string>& environment,
                                const std::string& working_directory) {
  worker_isolation isolation{::getpid()};
  bp::default_process_launcher launcher;
  boost::system::error_code ec;
  try {
    auto child = working_directory.empty()
                     ? launcher(context.get_executor(), ec, executable, args, stdio,
                                bp::process_environment(environment), isolation)
                     : launcher(context.get_executor(), ec, executable, args, stdio,
                                bp::process_environment(environment),
                                bp::process_start_dir(working_directory), isolation);
    if (!ec) return bp::process(std::move(child));
  } catch (const boost::system::system_error& e) {
    if (launcher.pid > 0) {
      ::killpg(launcher.pid, SIGKILL);  // its own group (worker_isolation), or none yet
      ::kill(launcher.pid, SIGKILL);
      retry_eintr([&] { return ::waitpid(launcher.pid, nullptr, 0); });
    }
    return start_failed(no_pidfd(executable, e.code().message()));
  }
  return start_failed(fmt::format("cannot start worker '{}': {}", executable.string(),
                                  ec.message()));
}

}  // namespace

std::string exit_status::describe() const {
  if (pending) return "exited (its zygote template holds the status until it is reaped)";
  if (signal != 0) {
    const char* name = sigabbrev_np(signal);
    return name ? fmt::format("killed by SIG{}", name) : fmt::format("killed by signal {}", signal);
  }
  if (code >= 0) return fmt::format("exited with code {}", code);
  return "still running";
}

result<worker_process> worker_process::launch(const launch_options& options) {
  return launch_with(options, -1);
}

result<worker_process> worker_process::launch_template(const launch_options& options,
                                                       int channel) {
  if (channel < 0) return start_failed("zygote template launched without a control channel");
  return launch_with(options, channel);
}

// channel < 0: a worker with three pipes. Otherwise a template: fd 0 is `channel`, fds 1 and 2
// one pipe (pool/ZYGOTE.md, "The template process").
result<worker_process> worker_process::launch_with(const launch_options& options, int channel) {
  if (options.argv.empty() || options.argv.front().empty()) {
    return start_failed("worker command is empty");
  }
  const std::string& program = options.argv.front();
  auto resolved = resolve_executable(program);
  if (!resolved) return std::move(resolved).error();
  const bp::filesystem::path& executable = *resolved;

  // Each worker is watched through a pidfd. Asked before anything is started, so that a
  // system without pidfd_open refuses the launch with its reason.
  if (const unique_fd probe = open_pidfd(::getpid()); !probe) {
    return start_failed(no_pidfd(executable, std::strerror(errno)));
  }

  const bool is_template = channel >= 0;
  auto in = is_template ? io_result<pipe_ends>(pipe_ends{}) : open_pipe();
  auto out = is_template ? io_result<pipe_ends>(pipe_ends{}) : open_pipe();
  auto err = open_pipe();
  for (const auto* pipe : {&in, &out, &err}) {
    if (!*pipe) {
      return start_failed(fmt::format("cannot create pipes for '{}': {}", program,
                                      pipe->error().message()));
    }
  }

  // The launcher wants an executor to attach the process handle to; the handle is detached
  // at once, so a per-thread context that never runs is enough.
  thread_local boost::asio::io_context launch_context;
  const std::vector<std::string> args(options.argv.begin() + 1, options.argv.end());
  const auto environment = build_environment(options);

  worker_process proc;
  proc.t_spawn_ns_ = monotonic_ns();
  const int child_in = is_template ? channel : in->read.get();
  const int child_out = is_template ? err->write.get() : out->write.get();
  auto child = spawn_child(launch_context, executable, args,
                           {child_in, child_out, err->write.get()}, environment,
                           options.working_directory);
  if (!child) return std::move(child).error();
  proc.pid_ = child->id();
  child->detach();
  proc.pidfd_ = open_pidfd(proc.pid_);
  if (!proc.pidfd_) {
    // `proc` kills and reaps the child on its way out.
    return start_failed(no_pidfd(executable, std::strerror(errno)));
  }
  proc.stdin_fd_ = std::move(in->write);
  proc.stdout_fd_ = std::move(out->read);
  proc.stderr_fd_ = std::move(err->read);
  for (const auto* fd : {&proc.stdin_fd_, &proc.stdout_fd_, &proc.stderr_fd_}) {
    if (*fd) (void)set_nonblocking(fd->get());
  }
  return proc;
}

// The descriptors move by themselves; the pid and status are spelt out because a moved-from
// handle must not kill or reap the process it no longer owns.
worker_process::worker_process(worker_process&& other) noexcept
    : pid_(std::exchange(other.pid_, -1)),
      pidfd_(std::move(other.pidfd_)),
      stdin_fd_(std::move(other.stdin_fd_)),
      stdout_fd_(std::move(other.stdout_fd_)),
      stderr_fd_(std::move(other.stderr_fd_)),
      t_spawn_ns_(other.t_spawn_ns_),
      status_(std::exchange(other.status_, std::nullopt)),
      reaper_(std::move(other.reaper_)),
      reaper_id_(other.reaper_id_) {}

worker_process& worker_process::operator=(worker_process&& other) noexcept {
  if (this != &other) {
    release();
    pid_ = std::exchange(other.pid_, -1);
    pidfd_ = std::move(other.pidfd_);
    stdin_fd_ = std::move(other.stdin_fd_);
    stdout_fd_ = std::move(other.stdout_fd_);
    stderr_fd_ = std::move(other.stderr_fd_);
    t_spawn_ns_ = other.t_spawn_ns_;
    status_ = std::exchange(other.status_, std::nullopt);
    reaper_ = std::move(other.reaper_);
    reaper_id_ = other.reaper_id_;
  }
  return *this;
}

worker_process::~worker_process() { release(); }

void worker_process::release() noexcept {
  if (pid_ > 0 && !status_) kill();
  for (auto* fd : {&stdin_fd_, &stdout_fd_, &stderr_fd_, &pidfd_}) fd->reset();
  pid_ = -1;
}

void worker_process::close_stdin() noexcept { stdin_fd_.reset(); }

void worker_process::signal_group(int sig) noexcept {
  // Until the leader is reaped its pid cannot be reused, so the group id is still ours.
  if (pid_ > 0 && !status_) ::killpg(pid_, sig);
}

worker_process worker_process::adopt_forked(pid_t pid, unique_fd pidfd, unique_fd stdin_fd,
                                            unique_fd stdout_fd, unique_fd stderr_fd,
                                            std::int64_t t_spawn_ns,
                                            std::shared_ptr<detail::process_reaper> reaper,
                                            std::uint64_t reaper_id) {
  worker_process proc;
  proc.pid_ = pid;
  proc.pidfd_ = std::move(pidfd);
  proc.stdin_fd_ = std::move(stdin_fd);
  proc.stdout_fd_ = std::move(stdout_fd);
  proc.stderr_fd_ = std::move(stderr_fd);
  proc.t_spawn_ns_ = t_spawn_ns;
  proc.reaper_ = std::move(reaper);
  proc.reaper_id_ = reaper_id;
  return proc;
}

// Not our child: no waitid. The pidfd says it exited; the template has not reaped it (it
// reaps only when asked), so the group id is still its own.
std::optional<exit_status> worker_process::try_wait_forked() {
  pollfd p{.fd = pidfd_.get(), .events = POLLIN, .revents = 0};
  if (pidfd_ && ::poll(&p, 1, 0) <= 0) return std::nullopt;
  ::killpg(pid_, SIGKILL);
  auto reaped = reaper_->reap(reaper_id_);
  if (reaped && !*reaped) return std::nullopt;  // `running`: the template has not seen it yet
  // No template to ask (it died: its children die by their parent-death signal; or it was
  // closed: it killed them). The true status is lost; report the kill.
  status_ = reaped ? **reaped : exit_status{.code = -1, .signal = SIGKILL};
  pidfd_.reset();
  reaper_.reset();
  return status_;
}

std::optional<exit_status> worker_process::try_wait() {
  if (status_ || pid_ <= 0) return status_;
  if (reaper_) return try_wait_forked();
  siginfo_t info{};
  const int r = retry_eintr(
      [&] { return ::waitid(P_PID, static_cast<id_t>(pid_), &info, WEXITED | WNOHANG | WNOWAIT); });
  if (r != 0 || info.si_pid == 0) return std::nullopt;
  // The worker has exited but is not reaped yet, so its pid (and group id) cannot have been
  // reused: kill whatever it left in its group, then reap.
  ::killpg(pid_, SIGKILL);
  int raw = 0;
  retry_eintr([&] { return ::waitpid(pid_, &raw, 0); });
  status_ = decode_wait_status(raw);
  pidfd_.reset();
  return status_;
}

std::optional<exit_status> worker_process::wait_for(std::chrono::milliseconds timeout) {
  if (auto s = try_wait()) return s;
  const auto until = std::chrono::steady_clock::now() + timeout;
  while (true) {
    pollfd p{.fd = pidfd_.get(), .events = POLLIN, .revents = 0};
    if (pidfd_) (void)poll_until({&p, 1}, until);
    if (auto s = try_wait()) return s;
    if (std::chrono::steady_clock::now() >= until) return std::nullopt;
  }
}

std::optional<exit_status> worker_process::peek_exit(std::chrono::milliseconds timeout) const {
  if (status_) return status_;
  if (pid_ <= 0) return std::nullopt;
  if (pidfd_) {
    pollfd p{.fd = pidfd_.get(), .events = POLLIN, .revents = 0};
    const auto ready = poll_until({&p, 1}, deadline_after(timeout));
    if (reaper_) {
      if (!ready || *ready == 0) return std::nullopt;
      return exit_status{.code = -1, .signal = 0, .pending = true};
    }
  }
  siginfo_t info{};
  if (::waitid(P_PID, static_cast<id_t>(pid_), &info, WEXITED | WNOHANG | WNOWAIT) != 0 ||
      info.si_pid == 0) {
    return std::nullopt;
  }
  if (info.si_code == CLD_EXITED) return exit_status{.code = info.si_status, .signal = 0};
  return exit_status{.code = -1, .signal = info.si_status};
}

exit_status worker_process::kill() {
  signal_group(SIGKILL);
  while (!try_wait()) wait_for(std::chrono::milliseconds(1000));
  return *status_;
}

exit_status worker_process::stop(const stop_plan& plan) {
  close_stdin();
  if (!wait_for(plan.after_stdin_close)) {
    signal_group(SIGTERM);
    wait_for(plan.after_sigterm);
  }
  return kill();
}

}  // namespace procpool
