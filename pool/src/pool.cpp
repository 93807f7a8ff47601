// The pool's public surface, its shared helpers, and creation-time checks.
#include <sys/resource.h>

#include <algorithm>
#include <thread>

#include <fmt/format.h>

#include "pool_dispatcher.hpp"
#include "pool_impl.hpp"
#include "procpool/worker_lease.hpp"

namespace procpool {
namespace {

// Descriptors one worker costs the pool: stdin, stdout, stderr and pidfd, the supervisor's
// duplicates of stderr and pidfd, and one transient stdout duplicate during handshakes.
constexpr rlim_t descriptors_per_worker = 7;
constexpr rlim_t descriptor_headroom = 64;

error invalid(std::string message) { return error{errc::invalid_options, std::move(message)}; }

}  // namespace

result<void> validate(const pool_options& o) {
  if (o.worker.argv.empty()) return invalid("worker.argv is empty: no worker command");
  if (o.size == 0) return invalid("size must be at least 1");
  if (!o.init_args.is_object()) return invalid("init_args must be a JSON object");
  if (o.start_timeout.count() <= 0) return invalid("start_timeout must be positive");
  if (o.init_timeout.count() < 0) return invalid("init_timeout must not be negative");
  if (o.checkout_timeout.count() < 0) return invalid("checkout_timeout must not be negative");
  if (o.request_timeout.count() <= 0) return invalid("request_timeout must be positive");
  if (o.ping_timeout.count() <= 0) return invalid("ping_timeout must be positive");
  if (o.restart_backoff_initial.count() < 0 ||
      o.restart_backoff_max < o.restart_backoff_initial) {
    return invalid("restart_backoff_max must be >= restart_backoff_initial >= 0");
  }
  if (o.crash_loop_failures == 0) return invalid("crash_loop_failures must be at least 1");
  if (o.rss_check_every == 0) return invalid("rss_check_every must be at least 1");
  if (o.max_frame_bytes < 64) return invalid("max_frame_bytes must be at least 64");
  if (o.pipeline_depth == 0 || o.pipeline_depth > 1024) {
    return invalid("pipeline_depth must be between 1 and 1024");
  }
  return {};
}

namespace {

// Raises the soft RLIMIT_NOFILE when the pool needs more descriptors than it allows.
std::optional<error> ensure_descriptors(std::size_t size) {
  const rlim_t needed = static_cast<rlim_t>(size) * descriptors_per_worker + descriptor_headroom;
  rlimit limit{};
  if (::getrlimit(RLIMIT_NOFILE, &limit) != 0) return std::nullopt;
  if (limit.rlim_cur != RLIM_INFINITY && limit.rlim_cur < needed) {
    if (limit.rlim_max != RLIM_INFINITY && limit.rlim_max < needed) {
      return invalid(fmt::format(
          "a pool of {} workers needs about {} file descriptors but RLIMIT_NOFILE's hard limit "
          "is {}; raise it (ulimit -Hn) or use fewer workers", size, needed, limit.rlim_max));
    }
    limit.rlim_cur = needed;
    if (::setrlimit(RLIMIT_NOFILE, &limit) != 0) {
      return invalid(fmt::format("a pool of {} workers needs about {} file descriptors and "
                                 "RLIMIT_NOFILE could not be raised", size, needed));
    }
  }
  return std::nullopt;
}

}  // namespace

std::string_view to_string(worker_state s) noexcept {
  switch (s) {
    case worker_state::pending: return "pending";
    case worker_state::starting: return "starting";
    case worker_state::idle: return "idle";
    case worker_state::busy: return "busy";
    case worker_state::pinging: return "pinging";
    case worker_state::stopping: return "stopping";
    case worker_state::exited: return "exited";
  }
  return "unknown";
}

std::string_view to_string(ready_state s) noexcept {
  switch (s) {
    case ready_state::ready: return "ready";
    case ready_state::timed_out: return "timed_out";
    case ready_state::degraded: return "degraded";
    case ready_state::stopped: return "stopped";
  }
  return "unknown";
}

std::string_view to_string(exit_kind k) noexcept {
  switch (k) {
    case exit_kind::none: return "none";
    case exit_kind::planned_stop: return "planned_stop";
    case exit_kind::recycled: return "recycled";
    case exit_kind::fault: return "fault";
  }
  return "unknown";
}

std::string_view to_string(worker_role r) noexcept {
  switch (r) {
    case worker_role::worker: return "worker";
    case worker_role::zygote_template: return "zygote_template";
  }
  return "unknown";
}

std::optional<worker_role> worker_role_from_string(std::string_view name) noexcept {
  for (auto r : {worker_role::worker, worker_role::zygote_template}) {
    if (to_string(r) == name) return r;
  }
  return std::nullopt;
}

std::optional<worker_state> worker_state_from_string(std::string_view name) noexcept {
  for (auto s : {worker_state::pending, worker_state::starting, worker_state::idle,
                 worker_state::busy, worker_state::pinging, worker_state::stopping,
                 worker_state::exited}) {
    if (to_string(s) == name) return s;
  }
  return std::nullopt;
}

worker_event make_worker_event(const worker_facts& w, worker_state from, worker_state to,
                               std::string_view cause, exit_kind exit) {
  const bool leaving = to == worker_state::stopping || to == worker_state::exited;
  if (!leaving) {
    exit = exit_kind::none;
  } else if (exit == exit_kind::none) {
    exit = exit_kind::fault;
  }
  return {.t_ns = monotonic_ns(),
          .worker = w.worker,
          .slot = w.slot,
          .from = from,
          .to = to,
          .cause = std::string(cause),
          .t_spawn_ns = w.t_spawn_ns,
          .t_main_ns = w.t_main_ns,
          .t_init_done_ns = w.t_init_done_ns,
          .pid = w.pid,
          .exit = exit,
          .role = w.role};
}

// --- pool ------------------------------------------------------------------------------

result<pool> pool::create(pool_options options) {
  if (auto valid = validate(options); !valid) return std::move(valid).error();
  if (auto problem = ensure_descriptors(options.size)) return *problem;
  if (options.max_concurrent_starts == 0) {
    options.max_concurrent_starts = std::max(1u, std::thread::hardware_concurrency());
  }
  auto state = std::make_unique<impl>(std::move(options));
  state->sup->start();
  return pool(std::move(state));
}

pool::pool(std::unique_ptr<impl> impl) : impl_(std::move(impl)) {}
pool::pool(pool&&) noexcept = default;
pool& pool::operator=(pool&& other) noexcept {
  if (this != &other) {
    if (impl_) impl_->stop({});
    impl_ = std::move(other.impl_);
  }
  return *this;
}
pool::~pool() {
  if (impl_) impl_->stop({});
}

result<reply> pool::call(std::string_view command, const nlohmann::json& args,
                         const call_options& options) {
  if (!impl_) return error{errc::pool_stopped, "the pool was moved from"};
  return impl_->call(command, args, options);
}

result<worker_lease> pool::checkout(const call_options& options) {
  if (!impl_) return error{errc::pool_stopped, "the pool was moved from"};
  const std::int64_t t_submit = monotonic_ns();
  auto w = impl_->acquire(options, t_submit, impl::checkout_for::lease);
  if (!w) return std::move(w).error();
  return worker_lease(impl_.get(), std::move(*w), monotonic_ns());
}

ready_state pool::wait_ready(deadline until) {
  return impl_ ? impl_->wait_ready(until) : ready_state::stopped;
}

reply_future pool::submit(std::string_view command, const nlohmann::json& args,
                          const call_options& options) {
  std::uint64_t id = 0;
  if (!impl_) {
    auto* state = new detail::pending_request();
    state->claim_outcome();
    state->deliver(error{errc::pool_stopped, "the pool was moved from"});
    state->release();
    return reply_future(state);
  }
  return impl_->submit(command, args, options, nullptr, id);
}

std::uint64_t pool::submit(std::string_view command, const nlohmann::json& args,
                           const call_options& options, completion done) {
  if (!impl_) {
    if (done) done(error{errc::pool_stopped, "the pool was moved from"});
    return 0;
  }
  std::uint64_t id = 0;
  impl_->submit(command, args, options, std::move(done), id);
  return id;
}

pool_stats pool::stats() const { return impl_ ? impl_->stats() : pool_stats{}; }

std::vector<worker_memory> pool::workers_memory() const {
  std::vector<worker_memory> out;
  if (!impl_) return out;
  {
    std::lock_guard lock(impl_->mutex);
    for (const auto& [id, w] : impl_->live) {
      out.push_back({.worker = id, .pid = w->conn.process().pid(), .memory = {}});
    }
  }
  // Read without the lock: callers keep checking out meanwhile.
  std::vector<worker_memory> read;
  for (auto& w : out) {
    if (auto m = read_smaps_rollup(w.pid)) {
      w.memory = *m;
      read.push_back(w);
    }
  }
  return read;
}

void pool::stop(const stop_options& options) {
  if (impl_) impl_->stop(options);
}

// --- impl ------------------------------------------------------------------------------

pool::impl::impl(pool_options opts)
    : options(std::move(opts)),
      slots(options.size),
      rng(options.seed),
      parking_allowed(!options.observer.on_worker_event) {
  if (options.prewarm != prewarm_mode::none) {
    for (std::size_t i = 0; i < slots.size(); ++i) {
      slots[i].wanted = true;
      slots[i].queued = true;
      pending_slots.push_back(i);
    }
  }
  sup = std::make_unique<supervisor>(*this);
}

pool::impl::~impl() { stop({}); }

ready_state pool::impl::wait_ready(deadline until) {
  std::unique_lock lock(mutex);
  const bool settled = state_changed.wait_until(lock, until, [&] {
    return stopping || degraded || idle.size() + busy == options.size;
  });
  if (stopping) return ready_state::stopped;
  if (degraded) return ready_state::degraded;
  return settled ? ready_state::ready : ready_state::timed_out;
}

pool_stats pool::impl::stats() const {
  std::lock_guard lock(mutex);
  pool_stats s;
  s.size = options.size;
  s.calls_ok = totals.calls_ok.load();
  s.worker_errors = totals.worker_errors.load();
  s.failures = totals.failures.load();
  s.calls = s.calls_ok + s.worker_errors + s.failures;
  s.starts = totals.starts;
  s.failed_starts = totals.failed_starts;
  s.workers_lost = totals.workers_lost;
  s.recycled = totals.recycled;
  s.degraded = degraded;
  s.waiting_callers = waiters.size();
  for (const auto& slot : slots) {
    if (!slot.worker) {
      if (slot.wanted) ++s.pending;
      continue;
    }
    switch (slot.worker->state) {
      case worker_state::starting: ++s.starting; break;
      case worker_state::idle: ++s.idle; break;
      case worker_state::busy:
        // A parked worker is busy in the books but free: idle to whoever reads the stats.
        ++(slot.worker->park.load() == park_state::parked ? s.idle : s.busy);
        break;
      default: ++s.other; break;
    }
  }
  if (const auto* d = dispatcher_ready.load(std::memory_order_acquire)) {
    s.queued = d->queued();
    s.in_flight = d->in_flight();
  }
  return s;
}

void pool::impl::stop(const stop_options& so) {
  {
    std::unique_lock lock(mutex);
    if (stopped) return;
    if (!stopping) {
      stopping = true;
      fail_waiters(error{errc::pool_stopped, "the pool is stopping"});
      // After `stopping` is set, so that a caller parking now sees it (pool_parking.cpp).
      recall_parked();
      state_changed.notify_all();
    }
    // In-flight calls may finish; past the drain deadline their workers are killed.
    const deadline drain = deadline_after(so.drain_timeout);
    if (disp) disp->begin_stop(drain);
    state_changed.wait_until(lock, drain, [&] { return busy == 0; });
    stopped = true;
  }
  // Every submitted request has its outcome once the dispatcher ends: it fails what is
  // queued at once and kills the workers of what is written at the drain deadline.
  if (disp) disp->join();
  sup->shutdown();
}

void pool::impl::set_state(pool_worker& w, worker_state to, std::string_view cause, exit_kind exit) {
  const worker_state from = w.state;
  w.state = to;
  if (exit != exit_kind::none) w.leaving = exit;
  if (options.observer.on_worker_event) {
    options.observer.on_worker_event(make_worker_event({.worker = w.id,
                                                        .slot = w.slot,
                                                        .pid = w.conn.process().pid(),
                                                        .t_spawn_ns = w.t_spawn_ns,
                                                        .t_main_ns = w.t_main_ns,
                                                        .t_init_done_ns = w.t_init_done_ns},
                                                       from, to, cause, w.leaving));
  }
}

void pool::impl::release_worker(const std::shared_ptr<pool_worker>& w, std::string_view cause,
                                std::int64_t now) {
  for (auto it = waiters.begin(); it != waiters.end(); ++it) {
    waiter* wt = *it;
    if (wt->required_worker != 0 && wt->required_worker != w->id) continue;
    waiters.erase(it);
    note_waiters();
    set_state(*w, worker_state::busy, "handed to a waiting caller");
    ++busy;
    wt->granted = w;
    wake(*wt);
    return;
  }
  set_state(*w, worker_state::idle, cause);
  w->idle_since_ns = now;
  w->idle_index = idle.size();
  idle.push_back(w);
}

void pool::impl::remove_from_idle(pool_worker& w) {
  const std::size_t i = w.idle_index;
  if (i >= idle.size() || idle[i].get() != &w) return;
  idle[i] = std::move(idle.back());
  idle[i]->idle_index = i;
  idle.pop_back();
}

void pool::impl::fail_waiters(const error& e) {
  for (waiter* wt : waiters) {
    wt->failure = e;
    wake(*wt);
  }
  waiters.clear();
  note_waiters();
}

void pool::impl::wake(waiter& wt) {
  if (wt.dispatcher) {
    wt.dispatcher->wake();
  } else {
    wt.cv.notify_one();
  }
}

bool pool::impl::want_one_more_worker() {
  for (std::size_t i = 0; i < slots.size(); ++i) {
    if (!slots[i].wanted) {
      slots[i].wanted = true;
      slots[i].queued = true;
      pending_slots.push_back(i);
      sup->pump_starts();
      return true;
    }
  }
  return false;
}

void pool::impl::forget_worker(pool_worker& w) {
  live.erase(w.id);
  // Strict waiters for this worker may now take any worker.
  for (waiter* wt : waiters) {
    if (wt->required_worker == w.id) wt->required_worker = 0;
  }
}

std::chrono::milliseconds pool::impl::backoff_for(std::uint32_t streak) const {
  if (streak == 0) return std::chrono::milliseconds(0);
  auto delay = options.restart_backoff_initial;
  for (std::uint32_t i = 1; i < streak && delay < options.restart_backoff_max; ++i) delay *= 2;
  return std::min(delay, options.restart_backoff_max);
}

void pool::impl::schedule_replacement(std::size_t slot_index, bool count_failure) {
  pool_slot& slot = slots[slot_index];
  slot.worker.reset();
  if (stopping) return;
  if (count_failure) ++slot.failure_streak;
  slot.not_before_ns = monotonic_ns() + std::chrono::nanoseconds(backoff_for(slot.failure_streak)).count();
  if (!slot.queued) {
    slot.queued = true;
    pending_slots.push_back(slot_index);
  }
}

std::size_t pool::impl::effective_start_cap() const {
  if (options.prewarm == prewarm_mode::sequential &&
      std::any_of(slots.begin(), slots.end(), [](const pool_slot& s) { return !s.ever_ready; })) {
    return 1;
  }
  return options.max_concurrent_starts;
}

std::uint64_t pool::impl::draw_recycle_at() {
  if (options.recycle_after_requests == 0) return 0;
  const std::uint64_t jitter =
      options.recycle_jitter == 0
          ? 0
          : std::uniform_int_distribution<std::uint64_t>(0, options.recycle_jitter)(rng);
  return options.recycle_after_requests + jitter;
}

}  // namespace procpool
