// Internal: the pool's shared state, used by the caller side (pool_checkout.cpp) and the
// supervisor (pool_supervisor.cpp). Everything here is guarded by pool::impl::mutex unless
// a comment says otherwise. Asio stays inside pool_supervisor.cpp.
#pragma once

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <list>
#include <memory>
#include <mutex>
#include <optional>
#include <random>
#include <string>
#include <unordered_map>
#include <vector>

#include "procpool/pool.hpp"
#include "procpool/wire/worker_connection.hpp"
#include "sharded_counter.hpp"

namespace procpool {

struct worker_io;  // the supervisor's Asio handles for one worker
class supervisor;
class dispatcher;

namespace detail {

// Who may use a busy worker that a worker_lease holds. The lease and the stopping pool
// agree on it without the pool's lock, so that a lease outliving its pool never touches it.
enum class lease_state : std::uint8_t {
  none,             // not leased (idle, or busy in a pool::call)
  held,             // leased, between calls: the pool may revoke it
  in_call,          // leased, a request under way: the pool must wait for it
  revoke_requested, // the pool stopped during the request: the lease gives the worker back
  revoked,          // the pool took the worker back; the lease must not touch the pool
};

// A worker a caller gave back without the pool's lock, kept for the next call made without it
// (pool_parking.cpp). Such a worker stays busy in the pool's books. Every change is a
// compare-exchange, so exactly one party takes a parked worker.
enum class park_state : std::uint8_t {
  none,      // not parked: idle, or busy in the ordinary way
  parked,    // given back without the lock: anyone may take it, by compare-exchange
  in_use,    // taken again without the lock; its caller parks it again or gives it back
  recalled,  // wanted back while in use: its caller must give it back through the lock
};

struct pool_worker {
  // Both defined where worker_io is complete (pool_supervisor.cpp).
  pool_worker(std::uint64_t id_, std::size_t slot_, worker_connection conn_);
  ~pool_worker();

  const std::uint64_t id;
  const std::size_t slot;
  // The caller owns the connection while the worker is busy, the supervisor otherwise.
  worker_connection conn;
  worker_state state = worker_state::starting;
  std::int64_t t_spawn_ns = 0;
  std::int64_t t_main_ns = 0;
  std::int64_t t_init_done_ns = 0;
  std::int64_t t_ready_ns = 0;
  std::int64_t idle_since_ns = 0;
  std::uint64_t served = 0;       // the holder's: written only while busy
  bool answered = false;          // the holder's: a request succeeded since checkout
  std::uint64_t recycle_at = 0;   // 0: never by count
  std::size_t idle_index = 0;     // position in impl::idle while idle
  std::atomic<bool> exit_seen{false};  // its pidfd fired while a caller held it (or parked it)
  bool lost = false;              // retired for a fault: its slot backs off before restarting
  std::uint64_t template_id = 0;  // zygote mode: the worker id of the template it was forked from
  // The dispatcher's, kept across its attachments: the worker's mean service time (weight
  // 1/8), which sets how deep it is pipelined. 0 until a first pipelined reply.
  double service_ewma_ns = 0;
  std::atomic<lease_state> lease{lease_state::none};  // atomic: read by the lease unlocked
  std::atomic<park_state> park{park_state::none};
  exit_kind leaving = exit_kind::none;  // set once a planned stop or recycle begins
  std::unique_ptr<worker_io> io;  // supervisor thread only
};

}  // namespace detail

using detail::lease_state;
using detail::park_state;
using detail::pool_worker;

struct pool_slot {
  std::shared_ptr<pool_worker> worker;  // null while pending or not wanted yet
  bool wanted = false;                  // prewarm none: not started until demanded
  bool queued = false;                  // in impl::pending_slots
  bool ever_ready = false;
  std::uint32_t failure_streak = 0;
  std::int64_t not_before_ns = 0;  // restart backoff
};

struct waiter {
  std::condition_variable cv;
  class dispatcher* dispatcher = nullptr;  // the dispatcher's wait: woken through its eventfd
  std::shared_ptr<pool_worker> granted;
  std::optional<error> failure;
  std::uint64_t required_worker = 0;  // strict affinity; 0: any worker
};

class pool::impl {
 public:
  explicit impl(pool_options opts);
  ~impl();

  result<reply> call(std::string_view command, const nlohmann::json& args,
                     const call_options& co);

  // The request path in three steps, shared by call() and worker_lease.
  // Checks a worker out (it is busy on return, and lease_state::held for a lease). Lock not
  // held. A call that may queue (pipeline_depth > 1) does not wait here: acquire() returns a
  // null worker when none is idle or submitted requests are already queued, and the call
  // joins the dispatcher's queue instead.
  enum class checkout_for { call, lease, call_that_may_queue };
  result<std::shared_ptr<pool_worker>> acquire(const call_options& co, std::int64_t t_submit,
                                               checkout_for purpose = checkout_for::call);
  checkout_for call_checkout(const call_options& co) const;
  // One request's I/O on the caller's thread, without the lock; fills `t`'s stamps.
  result<reply> exchange(pool_worker& w, std::string_view command, const nlohmann::json& args,
                            deadline reply_deadline, request_timeline& t);
  // submit() and map(): the request goes to the dispatcher, started here on first use.
  // `done`, when set, takes the outcome and the future returned is empty. `id` receives the
  // request's id.
  // `wake` false: see dispatcher::enqueue.
  reply_future submit(std::string_view command, const nlohmann::json& args,
                      const call_options& co,
                      completion done, std::uint64_t& id, bool wake = true);
  // The dispatcher, started on first use; null once the pool is stopping.
  dispatcher* dispatcher_for_submit();
  // Gives a worker back: to a waiter, idle, recycled, or killed when its connection broke
  // (`fault` says why). Returns whether the pool is stopping. Lock not held.
  // `now` is a monotonic_ns() stamp the caller already has (its reply's).
  bool give_back(const std::shared_ptr<pool_worker>& w, const error* fault, std::int64_t now);
  // give_back's decision, the lock held. `rss_kib` is the worker's resident size when it was
  // due for a check (read before the lock), else nullopt.
  bool settle_returned(const std::shared_ptr<pool_worker>& w, const error* fault,
                       std::int64_t now, std::optional<long> rss_kib);
  // Whether a given-back worker's resident size is to be read, to check it against
  // recycle_above_rss_kib. Lock not needed (the holder's counts, the options).
  bool rss_check_due(const pool_worker& w) const;
  // Why a healthy worker given back `now` is recycled (`rss_kib` when it was read), or
  // nullopt. Lock not needed, as above.
  std::optional<std::string> recycle_reason(const pool_worker& w, std::int64_t now,
                                            std::optional<long> rss_kib) const;

  // --- parking (pool_parking.cpp): call()'s path without the lock ---------------------------
  // The worker this thread parked, taken again for `co`'s call; null when there is none to
  // take (then acquire() it). Lock not held.
  std::shared_ptr<pool_worker> take_parked(const call_options& co);
  // Gives back a healthy worker after its call without the lock, parked for the next call,
  // when nothing needs the lock's bookkeeping: false when it must go through give_back().
  // Lock not held.
  bool park(const std::shared_ptr<pool_worker>& w, const call_options& co, std::int64_t now);
  // Takes every parked worker back through settle_returned, and has those in use given back
  // through the lock after their call: for a waiter, a stop, or housekeeping. REQUIRES: mutex.
  void recall_parked();
  // The same for one worker. REQUIRES: mutex held.
  void recall(const std::shared_ptr<pool_worker>& w);
  // Keeps `waiting` equal to waiters.size(). REQUIRES: mutex held.
  void note_waiters() { waiting.store(waiters.size()); }
  ready_state wait_ready(deadline until);
  pool_stats stats() const;
  void stop(const stop_options& so);

  // --- shared helpers, REQUIRES: mutex held ---------------------------------------------
  // `exit` marks a planned departure (stop, recycle); the worker's later events keep it.
  void set_state(pool_worker& w, worker_state to, std::string_view cause,
                 exit_kind exit = exit_kind::none);
  // A free worker goes to the longest waiter that accepts it, else to the idle stack.
  // `now`: a recent monotonic_ns() stamp, when it went idle.
  void release_worker(const std::shared_ptr<pool_worker>& w, std::string_view cause,
                      std::int64_t now);
  void remove_from_idle(pool_worker& w);
  void fail_waiters(const error& e);
  // Hands `w` to a waiter, or wakes it with its failure: notifies its condition variable,
  // or the dispatcher's eventfd.
  static void wake(waiter& wt);
  // On-demand start: marks one more slot wanted, if any is not. False when all are.
  bool want_one_more_worker();
  // The slot's worker is gone: queue a replacement after the slot's backoff.
  void schedule_replacement(std::size_t slot, bool count_failure);
  void forget_worker(pool_worker& w);
  std::size_t effective_start_cap() const;
  std::chrono::milliseconds backoff_for(std::uint32_t streak) const;
  std::uint64_t draw_recycle_at();
  // A new request's id. Each thread takes ids in blocks, so that callers on different CPUs do
  // not pass the counter's cache line between them on every call; ids stay unique in the
  // pool but no longer follow the order of calls made on different threads. Lock not needed.
  std::uint64_t take_request_id();
  static std::uint64_t next_serial();
  void emit(const request_timeline& t) const {
    if (options.observer.on_request) options.observer.on_request(t);
  }

  pool_options options;
  mutable std::mutex mutex;
  std::condition_variable state_changed;  // readiness and drain progress

  std::vector<pool_slot> slots;
  std::deque<std::size_t> pending_slots;  // FIFO of slots to start
  std::vector<std::shared_ptr<pool_worker>> idle;  // a stack: the warmest worker first
  std::list<waiter*> waiters;
  std::unordered_map<std::uint64_t, std::shared_ptr<pool_worker>> live;  // by worker id
  std::unordered_map<std::string, std::uint64_t> affinity;  // key -> worker id

  std::size_t starting = 0;
  std::size_t busy = 0;
  // Atomic: a caller that parks a worker reads it without the lock (pool_parking.cpp).
  std::atomic<bool> stopping{false};
  bool stopped = false;
  bool degraded = false;
  std::deque<std::int64_t> failed_start_times;
  std::string last_start_failure;
  std::uint64_t next_worker_id = 1;
  // Request ids, unique in the pool: the supervisor's pings take them one at a time, callers
  // a block at a time (take_request_id). Lock not needed.
  std::atomic<std::uint64_t> next_request_id{1};
  // Tells this pool's id blocks from those of a pool that lived at the same address.
  const std::uint64_t serial = next_serial();
  std::mt19937_64 rng;

  // Running totals, counted without the lock. A request is counted once, by its outcome
  // (pool_stats::calls is their sum), in counters sharded by thread: a counter shared by the
  // callers is a cache line their CPUs would pass between them on every call.
  struct running_totals {
    detail::sharded_counter calls_ok, worker_errors, failures;
    std::atomic<std::uint64_t> starts{0}, failed_starts{0}, workers_lost{0}, recycled{0};
  } totals;

  std::unique_ptr<supervisor> sup;
  // Started by the first submit (under mutex); read without it through dispatcher_ready.
  std::unique_ptr<dispatcher> disp;
  std::atomic<dispatcher*> dispatcher_ready{nullptr};
  // Blocking callers waiting in acquire(): the dispatcher gives back a worker whose
  // pipeline emptied rather than keep it while they wait.
  std::atomic<std::size_t> callers_waiting{0};
  // Parking (pool_parking.cpp): waiters.size(), and whether any worker was ever parked, for
  // callers that park without the lock; whether parking is allowed at all (not when worker
  // events are observed: each must be reported, in order, under the lock).
  std::atomic<std::size_t> waiting{0};
  std::atomic<bool> ever_parked{false};
  const bool parking_allowed;
};

// The supervisor thread: an Asio event loop owning process lifetimes.
class supervisor {
 public:
  explicit supervisor(pool::impl& pool);
  ~supervisor();

  // Starts the thread and the initial fill.
  void start();
  // Something may be startable now (a slot became wanted, a start finished).
  void pump_starts();
  // A caller returns a worker that must go: killed at once for a fault, or stopped
  // gracefully for a planned exit (the pool stopping, a recycle).
  void retire(std::shared_ptr<pool_worker> w, std::string cause, exit_kind exit);
  // Stops every worker (killing the busy ones) and joins the thread.
  void shutdown();

 private:
  struct state;
  std::unique_ptr<state> s_;
};

}  // namespace procpool
