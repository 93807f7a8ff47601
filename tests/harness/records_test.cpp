// The typed results.json records: a real run's document passes through them byte for byte,
// the worker events carry the exit kind the diagnosis relies on, and the readers tolerate
// what old or hand-written documents lack.
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <map>
#include <sstream>

#include <gtest/gtest.h>

#include "procpool/pool.hpp"
#include "procpool/wire/worker_process.hpp"
#include "results/run_records.hpp"
#include "run/records.hpp"
#include "support/pool_recorder.hpp"
#include "support/process_audit.hpp"
#include "support/workers.hpp"

namespace procpool::harness {
namespace {

using json = nlohmann::json;
using namespace std::chrono_literals;

// One ci-smoke run shared by the tests that read a real document: it takes a few seconds.
class RealDocument : public testing::leak_checked_test {
 protected:
  static void SetUpTestSuite() {
    dir_ = std::filesystem::temp_directory_path() / ("procpool-records-test-" + std::to_string(::getpid()));
    std::filesystem::create_directories(dir_);
    auto proc = worker_process::launch(
        {.argv = {PROCPOOL_CLI, "run", "scenarios/ci-smoke.toml", "--quiet", "--out", (dir_ / "run").string()},
         .working_directory = PROCPOOL_SOURCE_DIR});
    ASSERT_TRUE(proc) << proc.error().message;
    proc->close_stdin();
    auto status = proc->wait_for(300s);
    ASSERT_TRUE(status && status->code == 0);
    std::ifstream in(dir_ / "run" / "results.json");
    std::stringstream text;
    text << in.rdbuf();
    text_ = text.str();
  }
  static void TearDownTestSuite() { std::filesystem::remove_all(dir_); }

  static inline std::filesystem::path dir_;
  static inline std::string text_;
};

TEST_F(RealDocument, PassesThroughTheRecordsByteForByte) {
  ASSERT_FALSE(text_.empty());
  json doc = json::parse(text_);
  ASSERT_EQ(doc["cases"].size(), 4u);
  json cases = json::array();
  for (const auto& c : doc["cases"]) {
    const auto record = c.get<case_record>();
    EXPECT_TRUE(record.timelines.has_value()) << c["id"];
    EXPECT_TRUE(record.extra.empty()) << "keys the records do not know: " << record.extra.dump();
    const json back = record;
    EXPECT_EQ(back.dump(1), c.dump(1)) << c["id"];
    cases.push_back(back);
  }
  doc["cases"] = cases;
  // results.cpp's write_results writes dump(1) and a newline.
  EXPECT_EQ(doc.dump(1) + '\n', text_);
}

TEST_F(RealDocument, EveryDepartureSaysWhyAndThePoolStopIsPlanned) {
  const json doc = json::parse(text_);
  for (const auto& c : doc["cases"]) {
    const auto record = c.get<case_record>();
    ASSERT_TRUE(record.timelines);
    std::size_t exits = 0;
    for (const auto& e : record.timelines->workers) {
      const bool departure = e.to == worker_state::stopping || e.to == worker_state::exited;
      EXPECT_EQ(e.exit != exit_kind::none, departure) << e.cause;
      if (e.to != worker_state::exited) continue;
      ++exits;
      // ci-smoke injects no faults: every worker leaves when the pool stops.
      EXPECT_EQ(e.exit, exit_kind::planned_stop) << c["id"] << ": " << e.cause;
    }
    EXPECT_GE(exits, 1u) << c["id"];
  }
}

class PoolExitKinds : public testing::leak_checked_test {
 protected:
  testing::pool_recorder recorder;
};

// The pool marks a recycle as recycled on the worker's stopping and exited events, and the
// workers left at its stop as planned_stop: the diagnosis counts neither as lost.
TEST_F(PoolExitKinds, RecyclesAndTheStopArePlanned) {
  pool_options o = testing::fake_pool_options(json::object(), 1);
  o.recycle_after_requests = 2;
  o.observer = recorder.observer();
  {
    auto p = pool::create(std::move(o));
    ASSERT_TRUE(p) << p.error().message;
    for (int i = 0; i < 4; ++i) ASSERT_TRUE(p->call("echo", i)) << "call " << i;
    // The third worker ready, so that the stop finds one to stop.
    ASSERT_TRUE(recorder.wait_for([](const auto& events) {
      return std::count_if(events.begin(), events.end(), [](const auto& e) {
               return e.from == worker_state::starting && e.to != worker_state::exited;
             }) >= 3;
    }));
    p->stop();
  }
  std::map<std::uint64_t, exit_kind> stop_kind;
  std::size_t recycled = 0, planned = 0;
  for (const auto& e : recorder.events()) {
    if (e.to == worker_state::stopping) {
      stop_kind[e.worker] = e.exit;
      EXPECT_EQ(e.exit, e.cause.starts_with("recycled") ? exit_kind::recycled : exit_kind::planned_stop) << e.cause;
    }
    if (e.to != worker_state::exited) continue;
    if (const auto it = stop_kind.find(e.worker); it != stop_kind.end()) {
      EXPECT_EQ(e.exit, it->second) << "an exit keeps its stop's kind: " << e.cause;
    }
    (e.exit == exit_kind::recycled ? recycled : planned) += 1;
    EXPECT_NE(e.exit, exit_kind::fault) << e.cause;
  }
  EXPECT_EQ(recycled, 2u);
  EXPECT_EQ(planned, 1u);
}

TEST(Records, AWorkerEventWritesOnlyTheStampsAndKindItHas) {
  worker_event e{.t_ns = 5, .worker = 2, .slot = 1, .from = worker_state::busy,
                 .to = worker_state::stopping, .cause = "recycled after 3 requests",
                 .t_spawn_ns = 0, .t_main_ns = 0, .t_init_done_ns = 0, .pid = 42,
                 .exit = exit_kind::recycled};
  const json j = e;
  EXPECT_EQ(j.dump(), R"({"cause":"recycled after 3 requests","exit_kind":"recycled","from":"busy",)"
                      R"("pid":42,"slot":1,"t_ns":5,"to":"stopping","worker":2})");
  const auto back = j.get<worker_event>();
  EXPECT_EQ(back.exit, exit_kind::recycled);
  EXPECT_EQ(back.from, worker_state::busy);
  EXPECT_EQ(json(back), j);
}

// A worker's event names no role (the test above), so documents from before roles stay byte
// for byte the same; a template's names it, and reads back as one.
TEST(Records, AZygoteTemplatesEventNamesItsRoleAndReadsBack) {
  worker_event e{.t_ns = 9, .worker = 7, .slot = 4, .from = worker_state::starting,
                 .to = worker_state::idle, .cause = "zygote template ready",
                 .t_spawn_ns = 1, .t_main_ns = 3, .t_init_done_ns = 8, .pid = 77,
                 .role = worker_role::zygote_template};
  const json j = e;
  EXPECT_EQ(j["role"], "zygote_template");
  const auto back = j.get<worker_event>();
  EXPECT_EQ(back.role, worker_role::zygote_template);
  EXPECT_EQ(back.t_init_done_ns, 8);
  EXPECT_EQ(json(back), j);

  json unknown = j;
  unknown["role"] = "something_later";  // a role this version does not know is not a template
  EXPECT_EQ(unknown.get<worker_event>().role, worker_role::worker);
}

TEST(Records, OldAndHandWrittenDocumentsReadWithDefaults) {
  const json c = {{"id", "x#r0"},
                  {"outcomes", {{"ok", 3}, {"checkout_timeout", 2}, {"worker_crashed", 1}}},
                  {"timelines", {{"workers", {{{"t_ns", 1}, {"to", "exited"}, {"cause", "pool stopping"}}}}}},
                  {"something_new", 7}};
  const auto r = c.get<case_record>();
  EXPECT_EQ(r.requests(), 6u);
  EXPECT_EQ(r.failed(), 3u);
  EXPECT_EQ(r.timeouts(), 2u);
  ASSERT_TRUE(r.timelines);
  EXPECT_TRUE(r.timelines->requests_failed.empty());
  ASSERT_EQ(r.timelines->workers.size(), 1u);
  EXPECT_EQ(r.timelines->workers[0].to, worker_state::exited);
  EXPECT_EQ(r.timelines->workers[0].exit, exit_kind::none);  // predates the field
  EXPECT_EQ(r.timelines->workers[0].role, worker_role::worker);  // likewise
  EXPECT_FALSE(r.error);
  EXPECT_EQ(json(r)["something_new"], 7);
}

// A request written behind two others on a worker that was killed for the first one's
// timeout: the pipelining fields go out under their names and come back.
TEST(Records, APipelinedRequestsFieldsRoundTrip) {
  request_timeline t;
  t.request_id = 14;
  t.worker = 3;
  t.t_submit = 100;
  t.t_checkout = t.t_sent = 110;
  t.outcome = errc::queued_behind_fault;
  t.ahead = 2;
  t.caused_by = 12;
  t.cause = errc::request_timeout;
  t.t_reply = 900;
  const timeline_record r = timeline_record::of(t);
  EXPECT_EQ(r.outcome, "queued_behind_fault");
  EXPECT_EQ(r.cause, "request_timeout");
  const json j = r;
  EXPECT_EQ(j["t_head"], 0);  // never its worker's oldest
  EXPECT_EQ(j["ahead"], 2);
  EXPECT_EQ(j["caused_by"], 12);
  EXPECT_EQ(j["cause"], "request_timeout");
  const auto back = j.get<timeline_record>();
  EXPECT_EQ(back.ahead, 2u);
  EXPECT_EQ(back.caused_by, 12u);
  EXPECT_EQ(back.cause, "request_timeout");
  EXPECT_EQ(json(back), j);

  // At the head of an empty pipeline: t_head is t_sent, and nothing names a cause.
  request_timeline head;
  head.request_id = 15;
  head.t_sent = head.t_head = 120;
  const json h = timeline_record::of(head);
  EXPECT_EQ(h["t_head"], 120);
  EXPECT_EQ(h["ahead"], 0);
  EXPECT_FALSE(h.contains("caused_by"));
  EXPECT_FALSE(h.contains("cause"));
  EXPECT_EQ(json(h.get<timeline_record>()), h);
}

// A timeline written before pipelining has none of its fields: it reads as depth 1, and what
// it did not have is not made up (t_head stays 0; the diagnosis counts from t_sent then).
TEST(Records, ATimelineWithoutThePipeliningFieldsReadsAsDepthOne) {
  const json old = {{"request_id", 4}, {"worker", 1},  {"t_submit", 10},      {"t_checkout", 11},
                    {"t_sent", 12},    {"t_worker_recv", 13}, {"t_worker_done", 14}, {"t_reply", 15},
                    {"outcome", "request_timeout"}};
  const auto r = old.get<timeline_record>();
  EXPECT_EQ(r.t_head, 0);
  EXPECT_EQ(r.ahead, 0u);
  EXPECT_EQ(r.caused_by, 0u);
  EXPECT_FALSE(r.cause);
  EXPECT_EQ(r.t_sent, 12);
  json written = r;
  EXPECT_EQ(written["t_head"], 0);
  EXPECT_EQ(written["ahead"], 0);
  written.erase("t_head");
  written.erase("ahead");
  EXPECT_EQ(written, old);
}

TEST(Records, CancelledRequestsAreNeitherFailuresNorTimeouts) {
  const json c = {{"outcomes", {{"ok", 5}, {"cancelled", 3}, {"queued_behind_fault", 2}, {"request_timeout", 1}}}};
  const auto r = c.get<case_record>();
  EXPECT_EQ(r.requests(), 11u);
  EXPECT_EQ(r.failed(), 3u);
  EXPECT_EQ(r.timeouts(), 1u);
  EXPECT_FALSE(is_failure_outcome("cancelled"));
  EXPECT_TRUE(is_failure_outcome("queued_behind_fault"));
  EXPECT_FALSE(is_timeout_outcome("queued_behind_fault"));
}

TEST(Records, ACaseWhoseSubjectFailedKeepsItsWholeZeros) {
  case_record r;
  r.id = "x#r0";
  r.error = case_error{"invalid_options", "bad"};
  r.timelines = case_timelines{};
  const json j = r;
  EXPECT_EQ(j["throughput_rps"].dump(), "0");
  EXPECT_EQ(j["wall_ms"].dump(), "0");
  EXPECT_FALSE(j.contains("load_wall_ms"));
  EXPECT_EQ(j["error"]["type"], "invalid_options");
  EXPECT_EQ(json(j.get<case_record>()), j);
}

TEST(Records, WrongTypesReadAsDefaultsInsteadOfFailingTheDocument) {
  const json c = {{"id", 12},
                  {"repetition", "two"},
                  {"outcomes", {{"ok", 4}, {"request_timeout", "many"}, {"worker_crashed", -3}}},
                  {"latency_us", {{"p50", 1500.5}, {"p99", "slow"}}},
                  {"interrupted", "yes"},
                  {"error", "not an object"},
                  {"timelines", {{"workers", {{{"t_ns", "x"}, {"from", 3}, {"to", "busy"}, {"pid", 7.9}}}},
                                 {"requests_failed", {"not a record", {{"request_id", 9}}}}}}};
  const auto r = c.get<case_record>();
  EXPECT_EQ(r.id, "");
  EXPECT_EQ(r.repetition, 0u);
  EXPECT_EQ(r.outcomes.at("ok"), 4u);
  EXPECT_FALSE(r.outcomes.contains("request_timeout"));
  EXPECT_EQ(r.outcomes.at("worker_crashed"), 0u);  // a negative count reads as none
  EXPECT_EQ(r.latency_us.p50, 1500.5);              // a fraction survives
  EXPECT_EQ(r.latency_us.p99, 0);
  EXPECT_FALSE(r.interrupted);
  EXPECT_FALSE(r.error);
  ASSERT_TRUE(r.timelines);
  ASSERT_EQ(r.timelines->workers.size(), 1u);
  EXPECT_EQ(r.timelines->workers[0].t_ns, 0);
  EXPECT_EQ(r.timelines->workers[0].from, worker_state::pending);
  EXPECT_EQ(r.timelines->workers[0].to, worker_state::busy);
  EXPECT_EQ(r.timelines->workers[0].pid, 7);  // a fraction in a whole field is cut
  // A malformed element keeps its place, so the indices of the others do not move.
  ASSERT_EQ(r.timelines->requests_failed.size(), 2u);
  EXPECT_EQ(r.timelines->requests_failed[1].request_id, 9u);
}

TEST(Records, AWholeFigureIsWrittenAsAnIntegerAndAFractionAsIs) {
  latency_record l{.p50 = 120, .p90 = 130, .p99 = 140.25, .p999 = 150, .max = 160, .mean = 125.5, .count = 3};
  const json j = l;
  EXPECT_EQ(j["p50"].dump(), "120");
  EXPECT_EQ(j["p99"].dump(), "140.25");
  EXPECT_EQ(j["mean"].dump(), "125.5");
  EXPECT_EQ(json(j.get<latency_record>()), j);
}

worker_event event_at(std::int64_t t_ns, std::uint64_t worker) {
  worker_event e;
  e.t_ns = t_ns;
  e.worker = worker;
  return e;
}

// A case keeps every worker event in memory; results.json keeps the first
// max_results_worker_events in time order, whatever order they were recorded in (an external
// pool's events arrive out of order), and counts the rest.
TEST(Records, KeepResultsSampleKeepsTheEarliestEventsAndCountsTheRest) {
  static_assert(max_results_worker_events % 2 == 0);
  // Stamps 1..pairs, each on worker 1 then worker 2 (ties show their order), recorded latest
  // first: 8 events more than the bound.
  constexpr auto pairs = static_cast<std::int64_t>(max_results_worker_events / 2 + 4);
  case_timelines t;
  t.worker_events_dropped = 3;  // already left out by an earlier trim: added to, not replaced
  for (std::int64_t stamp = pairs; stamp >= 1; --stamp) {
    t.workers.push_back(event_at(stamp, 1));
    t.workers.push_back(event_at(stamp, 2));
  }
  keep_results_sample(t);
  ASSERT_EQ(t.workers.size(), max_results_worker_events);
  EXPECT_EQ(t.worker_events_dropped, 3u + 8u);
  // The earliest, in time order, ties in recorded order: stamps 1..pairs-4, twice each.
  for (std::size_t i = 0; i < t.workers.size(); ++i) {
    const auto& e = t.workers[i];
    ASSERT_EQ(e.t_ns, static_cast<std::int64_t>(i / 2 + 1)) << i;
    ASSERT_EQ(e.worker, i % 2 + 1) << i;
  }

  // A second trim of what is kept leaves it as it is.
  keep_results_sample(t);
  EXPECT_EQ(t.workers.size(), max_results_worker_events);
  EXPECT_EQ(t.worker_events_dropped, 11u);
}

TEST(Records, KeepResultsSampleLeavesACaseWithinTheBoundAlone) {
  case_timelines t;
  for (std::int64_t stamp : {30, 10, 20}) t.workers.push_back(event_at(stamp, 1));
  keep_results_sample(t);
  ASSERT_EQ(t.workers.size(), 3u);
  EXPECT_EQ(t.workers[0].t_ns, 30);  // as recorded: readers sort (worker_intervals)
  EXPECT_EQ(t.worker_events_dropped, 0u);

  t.workers.assign(max_results_worker_events, event_at(1, 1));
  keep_results_sample(t);
  EXPECT_EQ(t.workers.size(), max_results_worker_events);
  EXPECT_EQ(t.worker_events_dropped, 0u);
  t.workers.push_back(event_at(0, 9));
  keep_results_sample(t);
  ASSERT_EQ(t.workers.size(), max_results_worker_events);
  EXPECT_EQ(t.worker_events_dropped, 1u);
  EXPECT_EQ(t.workers.front().worker, 9u);  // the earliest event, recorded last, is kept
}

TEST(Records, TheAnalysesWriteNullWhereTheSchemaSaysNull) {
  run_analyses a;
  usl_analysis fit;
  fit.axis = "load.concurrency";
  fit.points = {{1, 100}, {2, 150.5}};
  fit.sigma = 0.5;
  a.usl.push_back(fit);
  axis_analysis axis;
  axis.key = "pool.size";
  axis.rows.push_back(axis_row{.value = 4, .requests = 10, .timeouts = 1, .rate = 0.1});
  a.axes.push_back(axis);
  const json j = a;
  EXPECT_TRUE(j["usl"][0]["verdict"].is_null());
  EXPECT_TRUE(j["usl"][0]["peak_n"].is_null());
  EXPECT_EQ(j["usl"][0]["points"][1]["throughput"], 150.5);
  EXPECT_EQ(j["axes"][0]["rows"][0]["value"], 4);
  const auto back = j.get<run_analyses>();
  EXPECT_FALSE(back.usl[0].verdict);
  EXPECT_EQ(json(back), j);
  EXPECT_TRUE(analyses_of(json{{"analyses", "garbage"}}).usl.empty());
}

}  // namespace
}  // namespace procpool::harness
