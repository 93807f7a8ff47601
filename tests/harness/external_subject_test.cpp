// The external subject, driving the shipped Python drivers (ProcessPoolExecutor and
// multiprocessing.Pool) through the JSON-lines driver protocol: results, parallelism proven
// by the workers' own stamps, typed errors, deadlines, a killed driver, and a stop that
// leaves no process. Small inline Python programs stand in for broken drivers. The line
// parser is also tested on its own.
#include <sys/types.h>

#include <condition_variable>
#include <csignal>
#include <fstream>
#include <limits>
#include <mutex>
#include <set>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include <gtest/gtest.h>

#include "subjects/driver_line.hpp"
#include "subjects/external_subject.hpp"
#include "support/pool_recorder.hpp"
#include "support/process_audit.hpp"

namespace procpool {
namespace {

using namespace std::chrono_literals;
using json = nlohmann::json;
using harness::subject;

std::vector<std::string> driver_command(const std::string& script) {
  return {PROCPOOL_PYTHON, std::string(PROCPOOL_DRIVERS_DIR) + "/" + script};
}

// A stand-in driver written inline: `body` runs after `emit`, `lines` and `args` exist.
std::vector<std::string> inline_driver(const std::string& body) {
  return {PROCPOOL_PYTHON, "-c",
          "import json, sys, time\n"
          "def emit(o):\n"
          "    sys.stdout.write(json.dumps(o) + '\\n'); sys.stdout.flush()\n"
          "lines = iter(sys.stdin)\n" +
              body};
}

// Answers start, then does `on_submit` with each submit line `m`.
std::vector<std::string> started_inline_driver(const std::string& on_submit) {
  return inline_driver(
      "next(lines)\n"
      "emit({'event': 'started', 't_ns': time.clock_gettime_ns(time.CLOCK_MONOTONIC)})\n"
      "for line in lines:\n"
      "    m = json.loads(line)\n"
      "    if m['op'] != 'submit': break\n" +
      on_submit);
}

void expect_error(const result<response>& r, errc code) {
  ASSERT_FALSE(r) << "expected " << to_string(code) << ", got a reply";
  EXPECT_EQ(r.error().code, code) << to_string(r.error().code) << ": " << r.error().message;
}

// The driver: the live child of this test process that leads its own process group. (When a
// previous test SIGKILLed its driver, that pool's processes may linger here as zombies: the
// test process is a subreaper, and they are re-parented to it as their parents die.)
pid_t driver_pid() {
  std::vector<pid_t> leaders;
  std::string described;
  for (pid_t pid : testing::child_pids()) {
    std::ifstream stat_file("/proc/" + std::to_string(pid) + "/stat");
    std::string stat;
    std::getline(stat_file, stat);
    described += stat + "\n";
    const auto close = stat.rfind(')');
    if (close == std::string::npos) continue;
    std::istringstream fields(stat.substr(close + 2));
    std::string state;
    pid_t ppid = 0, pgid = 0;
    fields >> state >> ppid >> pgid;
    if (state != "Z" && pgid == pid) leaders.push_back(pid);
  }
  EXPECT_EQ(leaders.size(), 1u) << described;
  return leaders.size() == 1 ? leaders.front() : -1;
}

class ExternalSubjectBase : public testing::leak_checked_test {
 protected:
  pool_options options(std::size_t size) {
    pool_options o;
    o.size = size;
    o.observer = recorder_.observer();
    return o;
  }

  std::unique_ptr<subject> make(std::vector<std::string> command, pool_options o) {
    auto s = harness::make_external_subject(std::move(command), std::move(o));
    EXPECT_TRUE(s) << s.error().message;
    return s ? std::move(*s) : nullptr;
  }

  testing::pool_recorder recorder_;  // declared before any subject, so it outlives them
};

class ExternalDriver : public ExternalSubjectBase,
                       public ::testing::WithParamInterface<std::string> {
 protected:
  std::unique_ptr<subject> make(std::size_t size) {
    return ExternalSubjectBase::make(driver_command(GetParam()), options(size));
  }
};

TEST_P(ExternalDriver, EchoRoundTripsWithOrderedTimelines) {
  auto pool = make(2);
  ASSERT_TRUE(pool);
  EXPECT_TRUE(pool->wait_ready(deadline_after(1s)));
  for (int i = 0; i < 200; ++i) {
    const json args = {{"n", i}, {"text", std::string(i % 17, 'x')}, {"list", {i, "é", nullptr}}};
    auto reply = pool->call("echo", args);
    ASSERT_TRUE(reply) << reply.error().message;
    EXPECT_EQ(reply->result, args);
    EXPECT_TRUE(reply->ok);
  }
  const auto timelines = recorder_.timelines();
  ASSERT_EQ(timelines.size(), 200u);
  for (const auto& t : timelines) testing::expect_ordered_success(t);
  const auto stats = pool->stats();
  EXPECT_EQ(stats.size, 2u);
  EXPECT_EQ(stats.calls, 200u);
  EXPECT_EQ(stats.calls_ok, 200u);
  EXPECT_EQ(stats.failures, 0u);
  EXPECT_EQ(stats.busy, 0u);
}

TEST_P(ExternalDriver, SleepsFromTwoThreadsOverlapInTheWorkers) {
  auto pool = make(2);
  ASSERT_TRUE(pool);
  result<response> replies[2] = {error{errc::pool_stopped, "not run"},
                                 error{errc::pool_stopped, "not run"}};
  std::vector<std::thread> callers;
  for (auto& reply : replies) {
    callers.emplace_back([&] { reply = pool->call("sleep", {{"ms", 400}}); });
  }
  for (auto& t : callers) t.join();
  for (const auto& reply : replies) {
    ASSERT_TRUE(reply) << reply.error().message;
    EXPECT_GE(reply->result.at("slept_ms").get<double>(), 400.0);
  }
  // Read from the workers' own stamps: each sleep started before the other ended.
  EXPECT_LT(replies[0]->t_recv_ns, replies[1]->t_done_ns);
  EXPECT_LT(replies[1]->t_recv_ns, replies[0]->t_done_ns);
  const auto timelines = recorder_.timelines();
  ASSERT_EQ(timelines.size(), 2u);
  EXPECT_NE(timelines[0].worker, timelines[1].worker);
}

TEST_P(ExternalDriver, BurnUsesWorkerCpu) {
  auto pool = make(1);
  ASSERT_TRUE(pool);
  auto reply = pool->call("burn", {{"ms", 20}});
  ASSERT_TRUE(reply) << reply.error().message;
  EXPECT_GE(reply->result.at("burned_ms").get<double>(), 20.0);
  EXPECT_GE(reply->t_done_ns - reply->t_recv_ns, 20'000'000);
}

TEST_P(ExternalDriver, UnknownCommandIsWorkerErrorAndThePoolServesOn) {
  auto pool = make(1);
  ASSERT_TRUE(pool);
  auto reply = pool->call("no-such-command", json::object());
  expect_error(reply, errc::worker_error);
  EXPECT_EQ(reply.error().worker_type, "unknown_command");
  auto bad_args = pool->call("sleep", "soon");
  expect_error(bad_args, errc::worker_error);
  EXPECT_EQ(bad_args.error().worker_type, "ValueError");
  ASSERT_TRUE(pool->call("echo", 1));
  const auto stats = pool->stats();
  EXPECT_EQ(stats.worker_errors, 2u);
  EXPECT_EQ(stats.calls_ok, 1u);
  const auto timelines = recorder_.timelines();
  ASSERT_EQ(timelines.size(), 3u);
  EXPECT_EQ(timelines[0].outcome, errc::worker_error);
  EXPECT_NE(timelines[0].t_worker_recv, 0);
}

// What submitted requests' completions delivered, and on which threads.
class completions {
 public:
  harness::subject_completion add(json expected) {
    return [this, expected = std::move(expected)](result<response> r) {
      std::lock_guard lock(mutex_);
      ok_ += r && r->result == expected;
      if (!r) failures_.push_back(r.error().code);
      threads_.insert(std::this_thread::get_id());
      ++count_;
      changed_.notify_all();
    };
  }
  bool wait_for(std::size_t n, std::chrono::milliseconds within) {
    std::unique_lock lock(mutex_);
    return changed_.wait_for(lock, within, [&] { return count_ >= n; });
  }
  std::size_t ok() {
    std::lock_guard lock(mutex_);
    return ok_;
  }
  std::vector<errc> failures() {
    std::lock_guard lock(mutex_);
    return failures_;
  }
  std::set<std::thread::id> threads() {
    std::lock_guard lock(mutex_);
    return threads_;
  }

 private:
  std::mutex mutex_;
  std::condition_variable changed_;
  std::size_t count_ = 0, ok_ = 0;
  std::vector<errc> failures_;
  std::set<std::thread::id> threads_;
};

// Submitted requests stream to the driver without a thread waiting on each: all 200 are out
// before the first is waited for, each completes once with its own result, on the reader.
TEST_P(ExternalDriver, SubmittedRequestsStreamAndCompleteOnTheReaderThread) {
  auto pool = make(2);
  ASSERT_TRUE(pool);
  completions done;
  for (int i = 0; i < 200; ++i) {
    ASSERT_TRUE(pool->submit("echo", {{"n", i}}, {}, done.add({{"n", i}})));
  }
  ASSERT_TRUE(done.wait_for(200, 20s));
  EXPECT_EQ(done.ok(), 200u);
  EXPECT_FALSE(done.threads().contains(std::this_thread::get_id()));
  const auto timelines = recorder_.timelines();
  ASSERT_EQ(timelines.size(), 200u);
  for (const auto& t : timelines) testing::expect_ordered_success(t);
  EXPECT_EQ(pool->stats().calls_ok, 200u);
}

// A submitted request past its deadline completes with request_timeout, without the driver's
// help; the pool serves on, and a stopped subject completes a submit at once.
TEST_P(ExternalDriver, SubmittedRequestPastItsDeadlineIsRequestTimeout) {
  auto pool = make(2);
  ASSERT_TRUE(pool);
  completions late, on_time;
  const auto t0 = std::chrono::steady_clock::now();
  ASSERT_TRUE(pool->submit("sleep", {{"ms", 1'000}}, {.reply_deadline = deadline_after(100ms)},
                           late.add(nullptr)));
  ASSERT_TRUE(late.wait_for(1, 5s));
  EXPECT_LT(std::chrono::steady_clock::now() - t0, 900ms);
  EXPECT_EQ(late.failures(), std::vector<errc>{errc::request_timeout});
  ASSERT_TRUE(pool->submit("echo", "meanwhile", {}, on_time.add("meanwhile")));
  ASSERT_TRUE(on_time.wait_for(1, 5s));
  EXPECT_EQ(on_time.ok(), 1u);
  pool->stop();
  completions stopped;
  ASSERT_TRUE(pool->submit("echo", 1, {}, stopped.add(1)));
  ASSERT_TRUE(stopped.wait_for(1, 0ms));  // before submit returned
  EXPECT_EQ(stopped.failures(), std::vector<errc>{errc::pool_stopped});
}

TEST_P(ExternalDriver, MissedReplyDeadlineIsRequestTimeoutAndLaterCallsWork) {
  auto pool = make(2);
  ASSERT_TRUE(pool);
  const auto t0 = std::chrono::steady_clock::now();
  expect_error(pool->call("sleep", {{"ms", 1'000}}, {.reply_deadline = deadline_after(100ms)}),
               errc::request_timeout);
  EXPECT_LT(std::chrono::steady_clock::now() - t0, 900ms);
  // The task still runs in the driver's pool: the other worker serves meanwhile.
  EXPECT_EQ(pool->stats().busy, 1u);
  auto reply = pool->call("echo", "meanwhile");
  ASSERT_TRUE(reply) << reply.error().message;
  // The late completion arrives and is discarded.
  const auto until = std::chrono::steady_clock::now() + 20s;
  while (pool->stats().busy != 0 && std::chrono::steady_clock::now() < until) {
    std::this_thread::sleep_for(10ms);
  }
  EXPECT_EQ(pool->stats().busy, 0u);
  for (int i = 0; i < 3; ++i) ASSERT_TRUE(pool->call("echo", i));
  const auto stats = pool->stats();
  EXPECT_EQ(stats.failures, 1u);
  EXPECT_EQ(stats.calls_ok, 4u);
  EXPECT_EQ(recorder_.timelines().front().outcome, errc::request_timeout);
}

TEST_P(ExternalDriver, KilledDriverFailsCallsAsWorkerCrashedWithoutHanging) {
  auto pool = make(2);
  ASSERT_TRUE(pool);
  ASSERT_TRUE(pool->call("echo", 1));
  const pid_t driver = driver_pid();
  ASSERT_GT(driver, 0);
  std::thread sleeper([&] {
    expect_error(pool->call("sleep", {{"ms", 30'000}}), errc::worker_crashed);
  });
  while (pool->stats().busy == 0) std::this_thread::sleep_for(1ms);
  ASSERT_EQ(::kill(driver, SIGKILL), 0);
  sleeper.join();
  const auto t0 = std::chrono::steady_clock::now();
  auto reply = pool->call("echo", 2);
  expect_error(reply, errc::worker_crashed);
  ASSERT_FALSE(reply);
  EXPECT_NE(reply.error().message.find("SIGKILL"), std::string::npos) << reply.error().message;
  EXPECT_LT(std::chrono::steady_clock::now() - t0, 1s);  // fails fast
  EXPECT_FALSE(pool->wait_ready(deadline_after(10ms)));
  EXPECT_TRUE(pool->stats().degraded);
  pool->stop();
}

// A pool process (not the driver) dies mid-task. The two pools differ, and the subject must
// show how: ProcessPoolExecutor breaks for good (BrokenProcessPool, reported as
// worker_crashed, for that task and every later one); multiprocessing.Pool replaces the
// process but never completes its task, so only the deadline ends that call.
TEST_P(ExternalDriver, KilledPoolWorkerShowsThePoolsOwnBehaviour) {
  auto pool = make(1);
  ASSERT_TRUE(pool);
  auto first = pool->call("echo", 1);
  ASSERT_TRUE(first) << first.error().message;
  const auto worker = static_cast<pid_t>(recorder_.timelines().back().worker);
  ASSERT_GT(worker, 0);
  result<response> sleeper = error{errc::pool_stopped, "not run"};
  std::thread caller([&] {
    sleeper = pool->call("sleep", {{"ms", 30'000}}, {.reply_deadline = deadline_after(3s)});
  });
  while (pool->stats().busy == 0) std::this_thread::sleep_for(1ms);
  std::this_thread::sleep_for(100ms);  // let the task reach the worker
  ASSERT_EQ(::kill(worker, SIGKILL), 0);
  caller.join();
  if (GetParam() == "process_pool_executor.py") {
    expect_error(sleeper, errc::worker_crashed);
    expect_error(pool->call("echo", 2), errc::worker_crashed);
  } else {
    expect_error(sleeper, errc::request_timeout);
    auto reply = pool->call("echo", 2);
    ASSERT_TRUE(reply) << reply.error().message;
    EXPECT_NE(recorder_.timelines().back().worker, static_cast<std::uint64_t>(worker));
  }
  EXPECT_TRUE(pool->wait_ready(deadline_after(10ms)));  // the driver itself is fine
}

TEST_P(ExternalDriver, StopLeavesNoProcessAndLaterCallsArePoolStopped) {
  auto pool = make(3);
  ASSERT_TRUE(pool);
  ASSERT_TRUE(pool->call("echo", 1));
  const auto t0 = std::chrono::steady_clock::now();
  pool->stop();
  EXPECT_LT(std::chrono::steady_clock::now() - t0, 4s);  // the driver exited on "stop"
  // The fixture checks that no process is left (the pool's processes included).
  expect_error(pool->call("echo", 2), errc::pool_stopped);
  pool->stop();  // idempotent
  EXPECT_FALSE(pool->stats().degraded);
}

TEST_P(ExternalDriver, StopDrainsInFlightCalls) {
  auto pool = make(1);
  ASSERT_TRUE(pool);
  std::thread caller([&] { EXPECT_TRUE(pool->call("sleep", {{"ms", 300}})); });
  while (pool->stats().busy == 0) std::this_thread::sleep_for(1ms);
  pool->stop({.drain_timeout = 10s});
  caller.join();
}

TEST_P(ExternalDriver, DestructionWithACallInFlightIsBounded) {
  auto pool = make(1);
  ASSERT_TRUE(pool);
  std::thread caller([&] {
    expect_error(pool->call("sleep", {{"ms", 60'000}}), errc::pool_stopped);
  });
  while (pool->stats().busy == 0) std::this_thread::sleep_for(1ms);
  pool->stop({.drain_timeout = 100ms});
  caller.join();
  pool.reset();
}

INSTANTIATE_TEST_SUITE_P(Drivers, ExternalDriver,
                         ::testing::Values("process_pool_executor.py", "multiprocessing_pool.py"),
                         [](const auto& info) {
                           return info.param == "process_pool_executor.py"
                                      ? std::string("ProcessPoolExecutor")
                                      : std::string("MultiprocessingPool");
                         });

using ExternalSubject = ExternalSubjectBase;

TEST_F(ExternalSubject, DriverThatExitsAtStartIsStartFailedWithItsStderr) {
  auto s = harness::make_external_subject(
      inline_driver("sys.stderr.write('no pool today\\n'); sys.exit(3)\n"), options(1));
  ASSERT_FALSE(s);
  EXPECT_EQ(s.error().code, errc::start_failed);
  EXPECT_NE(s.error().message.find("no pool today"), std::string::npos) << s.error().message;
  EXPECT_NE(s.error().message.find("exited with code 3"), std::string::npos) << s.error().message;
}

TEST_F(ExternalSubject, DriverRefusingStartIsStartFailedWithItsMessage) {
  auto s = harness::make_external_subject(
      inline_driver("next(lines); emit({'event': 'error', 'message': 'size too big'}); "
                    "sys.exit(1)\n"),
      options(1));
  ASSERT_FALSE(s);
  EXPECT_EQ(s.error().code, errc::start_failed);
  EXPECT_NE(s.error().message.find("size too big"), std::string::npos) << s.error().message;
}

TEST_F(ExternalSubject, SilentDriverIsStartFailedAtTheStartDeadline) {
  auto o = options(1);
  o.start_timeout = 300ms;
  o.init_timeout = 0ms;
  const auto t0 = std::chrono::steady_clock::now();
  auto s = harness::make_external_subject(
      inline_driver("sys.stderr.write('thinking\\n'); sys.stderr.flush(); time.sleep(60)\n"),
      std::move(o));
  ASSERT_FALSE(s);
  EXPECT_EQ(s.error().code, errc::start_failed);
  EXPECT_NE(s.error().message.find("300 ms"), std::string::npos) << s.error().message;
  EXPECT_NE(s.error().message.find("thinking"), std::string::npos) << s.error().message;
  EXPECT_LT(std::chrono::steady_clock::now() - t0, 5s);
}

TEST_F(ExternalSubject, MissingDriverBinaryIsStartFailed) {
  auto s = harness::make_external_subject({"/nonexistent/driver"}, options(1));
  ASSERT_FALSE(s);
  EXPECT_EQ(s.error().code, errc::start_failed);
}

TEST_F(ExternalSubject, EmptyCommandIsInvalidOptions) {
  auto s = harness::make_external_subject({}, options(1));
  ASSERT_FALSE(s);
  EXPECT_EQ(s.error().code, errc::invalid_options);
}

TEST_F(ExternalSubject, MalformedLineIsProtocolErrorThenCallsFailFast) {
  auto pool = make(started_inline_driver("    print('this is not json', flush=True)\n"),
                   options(1));
  ASSERT_TRUE(pool);
  expect_error(pool->call("echo", 1), errc::protocol_error);
  const auto t0 = std::chrono::steady_clock::now();
  expect_error(pool->call("echo", 2), errc::protocol_error);
  EXPECT_LT(std::chrono::steady_clock::now() - t0, 1s);
}

// The line limit is on the whole line, however the pipe delivers it: written at once or in
// pieces, a done line longer than max_frame_bytes is refused; with a larger limit the same
// line is accepted.
TEST_F(ExternalSubject, LineLongerThanTheLimitIsRefusedHoweverItArrives) {
  const std::string done_line =
      "    line = json.dumps({'event': 'done', 'id': m['id'], 'ok': True, 'result': None, "
      "'t_start_ns': 1, 't_worker_recv_ns': 2, 't_worker_done_ns': 3, 't_done_ns': 4}, "
      "separators=(',', ':')) + '\\n'\n"
      "    assert len(line) > 65, len(line)\n";
  const std::string at_once = "    sys.stdout.write(line); sys.stdout.flush()\n";
  const std::string in_pieces =
      "    for i in range(0, len(line), 10):\n"
      "        sys.stdout.write(line[i:i + 10]); sys.stdout.flush(); time.sleep(0.002)\n";
  for (const auto* how : {&at_once, &in_pieces}) {
    auto small = options(1);
    small.max_frame_bytes = 64;
    auto pool = make(started_inline_driver(done_line + *how), std::move(small));
    ASSERT_TRUE(pool);
    expect_error(pool->call("echo", 1), errc::protocol_error);
    pool.reset();
    auto large = options(1);
    large.max_frame_bytes = 200;
    pool = make(started_inline_driver(done_line + *how), std::move(large));
    ASSERT_TRUE(pool);
    auto reply = pool->call("echo", 1);
    EXPECT_TRUE(reply) << reply.error().message;
  }
}

TEST_F(ExternalSubject, DoneForAnIdNeverSubmittedIsProtocolError) {
  auto pool = make(started_inline_driver(
                       "    emit({'event': 'done', 'id': m['id'] + 1000, 'ok': True, "
                       "'result': None, 't_start_ns': 1, 't_worker_recv_ns': 2, "
                       "'t_worker_done_ns': 3, 't_done_ns': 4})\n"),
                   options(1));
  ASSERT_TRUE(pool);
  expect_error(pool->call("echo", 1), errc::protocol_error);
}

TEST_F(ExternalSubject, DriverReportedWorkerCrashIsWorkerCrashed) {
  auto pool = make(started_inline_driver(
                       "    emit({'event': 'done', 'id': m['id'], 'ok': False, 'error': "
                       "{'type': 'worker_crashed', 'message': 'BrokenProcessPool'}, "
                       "'t_start_ns': 1, 't_worker_recv_ns': 0, 't_worker_done_ns': 0, "
                       "'t_done_ns': 4})\n"),
                   options(1));
  ASSERT_TRUE(pool);
  auto reply = pool->call("echo", 1);
  expect_error(reply, errc::worker_crashed);
  EXPECT_EQ(reply.error().worker_type, "worker_crashed");
  // The driver itself is alive: the next call is answered too (again a crash here).
  expect_error(pool->call("echo", 2), errc::worker_crashed);
  EXPECT_FALSE(pool->stats().degraded);
}

TEST_F(ExternalSubject, DriverThatIgnoresStopIsKilled) {
  auto pool = make(inline_driver(
                       "import signal\n"
                       "signal.signal(signal.SIGTERM, signal.SIG_IGN)\n"
                       "next(lines)\n"
                       "emit({'event': 'started', 't_ns': 1})\n"
                       "for line in lines: pass\n"
                       "time.sleep(60)\n"),
                   options(1));
  ASSERT_TRUE(pool);
  const auto t0 = std::chrono::steady_clock::now();
  pool->stop();
  const auto took = std::chrono::steady_clock::now() - t0;
  EXPECT_GE(took, 4s);
  EXPECT_LT(took, 10s);
}

// ---- The line parser, on its own ----

result<harness::driver_line> parse(std::string_view text) {
  return harness::parse_driver_line(text);
}

void expect_line_error(std::string_view text, std::string_view says) {
  SCOPED_TRACE(std::string(text));
  const auto line = parse(text);
  ASSERT_FALSE(line);
  EXPECT_EQ(line.error().code, errc::protocol_error);
  EXPECT_NE(line.error().message.find(says), std::string::npos) << line.error().message;
}

TEST(DriverLine, EveryEventOfTheProtocol) {
  const auto started = parse(R"({"event":"started","t_ns":81236610123456,"pids":[4242,4243]})");
  ASSERT_TRUE(started) << started.error().message;
  EXPECT_EQ(started->event, harness::driver_event::started);
  for (const auto* blank : {"", "\r"}) {
    const auto line = parse(blank);
    ASSERT_TRUE(line);
    EXPECT_EQ(line->event, harness::driver_event::blank);
  }
  EXPECT_EQ(parse(R"({"event":"stats","size":2,"busy":1,"queued":0,"completed":3})")->event,
            harness::driver_event::stats);
  EXPECT_EQ(parse("{\"event\":\"stopped\"}\r")->event, harness::driver_event::stopped);
  EXPECT_EQ(parse(R"({"event":"error","message":"bad size"})")->message, "bad size");
  EXPECT_EQ(parse(R"({"event":"error"})")->message, R"({"event":"error"})");

  const auto done = parse(
      R"({"event":"done","id":1,"ok":true,"result":{"x":1},"t_start_ns":10,)"
      R"("t_worker_recv_ns":11,"t_worker_done_ns":12,"t_done_ns":13,"worker_pid":4242,)"
      R"("t_intended_ns":9})");
  ASSERT_TRUE(done) << done.error().message;
  ASSERT_EQ(done->event, harness::driver_event::done);
  EXPECT_EQ(done->done.id, 1u);
  EXPECT_EQ(done->done.reply.result, json({{"x", 1}}));
  EXPECT_EQ(done->done.t_start_ns, 10);
  EXPECT_EQ(done->done.reply.t_recv_ns, 11);
  EXPECT_EQ(done->done.reply.t_done_ns, 12);
  EXPECT_EQ(done->done.t_done_ns, 13);
  EXPECT_EQ(done->done.worker_pid, 4242u);

  const auto failed = parse(
      R"({"event":"done","id":2,"ok":false,"error":{"type":"worker_crashed","message":"m"},)"
      R"("t_start_ns":1,"t_worker_recv_ns":0,"t_worker_done_ns":0,"t_done_ns":4})");
  ASSERT_TRUE(failed) << failed.error().message;
  EXPECT_FALSE(failed->done.reply.ok);
  EXPECT_EQ(failed->done.reply.failure.type, "worker_crashed");
}

TEST(DriverLine, MalformedLinesAreProtocolErrors) {
  expect_line_error("this is not json", "not a JSON object: this is not json");
  expect_line_error("[1]", "not a JSON object");
  expect_line_error("\xff", "not a JSON object");
  expect_line_error(R"({"t_ns":1})", "no 'event' string");
  expect_line_error(R"({"event":1})", "no 'event' string");
  expect_line_error(R"({"event":"hello"})", "unexpected event 'hello'");
  const std::string stamps =
      R"("t_start_ns":1,"t_worker_recv_ns":2,"t_worker_done_ns":3,"t_done_ns":4)";
  expect_line_error(R"({"event":"done","id":-1,"ok":true,)" + stamps + "}", "'id' must be");
  expect_line_error(R"({"event":"done","id":1,"ok":1,)" + stamps + "}", "'ok' must be");
  expect_line_error(R"({"event":"done","id":1,"ok":false,)" + stamps + "}", "'error' must be");
  expect_line_error(R"({"event":"done","id":1,"ok":true,"t_start_ns":1})", "must be integers");
  expect_line_error(R"({"event":"done","id":1,"ok":true,"worker_pid":-1,)" + stamps + "}",
                    "'worker_pid' must be an unsigned integer");
}

// json reads a non-negative integer as unsigned; a stamp above INT64_MAX must not wrap to a
// negative number (18446744073709551615 read as -1).
TEST(DriverLine, StampsAboveInt64MaxAreProtocolErrorsNotNegative) {
  for (const char* field : {"t_start_ns", "t_worker_recv_ns", "t_worker_done_ns", "t_done_ns"}) {
    for (const char* value : {"9223372036854775808", "18446744073709551615"}) {
      json line = json::parse(
          R"({"event":"done","id":1,"ok":true,"t_start_ns":1,"t_worker_recv_ns":2,)"
          R"("t_worker_done_ns":3,"t_done_ns":4})");
      line[field] = json::parse(value);
      SCOPED_TRACE(line.dump());
      expect_line_error(line.dump(), "fit in 64 signed bits");
    }
  }
  const auto largest = parse(
      R"({"event":"done","id":18446744073709551615,"ok":true,"t_start_ns":9223372036854775807,)"
      R"("t_worker_recv_ns":-9223372036854775808,"t_worker_done_ns":0,"t_done_ns":0,)"
      R"("worker_pid":18446744073709551615})");
  ASSERT_TRUE(largest) << largest.error().message;
  EXPECT_EQ(largest->done.id, std::numeric_limits<std::uint64_t>::max());
  EXPECT_EQ(largest->done.t_start_ns, std::numeric_limits<std::int64_t>::max());
  EXPECT_EQ(largest->done.reply.t_recv_ns, std::numeric_limits<std::int64_t>::min());
  EXPECT_EQ(largest->done.worker_pid, std::numeric_limits<std::uint64_t>::max());
}

TEST(DriverLine, StartedSaysWhetherItWarmedWhenAndWhichPids) {
  const auto cold = parse(R"({"event":"started","t_ns":81236610123456,"warm":false,"pids":[4242,4243]})");
  ASSERT_TRUE(cold) << cold.error().message;
  EXPECT_EQ(cold->event, harness::driver_event::started);
  EXPECT_TRUE(cold->cold);
  EXPECT_EQ(cold->t_ns, 81236610123456);
  EXPECT_EQ(cold->pids, (std::vector<std::uint64_t>{4242, 4243}));

  // Absent or true: warm. Anything but false reads as warm: "started" is read leniently.
  for (const char* text : {R"({"event":"started","t_ns":5,"warm":true})", R"({"event":"started","t_ns":5})",
                           R"({"event":"started","t_ns":5,"warm":"false"})",
                           R"({"event":"started","t_ns":5,"warm":0})"}) {
    SCOPED_TRACE(text);
    const auto warm = parse(text);
    ASSERT_TRUE(warm) << warm.error().message;
    EXPECT_FALSE(warm->cold);
    EXPECT_EQ(warm->t_ns, 5);
    EXPECT_TRUE(warm->pids.empty());
  }
  // A missing, mistyped or too large t_ns reads as 0 (unknown), and only pids >= 1 are kept.
  for (const char* text : {R"({"event":"started"})", R"({"event":"started","t_ns":"soon"})",
                           R"({"event":"started","t_ns":9223372036854775808})"}) {
    SCOPED_TRACE(text);
    const auto line = parse(text);
    ASSERT_TRUE(line) << line.error().message;
    EXPECT_EQ(line->t_ns, 0);
  }
  const auto odd_pids = parse(R"({"event":"started","t_ns":1,"pids":[0,-4,"4242",4.5,7,18446744073709551615]})");
  ASSERT_TRUE(odd_pids) << odd_pids.error().message;
  EXPECT_EQ(odd_pids->pids, (std::vector<std::uint64_t>{7, std::numeric_limits<std::uint64_t>::max()}));
  const auto pids_not_a_list = parse(R"({"event":"started","t_ns":1,"pids":4242})");
  ASSERT_TRUE(pids_not_a_list);
  EXPECT_TRUE(pids_not_a_list->pids.empty());
}

TEST(DriverLine, WorkerLifecycleEventsCarryTheirStamps) {
  const auto spawned = parse(R"({"event":"worker","pid":4242,"state":"spawned","t_ns":100,"t_spawn_ns":90})");
  ASSERT_TRUE(spawned) << spawned.error().message;
  ASSERT_EQ(spawned->event, harness::driver_event::worker);
  EXPECT_EQ(spawned->worker.pid, 4242u);
  EXPECT_EQ(spawned->worker.state, harness::driver_worker_state::spawned);
  EXPECT_EQ(spawned->worker.t_ns, 100);
  EXPECT_EQ(spawned->worker.t_spawn_ns, 90);
  EXPECT_EQ(spawned->worker.t_main_ns, 0);  // optional stamps not sent read as 0
  EXPECT_EQ(spawned->worker.t_init_done_ns, 0);
  EXPECT_EQ(spawned->worker.cause, "");
  EXPECT_FALSE(spawned->worker.planned);

  const auto ready = parse(
      R"({"event":"worker","pid":4242,"state":"ready","t_ns":200,"t_spawn_ns":90,"t_main_ns":120,)"
      R"("t_init_done_ns":9223372036854775807})");
  ASSERT_TRUE(ready) << ready.error().message;
  EXPECT_EQ(ready->worker.state, harness::driver_worker_state::ready);
  EXPECT_EQ(ready->worker.t_ns, 200);
  EXPECT_EQ(ready->worker.t_spawn_ns, 90);
  EXPECT_EQ(ready->worker.t_main_ns, 120);
  EXPECT_EQ(ready->worker.t_init_done_ns, std::numeric_limits<std::int64_t>::max());

  const auto crashed = parse(
      R"({"event":"worker","pid":7,"state":"exited","t_ns":300,"cause":"killed by SIGKILL","planned":false})");
  ASSERT_TRUE(crashed) << crashed.error().message;
  EXPECT_EQ(crashed->worker.state, harness::driver_worker_state::exited);
  EXPECT_EQ(crashed->worker.pid, 7u);
  EXPECT_EQ(crashed->worker.t_ns, 300);
  EXPECT_EQ(crashed->worker.cause, "killed by SIGKILL");
  EXPECT_FALSE(crashed->worker.planned);

  const auto retired = parse(R"({"event":"worker","pid":7,"state":"exited","t_ns":-5,"planned":true})");
  ASSERT_TRUE(retired) << retired.error().message;
  EXPECT_TRUE(retired->worker.planned);
  EXPECT_EQ(retired->worker.t_ns, -5);  // stamps are signed
  EXPECT_EQ(retired->worker.cause, "");
}

TEST(DriverLine, PoolSamplesCarryTheirCounts) {
  const auto sample = parse(R"({"event":"pool","t_ns":81236610123456,"queued":12,"busy":4,"alive":4})");
  ASSERT_TRUE(sample) << sample.error().message;
  ASSERT_EQ(sample->event, harness::driver_event::pool);
  EXPECT_EQ(sample->pool.t_ns, 81236610123456);
  EXPECT_EQ(sample->pool.queued, 12u);
  EXPECT_EQ(sample->pool.busy, 4u);
  EXPECT_EQ(sample->pool.alive, 4u);
  const auto empty = parse(R"({"event":"pool","t_ns":1,"queued":0,"busy":0,"alive":0})");
  ASSERT_TRUE(empty) << empty.error().message;
  EXPECT_EQ(empty->pool.queued + empty->pool.busy + empty->pool.alive, 0u);
}

TEST(DriverLine, MalformedWorkerLinesAreProtocolErrorsNamingTheField) {
  const auto worker = [](const std::string& fields) { return R"({"event":"worker",)" + fields + "}"; };
  const std::string state = R"("state":"ready","t_ns":1)";
  for (const char* pid : {R"("pid":0)", R"("pid":-1)", R"("pid":"4242")", R"("pid":1.5)", R"("pid":null)"}) {
    expect_line_error(worker(std::string(pid) + "," + state), "driver's worker line: 'pid' must be an integer >= 1");
  }
  expect_line_error(worker(state), "'pid' must be an integer >= 1");
  for (const char* bad : {R"("state":"running")", R"("state":"Ready")", R"("state":1)", R"("state":null)"}) {
    expect_line_error(worker(std::string(R"("pid":1,"t_ns":1,)") + bad),
                      R"(driver's worker line: 'state' must be "spawned", "ready" or "exited")");
  }
  expect_line_error(worker(R"("pid":1,"t_ns":1)"), "'state' must be");
  expect_line_error(worker(R"("pid":1,"state":"ready")"), "driver's worker line: t_ns (required)");
  expect_line_error(worker(R"("pid":1,"state":"ready","t_ns":"1")"), "t_ns (required)");
  expect_line_error(worker(R"("pid":1,"state":"ready","t_ns":1.5)"), "t_ns (required)");
  for (const char* stamp : {"t_ns", "t_spawn_ns", "t_main_ns", "t_init_done_ns"}) {
    for (const char* value : {"9223372036854775808", "18446744073709551615", "\"12\"", "1e3"}) {
      json line = {{"event", "worker"}, {"pid", 1}, {"state", "spawned"}, {"t_ns", 1}};
      line[stamp] = json::parse(value);
      expect_line_error(line.dump(), "must be integers that fit in 64 signed bits");
    }
  }
  for (const char* cause : {"3", "null", "[\"x\"]", "{}"}) {
    expect_line_error(worker(std::string(R"("pid":1,"state":"exited","t_ns":1,"cause":)") + cause),
                      "driver's worker line: 'cause' must be a string");
  }
  for (const char* planned : {"1", "\"true\"", "null"}) {
    expect_line_error(worker(std::string(R"("pid":1,"state":"exited","t_ns":1,"planned":)") + planned),
                      "driver's worker line: 'planned' must be a boolean");
  }
}

TEST(DriverLine, MalformedPoolLinesAreProtocolErrors) {
  const std::string says = "driver's pool line: t_ns must be a signed 64-bit integer and queued, busy "
                           "and alive integers >= 0";
  const json good = {{"event", "pool"}, {"t_ns", 1}, {"queued", 2}, {"busy", 3}, {"alive", 4}};
  ASSERT_TRUE(parse(good.dump()));
  for (const char* field : {"t_ns", "queued", "busy", "alive"}) {
    json missing = good;
    missing.erase(field);
    expect_line_error(missing.dump(), says);
    for (const char* value : {"-1", "1.5", "\"2\"", "null"}) {
      if (std::string_view(field) == "t_ns" && std::string_view(value) == "-1") continue;  // signed
      json bad = good;
      bad[field] = json::parse(value);
      expect_line_error(bad.dump(), says);
    }
  }
  json too_late = good;
  too_late["t_ns"] = json::parse("9223372036854775808");
  expect_line_error(too_late.dump(), says);
  json before_zero = good;
  before_zero["t_ns"] = -1;  // a stamp may be negative; a count may not
  const auto signed_stamp = parse(before_zero.dump());
  ASSERT_TRUE(signed_stamp) << signed_stamp.error().message;
  EXPECT_EQ(signed_stamp->pool.t_ns, -1);
}

}  // namespace
}  // namespace procpool
