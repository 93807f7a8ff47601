// No orphans: when the process owning a pool dies by SIGKILL, with no chance to clean up,
// its workers and everything they forked die too.
#include <poll.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <algorithm>
#include <csignal>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "procpool/wire/worker_process.hpp"
#include "support/process_audit.hpp"

namespace procpool {
namespace {

using namespace std::chrono_literals;
using PoolOwner = testing::leak_checked_test;

// Launches pool_owner with `args`, waits for its "ready", checks that it has `family_size`
// descendants, SIGKILLs it and expects every one of them to exit within 2 s.
void expect_no_orphans(std::vector<std::string> args, std::size_t family_size) {
  args.insert(args.begin(), {PROCPOOL_POOL_OWNER, PROCPOOL_FAKE_WORKER});
  auto owner = worker_process::launch({.argv = args});
  ASSERT_TRUE(owner) << owner.error().message;
  std::string line;
  char c;
  pollfd p{.fd = owner->stdout_fd(), .events = POLLIN, .revents = 0};
  while (line != "ready" && ::poll(&p, 1, 20000) == 1 && ::read(owner->stdout_fd(), &c, 1) == 1) {
    if (c != '\n') line += c;
  }
  ASSERT_EQ(line, "ready");

  const std::vector<pid_t> family = testing::descendants_of(owner->pid());
  ASSERT_EQ(family.size(), family_size);
  std::vector<int> pidfds;
  for (pid_t pid : family) pidfds.push_back(static_cast<int>(::syscall(SYS_pidfd_open, pid, 0)));

  ::kill(owner->pid(), SIGKILL);
  ASSERT_EQ(owner->wait_for(10s)->signal, SIGKILL);

  // Each pidfd turns readable when its process exits; all must within 2 s.
  const auto until = std::chrono::steady_clock::now() + 2s;
  std::size_t alive = pidfds.size();
  while (alive > 0 && std::chrono::steady_clock::now() < until) {
    std::vector<pollfd> fds;
    for (int fd : pidfds) fds.push_back({.fd = fd, .events = POLLIN, .revents = 0});
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(until - std::chrono::steady_clock::now());
    ::poll(fds.data(), fds.size(), static_cast<int>(std::max<long>(left.count(), 0)));
    alive = static_cast<std::size_t>(std::count_if(fds.begin(), fds.end(), [](auto& f) { return f.revents == 0; }));
  }
  for (int fd : pidfds) ::close(fd);
  EXPECT_EQ(alive, 0u) << "processes of the killed pool still running after 2 s";
}

TEST_F(PoolOwner, SigkilledOwnerLeavesNoWorkerOrGrandchild) {
  // Three workers, three grandchildren and the group guard.
  expect_no_orphans({}, 7);
}

TEST_F(PoolOwner, SigkilledZygoteOwnerLeavesNoTemplateWorkerOrGrandchild) {
  // The template, its three workers, their three grandchildren and the group guard.
  expect_no_orphans({"zygote"}, 8);
}

}  // namespace
}  // namespace procpool
