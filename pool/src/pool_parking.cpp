// Parking: call()'s path without the pool's lock.
//
// A caller that gives back a healthy worker with nothing for the lock to decide (no waiter,
// no stop, no recycle due, no worker events to report) parks it instead: the worker stays
// busy in the pool's books and the caller's next call takes it again, each step one
// compare-exchange on pool_worker::park. Two callers on two workers then share no lock and
// no cache line between calls, where the lock's two sections per call passed theirs between
// the callers' CPUs every time.
//
// A parked worker is free, so whoever needs one takes it back under the lock (recall):
// a caller or the dispatcher about to wait, stop(), the supervisor when the worker exits or
// at housekeeping. A worker in use is marked recalled instead, and its caller gives it back
// through the lock after the call. The race between a caller parking and a party recalling
// is closed the way Dekker's is: each publishes its side first (the park, or `waiting`,
// `stopping`, exit_seen), then reads the other's, all sequentially consistent; so at least
// one sees the other, and the compare-exchange lets exactly one of them act.
#include <memory>
#include <vector>

#include "pool_impl.hpp"

namespace procpool {
namespace {

// The worker this thread parked last, in the pool with this serial. Weak: the pool owns it
// and may retire it at any time.
struct parked_by_thread {
  std::uint64_t pool_serial = 0;
  std::weak_ptr<pool_worker> worker;
};
thread_local parked_by_thread parked_here;

bool same_worker(const std::weak_ptr<pool_worker>& a, const std::shared_ptr<pool_worker>& b) {
  return !a.owner_before(b) && !b.owner_before(a);
}

}  // namespace

std::shared_ptr<pool_worker> pool::impl::take_parked(const call_options& co) {
  if (!co.affinity_key.empty() || parked_here.pool_serial != serial) return nullptr;
  auto w = parked_here.worker.lock();
  if (!w) return nullptr;
  auto expected = park_state::parked;
  if (!w->park.compare_exchange_strong(expected, park_state::in_use)) return nullptr;
  if (stopping.load() || waiting.load() != 0 || w->exit_seen.load()) {
    // Wanted elsewhere since it was parked: it goes back through the lock (to a waiter, or
    // to be stopped), and this call checks out the ordinary way.
    give_back(w, nullptr, monotonic_ns());
    return nullptr;
  }
  w->answered = false;
  return w;
}

bool pool::impl::park(const std::shared_ptr<pool_worker>& w, const call_options& co,
                      std::int64_t now) {
  if (!parking_allowed || !co.affinity_key.empty() || w->conn.broken()) return false;
  // Whatever give_back() would recycle, or check for recycling, goes through it.
  if (rss_check_due(*w) || recycle_reason(*w, now, std::nullopt)) return false;
  // Before the park, so that a recall that finds no parked worker ever is ordered before it
  // and this caller sees what made that recall.
  if (!ever_parked.load()) ever_parked.store(true);
  // `none` after an ordinary checkout, `in_use` after take_parked; `recalled` fails it.
  auto expected = w->park.load();
  if (expected == park_state::recalled ||
      !w->park.compare_exchange_strong(expected, park_state::parked)) {
    return false;
  }
  if (parked_here.pool_serial != serial || !same_worker(parked_here.worker, w)) {
    parked_here = {serial, w};
  }
  if (stopping.load() || waiting.load() != 0 || w->exit_seen.load()) {
    // Something needs the worker: unpark it and give it back through the lock, unless a
    // recall already took it.
    auto parked = park_state::parked;
    return !w->park.compare_exchange_strong(parked, park_state::none);
  }
  return true;
}

void pool::impl::recall(const std::shared_ptr<pool_worker>& w) {
  auto state = w->park.load();
  while (true) {
    if (state == park_state::parked) {
      if (w->park.compare_exchange_weak(state, park_state::none)) {
        settle_returned(w, nullptr, monotonic_ns(), std::nullopt);
        return;
      }
    } else if (state == park_state::in_use) {
      if (w->park.compare_exchange_weak(state, park_state::recalled)) return;
    } else {
      return;  // not parked, or already recalled: its caller gives it back through the lock
    }
  }
}

void pool::impl::recall_parked() {
  if (!ever_parked.load()) return;
  // A copy: settling a worker may retire it.
  std::vector<std::shared_ptr<pool_worker>> candidates;
  for (const auto& [id, w] : live) {
    if (w->state == worker_state::busy && w->park.load() != park_state::none) {
      candidates.push_back(w);
    }
  }
  for (const auto& w : candidates) recall(w);
}

}  // namespace procpool
