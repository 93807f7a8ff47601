// The request path: a caller checks a worker out, does the I/O on its own thread, and gives
// the worker back. The supervisor is only told when a worker must go.
#include <unistd.h>

#include <fstream>

#include <fmt/format.h>

#include "pending_request.hpp"
#include "pool_dispatcher.hpp"
#include "pool_impl.hpp"
#include "procpool/worker_lease.hpp"

namespace procpool {
namespace {

long resident_kib(pid_t pid) {
  std::ifstream statm("/proc/" + std::to_string(pid) + "/statm");
  long size_pages = 0, resident_pages = 0;
  if (!(statm >> size_pages >> resident_pages)) return 0;
  return resident_pages * (::sysconf(_SC_PAGESIZE) / 1024);
}

// The worker this thread used last, and in which pool. Handing it back to the same caller
// keeps each caller on its own worker, so that caller and worker stay on their CPUs and
// their caches warm; sharing one idle stack would otherwise mix them at every turn.
struct last_worker_of_thread {
  const void* pool = nullptr;
  std::uint64_t worker = 0;
};
thread_local last_worker_of_thread last_worker;

// The request ids this thread may hand out, in the pool whose serial it names.
struct request_id_block {
  std::uint64_t pool_serial = 0;
  std::uint64_t next = 0;
  std::uint64_t end = 0;
};
thread_local request_id_block request_ids;
constexpr std::uint64_t request_id_block_size = 64;

void cpu_relax() noexcept {
#if defined(__x86_64__) || defined(__i386__)
  __builtin_ia32_pause();
#endif
}

// The request path's lock. Its sections last a few hundred nanoseconds, while a caller that
// finds it taken and sleeps on the futex pays a system call, a wake-up and the holder's
// system call to wake it: ten times that. So a caller spins a little first, as glibc's
// adaptive mutexes do; only a holder that is preempted sends it to sleep.
std::unique_lock<std::mutex> lock_briefly_held(std::mutex& m) {
  constexpr int spins = 100;
  for (int i = 0; i < spins; ++i) {
    if (m.try_lock()) return std::unique_lock(m, std::adopt_lock);
    cpu_relax();
  }
  return std::unique_lock(m);
}

}  // namespace

std::uint64_t pool::impl::next_serial() {
  static std::atomic<std::uint64_t> pools_made{0};
  return pools_made.fetch_add(1, std::memory_order_relaxed) + 1;
}

std::uint64_t pool::impl::take_request_id() {
  auto& ids = request_ids;
  if (ids.pool_serial != serial || ids.next == ids.end) {
    ids.pool_serial = serial;
    ids.next = next_request_id.fetch_add(request_id_block_size, std::memory_order_relaxed);
    ids.end = ids.next + request_id_block_size;
  }
  return ids.next++;
}

result<std::shared_ptr<pool_worker>> pool::impl::acquire(const call_options& co,
                                                         std::int64_t t_submit,
                                                         checkout_for purpose) {
  const deadline checkout_deadline =
      co.checkout_deadline.value_or(from_ns(t_submit) + options.checkout_timeout);
  auto lock = lock_briefly_held(mutex);
  if (stopping) return error{errc::pool_stopped, "the pool is stopped"};
  const bool may_queue = purpose == checkout_for::call_that_may_queue;
  // Submitted requests are served first come, first served: a call joins them.
  if (may_queue && disp && disp->queued() > 0) return std::shared_ptr<pool_worker>{};

  // Affinity: the worker that last served this key, while it lives.
  std::uint64_t preferred = 0;
  if (!co.affinity_key.empty()) {
    if (auto it = affinity.find(co.affinity_key); it != affinity.end() && live.count(it->second)) {
      preferred = it->second;
    }
  }
  std::shared_ptr<pool_worker> w;
  if (preferred != 0) {
    auto& candidate = live[preferred];
    if (candidate->state == worker_state::idle) w = candidate;
  } else if (last_worker.pool == this) {
    if (auto it = live.find(last_worker.worker);
        it != live.end() && it->second->state == worker_state::idle) {
      w = it->second;
    }
  }
  if (!w && !idle.empty() && (preferred == 0 || options.affinity == affinity_mode::hint)) {
    w = idle.back();
  }
  if (w) {
    remove_from_idle(*w);
    set_state(*w, worker_state::busy, "checkout");
    ++busy;
  } else if (may_queue) {
    return std::shared_ptr<pool_worker>{};
  } else {
    if (degraded) {
      return error{errc::start_failed,
                   fmt::format("the pool is degraded ({} failed starts within {} ms); last "
                               "failure: {}", failed_start_times.size(),
                               options.crash_loop_window.count(), last_start_failure)};
    }
    if (options.max_queue != 0 && waiters.size() >= options.max_queue) {
      return error{errc::queue_full, fmt::format("{} callers are already waiting", waiters.size())};
    }
    waiter me;
    me.required_worker = options.affinity == affinity_mode::strict ? preferred : 0;
    auto position = waiters.insert(waiters.end(), &me);
    note_waiters();
    callers_waiting.fetch_add(1, std::memory_order_relaxed);
    // A worker parked by another caller is free: take it back for this one (or the waiters
    // before it). Registered first, so that a caller parking now sees the waiter instead.
    recall_parked();
    // On-demand start: one more worker per waiting caller, up to the pool's size.
    if (!me.granted) want_one_more_worker();
    while (!me.granted && !me.failure) {
      if (me.cv.wait_until(lock, checkout_deadline) == std::cv_status::timeout) break;
    }
    callers_waiting.fetch_sub(1, std::memory_order_relaxed);
    if (!me.granted && !me.failure) {
      waiters.erase(position);
      note_waiters();
      return error{errc::checkout_timeout,
                   fmt::format("no worker became free within {:.1f} ms",
                               (monotonic_ns() - t_submit) / 1e6)};
    }
    if (!me.granted) return std::move(*me.failure);
    w = std::move(me.granted);
  }
  if (!co.affinity_key.empty()) affinity[co.affinity_key] = w->id;
  last_worker = {this, w->id};
  w->answered = false;
  // Set under the lock, so that a stop never finds a leased worker it does not know is leased
  // (the lock orders it for the supervisor, hence relaxed: a checkout is a hot path).
  if (purpose == checkout_for::lease) w->lease.store(lease_state::held, std::memory_order_relaxed);
  return w;
}

result<reply> pool::impl::exchange(pool_worker& w, std::string_view command,
                                   const nlohmann::json& args, deadline reply_deadline,
                                   request_timeline& t) {
  t.request_id = take_request_id();
  t.worker = w.id;
  auto answer = w.conn.call({t.request_id, command, args}, reply_deadline, &t.t_sent);
  t.t_reply = monotonic_ns();
  if (!answer) {
    ++totals.failures;
    t.outcome = answer.error().code;
    return std::move(answer).error();
  }
  ++w.served;
  w.answered = true;
  t.t_worker_recv = answer->t_recv_ns;
  t.t_worker_done = answer->t_done_ns;
  if (!answer->ok) {
    ++totals.worker_errors;
    t.outcome = errc::worker_error;
    return error{errc::worker_error, std::move(answer->failure.message),
                 std::move(answer->failure.type)};
  }
  ++totals.calls_ok;
  return reply{.value = std::move(answer->result),
               .worker = w.id,
               .request_id = t.request_id,
               .timing = t};
}

bool pool::impl::rss_check_due(const pool_worker& w) const {
  return options.recycle_above_rss_kib != 0 && w.served % options.rss_check_every == 0;
}

std::optional<std::string> pool::impl::recycle_reason(const pool_worker& w, std::int64_t now,
                                                      std::optional<long> rss_kib) const {
  if (w.recycle_at != 0 && w.served >= w.recycle_at) {
    return fmt::format("recycled after {} requests", w.served);
  }
  if (options.recycle_after_age.count() > 0 &&
      now - w.t_ready_ns >= std::chrono::nanoseconds(options.recycle_after_age).count()) {
    return "recycled at its maximum age";
  }
  if (rss_kib && *rss_kib > static_cast<long>(options.recycle_above_rss_kib)) {
    return fmt::format("recycled at {} KiB resident", *rss_kib);
  }
  return std::nullopt;
}

bool pool::impl::give_back(const std::shared_ptr<pool_worker>& w, const error* fault,
                           std::int64_t now) {
  const bool check_rss = !w->conn.broken() && rss_check_due(*w);
  // Read outside the lock: /proc is slow next to a checkout.
  const std::optional<long> rss_kib =
      check_rss ? std::optional<long>(resident_kib(w->conn.process().pid())) : std::nullopt;

  const auto lock = lock_briefly_held(mutex);
  return settle_returned(w, fault, now, rss_kib);
}

bool pool::impl::settle_returned(const std::shared_ptr<pool_worker>& w, const error* fault,
                                 std::int64_t now, std::optional<long> rss_kib) {
  const bool healthy = !w->conn.broken();
  // A worker recalled while in use comes back here: it is an ordinary busy worker again.
  w->park.store(park_state::none);
  --busy;
  if (w->answered) slots[w->slot].failure_streak = 0;
  const auto recycled_because = healthy ? recycle_reason(*w, now, rss_kib) : std::nullopt;
  if (!healthy) {
    sup->retire(w, fault ? fmt::format("{}: {}", to_string(fault->code), fault->message)
                         : std::string("connection broken"),
                exit_kind::fault);
  } else if (w->exit_seen) {
    sup->retire(w, "exited after replying", exit_kind::fault);
  } else if (stopping) {
    sup->retire(w, "pool stopping", exit_kind::planned_stop);
  } else if (recycled_because) {
    ++totals.recycled;
    sup->retire(w, *recycled_because, exit_kind::recycled);
  } else {
    release_worker(w, "free", now);
  }
  if (stopping) state_changed.notify_all();
  return stopping;
}

// At pipeline_depth > 1 a call with no worker free queues like a submitted request rather
// than wait for a whole worker: closed-loop callers then pipeline. Not with an affinity key
// (the dispatcher does not honour keys), and not on the dispatcher's own thread (a callback),
// which would wait on itself.
pool::impl::checkout_for pool::impl::call_checkout(const call_options& co) const {
  const bool may_queue = options.pipeline_depth > 1 && co.affinity_key.empty() &&
                         !detail::on_dispatcher_thread();
  return may_queue ? checkout_for::call_that_may_queue : checkout_for::call;
}

result<reply> pool::impl::call(std::string_view command, const nlohmann::json& args,
                               const call_options& co) {
  request_timeline timeline{{.t_submit = monotonic_ns()}};
  std::shared_ptr<pool_worker> w = take_parked(co);
  if (w) {
    // Taking a parked worker is one compare-exchange: its checkout time is the call's.
    timeline.t_checkout = timeline.t_submit;
  } else {
    auto checked_out = acquire(co, timeline.t_submit, call_checkout(co));
    if (!checked_out) {
      ++totals.failures;
      timeline.t_reply = monotonic_ns();
      timeline.outcome = checked_out.error().code;
      emit(timeline);
      return std::move(checked_out).error();
    }
    if (!*checked_out) {
      // No worker free: queued with the submitted requests, pipelined behind another's
      // request when that frees one sooner. submit() keeps its own timeline.
      std::uint64_t id = 0;
      return submit(command, args, co, {}, id).get();
    }
    w = std::move(*checked_out);
    timeline.t_checkout = monotonic_ns();
  }
  const deadline reply_deadline =
      co.reply_deadline.value_or(from_ns(timeline.t_checkout) + options.request_timeout);
  auto outcome = exchange(*w, command, args, reply_deadline, timeline);
  // A worker that broke is never parked: it goes back through the lock, to be replaced.
  const bool stopping_now =
      !park(w, co, timeline.t_reply) &&
      give_back(w, outcome ? nullptr : &outcome.error(), timeline.t_reply);
  emit(timeline);
  if (!outcome && stopping_now && is_worker_fault(outcome.error().code)) {
    return error{errc::pool_stopped,
                 "the pool stopped during the request: " + outcome.error().message};
  }
  return outcome;
}

// --- worker_lease --------------------------------------------------------------------------
//
// A leased worker's lease_state is the contract between the lease and a stopping pool: each
// side claims the worker with a compare-exchange, so exactly one of them gives it back. The
// lease dereferences pool_ only while its state is held or in_call, when the pool's stop
// waits for it (pool_supervisor.cpp, revoke_or_kill).

worker_lease::worker_lease(pool::impl* owner, std::shared_ptr<pool_worker> worker,
                           std::int64_t t_checkout_ns)
    : pool_(owner), worker_(std::move(worker)), t_checkout_ns_(t_checkout_ns) {}

worker_lease::worker_lease(worker_lease&& other) noexcept
    : pool_(std::exchange(other.pool_, nullptr)),
      worker_(std::move(other.worker_)),
      t_checkout_ns_(other.t_checkout_ns_),
      fault_(std::move(other.fault_)) {}

worker_lease& worker_lease::operator=(worker_lease&& other) noexcept {
  if (this != &other) {
    release();
    pool_ = std::exchange(other.pool_, nullptr);
    worker_ = std::move(other.worker_);
    t_checkout_ns_ = other.t_checkout_ns_;
    fault_ = std::move(other.fault_);
  }
  return *this;
}

worker_lease::~worker_lease() { release(); }

void worker_lease::release() {
  if (!worker_) return;
  auto expected = lease_state::held;
  if (worker_->lease.compare_exchange_strong(expected, lease_state::none)) {
    pool_->give_back(worker_, fault_ ? &*fault_ : nullptr, monotonic_ns());
  }
  // Otherwise the pool revoked the lease: the worker is already stopped, the pool maybe gone.
  worker_.reset();
}

bool worker_lease::held() const noexcept {
  return worker_ && worker_->lease.load() != lease_state::revoked;
}

std::uint64_t worker_lease::worker_id() const noexcept { return worker_ ? worker_->id : 0; }

result<reply> worker_lease::call(std::string_view command, const nlohmann::json& args,
                                 std::optional<deadline> reply_deadline) {
  if (!worker_) return error{errc::pool_stopped, "the lease was released"};
  if (fault_) return *fault_;
  auto expected = lease_state::held;
  if (!worker_->lease.compare_exchange_strong(expected, lease_state::in_call)) {
    return error{errc::pool_stopped, "the pool was stopped; the lease was revoked"};
  }
  request_timeline timeline{{.t_submit = monotonic_ns(), .t_checkout = t_checkout_ns_}};
  auto outcome = pool_->exchange(
      *worker_, command, args,
      reply_deadline.value_or(from_ns(timeline.t_submit) + pool_->options.request_timeout),
      timeline);
  if (!outcome && is_worker_fault(outcome.error().code)) fault_ = outcome.error();
  pool_->emit(timeline);
  expected = lease_state::in_call;
  if (worker_->lease.compare_exchange_strong(expected, lease_state::held)) return outcome;
  // The pool stopped during the request and waits for the worker: give it back now, the
  // last use of pool_ (the pool may be destroyed as soon as it has the worker).
  worker_->lease.store(lease_state::none);
  pool_->give_back(worker_, fault_ ? &*fault_ : nullptr, monotonic_ns());
  worker_.reset();
  if (!outcome && is_worker_fault(outcome.error().code)) {
    return error{errc::pool_stopped,
                 "the pool stopped during the request: " + outcome.error().message};
  }
  return outcome;
}

}  // namespace procpool
