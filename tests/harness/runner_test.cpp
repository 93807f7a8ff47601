// The scenario runner: the open loop's coordinated-omission correction, a case's record, and
// the `procpool run` command's sharding, merging and Ctrl-C handling.
#include <poll.h>
#include <unistd.h>

#include <csignal>
#include <filesystem>
#include <set>
#include <fstream>
#include <thread>

#include <gtest/gtest.h>

#include "run/load.hpp"
#include "results/journal.hpp"
#include "results/results.hpp"
#include "run/runner.hpp"
#include "support/process_audit.hpp"
#include "support/scratch_dir.hpp"

namespace procpool::harness {
namespace {

using namespace std::chrono_literals;
using json = nlohmann::json;

// A subject with no processes: every call takes 1 ms, except one that stalls.
class stalling_subject final : public subject {
 public:
  explicit stalling_subject(std::uint64_t stall_at) : stall_at_(stall_at) {}
  result<response> call(std::string_view, nlohmann::json, const call_options&) override {
    std::this_thread::sleep_for(++calls_ == stall_at_ ? 500ms : 1ms);
    return response{};
  }
  bool wait_ready(deadline) override { return true; }
  pool_stats stats() const override { return {}; }
  void stop(const stop_options&) override {}

 private:
  std::atomic<std::uint64_t> calls_{0};
  std::uint64_t stall_at_;
};

TEST(OpenLoop, AStallShowsInTheTailMeasuredFromIntendedStarts) {
  load_config load{.model = load_model::open, .concurrency = 1, .requests = 1000, .rate = 500,
                   .arrivals = arrival_process::constant};
  std::atomic<bool> never{false};
  stalling_subject stalls(100);
  const auto open = run_load(stalls, load, {"echo", nullptr}, 1, never);
  // 500 ms of stall at 500 arrivals/s delays some 250 requests: far more than 1% of 1,000.
  EXPECT_GE(open.latency_us.value_at_percentile(99), 400'000u);
  EXPECT_GT(open.late_starts, 100u);

  load.model = load_model::closed;
  stalling_subject stalls_again(100);
  const auto closed = run_load(stalls_again, load, {"echo", nullptr}, 1, never);
  // The closed loop waits out the stall and hides it: one slow request of 1,000.
  EXPECT_LT(closed.latency_us.value_at_percentile(99), 100'000u);
  EXPECT_EQ(closed.outcomes.at("ok"), 1000u);
}

// A driver whose first task completes late: it answers a submit only when the next one comes,
// which the closed loop sends after the first call's deadline. Its done line names worker
// 4242 and stamps when the task ran.
const char* const late_completing_driver = R"(
import json, sys, time
def now():
    return time.clock_gettime_ns(time.CLOCK_MONOTONIC)
def emit(o):
    sys.stdout.write(json.dumps(o) + '\n'); sys.stdout.flush()
lines = iter(sys.stdin)
next(lines)
emit({'event': 'started', 't_ns': now(), 'pids': [4242]})
held = None
for line in lines:
    m = json.loads(line)
    if m['op'] != 'submit':
        break
    t = now()
    if held is None:
        held = (m['id'], t)
        continue
    emit({'event': 'done', 'id': held[0], 'ok': True, 'result': None, 't_start_ns': held[1],
          't_worker_recv_ns': held[1] + 1000, 't_worker_done_ns': t, 't_done_ns': t,
          'worker_pid': 4242})
    t2 = now()
    emit({'event': 'done', 'id': m['id'], 'ok': True, 'result': m['args'], 't_start_ns': t,
          't_worker_recv_ns': t, 't_worker_done_ns': t2, 't_done_ns': t2, 'worker_pid': 4242})
emit({'event': 'stopped'})
)";

class RunCase : public testing::leak_checked_test {};

// The external subject reports a timed-out request twice: at its deadline, and again when the
// late done line says where and when its task ran. The case keeps one record of it, the
// first (its outcome and reply time), with the worker and its stamps merged in.
TEST_F(RunCase, ALateCompletionIsMergedIntoTheTimedOutRequestsRecord) {
  scenario_case c;
  c.id = "late#r0";
  scenario& s = c.scenario;
  s.subject.kind = subject_type::external;
  s.subject.command = {PROCPOOL_PYTHON, "-c", late_completing_driver};
  s.pool.size = 1;
  s.pool.checkout_timeout_ms = 0;
  s.pool.request_timeout_ms = 50;
  s.load.concurrency = 1;
  s.load.requests = 2;
  const std::atomic<bool> never{false};
  const case_record r = run_case(c, 0, never);
  ASSERT_FALSE(r.error) << r.error->message;
  EXPECT_EQ(r.outcomes.at("request_timeout"), 1u);
  EXPECT_EQ(r.outcomes.at("ok"), 1u);
  ASSERT_TRUE(r.timelines);
  const case_timelines& tl = *r.timelines;
  ASSERT_EQ(tl.requests_failed.size(), 1u);  // not a second record for the late completion
  EXPECT_EQ(tl.requests_failed_dropped, 0u);
  const timeline_record& t = tl.requests_failed[0];
  EXPECT_EQ(t.request_id, 1u);
  EXPECT_EQ(t.outcome, "request_timeout");
  EXPECT_EQ(t.worker, 4242u);
  EXPECT_GE(t.t_reply - t.t_submit, 50'000'000);  // the reply time is the timeout's
  EXPECT_GT(t.t_sent, 0);
  EXPECT_EQ(t.t_checkout, t.t_sent);
  EXPECT_EQ(t.t_worker_recv, t.t_sent + 1000);
  EXPECT_GT(t.t_worker_done, t.t_reply);  // the task outlived its caller's deadline
  ASSERT_EQ(tl.requests_sampled.size(), 1u);
  EXPECT_EQ(tl.requests_sampled[0].worker, 4242u);
  // The late task is on the worker's lane too.
  bool busy_with_it = false;
  for (const auto& e : tl.workers) {
    busy_with_it |= e.worker == 4242 && e.to == worker_state::busy && e.t_ns == t.t_worker_recv;
  }
  EXPECT_TRUE(busy_with_it);
}

// A driver that answers every task late: at each submit, the tasks it has held for at least
// 5 ms complete (their callers, with a 1 ms deadline, have given up by then).
const char* const always_late_driver = R"(
import json, sys, time
def now():
    return time.clock_gettime_ns(time.CLOCK_MONOTONIC)
out = sys.stdout
lines = iter(sys.stdin)
next(lines)
out.write(json.dumps({'event': 'started', 't_ns': now(), 'pids': [4242]}) + '\n'); out.flush()
held = []
for line in lines:
    m = json.loads(line)
    if m['op'] != 'submit':
        break
    t = now()
    held.append((m['id'], t))
    while held and t - held[0][1] >= 5_000_000:
        i, t0 = held.pop(0)
        out.write(json.dumps({'event': 'done', 'id': i, 'ok': True, 'result': None, 't_start_ns': t0,
                              't_worker_recv_ns': t0, 't_worker_done_ns': t, 't_done_ns': t,
                              'worker_pid': 4242}) + '\n')
    out.flush()
out.write('{"event": "stopped"}\n'); out.flush()
)";

// More timeouts than a case keeps (5,000), most of them completing late. A late completion of
// a request beyond the cap is no new failure: the kept ones and the dropped count add up to
// the timeouts, so that the verdicts scaled by the dropped count are not inflated.
TEST_F(RunCase, LateCompletionsOfRequestsBeyondTheCapAreNotCountedAgain) {
  scenario_case c;
  c.id = "storm#r0";
  scenario& s = c.scenario;
  s.subject.kind = subject_type::external;
  s.subject.command = {PROCPOOL_PYTHON, "-c", always_late_driver};
  s.pool.size = 1;
  s.pool.checkout_timeout_ms = 0;
  s.pool.request_timeout_ms = 1;
  s.load.concurrency = 16;
  s.load.requests = 5'300;
  const std::atomic<bool> never{false};
  const case_record r = run_case(c, 0, never);
  ASSERT_FALSE(r.error) << r.error->message;
  // A caller descheduled past its task's done line may still see it: nearly all time out.
  const std::uint64_t timeouts = r.outcomes.at("request_timeout");
  ASSERT_GT(timeouts, 5'100u);
  EXPECT_EQ(r.failed(), timeouts);
  ASSERT_TRUE(r.timelines);
  const case_timelines& tl = *r.timelines;
  EXPECT_EQ(tl.requests_failed.size(), 5'000u);
  EXPECT_EQ(tl.requests_failed_dropped, timeouts - 5'000u);
  std::size_t merged = 0;
  for (const auto& t : tl.requests_failed) merged += t.worker == 4242;
  EXPECT_GT(merged, 0u);  // the late completions of kept requests were merged
}

// A fake-worker case whose 3 workers take `startup_ms` to start, all at once, started warm or
// cold. Its load is 3 requests at once of 400 ms each: cold, the third request holds the case
// open until a third worker is ready (or one of the first two is free again, 400 ms on, when
// the third has had 8 times its start-up to be ready), so that readiness falls within the case
// without the test waiting on a clock.
scenario_case fake_case(load_start start, double startup_ms) {
  scenario_case c;
  c.id = "ready#r0";
  scenario& s = c.scenario;
  s.pool.size = 3;
  s.pool.max_concurrent_starts = 3;
  s.worker.startup_ms = startup_ms;
  s.worker.service.ms = 400;
  s.load.start = start;
  s.load.concurrency = 3;
  s.load.requests = 3;
  return c;
}

// ready_ms runs from the subject's creation until every worker is ready: at least the
// injected start-up (a worker cannot be ready before its main loop), and within the case.
// Cold, the load starts at once and the workers are still starting under it.
TEST_F(RunCase, ReadyMsIsSetAfterTheInjectedStartUpWarmAndCold) {
  for (const auto start : {load_start::warm, load_start::cold}) {
    SCOPED_TRACE(to_string(start));
    const std::atomic<bool> never{false};
    const case_record r = run_case(fake_case(start, 50), 0, never);
    ASSERT_FALSE(r.error) << r.error->message;
    ASSERT_TRUE(r.ready_ms);
    EXPECT_GE(*r.ready_ms, 50.0);
    EXPECT_LE(*r.ready_ms, r.wall_ms);
    EXPECT_EQ(json(r)["ready_ms"], json(*r.ready_ms));
  }
}

// Every live worker's memory is sampled before the stop: the fake workers are readable here.
TEST_F(RunCase, RecordsTheLiveWorkersMemory) {
  if (::access("/proc/self/smaps_rollup", R_OK) != 0) GTEST_SKIP() << "no smaps_rollup (Linux < 4.14)";
  const std::atomic<bool> never{false};
  const case_record r = run_case(fake_case(load_start::warm, 0), 0, never);
  ASSERT_FALSE(r.error) << r.error->message;
  ASSERT_TRUE(r.memory);
  EXPECT_EQ(r.memory->workers, 3u);
  EXPECT_GT(r.memory->uss_kib.mean, 0.0);
  EXPECT_GE(r.memory->uss_kib.max, r.memory->uss_kib.mean);
  EXPECT_GE(r.memory->pss_kib.mean, r.memory->uss_kib.mean);
  EXPECT_GE(r.memory->pss_kib.max, r.memory->pss_kib.mean);
  const json j = json(r)["memory"];
  EXPECT_EQ(j["workers"], 3);
  EXPECT_TRUE(j["uss_kib"].contains("mean") && j["pss_kib"].contains("max")) << j;
}

// A zygote case forks its workers from the fake worker's template: same outcome, ready_ms set.
TEST_F(RunCase, AZygoteCaseForksItsWorkersFromTheTemplate) {
  scenario_case c = fake_case(load_start::warm, 0);
  c.scenario.worker.start_mode = worker_start_mode::zygote;
  const std::atomic<bool> never{false};
  const case_record r = run_case(c, 0, never);
  ASSERT_FALSE(r.error) << r.error->message;
  ASSERT_TRUE(r.ready_ms);
  ASSERT_TRUE(r.timelines);
  EXPECT_GE(r.timelines->workers.size(), 3u);
  EXPECT_GT(r.requests(), 0u);
  EXPECT_EQ(r.failed(), 0u);
}

// Only procpool's pool has the mode: another subject's case records why and starts nothing.
TEST_F(RunCase, AZygoteStartModeIsRefusedForAnotherSubject) {
  scenario_case c = fake_case(load_start::warm, 0);
  c.scenario.worker.start_mode = worker_start_mode::zygote;
  c.scenario.subject.kind = subject_type::serial_manager;
  const std::atomic<bool> never{false};
  const case_record r = run_case(c, 0, never);
  ASSERT_TRUE(r.error);
  EXPECT_EQ(r.error->type, "invalid_options");
  EXPECT_NE(r.error->message.find("needs subject.kind = \"procpool\""), std::string::npos)
      << r.error->message;
  ASSERT_TRUE(r.timelines);
  EXPECT_TRUE(r.timelines->workers.empty());
  EXPECT_FALSE(r.ready_ms);
  EXPECT_TRUE(json(r)["ready_ms"].is_null());  // written as null, not left out
}

std::size_t thread_count() {
  std::size_t n = 0;
  for ([[maybe_unused]] const auto& task : std::filesystem::directory_iterator("/proc/self/task")) ++n;
  return n;
}

// Submitted load holds its requests without a thread each: 10,000 sleeps outstanding on two
// workers leave the process with the threads it had, the pool's own and the sampler's. The
// queued ones fail at the checkout timeout, which bounds the case.
TEST_F(RunCase, TenThousandSubmittedRequestsOutstandingKeepTheThreadCountFlat) {
  scenario_case c;
  c.id = "in_flight#r0";
  scenario& s = c.scenario;
  s.pool.size = 2;
  s.pool.checkout_timeout_ms = 300;
  s.worker.service.ms = 20;
  s.load.command = load_command::sleep;
  s.load.issue = load_issue::submit;
  s.load.in_flight = 10'000;
  s.load.duration_ms = 200;
  s.load.start = load_start::warm;
  const std::size_t before = thread_count();
  std::atomic<bool> over{false};
  std::atomic<std::size_t> peak{0};
  std::thread sampler([&] {
    while (!over) {
      peak = std::max(peak.load(), thread_count());
      std::this_thread::sleep_for(2ms);
    }
  });
  const std::atomic<bool> never{false};
  const case_record r = run_case(c, 0, never);
  over = true;
  sampler.join();
  ASSERT_FALSE(r.error) << r.error->message;
  EXPECT_GE(r.requests(), 10'000u);
  EXPECT_GT(r.outcomes.at("ok"), 0u);
  EXPECT_GT(r.outcomes.at("checkout_timeout"), 9'000u);
  // The sampler, the pool's supervisor and dispatcher, and a few to spare: not 10,000.
  EXPECT_LE(peak.load(), before + 8) << "threads before the case: " << before;
}

// The same load closed at 8 outstanding completes every request, each recorded as the
// threads model records it: outcomes, latencies and sampled timelines.
TEST_F(RunCase, SubmittedLoadIsRecordedAsCalledLoadIs) {
  scenario_case c;
  c.id = "submit#r0";
  scenario& s = c.scenario;
  s.pool.size = 2;
  s.pool.pipeline_depth = 4;
  s.worker.service.ms = 1;
  s.load.command = load_command::sleep;
  s.load.issue = load_issue::submit;
  s.load.in_flight = 8;
  s.load.requests = 400;
  s.load.start = load_start::warm;
  const std::atomic<bool> never{false};
  const case_record r = run_case(c, 0, never);
  ASSERT_FALSE(r.error) << r.error->message;
  EXPECT_EQ(r.requests(), 400u);
  EXPECT_EQ(r.outcomes.at("ok"), 400u) << json(r)["outcomes"];
  EXPECT_EQ(r.latency_us.count, 400u);
  EXPECT_GE(r.latency_us.p50, 1000.0);
  ASSERT_TRUE(r.timelines);
  EXPECT_EQ(r.timelines->requests_sampled.size(), 100u);

  c.scenario.load.model = load_model::open;
  c.scenario.load.rate = 2000;
  c.scenario.load.arrivals = arrival_process::constant;
  const case_record open = run_case(c, 0, never);
  ASSERT_FALSE(open.error) << open.error->message;
  EXPECT_EQ(open.outcomes.at("ok"), 400u);
}

// A subject without submit refuses it at the first request: the case says why.
TEST(SubmittedLoad, ASubjectWithoutSubmitIsRefused) {
  load_config load{.requests = 10, .issue = load_issue::submit, .in_flight = 4};
  std::atomic<bool> never{false};
  stalling_subject calls_only(0);
  const auto out = run_load(calls_only, load, {"echo", nullptr}, 1, never);
  EXPECT_TRUE(out.submit_refused);
  EXPECT_EQ(out.issued, 0u);
}

class RunCommand : public testing::with_scratch_dir<testing::leak_checked_test> {
 protected:
  // Runs the procpool command to completion; returns its exit code.
  int procpool(std::vector<std::string> args) {
    args.insert(args.begin(), PROCPOOL_CLI);
    auto proc = worker_process::launch({.argv = args, .working_directory = PROCPOOL_SOURCE_DIR});
    EXPECT_TRUE(proc) << proc.error().message;
    proc->close_stdin();
    auto status = proc->wait_for(300s);
    return status ? status->code : -1;
  }

  static json results(const std::filesystem::path& dir) {
    auto doc = read_results(dir / "results.json");
    EXPECT_TRUE(doc) << doc.error().message;
    return doc ? *doc : json{};
  }
};

TEST_F(RunCommand, RecordsEveryCaseWithItsFigures) {
  ASSERT_EQ(procpool({"run", "scenarios/ci-smoke.toml", "--quiet", "--out", dir_ / "run"}), 0);
  const json doc = results(dir_ / "run");
  EXPECT_EQ(doc["schema"], "procpool.results/1");
  EXPECT_EQ(doc["partial"], false);
  ASSERT_EQ(doc["cases"].size(), 4u);
  for (const auto& c : doc["cases"]) {
    std::uint64_t total = 0;
    for (const auto& [name, n] : c["outcomes"].items()) total += n.get<std::uint64_t>();
    EXPECT_EQ(total, 200u) << c["id"];
    for (const char* p : {"p50", "p90", "p99", "p999", "max"}) EXPECT_TRUE(c["latency_us"].contains(p));
    EXPECT_GT(c["throughput_rps"].get<double>(), 0);
    EXPECT_FALSE(c["timelines"]["workers"].empty());
  }
  EXPECT_EQ(doc["scenario"]["pool"]["size"], 2);  // defaults filled in as run
}

TEST_F(RunCommand, ConfigurationErrorsExitTwoNamingFileLineAndKey) {
  std::ofstream(dir_ / "bad.toml") << "name = \"bad\"\n[pool]\nsize = 0\n";
  EXPECT_EQ(procpool({"run", (dir_ / "bad.toml").string(), "--out", dir_ / "out"}), 2);
  EXPECT_EQ(procpool({"run", "scenarios/ci-smoke.toml", "--set", "pool.sise=3"}), 2);
  EXPECT_EQ(procpool({"run", "scenarios/ci-smoke.toml", "--shard", "2/2"}), 2);
}

// A --set value that is not UTF-8 once threw out of the scenario parser (when quoted in the
// error), or was accepted and made writing results.json throw after the whole run.
TEST_F(RunCommand, SetValuesThatAreNotUtf8ExitTwoInsteadOfThrowing) {
  EXPECT_EQ(procpool({"run", "scenarios/ci-smoke.toml", "--set", "pool.size=\xff", "--out",
                      dir_ / "size"}),
            2);
  EXPECT_EQ(procpool({"run", "scenarios/ci-smoke.toml", "--set", "description=caf\xe9",
                      "--out", dir_ / "description"}),
            2);
  EXPECT_FALSE(std::filesystem::exists(dir_ / "description"));
}

TEST_F(RunCommand, MergedShardsHaveExactlyTheUnshardedCases) {
  ASSERT_EQ(procpool({"run", "scenarios/ci-smoke.toml", "--quiet", "--out", dir_ / "all"}), 0);
  ASSERT_EQ(procpool({"run", "scenarios/ci-smoke.toml", "--quiet", "--shard", "0/3", "--out", dir_ / "s0"}), 0);
  ASSERT_EQ(procpool({"run", "scenarios/ci-smoke.toml", "--quiet", "--shard", "1/3", "--out", dir_ / "s1"}), 0);
  ASSERT_EQ(procpool({"run", "scenarios/ci-smoke.toml", "--quiet", "--shard", "2/3", "--out", dir_ / "s2"}), 0);
  ASSERT_EQ(procpool({"merge", dir_ / "s2", dir_ / "s0", dir_ / "s1", "--out", dir_ / "merged"}), 0);
  const json all = results(dir_ / "all");
  const json merged = results(dir_ / "merged");
  ASSERT_EQ(merged["cases"].size(), all["cases"].size());
  for (std::size_t i = 0; i < all["cases"].size(); ++i) {
    EXPECT_EQ(merged["cases"][i]["id"], all["cases"][i]["id"]);
    EXPECT_EQ(merged["cases"][i]["params"], all["cases"][i]["params"]);
  }
  EXPECT_EQ(merged["partial"], false);
}

TEST_F(RunCommand, InterruptStopsCleanlyAndWritesPartialResults) {
  std::ofstream(dir_ / "long.toml") << "name = \"long\"\n[load]\nduration_ms = 60000\n"
                                       "[sweep]\n\"load.concurrency\" = [1, 2]\n";
  auto proc = worker_process::launch(
      {.argv = {PROCPOOL_CLI, "run", (dir_ / "long.toml").string(), "--out", (dir_ / "out").string()},
       .working_directory = PROCPOOL_SOURCE_DIR});
  ASSERT_TRUE(proc) << proc.error().message;
  // Wait for the announcement line, then give the pool's workers a moment to exist.
  std::string line;
  char c;
  pollfd p{.fd = proc->stderr_fd(), .events = POLLIN, .revents = 0};
  while (line.find("results in") == std::string::npos && ::poll(&p, 1, 20000) == 1 &&
         ::read(proc->stderr_fd(), &c, 1) == 1) {
    line += c;
  }
  ASSERT_NE(line.find("results in"), std::string::npos) << line;
  // Interrupt once the case's pool is up: the guard and four workers exist below the run.
  const auto until = std::chrono::steady_clock::now() + 20s;
  while (testing::descendants_of(proc->pid()).size() < 5 && std::chrono::steady_clock::now() < until) {
    std::this_thread::yield();
  }
  ASSERT_GE(testing::descendants_of(proc->pid()).size(), 5u);
  ::kill(proc->pid(), SIGINT);
  auto status = proc->wait_for(30s);
  ASSERT_TRUE(status) << "procpool run did not stop after SIGINT";
  EXPECT_EQ(status->code, 1);
  const json doc = results(dir_ / "out");
  EXPECT_EQ(doc["partial"], true);
  EXPECT_LE(doc["cases"].size(), 1u);
  // The fixture checks that no worker, grandchild or guard outlived the run.
}

// Reads `proc`'s stderr until `wanted` has appeared in it (or the stream ends); returns what
// it read.
std::string stderr_until(worker_process& proc, std::string_view wanted) {
  std::string text;
  char c;
  pollfd p{.fd = proc.stderr_fd(), .events = POLLIN, .revents = 0};
  while (text.find(wanted) == std::string::npos && ::poll(&p, 1, 60000) == 1 &&
         ::read(proc.stderr_fd(), &c, 1) == 1) {
    text += c;
  }
  return text;
}

TEST_F(RunCommand, AKilledRunKeepsItsFinishedCasesAndResumesTheRest) {
  std::ofstream(dir_ / "six.toml") << "name = \"six\"\n[load]\nrequests = 300\n"
                                      "[sweep]\n\"load.concurrency\" = [1, 2, 3, 4, 5, 6]\n";
  const auto out = dir_ / "out";
  auto proc = worker_process::launch(
      {.argv = {PROCPOOL_CLI, "run", (dir_ / "six.toml").string(), "--out", out.string()},
       .working_directory = PROCPOOL_SOURCE_DIR});
  ASSERT_TRUE(proc) << proc.error().message;
  // The line of case 2 is printed after its journal entry is on disk.
  const std::string seen = stderr_until(*proc, "case 2/6");
  ASSERT_NE(seen.find("case 2/6"), std::string::npos) << seen;
  ::kill(proc->pid(), SIGKILL);
  ASSERT_TRUE(proc->wait_for(30s));
  ASSERT_FALSE(std::filesystem::exists(out / "results.json")) << "the run finished before it was killed";

  auto journal = read_journal(out);
  ASSERT_TRUE(journal) << journal.error().message;
  const std::size_t kept = journal->cases.size();
  ASSERT_GE(kept, 2u);
  ASSERT_LT(kept, 6u);

  ASSERT_EQ(procpool({"run", (dir_ / "six.toml").string(), "--quiet", "--resume", out.string()}), 0);
  const json doc = results(out);
  EXPECT_EQ(doc["partial"], false);
  ASSERT_EQ(doc["cases"].size(), 6u);
  std::set<std::string> ids;
  for (std::size_t i = 0; i < 6; ++i) {
    EXPECT_EQ(doc["cases"][i]["index"], i);
    ids.insert(doc["cases"][i]["id"].get<std::string>());
  }
  EXPECT_EQ(ids.size(), 6u);
  // The finished cases were kept as measured, not run again.
  for (const auto& c : journal->cases) EXPECT_EQ(doc["cases"][c.index], json(c)) << c.id;
}

TEST_F(RunCommand, AResumeOfAnotherRunIsRefusedNamingTheDifference) {
  ASSERT_EQ(procpool({"run", "scenarios/ci-smoke.toml", "--quiet", "--out", dir_ / "run"}), 0);
  auto proc = worker_process::launch({.argv = {PROCPOOL_CLI, "run", "scenarios/ci-smoke.toml", "--set", "pool.size=3",
                                               "--resume", (dir_ / "run").string()},
                                      .working_directory = PROCPOOL_SOURCE_DIR});
  ASSERT_TRUE(proc) << proc.error().message;
  const std::string said = stderr_until(*proc, "in the journal");
  auto status = proc->wait_for(30s);
  ASSERT_TRUE(status);
  EXPECT_EQ(status->code, 2);
  EXPECT_NE(said.find("pool.size: 3 here, 2 in the journal"), std::string::npos) << said;
  EXPECT_EQ(procpool({"run", "scenarios/ci-smoke.toml", "--resume", (dir_ / "nothing-here").string()}), 2);
}

TEST_F(RunCommand, AnOutputThatCannotBeWrittenIsRefusedBeforeAnyWorkerStarts) {
  for (const char* command : {"run", "triage"}) {
    std::vector<std::string> argv = {PROCPOOL_CLI, command, "scenarios/ci-smoke.toml", "--out", "/proc/procpool-x"};
    if (std::string(command) == "triage") argv.insert(argv.end(), {"--case", "load.model=closed,load.start=warm"});
    auto proc = worker_process::launch({.argv = argv, .working_directory = PROCPOOL_SOURCE_DIR});
    ASSERT_TRUE(proc) << proc.error().message;
    const std::string said = stderr_until(*proc, "\n");
    auto status = proc->wait_for(30s);
    ASSERT_TRUE(status);
    EXPECT_EQ(status->code, 3) << command;
    EXPECT_NE(said.find("cannot create /proc/procpool-x"), std::string::npos) << said;
    EXPECT_FALSE(std::filesystem::exists(std::filesystem::path(PROCPOOL_SOURCE_DIR) / "reports" / "out" / "procpool-x"));
  }
  EXPECT_EQ(procpool({"merge", dir_.string(), "--out", "/proc/procpool-x"}), 3);
}

TEST_F(RunCommand, AnUnknownCommandIsNamedAndBoundsAreReadable) {
  auto proc = worker_process::launch({.argv = {PROCPOOL_CLI, "frobnicate"}});
  ASSERT_TRUE(proc);
  std::string said = stderr_until(*proc, "\n");
  ASSERT_TRUE(proc->wait_for(30s));
  EXPECT_NE(said.find("unknown command 'frobnicate'"), std::string::npos) << said;
  proc = worker_process::launch({.argv = {PROCPOOL_CLI, "plan", "x.json", "--rate", "-5", "--p99-ms", "10"}});
  ASSERT_TRUE(proc);
  said = stderr_until(*proc, "\n");
  ASSERT_TRUE(proc->wait_for(30s));
  EXPECT_NE(said.find("--rate: must be a number greater than 0, not -5"), std::string::npos) << said;
}

json read_json(const std::filesystem::path& path) {
  std::ifstream in(path);
  return json::parse(in, nullptr, /*allow_exceptions=*/false);
}

TEST_F(RunCommand, TriageCallsFailuresThatPersistWhenIdealisedArchitectural) {
  ASSERT_EQ(procpool({"triage", "tests/harness/planted/dispatch.toml", "--case", "r0", "--runs", "2", "--quiet",
                      "--memory-mb", "256", "--out", dir_ / "triage"}),
            0);
  const json doc = results(dir_ / "triage");
  EXPECT_EQ(doc["triage"]["conclusion"], "architectural");
  EXPECT_EQ(doc["cases"].size(), 10u);  // 2 runs in each of 5 environments
  EXPECT_TRUE(std::filesystem::exists(dir_ / "triage" / "triage.md"));
  EXPECT_TRUE(doc["verdicts"].contains("architectural.dispatch"));
}

TEST_F(RunCommand, TriageOfACommandClassifiesByExitStatus) {
  ASSERT_EQ(procpool({"triage", "--runs", "2", "--quiet", "--memory-mb", "256", "--out", dir_ / "fails", "--",
                      "/bin/false"}),
            0);
  EXPECT_EQ(read_json(dir_ / "fails" / "triage.json")["conclusion"], "architectural");
  ASSERT_EQ(procpool({"triage", "--runs", "2", "--quiet", "--memory-mb", "256", "--out", dir_ / "passes", "--",
                      "/bin/true"}),
            0);
  EXPECT_EQ(read_json(dir_ / "passes" / "triage.json")["conclusion"], "not reproduced");
  // Fails exactly when held to one CPU, one of the degraded environments.
  if (std::thread::hardware_concurrency() < 2) GTEST_SKIP() << "needs two CPUs to hold a command to one";
  ASSERT_EQ(procpool({"triage", "--runs", "6", "--quiet", "--memory-mb", "256", "--out", dir_ / "env", "--", "/bin/sh", "-c",
                      "test \"$(nproc)\" -gt 1"}),
            0);
  EXPECT_EQ(read_json(dir_ / "env" / "triage.json")["conclusion"], "environmental");
}

TEST_F(RunCommand, TriageUsageErrorsExitTwo) {
  EXPECT_EQ(procpool({"triage"}), 2);
  EXPECT_EQ(procpool({"triage", "scenarios/ci-smoke.toml", "--case", "no-such-case", "--out", dir_ / "out"}), 2);
  EXPECT_FALSE(std::filesystem::exists(dir_ / "out")) << "a usage error left an output directory";
  EXPECT_EQ(procpool({"triage", "no-such-file.toml", "--case", "r0"}), 2);
}

}  // namespace
}  // namespace procpool::harness
