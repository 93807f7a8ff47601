#include "procpool/wire/worker_process.hpp"

#include <poll.h>
#include <unistd.h>

#include <csignal>
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

}  // namespace
}  // namespace procpool
