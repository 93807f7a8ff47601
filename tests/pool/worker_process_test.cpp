#include "procpool/wire/worker_process.hpp"

#include <linux/filter.h>
#include <linux/seccomp.h>
#include <poll.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <csignal>
#include <cstddef>
#include <cstdint>
#include <string>

#include <gtest/gtest.h>

#include "procpool/wire/file_io.hpp"
#include "procpool/wire/worker_connection.hpp"
#include "support/process_audit.hpp"
#include "support/workers.hpp"

namespace procpool {
namespace {

using namespace std::chrono_literals;
using WorkerProcess = testing::leak_checked_test;

// Reads the child's whole stdout until it closes.
std::string read_all_stdout(worker_process& proc) {
  std::string out;
  while (true) {
    auto end = read_all(proc.stdout_fd(), out);
    if (!end || *end == read_end::end_of_file) return out;
    pollfd p{.fd = proc.stdout_fd(), .events = POLLIN, .revents = 0};
    (void)poll_until({&p, 1}, deadline_after(std::chrono::seconds(10)));
  }
}

TEST_F(WorkerProcess, MissingBinaryInPathIsNamed) {
  auto proc = worker_process::launch({.argv = {"procpool-no-such-worker"}});
  ASSERT_FALSE(proc);
  EXPECT_EQ(proc.error().code, errc::start_failed);
  EXPECT_NE(proc.error().message.find("'procpool-no-such-worker' not found in PATH"),
            std::string::npos) << proc.error().message;
}

TEST_F(WorkerProcess, MissingBinaryPathIsNamed) {
  auto proc = worker_process::launch({.argv = {"./no/such/worker"}});
  ASSERT_FALSE(proc);
  EXPECT_NE(proc.error().message.find("'./no/such/worker' does not exist"), std::string::npos);
}

TEST_F(WorkerProcess, NonExecutableFileIsAStartFailure) {
  auto proc = worker_process::launch({.argv = {"/etc/hostname"}});
  ASSERT_FALSE(proc);
  EXPECT_EQ(proc.error().code, errc::start_failed);
  EXPECT_NE(proc.error().message.find("/etc/hostname"), std::string::npos);
}

TEST_F(WorkerProcess, EmptyCommandIsAStartFailure) {
  auto proc = worker_process::launch({});
  ASSERT_FALSE(proc);
  EXPECT_EQ(proc.error().code, errc::start_failed);
}

TEST_F(WorkerProcess, EnvironmentAndWorkingDirectoryAreApplied) {
  auto proc = worker_process::launch({.argv = {"/bin/sh", "-c", "echo \"$PROCPOOL_X|$HOME|$(pwd)\""},
                                      .env = {{"PROCPOOL_X", "42"}},
                                      .inherit_environment = false,
                                      .working_directory = "/tmp"});
  ASSERT_TRUE(proc) << proc.error().message;
  EXPECT_EQ(read_all_stdout(*proc), "42||/tmp\n");
  EXPECT_TRUE(proc->wait_for(10s)->exited_cleanly());
}

TEST_F(WorkerProcess, InheritedEnvironmentIsKeptWithOverrides) {
  ::setenv("PROCPOOL_INHERITED", "yes", 1);
  auto proc = worker_process::launch(
      {.argv = {"/bin/sh", "-c", "echo \"$PROCPOOL_INHERITED $PROCPOOL_Y\""}, .env = {{"PROCPOOL_Y", "y"}}});
  ASSERT_TRUE(proc) << proc.error().message;
  EXPECT_EQ(read_all_stdout(*proc), "yes y\n");
  proc->wait_for(10s);
}

TEST_F(WorkerProcess, WorkerRunsInItsOwnProcessGroup) {
  auto proc = worker_process::launch(testing::worker_launch(testing::worker_kind::fake));
  ASSERT_TRUE(proc) << proc.error().message;
  EXPECT_EQ(::getpgid(proc->pid()), proc->pid());
  EXPECT_NE(::getpgid(proc->pid()), ::getpgrp());
}

TEST_F(WorkerProcess, DestructorKillsAndReaps) {
  pid_t pid = 0;
  {
    auto proc = worker_process::launch(testing::worker_launch(testing::worker_kind::fake));
    ASSERT_TRUE(proc) << proc.error().message;
    pid = proc->pid();
  }
  EXPECT_FALSE(testing::process_exists(pid));
}

TEST_F(WorkerProcess, KillReportsSigkill) {
  auto proc = worker_process::launch(testing::worker_launch(testing::worker_kind::fake));
  ASSERT_TRUE(proc) << proc.error().message;
  EXPECT_EQ(proc->kill().signal, SIGKILL);
}

TEST_F(WorkerProcess, NoDescriptorLeaksAcrossManyLaunches) {
  auto cycle = [] {
    auto conn = worker_connection::start(testing::worker_launch(testing::worker_kind::fake));
    ASSERT_TRUE(conn) << conn.error().message;
    ASSERT_TRUE(conn->handshake(nlohmann::json::object(), deadline_after(10s)));
    conn->process().stop({});
  };
  cycle();  // first use may open lazily-created descriptors
  const std::size_t before = testing::open_fd_count();
  for (int i = 0; i < 50; ++i) cycle();
  EXPECT_EQ(testing::open_fd_count(), before);
}

TEST_F(WorkerProcess, WorkerInheritsNoStrayDescriptors) {
  auto proc = worker_process::launch({.argv = {"/bin/ls", "/proc/self/fd"}});
  ASSERT_TRUE(proc) << proc.error().message;
  // 0, 1, 2 and the descriptor ls opens to read the directory.
  EXPECT_EQ(read_all_stdout(*proc), "0\n1\n2\n3\n");
  proc->wait_for(10s);
}

// Makes pidfd_open fail with ENOSYS in this process from now on, as on a kernel older than
// 5.3 or under a seccomp profile that does not know the call: for every pid, or only for
// other processes' (then a launch's own probe passes and the pidfd for the child fails, as
// when descriptors run out between the two). Only for a forked child.
bool refuse_pidfd_open(bool for_own_pid_too) {
  const auto own_pid = static_cast<std::uint32_t>(::getpid());
  sock_filter rules[] = {
      BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(seccomp_data, nr)),
      BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, SYS_pidfd_open, 0, 3),
      // The low word of the pid argument (x86-64 and aarch64 are little-endian).
      BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(seccomp_data, args[0])),
      BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, for_own_pid_too ? ~own_pid : own_pid, 1, 0),
      BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ERRNO | ENOSYS),
      BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
  };
  sock_fprog program{.len = std::size(rules), .filter = rules};
  return ::prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) == 0 &&
         ::prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, &program) == 0;
}

// What a launch without pidfd_open does, as the exit code of a forked child: 0 when it is a
// start failure that names pidfd_open and leaves no child behind.
int launch_without_pidfd_open(bool for_own_pid_too) {
  if (!refuse_pidfd_open(for_own_pid_too)) return 2;
  auto proc = worker_process::launch(testing::worker_launch(testing::worker_kind::fake));
  if (proc) return 3;
  if (proc.error().code != errc::start_failed) return 4;
  if (proc.error().message.find("pidfd_open failed") == std::string::npos) return 5;
  // A child the launch started is killed and reaped: none is left to wait for.
  if (::waitpid(-1, nullptr, WNOHANG) != -1 || errno != ECHILD) return 6;
  return 0;
}

// Runs launch_without_pidfd_open in a forked child, so that the filter stays there.
void expect_launch_refused_without_pidfd(bool for_own_pid_too) {
  const pid_t child = ::fork();
  ASSERT_GE(child, 0);
  if (child == 0) ::_exit(launch_without_pidfd_open(for_own_pid_too));
  int status = 0;
  ASSERT_EQ(::waitpid(child, &status, 0), child);
  ASSERT_TRUE(WIFEXITED(status)) << "status " << status;
  if (WEXITSTATUS(status) == 2) GTEST_SKIP() << "this process may not install a seccomp filter";
  // 3: launched without a pidfd; 4, 5: another error; 6: a child left behind.
  EXPECT_EQ(WEXITSTATUS(status), 0);
}

TEST_F(WorkerProcess, WithoutPidfdOpenALaunchIsRefusedBeforeAnythingStarts) {
  expect_launch_refused_without_pidfd(/*for_own_pid_too=*/true);
}

TEST_F(WorkerProcess, AChildWhosePidfdCannotBeOpenedIsKilledAndReaped) {
  expect_launch_refused_without_pidfd(/*for_own_pid_too=*/false);
}

}  // namespace
}  // namespace procpool
