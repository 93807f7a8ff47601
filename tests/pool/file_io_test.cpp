// The descriptor helpers: ownership of unique_fd, reads and writes that survive EINTR and
// partial writes, would-block reported as a value, and poll against a deadline.
#include "procpool/wire/file_io.hpp"

#include <fcntl.h>
#include <pthread.h>
#include <unistd.h>

#include <atomic>
#include <csignal>
#include <string>
#include <thread>

#include <gtest/gtest.h>

namespace procpool {
namespace {

using namespace std::chrono_literals;

bool is_open(int fd) { return ::fcntl(fd, F_GETFD) != -1; }

pipe_ends make_pipe() {
  auto p = open_pipe();
  EXPECT_TRUE(p) << p.error().message();
  return std::move(*p);
}

TEST(UniqueFd, ClosesOnDestructionAndMovesOwnership) {
  int raw;
  {
    pipe_ends p = make_pipe();
    raw = p.read.get();
    unique_fd moved(std::move(p.read));
    EXPECT_FALSE(p.read);
    EXPECT_EQ(moved.get(), raw);
    EXPECT_TRUE(is_open(raw));
  }
  EXPECT_FALSE(is_open(raw));
}

TEST(UniqueFd, ReleaseHandsTheDescriptorOnAndResetClosesTheOld) {
  pipe_ends p = make_pipe();
  const int raw = p.read.release();
  EXPECT_FALSE(p.read);
  EXPECT_TRUE(is_open(raw));
  unique_fd owner(raw);
  const int other = p.write.get();
  owner = std::move(p.write);  // closes raw, takes the write end
  EXPECT_FALSE(is_open(raw));
  EXPECT_EQ(owner.get(), other);
  owner.reset();
  EXPECT_FALSE(is_open(other));
}

TEST(FileIo, ReadAllReadsToEndOfFile) {
  pipe_ends p = make_pipe();
  std::string_view text = "hello, pipe";
  ASSERT_TRUE(write_all(p.write.get(), text));
  EXPECT_TRUE(text.empty());
  p.write.reset();
  std::string out;
  auto end = read_all(p.read.get(), out);
  ASSERT_TRUE(end) << end.error().message();
  EXPECT_EQ(*end, read_end::end_of_file);
  EXPECT_EQ(out, "hello, pipe");
}

TEST(FileIo, AnEmptyNonBlockingPipeWouldBlock) {
  pipe_ends p = make_pipe();
  ASSERT_TRUE(set_nonblocking(p.read.get()));
  char buffer[16];
  auto n = read_some(p.read.get(), buffer);
  ASSERT_FALSE(n);
  EXPECT_TRUE(would_block(n.error())) << n.error().message();
  std::string out;
  auto end = read_all(p.read.get(), out);
  ASSERT_TRUE(end);
  EXPECT_EQ(*end, read_end::would_block);
}

TEST(FileIo, AFullPipeStopsWriteAllWhereItGotAndItResumes) {
  pipe_ends p = make_pipe();
  ASSERT_TRUE(set_nonblocking(p.write.get()));
  ASSERT_TRUE(set_nonblocking(p.read.get()));
  const std::string big(4 << 20, 'x');  // larger than any pipe buffer
  std::string_view pending = big;
  std::string received;
  while (true) {
    auto written = write_all(p.write.get(), pending);
    if (written) break;
    ASSERT_TRUE(would_block(written.error())) << written.error().message();
    ASSERT_FALSE(pending.empty());
    ASSERT_LT(pending.size(), big.size());  // partial progress is kept, not repeated
    ASSERT_TRUE(read_all(p.read.get(), received));
  }
  p.write.reset();
  ASSERT_TRUE(read_all(p.read.get(), received));
  EXPECT_EQ(received.size(), big.size());
  EXPECT_EQ(received, big);
}

TEST(FileIo, WritingToAClosedPipeIsBrokenPipe) {
  ::signal(SIGPIPE, SIG_IGN);  // as the pool sets it
  pipe_ends p = make_pipe();
  p.read.reset();
  std::string_view text = "lost";
  auto written = write_all(p.write.get(), text);
  ASSERT_FALSE(written);
  EXPECT_EQ(written.error(), std::errc::broken_pipe);
}

TEST(FileIo, PollTimeoutRoundsUpAndIsCapped) {
  const auto now = std::chrono::steady_clock::now();
  EXPECT_EQ(poll_timeout_ms(now - 1s), 0);
  EXPECT_EQ(poll_timeout_ms(deadline::max()), poll_cap_ms);
  EXPECT_EQ(poll_timeout_ms(now + 1h), poll_cap_ms);
  const int ms = poll_timeout_ms(std::chrono::steady_clock::now() + 1500us);
  EXPECT_GE(ms, 1);
  EXPECT_LE(ms, 2);
}

TEST(FileIo, PollUntilSaysZeroOnlyOnceTheDeadlineHasPassed) {
  pipe_ends p = make_pipe();
  pollfd fds[1] = {{p.read.get(), POLLIN, 0}};
  const deadline until = deadline_after(20ms);
  auto ready = poll_until(fds, until);
  ASSERT_TRUE(ready);
  EXPECT_EQ(*ready, 0);
  EXPECT_GE(std::chrono::steady_clock::now(), until);
  std::string_view one = "1";
  ASSERT_TRUE(write_all(p.write.get(), one));
  ready = poll_until(fds, deadline_after(1h));
  ASSERT_TRUE(ready);
  EXPECT_EQ(*ready, 1);
  EXPECT_NE(fds[0].revents & POLLIN, 0);
}

std::atomic<int> signals_seen{0};

// A blocked read keeps being interrupted by a signal whose handler does not ask for
// SA_RESTART; read_some must carry on and return the bytes, not EINTR.
TEST(FileIo, ReadSomeRetriesWhenInterrupted) {
  struct sigaction action {};
  action.sa_handler = [](int) { signals_seen.fetch_add(1); };
  sigemptyset(&action.sa_mask);
  struct sigaction previous {};
  ASSERT_EQ(::sigaction(SIGUSR1, &action, &previous), 0);
  pipe_ends p = make_pipe();
  std::atomic<bool> started{false};
  io_result<std::size_t> n = std::error_code{};
  char buffer[8];
  std::thread reader([&] {
    started = true;
    n = read_some(p.read.get(), buffer);
  });
  while (!started) std::this_thread::yield();
  signals_seen = 0;
  while (signals_seen < 20) {
    ::pthread_kill(reader.native_handle(), SIGUSR1);
    std::this_thread::yield();
  }
  std::string_view text = "ok";
  ASSERT_TRUE(write_all(p.write.get(), text));
  reader.join();
  ::sigaction(SIGUSR1, &previous, nullptr);
  ASSERT_TRUE(n) << n.error().message();
  EXPECT_EQ(std::string_view(buffer, *n), "ok");
}

}  // namespace
}  // namespace procpool
