// serial_manager_pool: every request is a message to one manager thread, which owns all the
// workers and does each round trip itself. Callers never touch a worker.
#include <csignal>
#include <condition_variable>
#include <deque>
#include <mutex>
#include <thread>
#include <vector>

#include <fmt/format.h>

#include "procpool/wire/worker_connection.hpp"
#include "subjects/reference_pools.hpp"
#include "subjects/reference_worker.hpp"

namespace procpool::harness {

namespace {

// Only the manager thread does a worker's I/O; others may only signal its group, under the
// lock.
using managed_worker = reference_worker;

// One call, living on its caller's stack until `done` (or until the caller withdraws it
// from the queue).
struct job {
  std::string command;
  nlohmann::json args;
  deadline checkout_deadline;
  std::optional<deadline> reply_deadline;
  request_timeline timeline;
  bool taken = false;  // the manager has popped it: the caller must wait for `done`
  bool done = false;
  std::optional<result<response>> outcome;
  std::condition_variable cv;
};

}  // namespace

class serial_manager_pool final : public subject {
 public:
  explicit serial_manager_pool(pool_options opts) : options(std::move(opts)), slots(options.size) {
    totals.size = options.size;
  }
  ~serial_manager_pool() override { stop({}); }

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
  void fill();
  void serve(job& j);
  managed_worker* take_worker();
  managed_worker* launch(std::size_t slot);
  bool complete_start(managed_worker& w);
  managed_worker* start_on_demand();
  void shutdown_workers();

  // --- helpers, REQUIRES: mutex held -------------------------------------------------------
  managed_worker* next_idle();
  // `exit` marks a planned departure; the worker's later events keep it.
  void set_state(managed_worker& w, worker_state to, std::string_view cause,
                 exit_kind exit = exit_kind::none);
  // Kills and reaps the worker and empties its slot.
  void retire(managed_worker& w, const std::string& cause, exit_kind exit = exit_kind::none);
  void start_failed(managed_worker* w, const std::string& message);
  void complete(job& j, result<response> r);
  void fail_before_checkout(job& j, bool no_worker);
  // A failed round trip retires the worker: `w` may be gone when this returns.
  void settle(job& j, managed_worker& w, result<response>&& reply);
  std::size_t ready_count() const;

  deadline start_deadline(const managed_worker& w) const {
    return deadline(std::chrono::nanoseconds(w.conn.process().t_spawn_ns()) +
                    options.start_timeout + options.init_timeout);
  }
  connection_options connection_settings() const {
    return {.max_frame_bytes = options.max_frame_bytes,
            .stderr_tail_bytes = options.stderr_tail_bytes};
  }
  void emit(const request_timeline& t) const {
    if (options.observer.on_request) options.observer.on_request(t);
  }

  const pool_options options;
  mutable std::mutex mutex;
  std::condition_variable manager_cv;     // a job arrived, or stopping
  std::condition_variable state_changed;  // readiness, and the in-flight job finishing
  std::mutex stop_mutex;                  // serialises stop() calls

  std::deque<job*> queue;
  job* in_flight = nullptr;
  // Replaced only by the manager thread, under the lock; so the manager reads it unlocked.
  std::vector<std::unique_ptr<managed_worker>> slots;
  std::size_t next_slot = 0;  // round robin: spreads the serial requests over all workers
  bool stopping = false;
  bool stopped = false;
  bool last_start_failed = false;
  std::string last_start_failure;
  std::uint64_t next_worker_id = 1;
  std::uint64_t next_request_id = 1;
  pool_stats totals;
  std::thread manager;
};

// --- callers ---------------------------------------------------------------------------------

result<response> serial_manager_pool::call(std::string_view command, nlohmann::json args,
                                                 const call_options& co) {
  job j;
  j.timeline.t_submit = monotonic_ns();
  std::unique_lock lock(mutex);
  auto finish = [&](error e) -> result<response> {
    lock.unlock();
    j.timeline.t_reply = monotonic_ns();
    j.timeline.outcome = e.code;
    emit(j.timeline);
    return e;
  };
  if (stopping) return finish(error{errc::pool_stopped, "the pool is stopped"});
  j.timeline.request_id = next_request_id++;
  ++totals.calls;
  if (options.max_queue != 0 && queue.size() >= options.max_queue) {
    ++totals.failures;
    return finish(error{errc::queue_full,
                        fmt::format("{} requests are already queued for the manager", queue.size())});
  }
  j.command = std::string(command);
  j.args = std::move(args);
  j.checkout_deadline =
      co.checkout_deadline.value_or(std::chrono::steady_clock::now() + options.checkout_timeout);
  j.reply_deadline = co.reply_deadline;
  queue.push_back(&j);
  manager_cv.notify_one();

  while (!j.done) {
    if (j.taken) {
      j.cv.wait(lock);  // the manager bounds the rest with the reply deadline
      continue;
    }
    if (j.cv.wait_until(lock, j.checkout_deadline) == std::cv_status::timeout && !j.taken &&
        !j.done) {
      std::erase(queue, &j);
      ++totals.failures;
      return finish(error{errc::checkout_timeout,
                          fmt::format("the manager did not take the request within {:.1f} ms",
                                      (monotonic_ns() - j.timeline.t_submit) / 1e6)});
    }
  }
  result<response> r = std::move(*j.outcome);
  lock.unlock();
  j.timeline.outcome = r ? std::nullopt : std::optional<errc>(r.error().code);
  emit(j.timeline);
  return r;
}

bool serial_manager_pool::wait_ready(deadline until) {
  std::unique_lock lock(mutex);
  return state_changed.wait_until(lock, until, [&] {
    return stopping || last_start_failed || ready_count() == options.size;
  }) && !stopping && ready_count() == options.size;
}

pool_stats serial_manager_pool::stats() const {
  std::lock_guard lock(mutex);
  pool_stats s = totals;
  s.waiting_callers = queue.size();
  for (const auto& w : slots) {
    if (!w || w->state == worker_state::pending) {
      ++s.pending;
    } else {
      count_worker(s, w->state);
    }
  }
  return s;
}

void serial_manager_pool::stop(const stop_options& so) {
  std::lock_guard serialise(stop_mutex);
  std::unique_lock lock(mutex);
  if (stopped) return;
  stopping = true;
  for (job* j : queue) {
    ++totals.failures;
    j->timeline.t_reply = monotonic_ns();
    complete(*j, error{errc::pool_stopped, "the pool is stopping"});
  }
  queue.clear();
  manager_cv.notify_all();
  // A start in progress would hold the manager for up to start_timeout + init_timeout.
  for (const auto& w : slots) {
    if (w && w->state == worker_state::starting) w->conn.process().signal_group(SIGKILL);
  }
  state_changed.wait_until(lock, deadline_after(so.drain_timeout),
                           [&] { return in_flight == nullptr; });
  if (in_flight != nullptr) {
    for (const auto& w : slots) {
      if (w && w->state == worker_state::busy) w->conn.process().signal_group(SIGKILL);
    }
  }
  stopped = true;
  state_changed.notify_all();
  lock.unlock();
  if (manager.joinable()) manager.join();
}

// --- the manager thread ------------------------------------------------------------------------

void serial_manager_pool::run() {
  fill();
  while (true) {
    job* j = nullptr;
    {
      std::unique_lock lock(mutex);
      manager_cv.wait(lock, [&] { return stopping || !queue.empty(); });
      if (stopping) break;
      j = queue.front();
      queue.pop_front();
      j->taken = true;
      in_flight = j;
    }
    serve(*j);
  }
  shutdown_workers();
}

// Spawns every worker first, then completes the handshakes in slot order: the workers
// initialise concurrently, only the waiting is serial.
void serial_manager_pool::fill() {
  std::vector<managed_worker*> launched;
  for (std::size_t i = 0; i < slots.size(); ++i) {
    if (managed_worker* w = launch(i)) launched.push_back(w);
  }
  for (managed_worker* w : launched) complete_start(*w);
}

managed_worker* serial_manager_pool::launch(std::size_t slot) {
  {
    std::lock_guard lock(mutex);
    if (stopping) return nullptr;
  }
  auto conn = worker_connection::start(options.worker, connection_settings());
  std::lock_guard lock(mutex);
  if (!conn) {
    start_failed(nullptr, conn.error().message);
    return nullptr;
  }
  slots[slot] = std::make_unique<managed_worker>(next_worker_id++, slot, std::move(*conn));
  managed_worker& w = *slots[slot];
  set_state(w, worker_state::starting, "spawned");
  if (stopping) {
    retire(w, "pool stopping during start-up", exit_kind::planned_stop);
    return nullptr;
  }
  if (auto sent = w.conn.send_init(options.init_args, start_deadline(w)); !sent) {
    start_failed(&w, sent.error().message);
    return nullptr;
  }
  return &w;
}

bool serial_manager_pool::complete_start(managed_worker& w) {
  auto payload = w.conn.receive_payload(start_deadline(w));
  auto hello = payload ? w.conn.finish_init(*payload)
                       : result<init_reply>(error{
                             errc::start_failed,
                             fmt::format("init handshake failed ({}): {}",
                                         to_string(payload.error().code), payload.error().message)});
  std::lock_guard lock(mutex);
  if (!hello) {
    start_failed(&w, hello.error().message);
    return false;
  }
  w.t_main_ns = hello->t_main_ns;
  w.t_init_done_ns = hello->t_init_done_ns;
  ++totals.starts;
  last_start_failed = false;
  set_state(w, worker_state::idle, "init done");
  state_changed.notify_all();
  return true;
}

// No worker is alive: start the empty slots one by one until one is ready.
managed_worker* serial_manager_pool::start_on_demand() {
  for (std::size_t i = 0; i < slots.size(); ++i) {
    if (slots[i]) continue;
    managed_worker* w = launch(i);
    if (w && complete_start(*w)) return w;
  }
  return nullptr;
}

managed_worker* serial_manager_pool::take_worker() {
  managed_worker* w = nullptr;
  {
    std::lock_guard lock(mutex);
    w = next_idle();
  }
  if (!w) w = start_on_demand();
  return w;
}

void serial_manager_pool::serve(job& j) {
  managed_worker* w = take_worker();
  std::unique_lock lock(mutex);
  if (!w || std::chrono::steady_clock::now() > j.checkout_deadline) {
    fail_before_checkout(j, !w);
    return;
  }
  set_state(*w, worker_state::busy, "checkout");
  j.timeline.worker = w->id;
  j.timeline.t_checkout = monotonic_ns();
  lock.unlock();

  // The round trip, on the manager thread: every other request waits for it.
  const deadline reply_deadline = j.reply_deadline.value_or(
      std::chrono::steady_clock::now() + options.request_timeout);
  const request req{.id = j.timeline.request_id, .command = std::move(j.command),
                    .args = std::move(j.args)};
  std::int64_t t_sent = 0;
  auto reply = w->conn.call(req, reply_deadline, &t_sent);
  const std::int64_t t_reply = monotonic_ns();

  lock.lock();
  j.timeline.t_sent = t_sent;
  j.timeline.t_reply = t_reply;
  if (reply) {
    j.timeline.t_worker_recv = reply->t_recv_ns;
    j.timeline.t_worker_done = reply->t_done_ns;
  }
  const std::size_t slot = w->slot;
  settle(j, *w, std::move(reply));
  const bool replace = !slots[slot] && !stopping;
  lock.unlock();
  // The replacement starts before the next request is taken: the queue waits for it too.
  if (replace) {
    if (managed_worker* fresh = launch(slot)) complete_start(*fresh);
  }
}

void serial_manager_pool::fail_before_checkout(job& j, bool no_worker) {
  ++totals.failures;
  j.timeline.t_reply = monotonic_ns();
  if (stopping) {
    complete(j, error{errc::pool_stopped, "the pool is stopping"});
  } else if (no_worker) {
    complete(j, error{errc::start_failed, "no worker could be started: " + last_start_failure});
  } else {
    complete(j, error{errc::checkout_timeout,
                      fmt::format("the manager took the request after {:.1f} ms, past its "
                                  "checkout deadline",
                                  (monotonic_ns() - j.timeline.t_submit) / 1e6)});
  }
}

void serial_manager_pool::settle(job& j, managed_worker& w, result<response>&& reply) {
  if (!reply) {
    ++totals.failures;
    ++totals.workers_lost;
    error e = std::move(reply).error();
    retire(w, fmt::format("{}: {}", to_string(e.code), e.message));
    if (stopping && is_worker_fault(e.code)) {
      e = error{errc::pool_stopped, "the pool stopped during the request: " + e.message};
    }
    complete(j, std::move(e));
  } else {
    set_state(w, worker_state::idle, "free");
    if (!reply->ok) {
      ++totals.worker_errors;
      complete(j, error{errc::worker_error, reply->failure.message, reply->failure.type});
    } else {
      ++totals.calls_ok;
      complete(j, std::move(reply));
    }
  }
}

void serial_manager_pool::shutdown_workers() {
  std::vector<managed_worker*> live;
  {
    std::lock_guard lock(mutex);
    for (const auto& w : slots) {
      if (!w) continue;
      set_state(*w, worker_state::stopping, "pool stopping", exit_kind::planned_stop);
      w->conn.process().close_stdin();  // all at once, so they exit together
      live.push_back(w.get());
    }
  }
  std::vector<exit_status> statuses;
  for (managed_worker* w : live) statuses.push_back(w->conn.process().stop(options.worker_stop));
  std::lock_guard lock(mutex);
  for (std::size_t i = 0; i < live.size(); ++i) {
    const std::size_t slot = live[i]->slot;
    set_state(*live[i], worker_state::exited, statuses[i].describe());
    slots[slot].reset();
  }
  state_changed.notify_all();
}

// --- helpers -----------------------------------------------------------------------------------

managed_worker* serial_manager_pool::next_idle() {
  for (std::size_t k = 0; k < slots.size(); ++k) {
    const std::size_t i = (next_slot + k) % slots.size();
    if (slots[i] && slots[i]->state == worker_state::idle) {
      next_slot = i + 1;
      return slots[i].get();
    }
  }
  return nullptr;
}

void serial_manager_pool::set_state(managed_worker& w, worker_state to, std::string_view cause,
                                exit_kind exit) {
  w.set_state(to, cause, exit, options.observer);
}

void serial_manager_pool::retire(managed_worker& w, const std::string& cause, exit_kind exit) {
  w.conn.process().kill();
  set_state(w, worker_state::exited, cause, exit);
  slots[w.slot].reset();
  state_changed.notify_all();
}

void serial_manager_pool::start_failed(managed_worker* w, const std::string& message) {
  if (!stopping) {
    ++totals.failed_starts;
    last_start_failed = true;
    last_start_failure = message;
  }
  if (w) {
    retire(*w, (stopping ? "pool stopping during start-up: " : "start failed: ") + message,
           stopping ? exit_kind::planned_stop : exit_kind::none);
  }
  state_changed.notify_all();
}

void serial_manager_pool::complete(job& j, result<response> r) {
  j.outcome.emplace(std::move(r));
  j.done = true;
  if (in_flight == &j) in_flight = nullptr;
  // Under the lock: the caller cannot wake and destroy `j` before this returns.
  j.cv.notify_one();
  state_changed.notify_all();
}

std::size_t serial_manager_pool::ready_count() const {
  std::size_t n = 0;
  for (const auto& w : slots) {
    if (w && (w->state == worker_state::idle || w->state == worker_state::busy)) ++n;
  }
  return n;
}

// --- the public surface ------------------------------------------------------------------------

result<std::unique_ptr<subject>> make_serial_manager_pool(pool_options options) {
  if (auto valid = procpool::validate(options); !valid) return std::move(valid).error();
  auto pool = std::make_unique<serial_manager_pool>(std::move(options));
  pool->start();
  return std::unique_ptr<subject>(std::move(pool));
}

}  // namespace procpool::harness
