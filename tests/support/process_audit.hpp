// Test support: proves that a test left no process, zombie or descriptor behind.
//
// The test binary makes itself a child subreaper, so a worker's grandchild that outlives the
// worker is re-parented to the test process and shows up here instead of vanishing under
// init. Fixtures derived from `leak_checked_test` check after every test, pass or fail, and
// kill and reap whatever they find so that one failing test cannot poison the next.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <cstddef>
#include <string>
#include <vector>

#include <gtest/gtest.h>

namespace procpool::testing {

void become_subreaper();

// Children of this process (zombies included), read from /proc.
std::vector<pid_t> child_pids();

// Gives each child up to `grace` to exit (a group SIGKILL may still be in flight), reaps
// it, and SIGKILLs the ones still alive after that. Returns a description of each child
// that had to be killed.
std::vector<std::string> reap_leftovers(std::chrono::milliseconds grace);

std::size_t open_fd_count();

// Resident set size of `pid` in KiB (VmRSS).
long rss_kib(pid_t pid);

bool process_exists(pid_t pid);

// Every process below `root` (children of all its threads, recursively), read from /proc.
std::vector<pid_t> descendants_of(pid_t root);

class leak_checked_test : public ::testing::Test {
 protected:
  void TearDown() override {
    const auto leftovers = reap_leftovers(std::chrono::milliseconds(2000));
    EXPECT_TRUE(leftovers.empty()) << "processes left behind: " << ::testing::PrintToString(leftovers);
  }
};

}  // namespace procpool::testing
