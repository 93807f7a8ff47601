// The fake worker's zygote template (procpool-fake-worker --zygote), with the test playing the
// pool of pool/ZYGOTE.md: it launches the template on a SEQPACKET socketpair, reads `ready`,
// forks workers by passing their pipes, talks the ordinary worker protocol to each child,
// reaps them through the template, and closes the channel; no process or descriptor may be
// left behind (leak_checked_test, and a descriptor count).
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>
#include <filesystem>
#include <set>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "procpool/wire/control_channel.hpp"
#include "procpool/wire/file_io.hpp"
#include "procpool/wire/frame.hpp"
#include "procpool/wire/message.hpp"
#include "support/process_audit.hpp"

extern char** environ;

namespace procpool::fake {

using zygote::control_message;
using zygote::max_control_fds;
using zygote::max_control_message_bytes;
using zygote::receive_message;
using zygote::send_message;
namespace {

using json = nlohmann::json;
using namespace std::chrono_literals;

constexpr auto patience = 5s;  // a bound for hangs, never a synchronisation

// The pool's ends for one forked worker.
struct child {
  std::uint64_t id = 0;
  pid_t pid = -1;
  std::int64_t t_fork_ns = 0;
  unique_fd pidfd, in, out, err;
};

bool readable_before(int fd, deadline until) {
  pollfd p{fd, POLLIN, 0};
  auto ready = poll_until({&p, 1}, until);
  return ready && *ready == 1;
}

unique_fd open_pidfd(pid_t pid) {
  return unique_fd(static_cast<int>(::syscall(SYS_pidfd_open, pid, 0)));
}

std::set<int> open_fds_of(pid_t pid) {
  std::set<int> fds;
  for (const auto& e :
       std::filesystem::directory_iterator("/proc/" + std::to_string(pid) + "/fd")) {
    fds.insert(std::stoi(e.path().filename().string()));
  }
  return fds;
}

class ZygoteTemplate : public testing::leak_checked_test {
 protected:
  void SetUp() override { fds_before_ = testing::open_fd_count(); }

  // As the pool launches it: own process group, empty mask, default SIGPIPE and SIGCHLD, the
  // channel on fd 0, one stderr pipe on fds 1 and 2, PROCPOOL_ZYGOTE_FD=0.
  void launch(std::vector<std::string> flags = {}) {
    int sv[2];
    ASSERT_EQ(::socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv), 0);
    channel_.reset(sv[0]);
    unique_fd theirs(sv[1]);
    auto err = open_pipe();
    ASSERT_TRUE(err);
    stderr_ = std::move(err->read);

    std::vector<std::string> args = {PROCPOOL_FAKE_WORKER, "--zygote"};
    args.insert(args.end(), flags.begin(), flags.end());
    std::vector<std::string> env = {"PROCPOOL_ZYGOTE_FD=0"};
    for (char** e = environ; *e; ++e) {
      if (std::string_view(*e).substr(0, 9) != "PROCPOOL_") env.emplace_back(*e);
    }
    posix_spawn_file_actions_t actions;
    posix_spawn_file_actions_init(&actions);
    posix_spawn_file_actions_adddup2(&actions, theirs.get(), 0);
    posix_spawn_file_actions_adddup2(&actions, err->write.get(), 1);
    posix_spawn_file_actions_adddup2(&actions, err->write.get(), 2);
    posix_spawnattr_t attr;
    posix_spawnattr_init(&attr);
    sigset_t none, defaults;
    sigemptyset(&none);
    sigemptyset(&defaults);
    sigaddset(&defaults, SIGPIPE);
    sigaddset(&defaults, SIGCHLD);
    posix_spawnattr_setsigmask(&attr, &none);
    posix_spawnattr_setsigdefault(&attr, &defaults);
    posix_spawnattr_setpgroup(&attr, 0);
    posix_spawnattr_setflags(
        &attr, POSIX_SPAWN_SETPGROUP | POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF);
    const int spawned = ::posix_spawn(&template_pid_, args[0].c_str(), &actions, &attr,
                                      c_strings(args).data(), c_strings(env).data());
    posix_spawn_file_actions_destroy(&actions);
    posix_spawnattr_destroy(&attr);
    ASSERT_EQ(spawned, 0) << std::strerror(spawned);
  }

  static std::vector<char*> c_strings(std::vector<std::string>& strings) {
    std::vector<char*> out;
    for (auto& s : strings) out.push_back(s.data());
    out.push_back(nullptr);
    return out;
  }

  void send(const json& message, std::vector<int> fds = {}) {
    auto sent = send_message(channel_.get(), message, fds);
    ASSERT_TRUE(sent) << sent.error().message();
  }

  // The next reply; its descriptors into `fds` when given, else they must be none.
  json receive(std::vector<unique_fd>* fds = nullptr) {
    if (!readable_before(channel_.get(), deadline_after(patience))) {
      ADD_FAILURE() << "no reply from the template";
      return nullptr;
    }
    auto got = receive_message(channel_.get());
    if (!got || !*got) {
      ADD_FAILURE() << "channel failed or closed";
      return nullptr;
    }
    EXPECT_FALSE((*got)->truncated);
    if (fds) {
      *fds = std::move((*got)->fds);
    } else {
      EXPECT_TRUE((*got)->fds.empty());
    }
    return json::parse((*got)->payload);
  }

  void expect_ready() {
    const json ready = receive();
    EXPECT_EQ(ready["type"], "ready") << ready;
    EXPECT_EQ(ready["protocol"], 1);
    EXPECT_EQ(ready["pid"], template_pid_);
    EXPECT_LE(ready["t_main_ns"].get<std::int64_t>(),
              ready["t_preload_done_ns"].get<std::int64_t>());
    ready_ = ready;
  }

  // Makes the three pipes, sends `fork`, keeps the pool's ends.
  child fork_child(std::uint64_t id) {
    child c;
    c.id = id;
    auto in = open_pipe(), out = open_pipe(), err = open_pipe();
    EXPECT_TRUE(in && out && err);
    send({{"type", "fork"},
          {"id", id},
          {"env",
           {{"PROCPOOL_WORKER_ID", std::to_string(id)},
            {"PROCPOOL_WORKER_SLOT", std::to_string(id - 1)}}}},
         {in->read.get(), out->write.get(), err->write.get()});
    c.in = std::move(in->write);
    c.out = std::move(out->read);
    c.err = std::move(err->read);  // the child ends close here, once sent
    std::vector<unique_fd> fds;
    const json forked = receive(&fds);
    EXPECT_EQ(forked["type"], "forked") << forked;
    EXPECT_EQ(forked["id"], id);
    EXPECT_EQ(fds.size(), 1u);
    if (forked["type"] != "forked" || fds.size() != 1) return c;
    c.pid = forked["pid"].get<pid_t>();
    c.t_fork_ns = forked["t_fork_ns"].get<std::int64_t>();
    c.pidfd = std::move(fds[0]);
    return c;
  }

  // One request frame out, one reply frame back, on the child's own pipes.
  static std::string call(child& c, const request& req) {
    std::string frame = encode_frame(encode(req));
    std::string_view pending = frame;
    if (!write_all(c.in.get(), pending)) return {};
    frame_decoder decoder;
    std::vector<char> buf(64 * 1024);
    while (readable_before(c.out.get(), deadline_after(patience))) {
      auto n = read_some(c.out.get(), buf);
      if (!n || *n == 0) break;
      decoder.feed({buf.data(), *n});
      if (auto payload = decoder.next(); payload && *payload) return **payload;
    }
    ADD_FAILURE() << "no reply from child " << c.pid;
    return {};
  }

  // pidfd readable -> killpg while the template has not reaped -> `reap` -> `reaped`.
  json reap(child& c) {
    EXPECT_TRUE(readable_before(c.pidfd.get(), deadline_after(patience)))
        << "child " << c.pid << " still running";
    EXPECT_EQ(::killpg(c.pid, SIGKILL), 0) << "the group id must still be the child's";
    send({{"type", "reap"}, {"id", c.id}});
    return receive();
  }

  // The template's exit status once it has exited (-1: it did not, within patience).
  int wait_template() {
    unique_fd pidfd = open_pidfd(template_pid_);
    if (!pidfd || !readable_before(pidfd.get(), deadline_after(patience))) return -1;
    int status = -1;
    EXPECT_EQ(::waitpid(template_pid_, &status, 0), template_pid_);
    return status;
  }

  void close_channel_and_expect_clean_exit() {
    channel_.reset();
    const int status = wait_template();
    EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << "status " << status;
    std::string text;
    EXPECT_TRUE(read_all(stderr_.get(), text));  // EOF: nothing else holds the pipe
    EXPECT_EQ(text, "");
    stderr_.reset();
  }

  void expect_no_descriptor_leaked() { EXPECT_EQ(testing::open_fd_count(), fds_before_); }

  std::size_t fds_before_ = 0;
  pid_t template_pid_ = -1;
  unique_fd channel_, stderr_;
  json ready_;
};

TEST_F(ZygoteTemplate, ForksThreeWorkersThatServeTheirPipesAndAreReapedOnRequest) {
  ASSERT_NO_FATAL_FAILURE(launch());
  expect_ready();
  std::vector<child> children;
  for (std::uint64_t id = 1; id <= 3; ++id) children.push_back(fork_child(id));

  for (auto& c : children) {
    ASSERT_GT(c.pid, 0);
    EXPECT_EQ(::getpgid(c.pid), c.pid) << "own process group before `forked` is sent";
    EXPECT_LE(ready_["t_preload_done_ns"].get<std::int64_t>(), c.t_fork_ns);
    auto hello = decode_init_reply(call(c, make_init_request(json::object())));
    ASSERT_TRUE(hello) << hello.error().message;
    EXPECT_TRUE(hello->base.ok) << hello->base.failure.message;
    EXPECT_EQ(hello->pid, c.pid);
    EXPECT_LE(c.t_fork_ns, hello->t_main_ns) << "t_main_ns is the child's, taken after the fork";
    EXPECT_LE(hello->t_main_ns, hello->t_init_done_ns);
    const json args = {{"n", c.id}};
    auto echoed = decode_response(call(c, {.id = 1, .command = "echo", .args = args}));
    ASSERT_TRUE(echoed) << echoed.error().message;
    EXPECT_EQ(echoed->result, args);
    EXPECT_EQ(open_fds_of(c.pid), (std::set<int>{0, 1, 2})) << "the child holds only its pipes";
  }
  const auto below = testing::descendants_of(template_pid_);
  for (const auto& c : children)
    EXPECT_NE(std::find(below.begin(), below.end(), c.pid), below.end());

  // Not exited yet: the template says so without blocking or reaping.
  send({{"type", "status"}, {"id", 1}});
  EXPECT_EQ(receive(),
            (json{{"type", "status"}, {"id", 1}, {"running", true}, {"code", -1}, {"signal", 0}}));
  send({{"type", "reap"}, {"id", 1}});
  const json early = receive();
  EXPECT_EQ(early["type"], "reap_failed");
  EXPECT_EQ(early["error"]["type"], "running");

  // 1 and 2 stop at EOF on stdin; 3 is SIGKILLed through its pidfd.
  children[0].in.reset();
  children[1].in.reset();
  ASSERT_EQ(::syscall(SYS_pidfd_send_signal, children[2].pidfd.get(), SIGKILL, nullptr, 0), 0);
  ASSERT_TRUE(readable_before(children[0].pidfd.get(), deadline_after(patience)));
  send({{"type", "status"}, {"id", 1}});
  EXPECT_EQ(receive(),
            (json{{"type", "status"}, {"id", 1}, {"running", false}, {"code", 0}, {"signal", 0}}));
  EXPECT_EQ(reap(children[0]), (json{{"type", "reaped"}, {"id", 1}, {"code", 0}, {"signal", 0}}));
  EXPECT_EQ(reap(children[1]), (json{{"type", "reaped"}, {"id", 2}, {"code", 0}, {"signal", 0}}));
  EXPECT_EQ(reap(children[2]),
            (json{{"type", "reaped"}, {"id", 3}, {"code", -1}, {"signal", SIGKILL}}));
  send({{"type", "reap"}, {"id", 1}});
  EXPECT_EQ(receive()["error"]["type"], "unknown_id");
  EXPECT_TRUE(testing::descendants_of(template_pid_).empty());

  children.clear();
  close_channel_and_expect_clean_exit();
  expect_no_descriptor_leaked();
}

TEST_F(ZygoteTemplate, ClosingTheChannelKillsAndReapsTheChildrenItStillHolds) {
  ASSERT_NO_FATAL_FAILURE(launch());
  expect_ready();
  std::vector<child> children;
  for (std::uint64_t id = 1; id <= 2; ++id) children.push_back(fork_child(id));
  for (auto& c : children)
    ASSERT_TRUE(decode_init_reply(call(c, make_init_request(json::object()))));

  close_channel_and_expect_clean_exit();
  for (auto& c : children) {
    EXPECT_TRUE(readable_before(c.pidfd.get(), deadline_after(0s)))
        << "child " << c.pid << " still running";
    EXPECT_FALSE(testing::process_exists(c.pid)) << "child " << c.pid << " not reaped";
  }
  children.clear();
  expect_no_descriptor_leaked();
}

TEST_F(ZygoteTemplate, ChildrenDieWithTheTemplateByTheirParentDeathSignal) {
  ASSERT_NO_FATAL_FAILURE(launch());
  expect_ready();
  std::vector<child> children;
  for (std::uint64_t id = 1; id <= 2; ++id) children.push_back(fork_child(id));
  for (auto& c : children)
    ASSERT_TRUE(decode_init_reply(call(c, make_init_request(json::object()))));

  ASSERT_EQ(::kill(template_pid_, SIGKILL), 0);
  const int status = wait_template();
  EXPECT_TRUE(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL) << "status " << status;
  for (auto& c : children) {
    ASSERT_TRUE(readable_before(c.pidfd.get(), deadline_after(patience)))
        << "child " << c.pid << " outlived the template";
    // This test process is a subreaper: the orphan is ours to reap now.
    int child_status = 0;
    ASSERT_EQ(::waitpid(c.pid, &child_status, 0), c.pid);
    EXPECT_TRUE(WIFSIGNALED(child_status) && WTERMSIG(child_status) == SIGKILL)
        << "status " << child_status;
  }
  children.clear();
  channel_.reset();
  stderr_.reset();
  expect_no_descriptor_leaked();
}

TEST_F(ZygoteTemplate, RefusesMalformedRequestsAndClosesWhatTheyCarried) {
  ASSERT_NO_FATAL_FAILURE(launch());
  expect_ready();
  auto pipe = open_pipe();
  ASSERT_TRUE(pipe);
  send({{"type", "fork"}, {"id", 7}}, {pipe->write.get()});
  pipe->write.reset();
  const json refused = receive();
  EXPECT_EQ(refused["type"], "fork_failed");
  EXPECT_EQ(refused["id"], 7);
  EXPECT_EQ(refused["error"]["type"], "bad_request");
  // The template closed the one descriptor it got: the pipe has no writer left.
  ASSERT_TRUE(readable_before(pipe->read.get(), deadline_after(patience)));
  char byte;
  EXPECT_EQ(::read(pipe->read.get(), &byte, 1), 0);

  send({{"type", "launch"}, {"id", 8}});
  EXPECT_EQ(
      receive(),
      (json{{"type", "error"},
            {"id", 8},
            {"error", {{"type", "bad_request"}, {"message", "unknown message type 'launch'"}}}}));
  ASSERT_EQ(::send(channel_.get(), "not json", 8, MSG_NOSIGNAL), 8);
  EXPECT_EQ(receive()["error"]["type"], "bad_request");
  auto in = open_pipe(), out = open_pipe(), err = open_pipe();
  ASSERT_TRUE(in && out && err);
  send({{"type", "fork"}, {"id", 9}, {"env", {{"PROCPOOL_WORKER_ID", 9}}}},
       {in->read.get(), out->write.get(), err->write.get()});
  EXPECT_EQ(receive()["error"]["type"], "bad_request") << "env values are strings";
  send({{"type", "status"}, {"id", 9}});
  EXPECT_EQ(receive()["error"]["type"], "unknown_id");

  close_channel_and_expect_clean_exit();
}

TEST_F(ZygoteTemplate, PreloadTakesStartupMsAndTouchesPreloadMib) {
  ASSERT_NO_FATAL_FAILURE(launch({"--startup-ms=30", "--preload-mib=16"}));
  expect_ready();
  EXPECT_GE(
      ready_["t_preload_done_ns"].get<std::int64_t>() - ready_["t_main_ns"].get<std::int64_t>(),
      30'000'000);
  EXPECT_GE(testing::rss_kib(template_pid_), 16 * 1024);
  child c = fork_child(1);
  auto hello = decode_init_reply(call(c, make_init_request(json::object())));
  ASSERT_TRUE(hello) << hello.error().message;
  EXPECT_LT(hello->t_main_ns - c.t_fork_ns, 30'000'000)
      << "a forked worker does not pay the preload again";
  c.in.reset();
  EXPECT_EQ(reap(c)["code"], 0);
  close_channel_and_expect_clean_exit();
}

}  // namespace
}  // namespace procpool::fake
