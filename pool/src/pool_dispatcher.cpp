// The dispatcher's loop: submitted requests in, replies out, one epoll set for every worker
// it holds. Section numbers refer to pool/ASYNC.md.
#include "pool_dispatcher.hpp"

#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cmath>
#include <deque>
#include <limits>

#include <fmt/format.h>

#include "procpool/wire/fd.hpp"

namespace procpool {
namespace {

using detail::pending_request;
using detail::request_phase;

// 4.5 / 5: a worker whose tasks take longer than this gains nothing from a deeper pipeline
// worth the risk of requests waiting behind a slow one.
constexpr std::int64_t pipelining_pays_below_ns = 500'000;
constexpr std::int64_t stall_floor_ns = 2'000'000;

std::string ordinal(std::size_t n) {
  const char* suffix = (n % 100 >= 11 && n % 100 <= 13) ? "th"
                       : n % 10 == 1                    ? "st"
                       : n % 10 == 2                    ? "nd"
                       : n % 10 == 3                    ? "rd"
                                                        : "th";
  return fmt::format("{}{}", n, suffix);
}

std::string first_line(std::string_view text) {
  return std::string(text.substr(0, text.find('\n')));
}

// A worker the dispatcher holds, and the requests written to it in order.
struct attached_worker {
  std::shared_ptr<pool_worker> worker;
  std::deque<pending_request*> in_flight;  // the pool's references
  std::string out;                          // framed requests not yet written
  std::size_t out_pos = 0;
  bool writing_armed = false;  // stdin registered for EPOLLOUT
  std::int64_t head_since_ns = 0;
  std::int64_t head_deadline_ns = 0;  // the worker's deadline for its head request
  std::int64_t last_reply_ns = 0;

  std::size_t effective_depth(std::size_t depth) const {
    const double ewma = worker->service_ewma_ns;
    if (ewma <= 0) return 1;
    const auto fits = static_cast<std::size_t>(
        std::ceil(static_cast<double>(pipelining_pays_below_ns) / ewma));
    return std::clamp<std::size_t>(fits, 1, depth);
  }
  bool stalled(std::int64_t now) const {
    if (in_flight.empty()) return false;
    const auto limit = std::max<std::int64_t>(stall_floor_ns,
                                              static_cast<std::int64_t>(8 * worker->service_ewma_ns));
    return now - head_since_ns > limit;
  }
  bool accepting() const {
    const auto recycle_at = worker->recycle_at;
    return !worker->conn.broken() &&
           (recycle_at == 0 || worker->served + in_flight.size() < recycle_at);
  }
};

}  // namespace

struct dispatcher::loop {
  loop(dispatcher& d, pool_impl& p)
      : owner(d),
        pool(p),
        epoll(::epoll_create1(EPOLL_CLOEXEC)),
        wake_fd(::eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC)) {
    epoll_event ev{};
    ev.events = EPOLLIN;
    ev.data.ptr = nullptr;
    ::epoll_ctl(epoll.get(), EPOLL_CTL_ADD, wake_fd.get(), &ev);
    pool_wait.dispatcher = &owner;
  }

  dispatcher& owner;
  pool_impl& pool;
  unique_fd epoll;
  unique_fd wake_fd;

  // Submissions: the one structure submitters and the loop share.
  std::mutex submit_mutex;
  std::vector<pending_request*> submitted;
  bool parked = false;
  bool closed = false;

  std::atomic<bool> stop_requested{false};
  std::atomic<std::int64_t> drain_deadline_ns{0};

  // The loop's own, on its thread only (pool_wait under pool.mutex).
  waiter pool_wait;
  bool waiting_in_pool = false;
  std::deque<pending_request*> queue;
  std::int64_t earliest_checkout_ns = std::numeric_limits<std::int64_t>::max();
  std::vector<std::unique_ptr<attached_worker>> attached;
  std::vector<std::pair<pending_request*, result<reply>>> done;
  bool stopping = false;

  void poke() {
    const std::uint64_t one = 1;
    [[maybe_unused]] auto n = ::write(wake_fd.get(), &one, sizeof one);
  }

  void run();
  void close_for_stop();
  void take_submissions();
  void take_grant();
  void read_worker(attached_worker& a);
  void on_payload(attached_worker& a, std::string_view payload, std::int64_t now);
  void expire(std::int64_t now);
  void assign(std::int64_t now);
  attached_worker* pick(std::int64_t now);
  attached_worker* attach_idle();
  // Takes a worker the pool handed over: its stdout joins the epoll set.
  attached_worker* attach(std::shared_ptr<pool_worker> w);
  void write_worker(attached_worker& a);
  void detach_empty();
  void detach(attached_worker& a, const error* fault);
  void fault_worker(attached_worker& a, error cause);
  void finish(pending_request* r, result<reply> outcome);
  // A request cancelled while queued, as the dispatcher drops it from the queue.
  void report_cancelled(pending_request* r, std::int64_t now);
  void fail_queued(const error& e);
  void deliver_done();
  int wait_timeout_ms(std::int64_t now) const;
  bool holds(const attached_worker* a) const {
    return std::any_of(attached.begin(), attached.end(),
                       [&](const auto& p) { return p.get() == a; });
  }
  // Leaves the pool's waiters once nothing is queued, so that the pool does not hand over
  // a worker nobody here needs; one granted meanwhile is attached and then given back.
  void stop_waiting_in_pool();
  void set_writing(attached_worker& a, bool on);
};

// --- submission ------------------------------------------------------------------------------

bool dispatcher::enqueue(pending_request* r, bool wake) {
  bool wake_loop = false;
  {
    std::lock_guard lock(loop_->submit_mutex);
    if (loop_->closed) return false;
    loop_->submitted.push_back(r);
    if (wake) wake_loop = std::exchange(loop_->parked, false);
  }
  queued_count_.fetch_add(1, std::memory_order_relaxed);
  if (wake_loop) loop_->poke();
  return true;
}

void dispatcher::wake_if_parked() {
  bool wake_loop = false;
  {
    std::lock_guard lock(loop_->submit_mutex);
    wake_loop = std::exchange(loop_->parked, false);
  }
  if (wake_loop) loop_->poke();
}

void dispatcher::loop::take_submissions() {
  std::vector<pending_request*> batch;
  {
    std::lock_guard lock(submit_mutex);
    batch.swap(submitted);
  }
  for (auto* r : batch) {
    earliest_checkout_ns = std::min(earliest_checkout_ns, r->checkout_deadline_ns);
    queue.push_back(r);
  }
}

// --- the loop ----------------------------------------------------------------------------------

void dispatcher::loop::run() {
  detail::mark_dispatcher_thread();
  std::array<epoll_event, 64> events;
  while (true) {
    // One turn: everything that can run now, then a wait for the next thing that can.
    take_submissions();
    take_grant();
    if (stop_requested.load(std::memory_order_acquire)) stopping = true;
    std::int64_t now = monotonic_ns();
    expire(now);
    if (stopping) {
      fail_queued(error{errc::pool_stopped, "the pool stopped before the request was sent"});
    } else {
      assign(now);
    }
    for (std::size_t i = attached.size(); i-- > 0;) {
      if (attached[i]->out.size() > attached[i]->out_pos) write_worker(*attached[i]);
    }
    detach_empty();
    deliver_done();
    if (stopping && attached.empty()) return close_for_stop();

    now = monotonic_ns();
    const int timeout = wait_timeout_ms(now);
    bool sleep;
    {
      std::lock_guard lock(submit_mutex);
      sleep = parked = submitted.empty() && timeout != 0;
    }
    const int n = ::epoll_wait(epoll.get(), events.data(), static_cast<int>(events.size()),
                               sleep ? timeout : 0);
    {
      std::lock_guard lock(submit_mutex);
      parked = false;
    }
    for (int i = 0; i < n; ++i) {
      auto tag = reinterpret_cast<std::uintptr_t>(events[i].data.ptr);
      if (tag == 0) {
        std::uint64_t count;
        [[maybe_unused]] auto r = ::read(wake_fd.get(), &count, sizeof count);
        continue;
      }
      auto* a = reinterpret_cast<attached_worker*>(tag & ~std::uintptr_t{1});
      if (!holds(a)) continue;  // detached by an earlier event of this batch
      if (tag & 1) {
        write_worker(*a);
      } else {
        read_worker(*a);
      }
    }
  }
}

void dispatcher::loop::close_for_stop() {
  std::vector<pending_request*> late;
  {
    std::lock_guard lock(submit_mutex);
    closed = true;
    late.swap(submitted);
  }
  for (auto* r : late) queue.push_back(r);
  fail_queued(error{errc::pool_stopped, "the pool stopped before the request was sent"});
  deliver_done();
  if (!waiting_in_pool) return;
  std::lock_guard lock(pool.mutex);
  pool.waiters.remove(&pool_wait);
  pool.note_waiters();
  if (pool_wait.granted) {
    // Handed over as the stop began: give it straight back.
    auto w = std::move(pool_wait.granted);
    pool_wait.granted.reset();
    --pool.busy;
    pool.sup->retire(w, "pool stopping", exit_kind::planned_stop);
    pool.state_changed.notify_all();
  }
}

int dispatcher::loop::wait_timeout_ms(std::int64_t now) const {
  std::int64_t next = std::numeric_limits<std::int64_t>::max();
  if (!queue.empty()) next = earliest_checkout_ns;
  for (const auto& a : attached) {
    if (!a->in_flight.empty()) next = std::min(next, a->head_deadline_ns);
    for (auto* r : a->in_flight) {
      if (!r->abandoned) next = std::min(next, r->own_deadline_ns);
    }
    // A stalled head stops counting as room: look again when it would.
  }
  if (stopping) next = std::min(next, drain_deadline_ns.load(std::memory_order_relaxed));
  if (next == std::numeric_limits<std::int64_t>::max()) return -1;
  if (next <= now) return 0;
  // Rounded up: a sub-millisecond remainder is waited for rather than spun on.
  const auto ms = (next - now + 999'999) / 1'000'000;
  return static_cast<int>(std::min<std::int64_t>(ms, 60'000));
}

// --- workers in and out ------------------------------------------------------------------------

void dispatcher::loop::take_grant() {
  if (!waiting_in_pool) return;
  std::shared_ptr<pool_worker> w;
  std::optional<error> failure;
  {
    std::lock_guard lock(pool.mutex);
    if (!pool_wait.granted && !pool_wait.failure) return;
    waiting_in_pool = false;
    w = std::move(pool_wait.granted);
    pool_wait.granted.reset();
    failure = std::exchange(pool_wait.failure, std::nullopt);
  }
  if (w) {
    attach(std::move(w));
  } else if (failure && failure->code != errc::pool_stopped) {
    // The pool is degraded: no worker is coming for what waits here.
    if (attached.empty()) fail_queued(*failure);
  }
}

attached_worker* dispatcher::loop::attach_idle() {
  std::shared_ptr<pool_worker> w;
  {
    std::lock_guard lock(pool.mutex);
    if (pool.stopping) return nullptr;
    if (!pool.idle.empty() && pool.waiters.empty()) {
      w = pool.idle.back();
      pool.remove_from_idle(*w);
      pool.set_state(*w, worker_state::busy, "dispatcher");
      ++pool.busy;
      w->answered = false;
    } else {
      if (pool.degraded && attached.empty()) {
        const error e{errc::start_failed,
                      fmt::format("the pool is degraded ({} failed starts within {} ms); last "
                                  "failure: {}", pool.failed_start_times.size(),
                                  pool.options.crash_loop_window.count(),
                                  pool.last_start_failure)};
        fail_queued(e);
        return nullptr;
      }
      if (!waiting_in_pool) {
        pool.want_one_more_worker();
        pool.waiters.push_back(&pool_wait);
        pool.note_waiters();
        waiting_in_pool = true;
        // Workers parked by callers are free: the wait takes one back, if any.
        pool.recall_parked();
      }
      return nullptr;
    }
  }
  return attach(std::move(w));
}

attached_worker* dispatcher::loop::attach(std::shared_ptr<pool_worker> w) {
  auto a = std::make_unique<attached_worker>();
  a->worker = std::move(w);
  epoll_event ev{};
  ev.events = EPOLLIN;
  ev.data.ptr = a.get();
  ::epoll_ctl(epoll.get(), EPOLL_CTL_ADD, a->worker->conn.process().stdout_fd(), &ev);
  attached.push_back(std::move(a));
  return attached.back().get();
}

void dispatcher::loop::detach(attached_worker& a, const error* fault) {
  ::epoll_ctl(epoll.get(), EPOLL_CTL_DEL, a.worker->conn.process().stdout_fd(), nullptr);
  if (a.writing_armed) {
    ::epoll_ctl(epoll.get(), EPOLL_CTL_DEL, a.worker->conn.process().stdin_fd(), nullptr);
  }
  auto w = std::move(a.worker);
  auto it = std::find_if(attached.begin(), attached.end(),
                         [&](const auto& p) { return p.get() == &a; });
  attached.erase(it);
  pool.give_back(w, fault, monotonic_ns());
}

void dispatcher::loop::stop_waiting_in_pool() {
  if (!waiting_in_pool) return;
  {
    std::lock_guard lock(pool.mutex);
    if (!pool_wait.granted && !pool_wait.failure) {
      pool.waiters.remove(&pool_wait);
      pool.note_waiters();
      waiting_in_pool = false;
      return;
    }
  }
  take_grant();
}

void dispatcher::loop::detach_empty() {
  if (queue.empty()) stop_waiting_in_pool();
  const bool callers_wait = pool.callers_waiting.load(std::memory_order_relaxed) > 0;
  for (std::size_t i = attached.size(); i-- > 0;) {
    auto& a = *attached[i];
    if (!a.in_flight.empty() || a.out.size() > a.out_pos) continue;
    if (queue.empty() || callers_wait || !a.accepting() || stopping) detach(a, nullptr);
  }
}

// --- choosing a worker (section 5) -------------------------------------------------------------

attached_worker* dispatcher::loop::pick(std::int64_t now) {
  // Blocking callers wait for a worker: write nothing more, so that the first pipeline to
  // empty goes back to the pool and to them (first come, first served across both).
  if (pool.callers_waiting.load(std::memory_order_relaxed) > 0) return nullptr;
  attached_worker* empty = nullptr;
  for (auto& a : attached) {
    if (a->in_flight.empty() && a->accepting()) empty = a.get();
  }
  if (empty) return empty;
  if (!waiting_in_pool) {
    if (auto* a = attach_idle()) return a;
  }
  const std::size_t depth = pool.options.pipeline_depth;
  if (depth <= 1) return nullptr;
  attached_worker* best = nullptr;
  for (auto& a : attached) {
    if (!a->accepting() || a->stalled(now)) continue;
    if (a->in_flight.size() >= a->effective_depth(depth)) continue;
    if (!best || a->in_flight.size() < best->in_flight.size() ||
        (a->in_flight.size() == best->in_flight.size() && a->head_since_ns > best->head_since_ns)) {
      best = a.get();
    }
  }
  return best;
}

void dispatcher::loop::assign(std::int64_t now) {
  while (!queue.empty()) {
    pending_request* r = queue.front();
    if (r->phase() != request_phase::queued) {
      queue.pop_front();
      owner.queued_count_.fetch_sub(1, std::memory_order_relaxed);
      report_cancelled(r, now);
      continue;
    }
    attached_worker* a = pick(now);
    if (!a) return;
    queue.pop_front();
    owner.queued_count_.fetch_sub(1, std::memory_order_relaxed);
    if (!r->claim_for_write()) {
      queue.push_front(r);  // cancelled just now: reported at the next look
      owner.queued_count_.fetch_add(1, std::memory_order_relaxed);
      continue;
    }
    owner.in_flight_count_.fetch_add(1, std::memory_order_relaxed);
    auto& t = r->timeline;
    t.t_checkout = now;
    t.t_sent = now;
    t.worker = a->worker->id;
    t.ahead = static_cast<std::uint32_t>(a->in_flight.size());
    r->own_deadline_ns =
        r->reply_deadline_ns != 0
            ? r->reply_deadline_ns
            : now + std::chrono::nanoseconds(pool.options.request_timeout).count();
    if (a->in_flight.empty()) {
      t.t_head = now;
      a->head_since_ns = now;
      a->head_deadline_ns = r->own_deadline_ns;
    }
    a->in_flight.push_back(r);
    if (a->out_pos == a->out.size()) {
      a->out.clear();
      a->out_pos = 0;
    }
    a->out += r->frame;
    std::string().swap(r->frame);
  }
}

void dispatcher::loop::set_writing(attached_worker& a, bool on) {
  if (a.writing_armed == on) return;
  a.writing_armed = on;
  const int in = a.worker->conn.process().stdin_fd();
  if (on) {
    epoll_event ev{};
    ev.events = EPOLLOUT;
    ev.data.ptr = reinterpret_cast<void*>(reinterpret_cast<std::uintptr_t>(&a) | 1);
    ::epoll_ctl(epoll.get(), EPOLL_CTL_ADD, in, &ev);
  } else {
    ::epoll_ctl(epoll.get(), EPOLL_CTL_DEL, in, nullptr);
  }
}

void dispatcher::loop::write_worker(attached_worker& a) {
  if (a.out.size() <= a.out_pos || a.worker->conn.broken()) {
    set_writing(a, false);
    return;
  }
  std::string_view pending(a.out);
  pending.remove_prefix(a.out_pos);
  auto sent = a.worker->conn.send_available(pending);
  if (!sent) {
    set_writing(a, false);
    fault_worker(a, std::move(sent).error());
    return;
  }
  a.out_pos = a.out.size() - pending.size();
  set_writing(a, !pending.empty());
  if (pending.empty()) {
    a.out.clear();
    a.out_pos = 0;
  }
}

// --- replies ------------------------------------------------------------------------------------

void dispatcher::loop::read_worker(attached_worker& a) {
  // Replies written before a death still count: read until the stream says why it ended.
  for (int frames = 0; frames < 4096; ++frames) {
    auto payload = a.worker->conn.try_receive_payload();
    if (!payload) {
      fault_worker(a, std::move(payload).error());
      return;
    }
    if (!*payload) return;
    on_payload(a, **payload, monotonic_ns());
    if (!holds(&a)) return;  // faulted and detached
  }
}

void dispatcher::loop::on_payload(attached_worker& a, std::string_view payload,
                                  std::int64_t now) {
  const auto pid = a.worker->conn.process().pid();
  if (a.in_flight.empty()) {
    fault_worker(a, a.worker->conn.break_with(
                        errc::protocol_error,
                        fmt::format("worker {} replied with no request in flight", pid)));
    return;
  }
  pending_request* r = a.in_flight.front();
  auto decoded = decode_response(payload);
  if (!decoded) {
    fault_worker(a, a.worker->conn.break_with(
                        errc::protocol_error,
                        fmt::format("worker {}: {}", pid, decoded.error().message)));
    return;
  }
  if (decoded->id != r->timeline.request_id) {
    fault_worker(a, a.worker->conn.break_with(
                        errc::protocol_error,
                        fmt::format("worker {} answered id {} to request id {}", pid,
                                    decoded->id, r->timeline.request_id)));
    return;
  }
  a.in_flight.pop_front();
  owner.in_flight_count_.fetch_sub(1, std::memory_order_relaxed);
  auto& t = r->timeline;
  t.t_reply = now;
  t.t_worker_recv = decoded->t_recv_ns;
  t.t_worker_done = decoded->t_done_ns;
  const std::int64_t service = decoded->t_done_ns > decoded->t_recv_ns && decoded->t_recv_ns > 0
                                   ? decoded->t_done_ns - decoded->t_recv_ns
                                   : now - std::max(a.last_reply_ns, a.head_since_ns);
  double& ewma = a.worker->service_ewma_ns;
  ewma = ewma <= 0 ? static_cast<double>(service) : ewma + (service - ewma) / 8;
  a.last_reply_ns = now;
  ++a.worker->served;
  a.worker->answered = true;
  if (!a.in_flight.empty()) {
    pending_request* next = a.in_flight.front();
    next->timeline.t_head = now;
    a.head_since_ns = now;
    a.head_deadline_ns =
        next->abandoned ? now + std::chrono::nanoseconds(pool.options.request_timeout).count()
                        : next->own_deadline_ns;
  }
  if (r->abandoned) {
    r->release();  // its outcome went out when it timed out in line
    return;
  }
  if (!decoded->ok) {
    finish(r, error{errc::worker_error, std::move(decoded->failure.message),
                    std::move(decoded->failure.type)});
    return;
  }
  finish(r, reply{.value = std::move(decoded->result),
                  .worker = a.worker->id,
                  .request_id = t.request_id,
                  .timing = t});
}

// --- deadlines and faults (section 6) -----------------------------------------------------------

void dispatcher::loop::expire(std::int64_t now) {
  if (!queue.empty() && now >= earliest_checkout_ns) {
    earliest_checkout_ns = std::numeric_limits<std::int64_t>::max();
    std::deque<pending_request*> kept;
    for (auto* r : queue) {
      if (r->phase() == request_phase::queued && now >= r->checkout_deadline_ns &&
          r->claim_outcome()) {
        owner.queued_count_.fetch_sub(1, std::memory_order_relaxed);
        r->timeline.t_reply = now;
        finish(r, error{errc::checkout_timeout,
                        fmt::format("no worker took the request within {:.1f} ms",
                                    (now - r->timeline.t_submit) / 1e6)});
        continue;
      }
      earliest_checkout_ns = std::min(earliest_checkout_ns, r->checkout_deadline_ns);
      kept.push_back(r);
    }
    queue.swap(kept);
  }
  const bool drain_over =
      stopping && now >= drain_deadline_ns.load(std::memory_order_relaxed);
  for (std::size_t i = attached.size(); i-- > 0;) {
    auto& a = *attached[i];
    if (a.in_flight.empty()) continue;
    if (drain_over) {
      fault_worker(a, a.worker->conn.break_with(
                          errc::pool_stopped, "the pool stopped during the request"));
      continue;
    }
    if (now >= a.head_deadline_ns) {
      fault_worker(a, a.worker->conn.break_with(
                          errc::request_timeout,
                          fmt::format("worker {} did not reply before the deadline",
                                      a.worker->conn.process().pid())));
      continue;
    }
    // Requests further back whose own deadline passed: answered now, their replies dropped.
    for (std::size_t k = 1; k < a.in_flight.size(); ++k) {
      auto* r = a.in_flight[k];
      if (r->abandoned || now < r->own_deadline_ns) continue;
      r->abandoned = true;
      r->add_ref();  // the FIFO keeps it until its reply is read
      r->timeline.t_reply = now;
      finish(r, error{errc::request_timeout,
                      fmt::format("still queued on worker {} behind {} requests at its deadline",
                                  a.worker->id, k)});
    }
  }
}

void dispatcher::loop::fault_worker(attached_worker& a, error cause) {
  const auto worker_id = a.worker->id;
  const auto pid = a.worker->conn.process().pid();
  const bool stopped = cause.code == errc::pool_stopped;
  std::uint64_t cause_id = 0;
  std::size_t position = 0;
  for (auto* r : a.in_flight) {
    ++position;
    owner.in_flight_count_.fetch_sub(1, std::memory_order_relaxed);
    const bool head = position == 1;
    if (head) cause_id = r->timeline.request_id;
    if (r->abandoned) {
      r->release();
      continue;
    }
    r->timeline.t_reply = monotonic_ns();
    if (head || stopped) {
      finish(r, error{cause.code, cause.message});
    } else {
      r->timeline.caused_by = cause_id;
      r->timeline.cause = cause.code;
      finish(r, error{errc::queued_behind_fault,
                      fmt::format("worker {} (pid {}) was killed with this request {} in line "
                                  "behind request {}, which failed: {} ({})",
                                  worker_id, pid, ordinal(position), cause_id,
                                  to_string(cause.code), first_line(cause.message))});
    }
  }
  a.in_flight.clear();
  detach(a, &cause);
}

void dispatcher::loop::fail_queued(const error& e) {
  const auto now = monotonic_ns();
  for (auto* r : queue) {
    owner.queued_count_.fetch_sub(1, std::memory_order_relaxed);
    if (!r->claim_outcome()) {
      report_cancelled(r, now);
      continue;
    }
    r->timeline.t_reply = now;
    finish(r, error{e.code, e.message});
  }
  queue.clear();
  earliest_checkout_ns = std::numeric_limits<std::int64_t>::max();
}

// --- completion ------------------------------------------------------------------------------

void dispatcher::loop::report_cancelled(pending_request* r, std::int64_t now) {
  // Its future has the outcome since cancel(); the observer hears of it as the request
  // leaves the queue.
  r->timeline.t_reply = now;
  r->timeline.outcome = errc::cancelled;
  ++pool.totals.failures;
  pool.emit(r->timeline);
  r->release();
}

void dispatcher::loop::finish(pending_request* r, result<reply> outcome) {
  done.emplace_back(r, std::move(outcome));
}

void dispatcher::loop::deliver_done() {
  // Outside every lock, after the turn's I/O: the observer and callbacks may be slow.
  for (auto& [r, outcome] : done) {
    // Requests written and failed are claimed here; queued ones were claimed by their caller.
    if (r->phase() != request_phase::done) r->claim_outcome();
    if (outcome) {
      ++pool.totals.calls_ok;
      r->timeline.outcome.reset();
    } else {
      r->timeline.outcome = outcome.error().code;
      ++(outcome.error().code == errc::worker_error ? pool.totals.worker_errors
                                                    : pool.totals.failures);
    }
    pool.emit(r->timeline);
    // Waiters are woken after the whole turn is published (so after its observer calls
    // and callbacks, which must not block). The pool's reference is kept until the wake:
    // the waiter may take the outcome and let go of its own as soon as it is published.
    if (!r->publish(std::move(outcome))) {
      r->release();
      r = nullptr;
    }
  }
  for (auto& [r, outcome] : done) {
    if (!r) continue;
    r->wake_waiters();
    r->release();
  }
  done.clear();
}

// --- dispatcher --------------------------------------------------------------------------------

dispatcher::dispatcher(pool::impl& pool) : loop_(std::make_unique<loop>(*this, pool)) {
  thread_ = std::thread([this] { loop_->run(); });
}

dispatcher::~dispatcher() { join(); }

void dispatcher::begin_stop(deadline drain) {
  loop_->drain_deadline_ns.store(to_ns(drain), std::memory_order_relaxed);
  loop_->stop_requested.store(true, std::memory_order_release);
  loop_->poke();
}

void dispatcher::join() {
  if (thread_.joinable()) thread_.join();
}

void dispatcher::wake() noexcept { loop_->poke(); }

waiter& dispatcher::pool_waiter() noexcept { return loop_->pool_wait; }

}  // namespace procpool
