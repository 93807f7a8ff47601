// sequential_init_pool: callers check out and do their own I/O, as in procpool::pool, but
// every worker is started on demand by one manager thread that spawns and handshakes one
// worker at a time.
#include <csignal>
#include <condition_variable>
#include <list>
#include <mutex>
#include <thread>
#include <vector>

#include <fmt/format.h>

#include "procpool/wire/worker_connection.hpp"
#include "subjects/reference_pools.hpp"
#include "subjects/reference_worker.hpp"

namespace procpool::harness {
namespace {

// The manager does a worker's I/O while it starts, the caller holding it while it is busy.
using lazy_worker = reference_worker;

struct waiter {
  std::condition_variable cv;
  std::shared_ptr<lazy_worker> granted;
  std::optional<error> failure;
};

}  // namespace

class sequential_init_pool final : public subject {
 public:
  explicit sequential_init_pool(pool_options opts) : options(std::move(opts)), slots(options.size) {
    totals.size = options.size;
  }
  ~sequential_init_pool() override { stop({}); }

  void start() {
    manager = std::thread([this] { run(); });
  }

  result<response> call(std::string_view command, nlohmann::json args,
                        const call_options& co) override;
  bool wait_ready(deadline until) override;
  pool_stats stats() const override;
  void stop(const stop_options& so) override;

 private:
  // --- the manager thread ------------------------------------------------------------------
  void run();
  void start_one(std::size_t slot);
  void shutdown_workers();

  // --- helpers, REQUIRES: mutex held -------------------------------------------------------
  // One start per waiting caller that no start in progress will serve, within size.
  void demand_starts();
  // A free worker goes to the longest waiter, else onto the idle stack.
  void release_worker(const std::shared_ptr<lazy_worker>& w, std::string_view cause);
  // `exit` marks a planned departure; the worker's later events keep it.
  void set_state(lazy_worker& w, worker_state to, std::string_view cause,
                 exit_kind exit = exit_kind::none);
  // Kills and reaps the worker and empties its slot.
  void retire(lazy_worker& w, const std::string& cause, exit_kind exit = exit_kind::none);
  void fail_waiters(const error& e);
  std::size_t occupied_slots() const;

  connection_options connection_settings() const {
    return {.max_frame_bytes = options.max_frame_bytes,
            .stderr_tail_bytes = options.stderr_tail_bytes};
  }
  void emit(const request_timeline& t) const {
    if (options.observer.on_request) options.observer.on_request(t);
  }

  const pool_options options;
  mutable std::mutex mutex;
  std::condition_variable manager_cv;     // a start was wanted, or stopping
  std::condition_variable state_changed;  // starts settling, and drain progress
  std::mutex stop_mutex;                  // serialises stop() calls

  std::vector<std::shared_ptr<lazy_worker>> slots;  // null: no worker in that position
  std::vector<std::shared_ptr<lazy_worker>> idle;   // a stack: the warmest worker first
  std::list<waiter*> waiters;
  std::size_t starts_wanted = 0;  // queued for the manager
  std::size_t launching = 0;      // taken by the manager, not yet in a slot
  std::shared_ptr<lazy_worker> starting;  // the one worker being handshaken
  std::size_t busy = 0;
  bool stopping = false;
  bool stopped = false;
  std::uint64_t next_worker_id = 1;
  std::uint64_t next_request_id = 1;
  pool_stats totals;
  std::thread manager;
};

// --- callers ---------------------------------------------------------------------------------

result<response> sequential_init_pool::call(std::string_view command, nlohmann::json args,
                                                  const call_options& co) {
  request_timeline timeline{{.t_submit = monotonic_ns()}};
  const deadline checkout_deadline =
      co.checkout_deadline.value_or(std::chrono::steady_clock::now() + options.checkout_timeout);
  std::unique_lock lock(mutex);
  auto finish = [&](error e) -> result<response> {
    if (lock.owns_lock()) lock.unlock();
    timeline.t_reply = monotonic_ns();
    timeline.outcome = e.code;
    emit(timeline);
    return e;
  };
  if (stopping) return finish(error{errc::pool_stopped, "the pool is stopped"});
  timeline.request_id = next_request_id++;
  ++totals.calls;

  std::shared_ptr<lazy_worker> w;
  if (!idle.empty()) {
    w = std::move(idle.back());
    idle.pop_back();
    set_state(*w, worker_state::busy, "checkout");
    ++busy;
  } else {
    if (options.max_queue != 0 && waiters.size() >= options.max_queue) {
      ++totals.failures;
      return finish(error{errc::queue_full,
                          fmt::format("{} callers are already waiting", waiters.size())});
    }
    waiter me;
    auto position = waiters.insert(waiters.end(), &me);
    demand_starts();
    while (!me.granted && !me.failure) {
      if (me.cv.wait_until(lock, checkout_deadline) == std::cv_status::timeout) break;
    }
    if (!me.granted && !me.failure) {
      waiters.erase(position);
      me.failure = error{errc::checkout_timeout,
                         fmt::format("no worker became free within {:.1f} ms",
                                     (monotonic_ns() - timeline.t_submit) / 1e6)};
    }
    if (!me.granted) {
      ++totals.failures;
      return finish(std::move(*me.failure));
    }
    w = std::move(me.granted);
  }
  timeline.worker = w->id;
  timeline.t_checkout = monotonic_ns();
  lock.unlock();

  const deadline reply_deadline = co.reply_deadline.value_or(
      std::chrono::steady_clock::now() + options.request_timeout);
  const request req{.id = timeline.request_id, .command = std::string(command),
                    .args = std::move(args)};
  auto reply = w->conn.call(req, reply_deadline, &timeline.t_sent);
  timeline.t_reply = monotonic_ns();
  if (reply) {
    timeline.t_worker_recv = reply->t_recv_ns;
    timeline.t_worker_done = reply->t_done_ns;
  }

  lock.lock();
  --busy;
  if (!reply) {
    ++totals.failures;
    ++totals.workers_lost;
    error e = std::move(reply).error();
    retire(*w, fmt::format("{}: {}", to_string(e.code), e.message));
    demand_starts();
    if (stopping && is_worker_fault(e.code)) {
      e = error{errc::pool_stopped, "the pool stopped during the request: " + e.message};
    }
    state_changed.notify_all();
    lock.unlock();
    timeline.outcome = e.code;
    emit(timeline);
    return e;
  }
  release_worker(w, "free");
  state_changed.notify_all();
  if (!reply->ok) {
    ++totals.worker_errors;
    lock.unlock();
    timeline.outcome = errc::worker_error;
    emit(timeline);
    return error{errc::worker_error, reply->failure.message, reply->failure.type};
  }
  ++totals.calls_ok;
  lock.unlock();
  emit(timeline);
  return reply;
}

bool sequential_init_pool::wait_ready(deadline until) {
  std::unique_lock lock(mutex);
  return state_changed.wait_until(lock, until, [&] {
    return stopping || (starts_wanted == 0 && launching == 0 && !starting);
  }) && !stopping;
}

pool_stats sequential_init_pool::stats() const {
  std::lock_guard lock(mutex);
  pool_stats s = totals;
  s.waiting_callers = waiters.size();
  s.pending = starts_wanted + launching;
  for (const auto& w : slots) {
    if (w) count_worker(s, w->state);
  }
  return s;
}

void sequential_init_pool::stop(const stop_options& so) {
  std::lock_guard serialise(stop_mutex);
  std::unique_lock lock(mutex);
  if (stopped) return;
  stopping = true;
  fail_waiters(error{errc::pool_stopped, "the pool is stopping"});
  starts_wanted = 0;
  manager_cv.notify_all();
  // A start in progress would hold the manager for up to start_timeout + init_timeout.
  if (starting) starting->conn.process().signal_group(SIGKILL);
  state_changed.wait_until(lock, deadline_after(so.drain_timeout), [&] { return busy == 0; });
  if (busy != 0) {
    // Past the drain deadline: kill the workers; their callers see the fault, give them back
    // and get pool_stopped.
    for (const auto& w : slots) {
      if (w && w->state == worker_state::busy) w->conn.process().signal_group(SIGKILL);
    }
    state_changed.wait_for(lock, std::chrono::seconds(10), [&] { return busy == 0; });
  }
  stopped = true;
  lock.unlock();
  if (manager.joinable()) manager.join();
}

// --- the manager thread ------------------------------------------------------------------------

void sequential_init_pool::run() {
  while (true) {
    std::size_t slot = 0;
    {
      std::unique_lock lock(mutex);
      manager_cv.wait(lock, [&] { return stopping || starts_wanted > 0; });
      if (stopping) break;
      --starts_wanted;
      // demand_starts keeps a slot free for every wanted start.
      while (slot < slots.size() && slots[slot]) ++slot;
      if (slot == slots.size()) continue;
      ++launching;
    }
    start_one(slot);
  }
  shutdown_workers();
}

// Spawn, handshake, and only then return for the next start: the serialisation this pool
// exists to show.
void sequential_init_pool::start_one(std::size_t slot) {
  auto conn = worker_connection::start(options.worker, connection_settings());
  std::unique_lock lock(mutex);
  --launching;
  std::string failure;
  std::shared_ptr<lazy_worker> w;
  if (!conn) {
    failure = conn.error().message;
  } else {
    w = std::make_shared<lazy_worker>(next_worker_id++, slot, std::move(*conn));
    slots[slot] = w;
    set_state(*w, worker_state::starting, "spawned");
    if (stopping) {
      retire(*w, "pool stopping during start-up", exit_kind::planned_stop);
      state_changed.notify_all();
      return;
    }
    starting = w;
    lock.unlock();
    const deadline until(std::chrono::nanoseconds(w->conn.process().t_spawn_ns()) +
                         options.start_timeout + options.init_timeout);
    auto hello = w->conn.handshake(options.init_args, until);
    lock.lock();
    starting.reset();
    if (hello) {
      w->t_main_ns = hello->t_main_ns;
      w->t_init_done_ns = hello->t_init_done_ns;
      ++totals.starts;
      set_state(*w, worker_state::idle, "init done");
      if (stopping) {
        idle.push_back(w);  // shutdown_workers stops it
      } else {
        release_worker(w, "init done");
      }
      state_changed.notify_all();
      return;
    }
    failure = hello.error().message;
  }
  if (stopping) {
    if (w) retire(*w, "pool stopping during start-up: " + failure, exit_kind::planned_stop);
    state_changed.notify_all();
    return;
  }
  ++totals.failed_starts;
  if (w) retire(*w, "start failed: " + failure);
  // No retry loop: the start was for the longest waiter, and that caller learns why.
  if (!waiters.empty()) {
    waiter* oldest = waiters.front();
    waiters.pop_front();
    oldest->failure = error{errc::start_failed, failure};
    oldest->cv.notify_one();
  }
  state_changed.notify_all();
}

void sequential_init_pool::shutdown_workers() {
  std::vector<std::shared_ptr<lazy_worker>> live;
  {
    std::lock_guard lock(mutex);
    idle.clear();
    for (const auto& w : slots) {
      // Still busy after stop's kill: its caller is doing I/O on it and retires it; failing
      // that, the kernel kills it when this thread exits (PR_SET_PDEATHSIG).
      if (!w || w->state == worker_state::busy) continue;
      set_state(*w, worker_state::stopping, "pool stopping", exit_kind::planned_stop);
      w->conn.process().close_stdin();  // all at once, so they exit together
      live.push_back(w);
    }
  }
  std::vector<exit_status> statuses;
  for (const auto& w : live) statuses.push_back(w->conn.process().stop(options.worker_stop));
  std::lock_guard lock(mutex);
  for (std::size_t i = 0; i < live.size(); ++i) {
    set_state(*live[i], worker_state::exited, statuses[i].describe());
    slots[live[i]->slot].reset();
  }
  state_changed.notify_all();
}

// --- helpers -----------------------------------------------------------------------------------

void sequential_init_pool::demand_starts() {
  if (stopping) return;
  const std::size_t in_progress = starts_wanted + launching + (starting ? 1 : 0);
  std::size_t wanted = waiters.size() > in_progress ? waiters.size() - in_progress : 0;
  while (wanted > 0 && occupied_slots() + starts_wanted + launching < options.size) {
    ++starts_wanted;
    --wanted;
  }
  manager_cv.notify_one();
}

void sequential_init_pool::release_worker(const std::shared_ptr<lazy_worker>& w,
                                                std::string_view cause) {
  if (!waiters.empty()) {
    waiter* wt = waiters.front();
    waiters.pop_front();
    set_state(*w, worker_state::busy, "handed to a waiting caller");
    ++busy;
    wt->granted = w;
    wt->cv.notify_one();
    return;
  }
  if (w->state != worker_state::idle) set_state(*w, worker_state::idle, cause);
  idle.push_back(w);
}

void sequential_init_pool::set_state(lazy_worker& w, worker_state to, std::string_view cause,
                                exit_kind exit) {
  w.set_state(to, cause, exit, options.observer);
}

void sequential_init_pool::retire(lazy_worker& w, const std::string& cause, exit_kind exit) {
  w.conn.process().kill();
  set_state(w, worker_state::exited, cause, exit);
  if (slots[w.slot].get() == &w) slots[w.slot].reset();
}

void sequential_init_pool::fail_waiters(const error& e) {
  for (waiter* wt : waiters) {
    wt->failure = e;
    wt->cv.notify_one();
  }
  waiters.clear();
}

std::size_t sequential_init_pool::occupied_slots() const {
  std::size_t n = 0;
  for (const auto& w : slots) n += w ? 1 : 0;
  return n;
}

// --- the public surface ------------------------------------------------------------------------

result<std::unique_ptr<subject>> make_sequential_init_pool(pool_options options) {
  if (auto valid = procpool::validate(options); !valid) return std::move(valid).error();
  auto pool = std::make_unique<sequential_init_pool>(std::move(options));
  pool->start();
  return std::unique_ptr<subject>(std::move(pool));
}

}  // namespace procpool::harness
