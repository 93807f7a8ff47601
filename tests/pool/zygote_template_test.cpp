// The pool's side of the zygote template (pool/src/zygote_template.hpp) against the real fake
// worker template (procpool-fake-worker --zygote): launch, fork workers that pass the init
// handshake and echo through the pool's wire helpers, kill, reap through the template, close.
// No process or descriptor may be left behind (leak_checked_test, a descriptor count).
#include "zygote_template.hpp"

#include <poll.h>
#include <signal.h>
#include <unistd.h>

#include <algorithm>
#include <condition_variable>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "procpool/pool.hpp"
#include "procpool/pool_options.hpp"
#include "procpool/wire/file_io.hpp"
#include "procpool/wire/frame.hpp"
#include "procpool/wire/message.hpp"
#include "procpool/wire/worker_connection.hpp"
#include "support/process_audit.hpp"

namespace procpool {
namespace {

using json = nlohmann::json;
using namespace std::chrono_literals;

constexpr auto patience = 5s;  // a bound for hangs, never a synchronisation

bool readable_before(int fd, deadline until) {
  pollfd p{fd, POLLIN, 0};
  auto ready = poll_until({&p, 1}, until);
  return ready && *ready == 1;
}

// One request frame out, one reply frame back, on the worker's own (non-blocking) pipes.
std::string call(forked_worker& w, const request& req) {
  std::string frame = encode_frame(encode(req));
  std::string_view pending = frame;
  if (!write_all(w.process.stdin_fd(), pending)) return {};
  frame_decoder decoder;
  std::vector<char> buf(64 * 1024);
  while (readable_before(w.process.stdout_fd(), deadline_after(patience))) {
    auto n = read_some(w.process.stdout_fd(), buf);
    if (!n && would_block(n.error())) continue;
    if (!n || *n == 0) break;
    decoder.feed({buf.data(), *n});
    if (auto payload = decoder.next(); payload && *payload) return **payload;
  }
  ADD_FAILURE() << "no reply from worker " << w.process.pid();
  return {};
}

std::map<std::string, std::string> worker_env(int id) {
  return {{"PROCPOOL_WORKER_ID", std::to_string(id)},
          {"PROCPOOL_WORKER_SLOT", std::to_string(id - 1)}};
}

launch_options fake_worker(std::vector<std::string> flags = {}) {
  launch_options options{.argv = {PROCPOOL_FAKE_WORKER}};
  options.argv.insert(options.argv.end(), flags.begin(), flags.end());
  options.start_mode = start_mode::zygote;
  return options;
}

class ZygoteTemplatePool : public testing::leak_checked_test {
 protected:
  void SetUp() override {
    // The first launch in a thread opens the launcher's io_context (epoll, eventfd, ...),
    // kept for the thread's life: not a leak, so it is opened before counting.
    static const bool warmed = [] {
      auto p = worker_process::launch({.argv = {"/bin/true"}});
      if (p) p->kill();
      return true;
    }();
    (void)warmed;
    fds_before_ = testing::open_fd_count();
  }
  void expect_no_descriptor_leaked() { EXPECT_EQ(testing::open_fd_count(), fds_before_); }
  std::size_t fds_before_ = 0;
};

TEST_F(ZygoteTemplatePool, ForksThreeWorkersThatHandshakeEchoAndAreReapedThroughTheTemplate) {
  auto tpl = zygote_template::launch(fake_worker(), patience, 1s);
  ASSERT_TRUE(tpl) << tpl.error().message;
  zygote_template& z = **tpl;
  EXPECT_EQ(z.ready_message()["pid"], z.pid());
  EXPECT_EQ(::getpgid(z.pid()), z.pid()) << "the template has its own group";

  std::vector<forked_worker> workers;
  for (int id = 1; id <= 3; ++id) {
    auto w = z.fork(worker_env(id), patience);
    ASSERT_TRUE(w) << w.error().message;
    workers.push_back(std::move(*w));
  }
  for (auto& w : workers) {
    ASSERT_GT(w.process.pid(), 0);
    EXPECT_EQ(::getpgid(w.process.pid()), w.process.pid()) << "own process group";
    EXPECT_LE(w.process.t_spawn_ns(), w.t_fork_ns);
    auto hello = decode_init_reply(call(w, make_init_request(json::object())));
    ASSERT_TRUE(hello) << hello.error().message;
    EXPECT_TRUE(hello->base.ok) << hello->base.failure.message;
    EXPECT_EQ(hello->pid, w.process.pid());
    const json args = {{"n", w.id}};
    auto echoed = decode_response(call(w, {.id = 1, .command = "echo", .args = args}));
    ASSERT_TRUE(echoed) << echoed.error().message;
    EXPECT_EQ(echoed->result, args);
    EXPECT_FALSE(w.process.try_wait()) << "running: nothing to reap yet";
    EXPECT_FALSE(w.process.peek_exit(0ms));
  }
  const auto below = testing::descendants_of(z.pid());
  for (const auto& w : workers)
    EXPECT_NE(std::find(below.begin(), below.end(), w.process.pid()), below.end());

  // One killed (group SIGKILL, then `reap`), two stopped gracefully at EOF on stdin.
  workers[1].process.signal_group(SIGKILL);
  const auto pending = workers[1].process.peek_exit(patience);
  ASSERT_TRUE(pending) << "exited, seen through its pidfd";
  EXPECT_TRUE(pending->pending) << "only the template can say how, until `reap`";
  EXPECT_EQ(workers[1].process.kill().signal, SIGKILL);
  EXPECT_TRUE(workers[0].process.stop({}).exited_cleanly());
  EXPECT_TRUE(workers[2].process.stop({}).exited_cleanly());
  EXPECT_TRUE(testing::descendants_of(z.pid()).empty()) << "the template reaped every worker";
  EXPECT_TRUE(z.usable());

  workers.clear();
  EXPECT_TRUE(z.close({}).exited_cleanly()) << "the template exits 0 at EOF";
  EXPECT_FALSE(z.usable());
  tpl->reset();  // destroys the template handle
  expect_no_descriptor_leaked();
}

// What the supervisor will do with it: a worker_connection over the adopted worker_process,
// used like a spawned worker's; the worker keeps its template alive as its reaper.
TEST_F(ZygoteTemplatePool, AForkedWorkerServesThroughAWorkerConnectionAndKeepsItsTemplate) {
  auto tpl = zygote_template::launch(fake_worker(), patience, 1s);
  ASSERT_TRUE(tpl) << tpl.error().message;
  const pid_t template_pid = (*tpl)->pid();
  auto w = (*tpl)->fork(worker_env(1), patience);
  ASSERT_TRUE(w) << w.error().message;
  tpl->reset();  // the worker's reference keeps the template
  EXPECT_TRUE(testing::process_exists(template_pid));
  {
    worker_connection conn(std::move(w->process));
    // The fake worker's crash_after knob: its second request crashes it.
    auto hello = conn.handshake({{"crash_after", 1}}, deadline_after(patience));
    ASSERT_TRUE(hello) << hello.error().message;
    auto echoed = conn.call(request{.id = 1, .command = "echo", .args = {{"x", 1}}},
                            deadline_after(patience));
    ASSERT_TRUE(echoed) << echoed.error().message;
    EXPECT_EQ(echoed->result, (json{{"x", 1}}));
    auto crashed = conn.call(request{.id = 2, .command = "echo", .args = json::object()},
                             deadline_after(patience));
    ASSERT_FALSE(crashed);
    EXPECT_EQ(crashed.error().code, errc::worker_crashed) << crashed.error().message;
    EXPECT_FALSE(conn.process().kill().exited_cleanly());
  }  // the last reference: the template is closed and reaped
  EXPECT_FALSE(testing::process_exists(template_pid));
  expect_no_descriptor_leaked();
}

TEST_F(ZygoteTemplatePool, ClosingTheTemplateTakesTheWorkersItHoldsWithIt) {
  auto tpl = zygote_template::launch(fake_worker(), patience, 1s);
  ASSERT_TRUE(tpl) << tpl.error().message;
  std::vector<forked_worker> workers;
  for (int id = 1; id <= 2; ++id) {
    auto w = (*tpl)->fork(worker_env(id), patience);
    ASSERT_TRUE(w) << w.error().message;
    workers.push_back(std::move(*w));
  }
  EXPECT_TRUE((*tpl)->close({}).exited_cleanly());
  for (auto& w : workers) {
    auto status = w.process.wait_for(patience);
    ASSERT_TRUE(status) << "worker " << w.process.pid() << " outlived its template";
    EXPECT_EQ(status->signal, SIGKILL) << "the true status went with the template";
  }
  workers.clear();
  tpl->reset();
  expect_no_descriptor_leaked();
}

TEST_F(ZygoteTemplatePool, WorkersOfAKilledTemplateAreReportedKilledAndItsForksFail) {
  auto tpl = zygote_template::launch(fake_worker(), patience, 1s);
  ASSERT_TRUE(tpl) << tpl.error().message;
  {
    auto w = (*tpl)->fork(worker_env(1), patience);
    ASSERT_TRUE(w) << w.error().message;
    ASSERT_TRUE(decode_init_reply(call(*w, make_init_request(json::object()))));

    ASSERT_EQ(::kill((*tpl)->pid(), SIGKILL), 0);
    auto status = w->process.wait_for(patience);
    ASSERT_TRUE(status) << "the worker outlived its template (parent-death signal)";
    EXPECT_EQ(status->signal, SIGKILL);
  }
  EXPECT_FALSE((*tpl)->usable());
  auto refused = (*tpl)->fork(worker_env(2), patience);
  ASSERT_FALSE(refused);
  EXPECT_EQ(refused.error().code, errc::start_failed);
  EXPECT_EQ((*tpl)->close({}).signal, SIGKILL);
  tpl->reset();
  // This test process is a subreaper: the orphaned worker is reaped by leak_checked_test.
  expect_no_descriptor_leaked();
}

TEST_F(ZygoteTemplatePool, DescriptorCountIsFlatOverManyTemplateLifetimes) {
  for (int cycle = 0; cycle < 20; ++cycle) {
    auto tpl = zygote_template::launch(fake_worker(), patience, 1s);
    ASSERT_TRUE(tpl) << tpl.error().message;
    for (int id = 1; id <= 3; ++id) {
      auto w = (*tpl)->fork(worker_env(id), patience);
      ASSERT_TRUE(w) << w.error().message;
      if (id == 2) w->process.signal_group(SIGKILL);
      // id 3 is left to the handle's destructor: kill, then `reap`.
      if (id == 1) {
        EXPECT_TRUE(w->process.stop({}).exited_cleanly());
      }
    }
    EXPECT_TRUE((*tpl)->close({}).exited_cleanly());
  }
  expect_no_descriptor_leaked();
}

TEST_F(ZygoteTemplatePool, ASlowPreloadIsAStartTimeoutAndTheTemplateIsReaped) {
  auto tpl = zygote_template::launch(fake_worker({"--startup-ms=3000"}), 200ms, 1s);
  ASSERT_FALSE(tpl);
  EXPECT_EQ(tpl.error().code, errc::start_failed);
  EXPECT_NE(tpl.error().message.find("did not answer in time"), std::string::npos)
      << tpl.error().message;
  expect_no_descriptor_leaked();
}

TEST_F(ZygoteTemplatePool, ABadCommandLineFailsTheStartQuotingTheTemplatesStderr) {
  auto tpl = zygote_template::launch(fake_worker({"--no-such-flag"}), patience, 1s);
  ASSERT_FALSE(tpl);
  EXPECT_EQ(tpl.error().code, errc::start_failed);
  EXPECT_NE(tpl.error().message.find("closed its channel"), std::string::npos)
      << tpl.error().message;
  EXPECT_NE(tpl.error().message.find("no-such-flag"), std::string::npos)
      << "stderr quoted: " << tpl.error().message;
  expect_no_descriptor_leaked();
}

TEST(ZygoteStartMode, SpawnIsTheDefault) {
  EXPECT_EQ(launch_options{}.start_mode, start_mode::spawn);
}

// The pool in zygote mode: its children are the template and the group guard only (the
// workers are the template's); crashed workers are reaped through the template and replaced
// by new forks; stop leaves nothing.
TEST_F(ZygoteTemplatePool, APoolInZygoteModeServesFromForkedWorkersAndReplacesCrashedOnes) {
  pool_options options{.worker = fake_worker(), .size = 3};
  options.init_args = {{"crash_after", 2}};  // each worker crashes on its third request
  {
    auto p = pool::create(options);
    ASSERT_TRUE(p) << p.error().message;
    ASSERT_EQ(p->wait_ready(deadline_after(patience)), ready_state::ready);
    EXPECT_EQ(testing::child_pids().size(), 2u) << "the group guard and the template";
    std::size_t ok = 0, crashed = 0;
    for (int i = 0; i < 30; ++i) {
      auto r = p->call("echo", {{"i", i}});
      if (r) {
        EXPECT_EQ(r->value, (json{{"i", i}}));
        ++ok;
      } else {
        EXPECT_EQ(r.error().code, errc::worker_crashed) << r.error().message;
        ++crashed;
      }
    }
    EXPECT_GE(ok, 20u);
    EXPECT_GE(crashed, 1u);
    EXPECT_EQ(p->wait_ready(deadline_after(patience)), ready_state::ready);
    EXPECT_EQ(testing::child_pids().size(), 2u) << "replacements are forked, not spawned";
    EXPECT_GT(p->stats().starts, 3u);
    p->stop();
  }
  EXPECT_TRUE(testing::child_pids().empty());
}

// A template that cannot start (here: a bad flag, exit 2 before `ready`) is a failed start
// quoting its stderr, counted by the crash-loop guard.
TEST_F(ZygoteTemplatePool, ATemplateThatCannotStartDegradesThePoolQuotingItsStderr) {
  pool_options options{.worker = fake_worker({"--no-such-flag"}), .size = 2};
  options.crash_loop_failures = 2;
  {
    auto p = pool::create(options);
    ASSERT_TRUE(p) << p.error().message;
    EXPECT_EQ(p->wait_ready(deadline_after(patience)), ready_state::degraded);
    auto r = p->call("echo", {{"x", 1}});
    ASSERT_FALSE(r);
    EXPECT_EQ(r.error().code, errc::start_failed);
    EXPECT_NE(r.error().message.find("no-such-flag"), std::string::npos) << r.error().message;
    p->stop();
  }
  EXPECT_TRUE(testing::child_pids().empty());
}

// A pool's worker events, in order, from its observer: what the tests below await instead of
// sleeping. Unless told otherwise, they look at the template's.
class template_events {
 public:
  pool_observer observer() {
    return {.on_worker_event = [this](const worker_event& e) {
      std::lock_guard lock(mutex_);
      events_.push_back(e);
      changed_.notify_all();
    }, .on_request = {}};
  }
  // Waits for the n-th (from 1) event of `role` going to `to`; nullopt after `patience`.
  std::optional<worker_event> await(worker_state to, std::size_t n = 1,
                                    worker_role role = worker_role::zygote_template) {
    std::unique_lock lock(mutex_);
    std::optional<worker_event> found;
    changed_.wait_for(lock, patience, [&] {
      std::size_t seen = 0;
      for (const auto& e : events_) {
        if (e.role == role && e.to == to && ++seen == n) {
          found = e;
          return true;
        }
      }
      return false;
    });
    return found;
  }
  // The workers' exits whose cause has `text`.
  std::size_t worker_exits_saying(std::string_view text) {
    std::lock_guard lock(mutex_);
    return std::count_if(events_.begin(), events_.end(), [&](const worker_event& e) {
      return e.role == worker_role::worker && e.to == worker_state::exited &&
             e.cause.find(text) != std::string::npos;
    });
  }
    std::vector<worker_event> of_template() {
    std::lock_guard lock(mutex_);
    std::vector<worker_event> out;
    for (const auto& e : events_) {
      if (e.role == worker_role::zygote_template) out.push_back(e);
    }
    return out;
  }

 private:
  std::mutex mutex_;
  std::condition_variable changed_;
  std::vector<worker_event> events_;
};

// The template is reported like a worker that never takes a request: spawned, ready at the
// end of its preload with its phases stamped, and exited as a planned stop with the pool.
TEST_F(ZygoteTemplatePool, TheTemplatesLifeIsReportedAsEventsOfItsOwn) {
  template_events seen;
  pool_options options{.worker = fake_worker({"--startup-ms=30"}), .size = 2};
  options.observer = seen.observer();
  {
    auto p = pool::create(options);
    ASSERT_TRUE(p) << p.error().message;
    ASSERT_EQ(p->wait_ready(deadline_after(patience)), ready_state::ready);
    p->stop();
  }
  const auto events = seen.of_template();
  ASSERT_EQ(events.size(), 3u);
  EXPECT_EQ(events[0].to, worker_state::starting);
  EXPECT_EQ(events[1].to, worker_state::idle);
  EXPECT_EQ(events[2].to, worker_state::exited);
  EXPECT_EQ(events[2].exit, exit_kind::planned_stop);
  for (const auto& e : events) {
    EXPECT_EQ(e.slot, 2u) << "one past the workers' slots";
    EXPECT_GT(e.pid, 0);
    EXPECT_EQ(e.worker, events[0].worker);
  }
  const worker_event& ready = events[1];
  EXPECT_GT(ready.t_main_ns, ready.t_spawn_ns);
  // The fake worker's template spends --startup-ms in its preload, after its main.
  EXPECT_GE(ready.t_init_done_ns - ready.t_main_ns, 30'000'000);
  EXPECT_TRUE(testing::child_pids().empty());
}

// A template killed while idle is noticed by its pidfd, not at the next start: reported,
// counted once by the crash-loop guard (its workers, killed with it, are not counted), and
// relaunched; the pool serves again.
TEST_F(ZygoteTemplatePool, APoolRelaunchesAKilledTemplateCountingItsDeathOnce) {
  template_events seen;
  pool_options options{.worker = fake_worker(), .size = 2};
  options.observer = seen.observer();
  auto p = pool::create(options);
  ASSERT_TRUE(p) << p.error().message;
  ASSERT_EQ(p->wait_ready(deadline_after(patience)), ready_state::ready);
  const auto first = seen.await(worker_state::idle);
  ASSERT_TRUE(first);
  ASSERT_EQ(::kill(static_cast<pid_t>(first->pid), SIGKILL), 0);
  const auto died = seen.await(worker_state::exited);
  ASSERT_TRUE(died);
  EXPECT_EQ(died->exit, exit_kind::fault);
  EXPECT_NE(died->cause.find("killed by SIGKILL"), std::string::npos) << died->cause;
  const auto second = seen.await(worker_state::idle, 2);
  ASSERT_TRUE(second) << "a new template, with no request asking for one";
  EXPECT_NE(second->pid, first->pid);
  ASSERT_EQ(p->wait_ready(deadline_after(patience)), ready_state::ready);
  // A worker of the dead template may still look idle until its pidfd is processed: its
  // call fails worker_crashed, and the next one is served.
  auto r = p->call("echo", {{"after", 1}});
  for (int retry = 0; retry < 4 && !r && r.error().code == errc::worker_crashed; ++retry) {
    r = p->call("echo", {{"after", 1}});
  }
  EXPECT_TRUE(r) << r.error().message;
  EXPECT_EQ(p->stats().failed_starts, 1u) << "the template's death, once";
  EXPECT_EQ(seen.worker_exits_saying("its zygote template exited"), 2u)
      << "both idle workers died with it, and are not their slots' failures";
  p->stop();
}

// The template dies while its workers are in their init handshake: those workers die with it
// (parent-death signal) and are started again from the next template, without counting as
// failed starts of their own.
TEST_F(ZygoteTemplatePool, ATemplateDyingWhileItsWorkersStartIsOneFailureAndTheyStartAgain) {
  template_events seen;
  pool_options options{.worker = fake_worker(), .size = 2};
  options.init_args = {{"init_ms", 400}};
  options.observer = seen.observer();
  auto p = pool::create(options);
  ASSERT_TRUE(p) << p.error().message;
  const auto first = seen.await(worker_state::idle);
  ASSERT_TRUE(first);
  // Both workers forked and in their 400 ms init.
  ASSERT_TRUE(seen.await(worker_state::starting, 2, worker_role::worker));
  ASSERT_EQ(::kill(static_cast<pid_t>(first->pid), SIGKILL), 0);
  ASSERT_TRUE(seen.await(worker_state::idle, 2));
  ASSERT_EQ(p->wait_ready(deadline_after(patience)), ready_state::ready);
  EXPECT_EQ(p->stats().failed_starts, 1u);
  EXPECT_TRUE(p->call("echo", {{"x", 1}}));
  p->stop();
}

// A preload slower than start_timeout is a start timeout: the template is killed, the
// failure quotes the limit, and repeated failures degrade the pool (callers fail fast).
TEST_F(ZygoteTemplatePool, APreloadOutlastingTheStartTimeoutIsAFailedStartThatDegradesThePool) {
  template_events seen;
  pool_options options{.worker = fake_worker({"--startup-ms=3000"}), .size = 2};
  options.start_timeout = 200ms;
  options.crash_loop_failures = 2;
  options.observer = seen.observer();
  {
    auto p = pool::create(options);
    ASSERT_TRUE(p) << p.error().message;
    EXPECT_EQ(p->wait_ready(deadline_after(patience)), ready_state::degraded);
    auto r = p->call("echo", {{"x", 1}});
    ASSERT_FALSE(r);
    EXPECT_EQ(r.error().code, errc::start_failed);
    EXPECT_NE(r.error().message.find("did not finish its preload within 200 ms"),
              std::string::npos)
        << r.error().message;
    const auto failed = seen.await(worker_state::exited);
    ASSERT_TRUE(failed);
    EXPECT_EQ(failed->from, worker_state::starting);
    EXPECT_EQ(failed->exit, exit_kind::fault);
    p->stop();
  }
  EXPECT_TRUE(testing::child_pids().empty());
}

// 1,000 zygote restarts (a worker retired after every request) leave the pool's descriptor
// count where it was: each fork's pipes, pidfd and handles are closed with its worker.
TEST_F(ZygoteTemplatePool, DescriptorCountIsFlatOverAThousandZygoteRestarts) {
  pool_options options{.worker = fake_worker(), .size = 2};
  options.recycle_after_requests = 1;
  {
    auto p = pool::create(options);
    ASSERT_TRUE(p) << p.error().message;
    ASSERT_EQ(p->wait_ready(deadline_after(patience)), ready_state::ready);
    auto serve = [&](int n) {
      for (int i = 0; i < n; ++i) {
        auto r = p->call("echo", {{"i", i}}, {.checkout_deadline = deadline_after(patience)});
        ASSERT_TRUE(r) << r.error().message;
      }
      ASSERT_EQ(p->wait_ready(deadline_after(patience)), ready_state::ready);
    };
    serve(50);
    const std::size_t early = testing::open_fd_count();
    serve(1000);
    // A retired worker may still be stopping: a few descriptors, never one per restart.
    EXPECT_LE(testing::open_fd_count(), early + 8);
    EXPECT_GE(p->stats().starts, 1000u);
    p->stop();
  }
  expect_no_descriptor_leaked();
  EXPECT_TRUE(testing::child_pids().empty());
}

// workers_memory(): the forked workers share the template's preload, so each one's own pages
// (USS) are a fraction of it, while its proportional share (PSS) counts a part of it.
TEST_F(ZygoteTemplatePool, ForkedWorkersShareTheTemplatesPreloadInTheirMemory) {
  if (::access("/proc/self/smaps_rollup", R_OK) != 0) GTEST_SKIP() << "no smaps_rollup (Linux < 4.14)";
  pool_options options{.worker = fake_worker({"--preload-mib=32"}), .size = 2};
  {
    auto p = pool::create(options);
    ASSERT_TRUE(p) << p.error().message;
    ASSERT_EQ(p->wait_ready(deadline_after(patience)), ready_state::ready);
    ASSERT_TRUE(p->call("echo", {{"x", 1}}));
    const auto memory = p->workers_memory();
    ASSERT_EQ(memory.size(), 2u);
    for (const auto& w : memory) {
      EXPECT_GT(w.pid, 0);
      EXPECT_GT(w.memory.uss_kib, 0u);
      EXPECT_LT(w.memory.uss_kib, 16u << 10) << "the 32 MiB preload is shared, not copied";
      EXPECT_GE(w.memory.rss_kib, 32u << 10) << "the preload is mapped and resident";
      EXPECT_GE(w.memory.pss_kib, w.memory.uss_kib + (8u << 10)) << "a third of it, about";
    }
    p->stop();
  }
  EXPECT_TRUE(testing::child_pids().empty());
}

}  // namespace
}  // namespace procpool
