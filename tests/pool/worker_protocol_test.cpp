// Both workers, fake and Python, spoken to through worker_connection: the handshake, echo
// round trips checked against worker-side stamps, and every fault knob seen as the fault the
// client should observe.
#include <sys/wait.h>

#include <csignal>
#include <fstream>
#include <string>

#include <gtest/gtest.h>

#include "procpool/wire/worker_connection.hpp"
#include "support/process_audit.hpp"
#include "support/workers.hpp"

namespace procpool {
namespace {

using namespace std::chrono_literals;
using testing::worker_kind;
using json = nlohmann::json;

class WorkerProtocol : public testing::leak_checked_test,
                       public ::testing::WithParamInterface<worker_kind> {
 protected:
  worker_connection start(std::vector<std::string> flags = {}) {
    auto conn = worker_connection::start(testing::worker_launch(GetParam(), std::move(flags)));
    EXPECT_TRUE(conn) << conn.error().message;
    return std::move(*conn);
  }

  // Starts a worker and completes the handshake with `knobs` as init args.
  worker_connection ready(json knobs = json::object()) {
    auto conn = start();
    auto hello = conn.handshake(knobs, deadline_after(10s));
    EXPECT_TRUE(hello) << hello.error().message;
    return conn;
  }

  static result<response> echo(worker_connection& conn, std::uint64_t id,
                               std::chrono::milliseconds timeout = 10s) {
    return conn.call(request{.id = id, .command = "echo", .args = {{"n", id}}}, deadline_after(timeout));
  }

  static void expect_error(const auto& r, errc code, std::string_view mentions) {
    ASSERT_FALSE(r);
    EXPECT_EQ(r.error().code, code) << r.error().message;
    EXPECT_NE(r.error().message.find(mentions), std::string::npos) << r.error().message;
  }
};

TEST_P(WorkerProtocol, HandshakeReportsPidAndOrderedStamps) {
  auto conn = start();
  const std::int64_t t_send = monotonic_ns();
  auto hello = conn.handshake(json::object(), deadline_after(10s));
  const std::int64_t t_reply = monotonic_ns();
  ASSERT_TRUE(hello) << hello.error().message;
  EXPECT_EQ(hello->pid, conn.process().pid());
  EXPECT_LE(conn.process().t_spawn_ns(), hello->t_main_ns);
  EXPECT_LE(hello->t_main_ns, hello->t_init_done_ns);
  EXPECT_LE(t_send, hello->base.t_recv_ns);
  EXPECT_LE(hello->t_init_done_ns, t_reply);
}

TEST_P(WorkerProtocol, ThousandEchoRoundTripsMatchIdsPayloadsAndStamps) {
  auto conn = ready();
  for (std::uint64_t id = 1; id <= 1000; ++id) {
    const json args = {{"id", id}, {"text", std::string(id % 97, 'x')}, {"list", {id, -1, 0.5}}};
    const std::int64_t t_send = monotonic_ns();
    auto reply = conn.call(request{.id = id, .command = "echo", .args = args}, deadline_after(10s));
    const std::int64_t t_reply = monotonic_ns();
    ASSERT_TRUE(reply) << reply.error().message;
    ASSERT_EQ(reply->id, id);
    ASSERT_TRUE(reply->ok);
    ASSERT_EQ(reply->result, args);
    ASSERT_LE(reply->t_recv_ns, reply->t_done_ns);
    ASSERT_LE(t_send, reply->t_recv_ns);
    ASSERT_LE(reply->t_done_ns, t_reply);
  }
}

TEST_P(WorkerProtocol, PingAnswersPong) {
  auto conn = ready();
  auto reply = conn.call(request{.id = 1, .command = "ping"}, deadline_after(10s));
  ASSERT_TRUE(reply) << reply.error().message;
  EXPECT_EQ(reply->result, "pong");
}

TEST_P(WorkerProtocol, SleepAndBurnTakeAtLeastTheirTimeOnTheWorkerClock) {
  auto conn = ready();
  for (const char* command : {"sleep", "burn"}) {
    auto reply = conn.call(request{.id = 1, .command = command, .args = {{"ms", 20}}}, deadline_after(10s));
    ASSERT_TRUE(reply) << reply.error().message;
    ASSERT_TRUE(reply->ok) << reply->failure.message;
    EXPECT_GE(reply->t_done_ns - reply->t_recv_ns, 20'000'000) << command;
  }
}

TEST_P(WorkerProtocol, UnknownCommandIsAnErrorReplyNotAFault) {
  auto conn = ready();
  auto reply = conn.call(request{.id = 4, .command = "no-such-command"}, deadline_after(10s));
  ASSERT_TRUE(reply) << reply.error().message;
  EXPECT_FALSE(reply->ok);
  EXPECT_EQ(reply->failure.type, "unknown_command");
  EXPECT_FALSE(conn.broken());
  ASSERT_TRUE(echo(conn, 5));
}

TEST_P(WorkerProtocol, InitArgsOverrideKnobs) {
  auto conn = start();
  auto hello = conn.handshake({{"init_ms", 50}}, deadline_after(10s));
  ASSERT_TRUE(hello) << hello.error().message;
  EXPECT_GE(hello->t_init_done_ns - hello->base.t_recv_ns, 50'000'000);
}

TEST_P(WorkerProtocol, UnknownKnobRefusesInit) {
  auto conn = start();
  auto hello = conn.handshake({{"no_such_knob", 1}}, deadline_after(10s));
  expect_error(hello, errc::start_failed, "no_such_knob");
}

TEST_P(WorkerProtocol, OutOfRangeKnobRefusesInit) {
  auto conn = start();
  auto hello = conn.handshake({{"crash_probability", 1.5}}, deadline_after(10s));
  expect_error(hello, errc::start_failed, "crash_probability");
}

TEST_P(WorkerProtocol, CrashAfterNExitsWithTheConfiguredCode) {
  auto conn = ready({{"crash_after", 2}, {"crash_exit_code", 7}});
  ASSERT_TRUE(echo(conn, 1));
  ASSERT_TRUE(echo(conn, 2));
  expect_error(echo(conn, 3), errc::worker_crashed, "exited with code 7");
}

TEST_P(WorkerProtocol, CrashModeSegvDiesBySigsegv) {
  auto conn = ready({{"crash_probability", 1.0}, {"crash_mode", "segv"}});
  expect_error(echo(conn, 1), errc::worker_crashed, "killed by SIGSEGV");
}

TEST_P(WorkerProtocol, CrashModeKillDiesBySigkill) {
  auto conn = ready({{"crash_probability", 1.0}, {"crash_mode", "kill"}});
  expect_error(echo(conn, 1), errc::worker_crashed, "killed by SIGKILL");
}

TEST_P(WorkerProtocol, HangIsARequestTimeout) {
  auto conn = ready({{"hang_probability", 1.0}});
  expect_error(echo(conn, 1, 300ms), errc::request_timeout, "did not reply");
  EXPECT_TRUE(conn.broken());
}

TEST_P(WorkerProtocol, GarbageIsADecodeError) {
  auto conn = ready({{"garbage_probability", 1.0}});
  expect_error(echo(conn, 1), errc::protocol_error, "not JSON");
}

TEST_P(WorkerProtocol, TruncatedFrameIsAProtocolError) {
  auto conn = ready({{"truncated_probability", 1.0}});
  expect_error(echo(conn, 1), errc::protocol_error, "middle of a frame");
}

TEST_P(WorkerProtocol, OversizeLengthIsRejected) {
  auto conn = ready({{"oversize_probability", 1.0}});
  expect_error(echo(conn, 1), errc::protocol_error, "exceeds the maximum");
}

TEST_P(WorkerProtocol, WrongIdIsAProtocolError) {
  auto conn = ready({{"wrong_id_probability", 1.0}});
  expect_error(echo(conn, 1), errc::protocol_error, "answered id 1000001 to request id 1");
}

TEST_P(WorkerProtocol, SlowReplyAddsSlowMs) {
  auto conn = ready({{"slow_probability", 1.0}, {"slow_ms", 60}});
  auto reply = echo(conn, 1);
  ASSERT_TRUE(reply) << reply.error().message;
  EXPECT_GE(reply->t_done_ns - reply->t_recv_ns, 60'000'000);
}

TEST_P(WorkerProtocol, FixedServiceTimeDelaysEcho) {
  auto conn = ready({{"service_ms", 15}});
  auto reply = echo(conn, 1);
  ASSERT_TRUE(reply) << reply.error().message;
  EXPECT_GE(reply->t_done_ns - reply->t_recv_ns, 15'000'000);
}

TEST_P(WorkerProtocol, ExitDuringInitFailsTheStart) {
  auto conn = start();
  auto hello = conn.handshake({{"exit_during_init", true}, {"crash_exit_code", 9}},
                              deadline_after(10s));
  expect_error(hello, errc::start_failed, "exited with code 9");
}

TEST_P(WorkerProtocol, NeverReadyTimesOutTheHandshake) {
  auto conn = start();
  auto hello = conn.handshake({{"never_ready", true}}, deadline_after(300ms));
  expect_error(hello, errc::start_failed, "request_timeout");
}

TEST_P(WorkerProtocol, StderrFloodDoesNotBlockAndIsQuotable) {
  auto conn = ready({{"stderr_flood_mb", 8}});
  ASSERT_TRUE(echo(conn, 1));
  EXPECT_NE(conn.stderr_lines(1).find("flood"), std::string::npos) << conn.stderr_lines(1);
}

TEST_P(WorkerProtocol, MemoryGrowthShowsInRss) {
  auto conn = ready({{"memory_growth_kb", 4096}});
  const long before = testing::rss_kib(conn.process().pid());
  for (std::uint64_t id = 1; id <= 8; ++id) ASSERT_TRUE(echo(conn, id));
  const long after = testing::rss_kib(conn.process().pid());
  EXPECT_GE(after - before, 8 * 4096 * 3 / 4) << "before " << before << " after " << after;
}

TEST_P(WorkerProtocol, GracefulStopEndsAtStdinClose) {
  auto conn = ready();
  const auto status = conn.process().stop({.after_stdin_close = 10s, .after_sigterm = 10s});
  EXPECT_TRUE(status.exited_cleanly()) << status.describe();
}

TEST_P(WorkerProtocol, IgnoringSigtermNeedsSigkill) {
  auto conn = start({"--ignore-sigterm"});
  ASSERT_TRUE(conn.handshake(json::object(), deadline_after(10s)));
  // Hold stdin open (a hang) so that only signals can end the worker.
  ASSERT_TRUE(conn.send_payload(encode(request{.id = 1, .command = "sleep", .args = {{"ms", 60000}}}),
                                deadline_after(10s)));
  const auto status = conn.process().stop({.after_stdin_close = 100ms, .after_sigterm = 300ms});
  EXPECT_EQ(status.signal, SIGKILL) << status.describe();
}

TEST_P(WorkerProtocol, GrandchildOutlivesTheWorkerUnlessItsGroupIsKilled) {
  auto conn = start({"--grandchild"});
  ASSERT_TRUE(conn.handshake(json::object(), deadline_after(10s)));
  const pid_t worker = conn.process().pid();
  std::ifstream children("/proc/" + std::to_string(worker) + "/task/" + std::to_string(worker) +
                         "/children");
  pid_t grandchild = 0;
  ASSERT_TRUE(children >> grandchild) << "the worker has no child";

  // Killing only the worker leaves the grandchild running...
  ::kill(worker, SIGKILL);
  siginfo_t info{};
  ASSERT_EQ(::waitid(P_PID, static_cast<id_t>(worker), &info, WEXITED | WNOWAIT), 0);
  EXPECT_TRUE(testing::process_exists(grandchild));
  // ...and reaping the worker kills what is left of its process group.
  ASSERT_TRUE(conn.process().wait_for(10s));
  EXPECT_TRUE(testing::reap_leftovers(10s).empty());
  EXPECT_FALSE(testing::process_exists(grandchild));
}

using WorkerConnection = testing::leak_checked_test;

// A request written while the worker was not reading: the write waits for room, and the wait
// for the reply must then count from after it, not from the stamp taken before the write.
TEST_F(WorkerConnection, TheReplyWaitAfterASlowWriteEndsAtTheDeadline) {
  // fd 3 keeps the worker's stdout open: its end would be a crash, not a missing reply.
  auto conn = worker_connection::start(
      {.argv = {"/bin/sh", "-c", "sleep 0.6; exec 3>&1; exec cat > /dev/null"}});
  ASSERT_TRUE(conn) << conn.error().message;
  const auto until = deadline_after(1s);
  // More than a pipe holds (64 KiB): the write waits until the worker reads, after 0.6 s.
  const std::string big(256 * 1024, 'x');
  auto r = conn->call(request{.id = 1, .command = "echo", .args = big}, until);
  const auto late = std::chrono::steady_clock::now() - until;
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code, errc::request_timeout) << r.error().message;
  EXPECT_LT(late, 300ms) << "the wait for the reply counted from before the write";
}

INSTANTIATE_TEST_SUITE_P(Workers, WorkerProtocol,
                         ::testing::Values(worker_kind::fake, worker_kind::python),
                         [](const auto& info) { return testing::to_string(info.param); });

}  // namespace
}  // namespace procpool
