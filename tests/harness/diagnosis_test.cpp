// The diagnosis rules on cases built by hand, so that each rule is exercised exactly, with
// no timing involved: the planted scenarios (tests/harness/planted) check the same rules end to end.
#include <gtest/gtest.h>

#include <string>

#include "diagnosis/diagnosis.hpp"
#include "results/results.hpp"
#include "scenario/scenario.hpp"

namespace procpool::harness {
namespace {

using json = nlohmann::json;

constexpr std::int64_t ms = 1'000'000;  // in the timelines' nanoseconds

// A case record with worker events and request timelines added one by one.
class case_builder {
 public:
  case_builder() {
    c_ = {{"id", "test#r0"},
          {"params", json::object()},
          {"outcomes", {{"ok", 0}}},
          {"environment", {{"psi_available", true}, {"psi", {{"cpu_some_pct", 0.5}}}, {"cpu_hogs", 0}}},
          {"timelines",
           {{"requests_failed", json::array()}, {"requests_sampled", json::array()}, {"workers", json::array()}}}};
  }

  case_builder& event(std::int64_t t, std::uint64_t worker, std::string from, std::string to,
                      std::string cause = "", json stamps = json::object()) {
    json e = {{"t_ns", t}, {"worker", worker}, {"slot", worker - 1}, {"from", from}, {"to", to},
              {"cause", cause}, {"pid", 100 + worker}};
    e.update(stamps);
    c_["timelines"]["workers"].push_back(e);
    return *this;
  }

  // A start from `spawn` to `ready` whose main came at `main`: the worker goes idle at ready.
  case_builder& start(std::uint64_t worker, std::int64_t spawn, std::int64_t main, std::int64_t ready) {
    event(spawn, worker, "pending", "starting", "spawned", {{"t_spawn_ns", spawn}});
    return event(ready, worker, "starting", "idle", "init done",
                 {{"t_spawn_ns", spawn}, {"t_main_ns", main}, {"t_init_done_ns", ready}});
  }

  // A zygote template's launch (pool/ZYGOTE.md): spawned at `spawn`, its main at `main`, its
  // preload done and ready at `ready`. Its slot is the pool's size, past the workers'.
  case_builder& zygote_template(std::uint64_t worker, std::size_t pool_size, std::int64_t spawn,
                                std::int64_t main, std::int64_t ready) {
    template_event(spawn, worker, pool_size, "pending", "starting", "zygote template spawned",
                   {{"t_spawn_ns", spawn}});
    return template_event(ready, worker, pool_size, "starting", "idle", "zygote template ready",
                          {{"t_spawn_ns", spawn}, {"t_main_ns", main}, {"t_init_done_ns", ready}});
  }
  case_builder& template_event(std::int64_t t, std::uint64_t worker, std::size_t pool_size, std::string from,
                               std::string to, std::string cause, json more = json::object()) {
    more["role"] = "zygote_template";
    event(t, worker, std::move(from), std::move(to), std::move(cause), std::move(more));
    c_["timelines"]["workers"].back()["slot"] = pool_size;
    return *this;
  }

  case_builder& failed(std::string outcome, std::int64_t submit, std::int64_t reply, std::uint64_t worker = 0,
                       std::int64_t sent = 0) {
    c_["timelines"]["requests_failed"].push_back({{"request_id", ++request_id_},
                                                  {"worker", worker},
                                                  {"t_submit", submit},
                                                  {"t_checkout", sent},
                                                  {"t_sent", sent},
                                                  {"t_worker_recv", 0},
                                                  {"t_worker_done", 0},
                                                  {"t_reply", reply},
                                                  {"outcome", outcome}});
    c_["outcomes"][outcome] = c_["outcomes"].value(outcome, 0) + 1;
    return *this;
  }

  // A request written to `worker` at `sent` with `ahead` others in flight there (pool.pipeline_depth
  // above 1); `more` holds t_head, caused_by and cause as the case needs.
  case_builder& pipelined(std::string outcome, std::int64_t submit, std::int64_t sent, std::int64_t reply,
                          std::uint64_t worker, std::uint32_t ahead, json more = json::object()) {
    failed(outcome, submit, reply, worker, sent);
    auto& t = c_["timelines"]["requests_failed"].back();
    t["ahead"] = ahead;
    t["t_head"] = ahead == 0 ? sent : 0;
    t.update(more);
    return *this;
  }
  std::uint64_t last_request_id() const { return request_id_; }

  // A request of an external pool that timed out and whose task completed late: the driver's
  // done line came after the deadline with the worker that ran it and its stamps.
  case_builder& late(std::int64_t submit, std::int64_t reply, std::uint64_t worker, std::int64_t recv,
                     std::int64_t done) {
    c_["timelines"]["requests_failed"].push_back({{"request_id", ++request_id_},
                                                  {"worker", worker},
                                                  {"t_submit", submit},
                                                  {"t_checkout", submit},
                                                  {"t_sent", submit},
                                                  {"t_worker_recv", recv},
                                                  {"t_worker_done", done},
                                                  {"t_reply", reply},
                                                  {"outcome", "request_timeout"}});
    c_["outcomes"]["request_timeout"] = c_["outcomes"].value("request_timeout", 0) + 1;
    return *this;
  }

  // An external pool's worker as driver_workers reports it: ready at "started", then a busy
  // span per done line.
  case_builder& ready_at_started(std::uint64_t worker, std::int64_t t) {
    return event(t, worker, "pending", "idle", "ready at started");
  }
  case_builder& task(std::uint64_t worker, std::int64_t recv, std::int64_t done) {
    event(recv, worker, "idle", "busy", "task");
    return event(done, worker, "busy", "idle", "task done");
  }

  case_builder& ok(std::uint64_t worker, std::int64_t submit, std::int64_t recv, std::int64_t done) {
    c_["timelines"]["requests_sampled"].push_back({{"request_id", ++request_id_},
                                                   {"worker", worker},
                                                   {"t_submit", submit},
                                                   {"t_checkout", submit},
                                                   {"t_sent", submit},
                                                   {"t_worker_recv", recv},
                                                   {"t_worker_done", done},
                                                   {"t_reply", done},
                                                   {"outcome", "ok"}});
    c_["outcomes"]["ok"] = c_["outcomes"]["ok"].get<int>() + 1;
    return *this;
  }

  case_builder& cpu_pressure(double pct, std::size_t hogs) {
    c_["environment"]["psi"]["cpu_some_pct"] = pct;
    c_["environment"]["cpu_hogs"] = hogs;
    return *this;
  }

  json diagnosed(const scenario& s) {
    json c = c_;
    diagnose_case(c, s);
    return c;
  }

 private:
  json c_;
  std::uint64_t request_id_ = 0;
};

scenario settings(std::size_t size, std::size_t cap, std::int64_t checkout_ms, std::int64_t request_ms) {
  scenario s;
  s.pool.size = size;
  s.pool.max_concurrent_starts = cap;
  s.pool.checkout_timeout_ms = checkout_ms;
  s.pool.request_timeout_ms = request_ms;
  s.worker.service.ms = 1;
  return s;
}

std::string only_verdict(const json& c) {
  EXPECT_EQ(c["verdicts"].size(), 1u) << c["verdicts"].dump();
  return c["verdicts"].empty() ? "" : c["verdicts"].begin().key();
}

TEST(Diagnosis, AWaitBesideAnIdleWorkerIsDispatch) {
  case_builder b;
  b.start(1, 0, 1 * ms, 2 * ms).start(2, 0, 1 * ms, 2 * ms);
  b.event(3 * ms, 1, "idle", "busy", "checkout").event(400 * ms, 1, "busy", "idle", "free");
  b.failed("checkout_timeout", 5 * ms, 105 * ms);  // worker 2 idle all along
  const json c = b.diagnosed(settings(2, 2, 100, 1000));
  EXPECT_EQ(only_verdict(c), verdict::dispatch);
  const json& t = c["timelines"]["requests_failed"][0];
  EXPECT_EQ(t["verdict"], verdict::dispatch);
  EXPECT_EQ(t["evidence"]["idle_worker"], 2);
  EXPECT_NEAR(t["evidence"]["idle_ms"].get<double>(), 100, 0.01);
  ASSERT_EQ(c["findings"].size(), 1u);
  EXPECT_EQ(c["findings"][0]["count"], 1);
  EXPECT_FALSE(c["findings"][0]["rule"].get<std::string>().empty());
}

TEST(Diagnosis, StartsOneAtATimeWithRoomForMoreAreStartupSerialization) {
  case_builder b;
  b.start(1, 0, 290 * ms, 300 * ms);
  b.event(300 * ms, 1, "idle", "busy", "checkout");
  b.start(2, 300 * ms, 590 * ms, 600 * ms);
  b.failed("checkout_timeout", 1 * ms, 401 * ms).failed("checkout_timeout", 2 * ms, 402 * ms);
  const json c = b.diagnosed(settings(4, 4, 400, 1000));
  EXPECT_EQ(only_verdict(c), verdict::startup_serialization);
  EXPECT_EQ(c["verdicts"][std::string(verdict::startup_serialization)], 2);
  EXPECT_EQ(c["findings"][0]["evidence"]["max_concurrent_starts"], 1);
}

TEST(Diagnosis, OneStartAtATimeIsNotSerializationWhenTheCapIsOne) {
  case_builder b;
  b.start(1, 0, 290 * ms, 300 * ms);
  b.event(300 * ms, 1, "idle", "busy", "checkout");
  b.start(2, 300 * ms, 590 * ms, 600 * ms);
  b.failed("checkout_timeout", 1 * ms, 401 * ms).failed("checkout_timeout", 2 * ms, 402 * ms);
  EXPECT_EQ(only_verdict(b.diagnosed(settings(4, 1, 400, 1000))), verdict::startup);
}

TEST(Diagnosis, ConcurrentSlowStartsAreEnvironmentalByTheSlowerPhase) {
  for (const bool slow_init : {false, true}) {
    case_builder b;
    const std::int64_t main = slow_init ? 10 * ms : 390 * ms;
    for (std::uint64_t w = 1; w <= 4; ++w) b.start(w, 0, main, 400 * ms);
    for (int r = 0; r < 4; ++r) b.failed("checkout_timeout", 1 * ms, 251 * ms);
    const json c = b.diagnosed(settings(4, 4, 250, 1000));
    EXPECT_EQ(only_verdict(c), slow_init ? verdict::init : verdict::startup);
    EXPECT_EQ(c["findings"][0]["evidence"]["max_concurrent_starts"], 4);
  }
}

TEST(Diagnosis, EveryWorkerBusyIsCapacity) {
  case_builder b;
  b.start(1, 0, 1 * ms, 2 * ms).start(2, 0, 1 * ms, 2 * ms);
  b.event(3 * ms, 1, "idle", "busy", "checkout").event(3 * ms, 2, "idle", "busy", "checkout");
  b.event(200 * ms, 1, "busy", "idle", "free").event(200 * ms, 2, "busy", "idle", "free");
  b.ok(1, 3 * ms, 3 * ms, 4 * ms);
  b.failed("checkout_timeout", 10 * ms, 60 * ms);
  const json c = b.diagnosed(settings(2, 2, 50, 1000));
  EXPECT_EQ(only_verdict(c), verdict::capacity);
  EXPECT_NEAR(c["findings"][0]["evidence"]["utilisation"].get<double>(), 1.0, 1e-9);
}

TEST(Diagnosis, ATimeoutWhileOtherRequestsAreQuickIsAHang) {
  case_builder b;
  b.start(1, 0, 1 * ms, 2 * ms);
  for (int i = 0; i < 20; ++i) b.ok(1, (10 + i) * ms, (10 + i) * ms, (11 + i) * ms);
  b.failed("request_timeout", 100 * ms, 300 * ms, 1, 100 * ms);
  EXPECT_EQ(only_verdict(b.diagnosed(settings(1, 1, 1000, 200))), verdict::hang);
}

TEST(Diagnosis, ATaskLongerThanTheDeadlineIsWorkload) {
  case_builder b;
  b.start(1, 0, 1 * ms, 2 * ms);
  b.failed("request_timeout", 10 * ms, 110 * ms, 1, 10 * ms);
  scenario s = settings(1, 1, 1000, 100);
  s.worker.service.ms = 300;
  EXPECT_EQ(only_verdict(b.diagnosed(s)), verdict::workload);
}

TEST(Diagnosis, ATimeoutOnAHostShortOfCpuIsContention) {
  case_builder b;
  b.start(1, 0, 1 * ms, 2 * ms);
  b.failed("request_timeout", 10 * ms, 40 * ms, 1, 10 * ms).cpu_pressure(80, 4);
  scenario s = settings(1, 1, 1000, 30);
  s.worker.service.ms = 20;
  s.worker.service.cpu = true;
  EXPECT_EQ(only_verdict(b.diagnosed(s)), verdict::contention);
}

TEST(Diagnosis, FaultsAreNamedByTheirOutcome) {
  case_builder b;
  b.start(1, 0, 1 * ms, 2 * ms).start(2, 0, 1 * ms, 2 * ms);
  b.event(5 * ms, 1, "busy", "exited", "worker_crashed: killed by SIGSEGV");
  b.event(6 * ms, 2, "busy", "exited", "protocol_error: bad frame");
  b.failed("worker_crashed", 3 * ms, 5 * ms, 1, 3 * ms).failed("protocol_error", 3 * ms, 6 * ms, 2, 3 * ms);
  const json c = b.diagnosed(settings(2, 2, 1000, 1000));
  EXPECT_EQ(c["verdicts"][std::string(verdict::crash)], 1);
  EXPECT_EQ(c["verdicts"][std::string(verdict::protocol)], 1);
}

TEST(Diagnosis, AWaitForAReplacementTakesTheVerdictOfWhatLostTheWorker) {
  case_builder b;
  b.start(1, 0, 1 * ms, 2 * ms);
  b.event(3 * ms, 1, "idle", "busy", "checkout");
  b.event(33 * ms, 1, "busy", "exited", "request_timeout: no reply within 30 ms");
  b.start(2, 500 * ms, 501 * ms, 502 * ms);
  b.failed("request_timeout", 3 * ms, 33 * ms, 1, 3 * ms).cpu_pressure(80, 4);
  b.failed("checkout_timeout", 34 * ms, 134 * ms);
  scenario s = settings(1, 1, 100, 30);
  s.worker.service.ms = 20;
  const json c = b.diagnosed(s);
  EXPECT_EQ(only_verdict(c), verdict::contention);
  EXPECT_EQ(c["verdicts"][std::string(verdict::contention)], 2);
}

// ---- Pipelines (pool.pipeline_depth > 1, pool/ASYNC.md section 6) ----

// A worker whose head request hung at depth 4: the three written behind it were killed with
// it, and each takes the hang's verdict, naming it.
TEST(DiagnosisPipeline, RequestsKilledBehindAHangTakeItsVerdict) {
  case_builder b;
  b.start(1, 0, 1 * ms, 2 * ms);
  b.event(3 * ms, 1, "idle", "busy", "dispatcher");
  for (int i = 0; i < 20; ++i) b.ok(1, (10 + i) * ms, (10 + i) * ms, (11 + i) * ms);
  b.pipelined("request_timeout", 100 * ms, 100 * ms, 300 * ms, 1, 0);
  const std::uint64_t head = b.last_request_id();
  for (std::uint32_t k = 1; k <= 3; ++k) {
    b.pipelined("queued_behind_fault", 100 * ms, 100 * ms + k, 300 * ms, 1, k,
                {{"caused_by", head}, {"cause", "request_timeout"}});
  }
  b.event(300 * ms, 1, "busy", "exited", "request_timeout: did not reply before the deadline",
          {{"exit_kind", "fault"}});
  const json c = b.diagnosed(settings(1, 1, 1000, 200));
  EXPECT_EQ(only_verdict(c), verdict::hang);
  EXPECT_EQ(c["verdicts"][std::string(verdict::hang)], 4);
  const json& last = c["timelines"]["requests_failed"][3];
  EXPECT_EQ(last["evidence"]["caused_by"], head);
  EXPECT_EQ(last["evidence"]["cause"], "request_timeout");
  EXPECT_EQ(last["evidence"]["ahead"], 3);
  EXPECT_NEAR(last["evidence"]["ran_ms"].get<double>(), 200, 0.01);  // the head's figures
  EXPECT_FALSE(c.contains("unjudged"));
}

// The same behind a crash and a broken protocol.
TEST(DiagnosisPipeline, RequestsKilledBehindACrashOrABrokenProtocolTakeItsVerdict) {
  case_builder b;
  b.start(1, 0, 1 * ms, 2 * ms).start(2, 0, 1 * ms, 2 * ms);
  b.pipelined("worker_crashed", 3 * ms, 3 * ms, 5 * ms, 1, 0);
  b.pipelined("queued_behind_fault", 3 * ms, 4 * ms, 5 * ms, 1, 1,
              {{"caused_by", b.last_request_id()}, {"cause", "worker_crashed"}});
  b.event(5 * ms, 1, "busy", "exited", "worker_crashed: killed by SIGSEGV");
  b.pipelined("protocol_error", 3 * ms, 3 * ms, 6 * ms, 2, 0);
  b.pipelined("queued_behind_fault", 3 * ms, 4 * ms, 6 * ms, 2, 1,
              {{"caused_by", b.last_request_id()}, {"cause", "protocol_error"}});
  b.event(6 * ms, 2, "busy", "exited", "protocol_error: bad frame");
  const json c = b.diagnosed(settings(2, 2, 1000, 1000));
  EXPECT_EQ(c["verdicts"][std::string(verdict::crash)], 2);
  EXPECT_EQ(c["verdicts"][std::string(verdict::protocol)], 2);
  EXPECT_EQ(c["timelines"]["requests_failed"][1]["evidence"]["exit"], "worker_crashed: killed by SIGSEGV");
}

// The failed-requests cap left the cause out: its outcome still says a crash or a protocol
// error, but not why a request timed out.
TEST(DiagnosisPipeline, ACauseLeftOutOfTheRecordDecidesByItsOutcomeButATimeoutStaysUnjudged) {
  case_builder b;
  b.start(1, 0, 1 * ms, 2 * ms);
  b.pipelined("queued_behind_fault", 3 * ms, 4 * ms, 5 * ms, 1, 1,
              {{"caused_by", 9001}, {"cause", "worker_crashed"}});
  b.pipelined("queued_behind_fault", 3 * ms, 4 * ms, 6 * ms, 1, 2,
              {{"caused_by", 9002}, {"cause", "protocol_error"}});
  b.pipelined("queued_behind_fault", 3 * ms, 4 * ms, 7 * ms, 1, 3,
              {{"caused_by", 9003}, {"cause", "request_timeout"}});
  const json c = b.diagnosed(settings(1, 1, 1000, 1000));
  EXPECT_EQ(c["verdicts"][std::string(verdict::crash)], 1);
  EXPECT_EQ(c["verdicts"][std::string(verdict::protocol)], 1);
  EXPECT_EQ(c["verdicts"].size(), 2u) << c["verdicts"].dump();
  const json& crashed = c["timelines"]["requests_failed"][0];
  EXPECT_EQ(crashed["evidence"]["caused_by"], 9001);
  EXPECT_EQ(crashed["evidence"]["cause"], "worker_crashed");
  EXPECT_EQ(crashed["evidence"]["ahead"], 1);
  EXPECT_FALSE(c["timelines"]["requests_failed"][2].contains("verdict"));
  ASSERT_TRUE(c.contains("unjudged"));
  ASSERT_EQ(c["unjudged"].size(), 1u);
  EXPECT_EQ(c["unjudged"][0]["count"], 1);
  EXPECT_NE(c["unjudged"][0]["missing"].get<std::string>().find("cause not recorded"), std::string::npos);
}

// Rule 0: a request that ran out of time still queued behind others on its worker waited
// there. Beside an idle worker that is the pool's choice of worker; with every worker busy,
// capacity.
TEST(DiagnosisPipeline, ATimeoutNeverAtTheHeadIsAWait) {
  for (const bool other_idle : {true, false}) {
    case_builder b;
    b.start(1, 0, 1 * ms, 2 * ms).start(2, 0, 1 * ms, 2 * ms);
    b.event(3 * ms, 1, "idle", "busy", "dispatcher").event(900 * ms, 1, "busy", "idle", "detached");
    if (!other_idle) b.event(3 * ms, 2, "idle", "busy", "dispatcher").event(900 * ms, 2, "busy", "idle", "detached");
    for (int i = 0; i < 20; ++i) b.ok(1, (10 + i) * ms, (10 + i) * ms, (11 + i) * ms);
    b.pipelined("request_timeout", 100 * ms, 100 * ms, 300 * ms, 1, 2);
    const json c = b.diagnosed(settings(2, 2, 1000, 200));
    EXPECT_EQ(only_verdict(c), other_idle ? verdict::dispatch : verdict::capacity) << other_idle;
    const json& e = c["timelines"]["requests_failed"][0]["evidence"];
    EXPECT_EQ(e["ahead"], 2);
    EXPECT_EQ(e["queued_on_worker"], 1);
    EXPECT_NEAR(e["waited_ms"].get<double>(), 200, 0.01);
  }
}

// A request that timed out still in line became its worker's head later and got no answer
// there either: the worker was killed a request timeout after, with one more behind it. That
// one died of a hang, whatever the wait of the first was judged.
TEST(DiagnosisPipeline, RequestsKilledBehindARequestThatTimedOutInLineAreJudgedByItsHang) {
  case_builder b;
  b.start(1, 0, 1 * ms, 2 * ms);
  b.event(3 * ms, 1, "idle", "busy", "dispatcher");
  for (int i = 0; i < 20; ++i) b.ok(1, (10 + i) * ms, (10 + i) * ms, (11 + i) * ms);
  b.pipelined("request_timeout", 100 * ms, 100 * ms, 300 * ms, 1, 1);
  const std::uint64_t in_line = b.last_request_id();
  b.pipelined("queued_behind_fault", 100 * ms, 101 * ms, 550 * ms, 1, 2,
              {{"caused_by", in_line}, {"cause", "request_timeout"}});
  b.event(550 * ms, 1, "busy", "exited", "request_timeout: did not reply before the deadline",
          {{"exit_kind", "fault"}});
  const json c = b.diagnosed(settings(1, 1, 1000, 200));
  EXPECT_EQ(c["timelines"]["requests_failed"][0]["verdict"], verdict::capacity);
  const json& behind = c["timelines"]["requests_failed"][1];
  EXPECT_EQ(behind["verdict"], verdict::hang) << behind.dump();
  EXPECT_EQ(behind["evidence"]["caused_by"], in_line);
  EXPECT_EQ(behind["evidence"]["cause_timed_out_in_line"], true);
  EXPECT_NEAR(behind["evidence"]["ran_ms"].get<double>(), 200, 0.01);
}

// Rules 1 to 4 count the time a request ran from when it became its worker's head.
TEST(DiagnosisPipeline, RunTimeCountsFromTheHead) {
  case_builder b;
  b.start(1, 0, 1 * ms, 2 * ms);
  for (int i = 0; i < 20; ++i) b.ok(1, (10 + i) * ms, (10 + i) * ms, (11 + i) * ms);
  b.pipelined("request_timeout", 100 * ms, 100 * ms, 450 * ms, 1, 1, {{"t_head", 250 * ms}});
  const json c = b.diagnosed(settings(1, 1, 1000, 200));
  EXPECT_EQ(only_verdict(c), verdict::hang);
  EXPECT_NEAR(c["timelines"]["requests_failed"][0]["evidence"]["ran_ms"].get<double>(), 200, 0.01);
}

// A checkout that waited for the replacement of a worker lost to a hang at depth 4 sees one
// lost worker, lost to the hang: the requests killed behind it lost nothing more.
TEST(DiagnosisPipeline, OneHangIsOneLossHoweverDeepThePipeline) {
  case_builder b;
  b.start(1, 0, 1 * ms, 2 * ms);
  b.event(3 * ms, 1, "idle", "busy", "dispatcher");
  for (int i = 0; i < 20; ++i) b.ok(1, (3 + i) * ms, (3 + i) * ms, (3 + i) * ms + 100'000);
  // A request killed behind the head comes first in the record: it does not speak for the
  // worker.
  const std::uint64_t head = b.last_request_id() + 2;
  b.pipelined("queued_behind_fault", 30 * ms, 31 * ms, 230 * ms, 1, 1,
              {{"caused_by", head}, {"cause", "request_timeout"}});
  b.pipelined("request_timeout", 30 * ms, 30 * ms, 230 * ms, 1, 0);
  ASSERT_EQ(b.last_request_id(), head);
  for (std::uint32_t k = 2; k <= 3; ++k) {
    b.pipelined("queued_behind_fault", 30 * ms, 30 * ms + k, 230 * ms, 1, k,
                {{"caused_by", head}, {"cause", "request_timeout"}});
  }
  b.event(230 * ms, 1, "busy", "exited", "request_timeout: did not reply before the deadline",
          {{"exit_kind", "fault"}});
  b.start(2, 800 * ms, 801 * ms, 802 * ms);
  b.failed("checkout_timeout", 231 * ms, 431 * ms);
  const json c = b.diagnosed(settings(1, 1, 200, 200));
  const json& wait = c["timelines"]["requests_failed"].back();
  EXPECT_EQ(wait["verdict"], verdict::hang) << wait.dump();
  EXPECT_EQ(wait["evidence"]["lost_workers"], 1);
  EXPECT_EQ(wait["evidence"]["lost_to"], verdict::hang);
}

TEST(DiagnosisPipeline, CancelledRequestsGetNoVerdict) {
  case_builder b;
  b.start(1, 0, 1 * ms, 2 * ms);
  b.failed("cancelled", 3 * ms, 4 * ms);
  const json c = b.diagnosed(settings(1, 1, 1000, 1000));
  EXPECT_TRUE(c["verdicts"].empty());
  EXPECT_FALSE(c.contains("unjudged"));
  EXPECT_FALSE(c["timelines"]["requests_failed"][0].contains("verdict"));
}

TEST(Diagnosis, AHealthyCaseHasNoVerdicts) {
  case_builder b;
  b.start(1, 0, 1 * ms, 2 * ms);
  b.ok(1, 3 * ms, 3 * ms, 4 * ms);
  const json c = b.diagnosed(settings(1, 1, 1000, 1000));
  EXPECT_TRUE(c["verdicts"].empty());
  EXPECT_TRUE(c["findings"].empty());
}

// ---- External pools: late completions, never-completed tasks, what cannot be decided ----

// External cases run on a realistic monotonic clock: a duration taken from a stamp that was
// never set (0) would be some 1,000,000 ms, far beyond any wait here.
constexpr std::int64_t clock_base = 1'000'000 * ms;
constexpr std::int64_t at(std::int64_t t_ms) { return clock_base + t_ms * ms; }

scenario external(std::size_t size, std::int64_t request_ms) {
  scenario s = settings(size, size, 0, request_ms);
  s.subject.kind = subject_type::external;
  return s;
}

// Every figure of every verdict's evidence is a plausible duration or count: none was
// computed from an unset stamp.
void expect_evidence_from_set_stamps(const json& c) {
  for (const auto& t : c["timelines"]["requests_failed"]) {
    if (!t.contains("evidence")) continue;
    for (const auto& [key, value] : t["evidence"].items()) {
      if (!value.is_number()) continue;
      EXPECT_GE(value.get<double>(), 0) << key << " of " << t.dump();
      EXPECT_LT(value.get<double>(), 10'000) << key << " of " << t.dump();
    }
  }
}

// Two workers busy back to back; six requests handed to the pool at 0 with a 100 ms deadline
// and 70 ms tasks. The first two run in time. The next two reach their workers at 70 ms and
// run past their deadline; the two after at 140 ms and the last two at 210 ms, after theirs:
// all waited with every worker busy. Two more, handed over at 100 ms by the callers that gave
// up, queue behind tasks whose callers had given up and reach workers at 280 ms: their wait is
// charged to those earlier timeouts, capacity as well.
TEST(DiagnosisExternal, SaturatedWorkersAndTheAbandonedTasksBehindThemAreCapacity) {
  case_builder b;
  b.ready_at_started(1, at(0)).ready_at_started(2, at(0));
  for (std::uint64_t w = 1; w <= 2; ++w) {
    for (std::int64_t k = 0; k < 5; ++k) b.task(w, at(70 * k), at(70 * (k + 1)));
  }
  b.ok(1, at(0), at(0), at(70)).ok(2, at(0), at(0), at(70));
  b.late(at(0), at(100), 1, at(70), at(140)).late(at(0), at(100), 2, at(70), at(140));    // 0, 1
  b.late(at(0), at(100), 1, at(140), at(210)).late(at(0), at(100), 2, at(140), at(210));  // 2, 3
  b.late(at(0), at(100), 1, at(210), at(280)).late(at(0), at(100), 2, at(210), at(280));  // 4, 5
  b.late(at(100), at(200), 1, at(280), at(350)).late(at(100), at(200), 2, at(280), at(350));  // 6, 7
  const json c = b.diagnosed(external(2, 100));
  EXPECT_EQ(only_verdict(c), verdict::capacity);
  EXPECT_EQ(c["verdicts"][std::string(verdict::capacity)], 8);
  EXPECT_FALSE(c.contains("unjudged")) << c["unjudged"].dump();
  const json& failed = c["timelines"]["requests_failed"];
  ASSERT_EQ(failed.size(), 8u);
  for (const auto& t : failed) {
    SCOPED_TRACE(t.dump());
    EXPECT_EQ(t["verdict"], verdict::capacity);
    // Each is judged as a wait in the pool, never as a run on a worker.
    EXPECT_EQ(t["evidence"]["queued_in_pool"], true);
    EXPECT_FALSE(t["evidence"].contains("ran_ms"));
  }
  // Reached a worker at 70 ms, after more than half its time: the wait is until then.
  EXPECT_NEAR(failed[0]["evidence"]["waited_ms"].get<double>(), 70, 1e-6);
  EXPECT_NEAR(failed[0]["evidence"]["saturated_ms"].get<double>(), 70, 1e-6);
  EXPECT_NEAR(failed[0]["evidence"]["utilisation"].get<double>(), 1.0, 1e-9);
  // Reached a worker after its deadline: the whole time was a wait.
  EXPECT_NEAR(failed[4]["evidence"]["waited_ms"].get<double>(), 100, 1e-6);
  EXPECT_FALSE(failed[4]["evidence"].contains("lost_to"));
  // Behind abandoned tasks: those of requests 0-3, which held both workers the whole wait.
  for (const std::size_t i : {6u, 7u}) {
    const json& e = failed[i]["evidence"];
    EXPECT_NEAR(e["waited_ms"].get<double>(), 100, 1e-6);
    EXPECT_EQ(e["lost_to"], verdict::capacity);
    EXPECT_NEAR(e["abandoned_ms"].get<double>(), 100, 1e-6);
    EXPECT_EQ(e["abandoned_tasks"], 4);
  }
  expect_evidence_from_set_stamps(c);
}

// The driver dispatched to one worker only: a request waited its whole 100 ms while the other
// sat idle.
TEST(DiagnosisExternal, AWaitBesideAnIdleWorkerIsDispatch) {
  case_builder b;
  b.ready_at_started(1, at(0)).ready_at_started(2, at(0));
  for (std::int64_t k = 0; k < 3; ++k) {
    b.task(1, at(90 * k), at(90 * (k + 1)));
    b.ok(1, at(90 * k), at(90 * k), at(90 * (k + 1)));
  }
  b.task(1, at(270), at(280));
  b.late(at(10), at(110), 1, at(270), at(280));
  const json c = b.diagnosed(external(2, 100));
  EXPECT_EQ(only_verdict(c), verdict::dispatch);
  const json& e = c["timelines"]["requests_failed"][0]["evidence"];
  EXPECT_EQ(e["idle_worker"], 2);
  EXPECT_NEAR(e["idle_ms"].get<double>(), 100, 1e-6);
  EXPECT_NEAR(e["waited_ms"].get<double>(), 100, 1e-6);
  EXPECT_EQ(e["queued_in_pool"], true);
  expect_evidence_from_set_stamps(c);
}

// A request handed to the pool at 20 ms never completed. Worker 1, idle since 10 ms, reported
// nothing more, while tasks handed over after 20 ms ran on worker 2: the request was running
// on worker 1, which stopped answering.
case_builder silent_worker_case() {
  case_builder b;
  b.ready_at_started(1, at(0)).ready_at_started(2, at(0));
  b.task(1, at(0), at(10)).ok(1, at(0), at(0), at(10));
  b.failed("request_timeout", at(20), at(120));
  for (const std::int64_t t : {30, 50, 200}) b.task(2, at(t), at(t + 10)).ok(2, at(t), at(t), at(t + 10));
  return b;
}

TEST(DiagnosisExternal, ANeverCompletedTaskOnASilentWorkerIsAHang) {
  const json c = silent_worker_case().diagnosed(external(2, 100));
  EXPECT_EQ(only_verdict(c), verdict::hang);
  EXPECT_EQ(c["verdicts"][std::string(verdict::hang)], 1);
  const json& t = c["timelines"]["requests_failed"][0];
  EXPECT_EQ(t["verdict"], verdict::hang);
  // It ran from its submission (worker 1 was idle then) to its deadline.
  EXPECT_NEAR(t["evidence"]["ran_ms"].get<double>(), 100, 1e-6);
  EXPECT_FALSE(c.contains("unjudged"));
  expect_evidence_from_set_stamps(c);
}

TEST(DiagnosisExternal, ANeverCompletedTaskWhoseSilentWorkerDiedIsACrash) {
  case_builder b = silent_worker_case();
  b.event(at(60), 1, "idle", "exited", "exit code 1", {{"exit_kind", "fault"}});
  const json c = b.diagnosed(external(2, 100));
  EXPECT_EQ(only_verdict(c), verdict::crash);
  const json& t = c["timelines"]["requests_failed"][0];
  EXPECT_EQ(t["verdict"], verdict::crash);
  EXPECT_EQ(t["evidence"]["worker"], 1);
  EXPECT_EQ(t["evidence"]["exit"], "exit code 1");
  expect_evidence_from_set_stamps(c);
}

// A driver that lists no pids, sends no lifecycle events and stamps no worker_pid: what its
// pool did during the wait is unknown, so the request gets no verdict.
TEST(DiagnosisExternal, NoWorkersReportedLeavesTheTimeoutUnjudged) {
  case_builder b;
  b.ok(0, at(0), at(0), at(10));
  b.failed("request_timeout", at(20), at(120));
  const json c = b.diagnosed(external(2, 100));
  EXPECT_TRUE(c["verdicts"].empty()) << c["verdicts"].dump();
  EXPECT_TRUE(c["findings"].empty());
  ASSERT_TRUE(c.contains("unjudged"));
  ASSERT_EQ(c["unjudged"].size(), 1u);
  EXPECT_EQ(c["unjudged"][0]["count"], 1);
  const std::string missing = c["unjudged"][0]["missing"];
  EXPECT_NE(missing.find("workers"), std::string::npos) << missing;
  const json& t = c["timelines"]["requests_failed"][0];
  EXPECT_TRUE(!t.contains("verdict") || t["verdict"].is_null()) << t.dump();
}

// A request handed over at 150 ms that never completed and was placed on no worker, the last
// thing of the case (its timeout at 250 ms). The longest task was 100 ms, so from 150 ms on a
// worker that looks idle may have been running a task that never completed: the wait lies
// wholly in that window. Without the horizon, worker 1, idle from 180 ms, would make it
// architectural.dispatch.
TEST(DiagnosisExternal, AWaitInTheLastLongestTaskWithTasksOutstandingIsUnjudged) {
  case_builder b;
  b.ready_at_started(1, at(0)).ready_at_started(2, at(0));
  b.task(1, at(80), at(180)).ok(1, at(80), at(80), at(180));
  b.task(2, at(90), at(190)).ok(2, at(90), at(90), at(190));
  b.failed("request_timeout", at(150), at(250));
  const json c = b.diagnosed(external(2, 100));
  EXPECT_TRUE(c["verdicts"].empty()) << c["verdicts"].dump();
  ASSERT_TRUE(c.contains("unjudged"));
  ASSERT_EQ(c["unjudged"].size(), 1u);
  EXPECT_EQ(c["unjudged"][0]["count"], 1);
  const std::string missing = c["unjudged"][0]["missing"];
  EXPECT_NE(missing.find("never completed"), std::string::npos) << missing;
  EXPECT_NE(missing.find("last 100 ms"), std::string::npos) << missing;
}

// The same request, handed over at 60 ms: most of its wait (60-150 ms of 60-160 ms) lies before
// the window, and that known part, with worker 1 idle before its 80 ms task, decides.
TEST(DiagnosisExternal, AWaitMostlyBeforeTheLastLongestTaskIsJudgedOnItsKnownPart) {
  case_builder b;
  b.ready_at_started(1, at(0)).ready_at_started(2, at(0));
  b.task(1, at(80), at(180)).ok(1, at(80), at(80), at(180));
  b.task(2, at(50), at(150)).ok(2, at(50), at(50), at(150));
  b.task(2, at(160), at(250)).ok(2, at(160), at(160), at(250));
  b.failed("request_timeout", at(60), at(160));
  const json c = b.diagnosed(external(2, 100));
  EXPECT_EQ(only_verdict(c), verdict::dispatch);
  EXPECT_FALSE(c.contains("unjudged"));
  const json& e = c["timelines"]["requests_failed"][0]["evidence"];
  EXPECT_EQ(e["idle_worker"], 1);
  EXPECT_NEAR(e["idle_ms"].get<double>(), 20, 1e-6);  // 60-80 ms
  EXPECT_NEAR(e["waited_ms"].get<double>(), 90, 1e-6);  // the known part, 60-150 ms
}

// ---- The run ----

json sweep_results(const std::vector<double>& throughputs, double cpu_share) {
  json results = {{"scenario", {{"pool", {{"size", 8}}}, {"load", {{"start", "warm"}}},
                                {"worker", {{"startup_ms", 0}, {"init_ms", 0}}},
                                {"sweep", {{{"key", "load.concurrency"}, {"values", {1, 2, 4, 8}}}}}}},
                  {"cases", json::array()}};
  const int n[] = {1, 2, 4, 8};
  for (std::size_t i = 0; i < throughputs.size(); ++i) {
    results["cases"].push_back({{"id", "c" + std::to_string(i)},
                                {"params", {{"load.concurrency", n[i]}}},
                                {"outcomes", {{"ok", 100}, {"checkout_timeout", i == 3 ? 20 : 0}}},
                                {"throughput_rps", throughputs[i]},
                                {"load_wall_ms", 1000},
                                {"environment", {{"case_cpu_share", cpu_share}}},
                                {"verdicts", json::object()}});
  }
  return results;
}

TEST(DiagnosisRun, AFlatThroughputCurveIsArchitecturalScaling) {
  json results = sweep_results({190, 191, 189, 190}, 0.1);
  diagnose_run(results);
  ASSERT_EQ(results["analyses"]["usl"].size(), 1u);
  const json& fit = results["analyses"]["usl"][0];
  EXPECT_GT(fit["sigma"].get<double>(), 0.9);
  EXPECT_EQ(fit["verdict"], verdict::scaling);
  EXPECT_EQ(results["verdicts"][std::string(verdict::scaling)], 1);
  EXPECT_NE(results["conclusion"].get<std::string>().find("architectural.scaling"), std::string::npos);
}

TEST(DiagnosisRun, ALinearCurveIsNotScaling) {
  json results = sweep_results({200, 400, 800, 1580}, 0.1);
  diagnose_run(results);
  ASSERT_EQ(results["analyses"]["usl"].size(), 1u);
  EXPECT_TRUE(results["analyses"]["usl"][0]["verdict"].is_null());
  EXPECT_FALSE(results["verdicts"].contains(std::string(verdict::scaling)));
}

TEST(DiagnosisRun, AFlatCurveOnBusyCpusMeasuresTheHostNotTheSubject) {
  json results = sweep_results({190, 191, 189, 190}, 0.95);
  diagnose_run(results);
  EXPECT_TRUE(results["analyses"]["usl"][0]["verdict"].is_null());
  EXPECT_NE(results["analyses"]["usl"][0]["evidence"].get<std::string>().find("CPUs busy"), std::string::npos);
}

TEST(DiagnosisRun, SumsCaseVerdictsAndTestsEachAxis) {
  json results = sweep_results({200, 400, 800, 1580}, 0.1);
  results["cases"][3]["verdicts"] = {{"capacity", 20}};
  results["cases"][3]["findings"] = {{{"verdict", "capacity"}, {"count", 20}, {"summary", "all busy"}}};
  diagnose_run(results);
  EXPECT_EQ(results["verdicts"]["capacity"], 20);
  EXPECT_EQ(results["summary"]["timeouts"], 20);
  EXPECT_EQ(results["summary"]["families"]["capacity"], 20);
  ASSERT_EQ(results["analyses"]["axes"].size(), 1u);
  const json& axis = results["analyses"]["axes"][0];
  EXPECT_EQ(axis["key"], "load.concurrency");
  EXPECT_EQ(axis["kind"], "load");
  EXPECT_EQ(axis["depends"], true);
  EXPECT_LT(axis["p_value"].get<double>(), 0.01);
  const std::string conclusion = results["conclusion"];
  EXPECT_EQ(conclusion.rfind("20 of 420 requests failed across 4 cases: 20 timeouts.", 0), 0u) << conclusion;
  EXPECT_NE(conclusion.find("20 capacity (all busy)"), std::string::npos) << conclusion;
}

TEST(DiagnosisRun, NoFailuresSaysSo) {
  json results = sweep_results({200, 400, 800, 1580}, 0.1);
  results["cases"][3]["outcomes"]["checkout_timeout"] = 0;
  diagnose_run(results);
  EXPECT_EQ(results["conclusion"].get<std::string>().rfind("No request failed", 0), 0u);
  EXPECT_TRUE(results["verdicts"].empty());
}

// ---- The assertions that read the diagnosis ----

json asserted(json assertions, std::vector<json> cases) {
  json results = {{"scenario", {{"assert", assertions}}}, {"cases", cases}};
  return results;
}

TEST(Assertions, MaxTimeoutRateHoldsForEveryCaseNotOnAverage) {
  const json results = asserted({{"max_timeout_rate", 0.1}},
                                {{{"id", "bad"}, {"outcomes", {{"ok", 5}, {"checkout_timeout", 5}}}},
                                 {{"id", "clean"}, {"outcomes", {{"ok", 1000}}}}});
  const json checks = check_assertions(results);
  ASSERT_EQ(checks.size(), 1u);
  EXPECT_EQ(checks[0]["held"], false);
  EXPECT_DOUBLE_EQ(checks[0]["value"].get<double>(), 0.5);
  EXPECT_NE(checks[0]["detail"].get<std::string>().find("bad"), std::string::npos);
}

TEST(Assertions, ForbiddenVerdictsIncludeSweepLevelOnes) {
  json results = asserted({{"forbid_verdicts", {"architectural.*"}}},
                          {{{"id", "c"}, {"outcomes", {{"ok", 10}}}, {"verdicts", json::object()}}});
  EXPECT_EQ(check_assertions(results)[0]["held"], true);
  results["analyses"] = {{"usl", {{{"axis", "load.concurrency"}, {"verdict", "architectural.scaling"}}}}};
  const json checks = check_assertions(results);
  EXPECT_EQ(checks[0]["held"], false);
  EXPECT_NE(checks[0]["detail"].get<std::string>().find("architectural.scaling"), std::string::npos);
}

TEST(Diagnosis, RecycledAndStoppedWorkersAreNotLost) {
  case_builder b;
  b.start(1, 0, 1 * ms, 2 * ms).start(2, 0, 1 * ms, 2 * ms);
  b.event(3 * ms, 1, "idle", "busy", "checkout").event(3 * ms, 2, "idle", "busy", "checkout");
  b.event(10 * ms, 1, "busy", "stopping", "recycled after 100 requests");
  b.event(12 * ms, 1, "stopping", "exited", "killed by SIGTERM");
  b.start(3, 12 * ms, 300 * ms, 301 * ms);
  b.event(400 * ms, 2, "busy", "idle", "free");
  b.failed("checkout_timeout", 20 * ms, 70 * ms);
  const json c = b.diagnosed(settings(2, 2, 50, 1000));
  EXPECT_NE(only_verdict(c), verdict::crash);
}

// A worker leaving at 25 ms whose slot stays empty through a 20-70 ms wait: lost to a fault
// (the wait is charged to the crash), or planned (the wait is the busy worker's capacity).
json departure_during_wait(const std::string& cause, const json& exit_kind) {
  case_builder b;
  b.start(1, 0, 1 * ms, 2 * ms).start(2, 0, 1 * ms, 2 * ms);
  b.event(3 * ms, 1, "idle", "busy", "checkout").event(3 * ms, 2, "idle", "busy", "checkout");
  const json kind = exit_kind.is_null() ? json::object() : json{{"exit_kind", exit_kind}};
  b.event(24 * ms, 1, "busy", "stopping", cause, kind);
  b.event(25 * ms, 1, "stopping", "exited", "killed by SIGTERM", kind);
  b.start(3, 80 * ms, 81 * ms, 82 * ms);
  b.event(400 * ms, 2, "busy", "idle", "free");
  b.failed("checkout_timeout", 20 * ms, 70 * ms);
  return b.diagnosed(settings(2, 2, 50, 1000));
}

TEST(Diagnosis, TheTypedExitKindDecidesOverTheCauseWording) {
  EXPECT_EQ(only_verdict(departure_during_wait("retired", "recycled")), verdict::capacity);
  EXPECT_EQ(only_verdict(departure_during_wait("retired", "planned_stop")), verdict::capacity);
  EXPECT_EQ(only_verdict(departure_during_wait("recycled after 100 requests", "fault")), verdict::crash);
}

TEST(Diagnosis, DocumentsWithoutExitKindAreReadByTheCauseWording) {
  EXPECT_EQ(only_verdict(departure_during_wait("recycled after 100 requests", nullptr)), verdict::capacity);
  EXPECT_EQ(only_verdict(departure_during_wait("pool stopping", nullptr)), verdict::capacity);
  EXPECT_EQ(only_verdict(departure_during_wait("failed a health ping", nullptr)), verdict::crash);
}

// ---- Zygote start: the template's start is the start of every worker waiting for it ----

// A pool of 2 whose template (worker 9, pid 109) is ready at 400 ms, its workers forked then
// and ready at 410 ms; two requests wait from 1 to 251 ms. No worker event falls in the wait:
// without the template's history it would read as a pool with nothing to do.
json zygote_cold_start(std::int64_t template_main) {
  case_builder b;
  b.zygote_template(9, 2, 0, template_main, 400 * ms);
  b.start(1, 400 * ms, 401 * ms, 410 * ms).start(2, 400 * ms, 401 * ms, 410 * ms);
  b.failed("checkout_timeout", 1 * ms, 251 * ms).failed("checkout_timeout", 1 * ms, 251 * ms);
  return b.diagnosed(settings(2, 2, 250, 1000));
}

TEST(DiagnosisZygote, ASlowTemplateStartUpIsEnvironmentalStartup) {
  const json c = zygote_cold_start(390 * ms);
  EXPECT_EQ(only_verdict(c), verdict::startup);
  EXPECT_EQ(c["verdicts"][std::string(verdict::startup)], 2);
  const json& e = c["findings"][0]["evidence"];
  EXPECT_EQ(e["zygote_template"], true);
  EXPECT_EQ(e["template_pid"], 109);
  EXPECT_NEAR(e["template_startup_ms"].get<double>(), 390, 1e-6);
  EXPECT_NEAR(e["template_preload_ms"].get<double>(), 10, 1e-6);
  EXPECT_NEAR(e["template_wait_ms"].get<double>(), 250, 1e-6);
}

TEST(DiagnosisZygote, ASlowPreloadIsEnvironmentalInit) {
  const json c = zygote_cold_start(10 * ms);
  EXPECT_EQ(only_verdict(c), verdict::init);
  EXPECT_NEAR(c["findings"][0]["evidence"]["template_preload_ms"].get<double>(), 390, 1e-6);
}

// The template is ready in 5 ms; its forked workers' own init handshake then takes 394 ms.
// The wait is the workers' start, judged by their phases, and names no template.
TEST(DiagnosisZygote, AFastTemplateLeavesTheWaitToTheWorkersStarts) {
  case_builder b;
  b.zygote_template(9, 2, 0, 1 * ms, 5 * ms);
  b.start(1, 5 * ms, 6 * ms, 400 * ms).start(2, 5 * ms, 6 * ms, 400 * ms);
  b.failed("checkout_timeout", 1 * ms, 251 * ms);
  const json c = b.diagnosed(settings(2, 2, 250, 1000));
  EXPECT_EQ(only_verdict(c), verdict::init);
  const json& e = c["findings"][0]["evidence"];
  EXPECT_FALSE(e.contains("zygote_template")) << e.dump();
  EXPECT_EQ(e["max_concurrent_starts"], 2);  // the template's start is not a worker's
}

TEST(DiagnosisZygote, AFastTemplateAndAHealthyPoolHaveNoVerdicts) {
  case_builder b;
  b.zygote_template(9, 2, 0, 1 * ms, 5 * ms);
  b.start(1, 5 * ms, 6 * ms, 8 * ms).start(2, 5 * ms, 6 * ms, 8 * ms);
  b.ok(1, 10 * ms, 10 * ms, 11 * ms).ok(2, 10 * ms, 10 * ms, 11 * ms);
  b.template_event(500 * ms, 9, 2, "idle", "exited", "pool stopping", {{"exit_kind", "planned_stop"}});
  const json c = b.diagnosed(settings(2, 2, 250, 1000));
  EXPECT_TRUE(c["verdicts"].empty()) << c["verdicts"].dump();
  EXPECT_TRUE(c["findings"].empty());
}

// The template sits idle all through a wait in which both workers are busy: counted as a
// worker it would be an idle worker beside a waiting request (dispatch) and a third of the
// live workers (utilisation 2/3).
TEST(DiagnosisZygote, AnIdleTemplateIsNotAnIdleWorker) {
  case_builder b;
  b.zygote_template(9, 2, 0, 1 * ms, 5 * ms);
  b.start(1, 5 * ms, 6 * ms, 8 * ms).start(2, 5 * ms, 6 * ms, 8 * ms);
  b.event(10 * ms, 1, "idle", "busy", "checkout").event(10 * ms, 2, "idle", "busy", "checkout");
  b.event(300 * ms, 1, "busy", "idle", "free").event(300 * ms, 2, "busy", "idle", "free");
  b.ok(1, 10 * ms, 10 * ms, 11 * ms);
  b.failed("checkout_timeout", 20 * ms, 70 * ms);
  const json c = b.diagnosed(settings(2, 2, 50, 1000));
  EXPECT_EQ(only_verdict(c), verdict::capacity);
  EXPECT_NEAR(c["findings"][0]["evidence"]["utilisation"].get<double>(), 1.0, 1e-9);
}

// The first template's preload fails at 50 ms and the next is spawned only at 300 ms: the
// wait was spent on a failed launch, judged as a failed start.
TEST(DiagnosisZygote, AWaitForATemplateThatFailedIsAFault) {
  case_builder b;
  b.template_event(0, 9, 2, "pending", "starting", "zygote template spawned", {{"t_spawn_ns", 0}});
  b.template_event(50 * ms, 9, 2, "starting", "exited", "zygote template's preload failed: ImportError",
                   {{"exit_kind", "fault"}});
  b.zygote_template(10, 2, 300 * ms, 301 * ms, 305 * ms);
  b.start(1, 305 * ms, 306 * ms, 310 * ms).start(2, 305 * ms, 306 * ms, 310 * ms);
  b.failed("checkout_timeout", 1 * ms, 251 * ms);
  const json c = b.diagnosed(settings(2, 2, 250, 1000));
  EXPECT_EQ(only_verdict(c), verdict::crash);
  const json& e = c["findings"][0]["evidence"];
  EXPECT_EQ(e["template_pid"], 109);
  EXPECT_NE(e["template_exit"].get<std::string>().find("preload failed"), std::string::npos);
}

// Starts fail fast while no template is ready: a template whose launch ran out of its start
// timeout is the environment's when launches here take that long, a hang when they do not.
TEST(DiagnosisZygote, StartFailedAfterATemplateTimedOutIsJudgedAsATimedOutStart) {
  for (const double injected_ms : {0.0, 2000.0}) {
    case_builder b;
    b.template_event(0, 9, 2, "pending", "starting", "zygote template spawned", {{"t_spawn_ns", 0}});
    b.template_event(1000 * ms, 9, 2, "starting", "exited", "zygote template 109 did not finish its preload within 1000 ms",
                     {{"exit_kind", "fault"}});
    b.failed("start_failed", 1000 * ms, 1001 * ms);
    scenario s = settings(2, 2, 5000, 1000);
    s.pool.start_timeout_ms = 1000;
    s.worker.startup_ms = injected_ms;
    const json c = b.diagnosed(s);
    EXPECT_EQ(only_verdict(c), injected_ms > 0 ? verdict::startup : verdict::hang);
    EXPECT_EQ(c["findings"][0]["evidence"]["zygote_template"], true);
  }
}

}  // namespace
}  // namespace procpool::harness
