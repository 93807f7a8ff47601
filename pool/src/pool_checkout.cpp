// The request path: a caller checks a worker out, does the I/O on its own thread, and gives
// the worker back. The supervisor is only told when a worker must go.
#include <fstream>

#include <fmt/format.h>

#include "pool_impl.hpp"

namespace procpool {
namespace {

bool is_worker_fault(errc code) {
  return code == errc::request_timeout || code == errc::worker_crashed ||
         code == errc::protocol_error;
}

long resident_kib(pid_t pid) {
  std::ifstream statm("/proc/" + std::to_string(pid) + "/statm");
  long size_pages = 0, resident_pages = 0;
  if (!(statm >> size_pages >> resident_pages)) return 0;
  return resident_pages * (::sysconf(_SC_PAGESIZE) / 1024);
}

}  // namespace

result<response> pool::impl::call(std::string_view command, nlohmann::json args,
                                  const call_options& co) {
  request_timeline timeline{.t_submit = monotonic_ns()};
  const deadline checkout_deadline =
      co.checkout_deadline.value_or(std::chrono::steady_clock::now() + options.checkout_timeout);
  std::unique_lock lock(mutex, std::defer_lock);
  auto finish = [&](error e) -> result<response> {
    if (lock.owns_lock()) lock.unlock();
    timeline.t_reply = monotonic_ns();
    timeline.outcome = e.code;
    emit(timeline);
    return e;
  };

  std::shared_ptr<pool_worker> w;
  lock.lock();
  if (stopping) return finish(error{errc::pool_stopped, "the pool is stopped"});
  timeline.request_id = next_request_id++;
  ++totals.calls;

  // Affinity: the worker that last served this key, while it lives.
  std::uint64_t preferred = 0;
  if (!co.affinity_key.empty()) {
    if (auto it = affinity.find(co.affinity_key); it != affinity.end() && live.count(it->second)) {
      preferred = it->second;
    }
  }
  if (preferred != 0) {
    auto& candidate = live[preferred];
    if (candidate->state == worker_state::idle) w = candidate;
  }
  if (!w && !idle.empty() && (preferred == 0 || options.affinity == affinity_mode::hint)) {
    w = idle.back();
  }
  if (w) {
    remove_from_idle(*w);
    set_state(*w, worker_state::busy, "checkout");
    ++busy;
  } else {
    if (degraded) {
      ++totals.failures;
      return finish(error{errc::start_failed,
                          fmt::format("the pool is degraded ({} failed starts within {} ms); "
                                      "last failure: {}", failed_start_times.size(),
                                      options.crash_loop_window.count(), last_start_failure)});
    }
    if (options.max_queue != 0 && waiters.size() >= options.max_queue) {
      ++totals.failures;
      return finish(error{errc::queue_full,
                          fmt::format("{} callers are already waiting", waiters.size())});
    }
    // On-demand start: one more worker per waiting caller, up to the pool's size.
    for (std::size_t i = 0; i < slots.size(); ++i) {
      if (!slots[i].wanted) {
        slots[i].wanted = true;
        slots[i].queued = true;
        pending_slots.push_back(i);
        sup->pump_starts();
        break;
      }
    }
    waiter me;
    me.required_worker = options.affinity == affinity_mode::strict ? preferred : 0;
    auto position = waiters.insert(waiters.end(), &me);
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
  if (!co.affinity_key.empty()) affinity[co.affinity_key] = w->id;
  timeline.worker = w->id;
  timeline.t_checkout = monotonic_ns();
  lock.unlock();

  // The request's I/O, on this thread, without the pool's lock.
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
  const std::uint64_t served = w->served + 1;
  const bool check_rss = reply && options.recycle_above_rss_kib != 0 &&
                         served % options.rss_check_every == 0;
  const long rss_kib = check_rss ? resident_kib(w->conn.process().pid()) : 0;

  lock.lock();
  --busy;
  w->served = served;
  std::optional<std::string> recycle_reason;
  if (reply) {
    slots[w->slot].failure_streak = 0;
    if (w->recycle_at != 0 && served >= w->recycle_at) {
      recycle_reason = fmt::format("recycled after {} requests", served);
    } else if (options.recycle_after_age.count() > 0 &&
               monotonic_ns() - w->t_ready_ns >=
                   std::chrono::nanoseconds(options.recycle_after_age).count()) {
      recycle_reason = "recycled at its maximum age";
    } else if (check_rss && rss_kib > static_cast<long>(options.recycle_above_rss_kib)) {
      recycle_reason = fmt::format("recycled at {} KiB resident", rss_kib);
    }
  }
  if (!reply) {
    sup->retire(w, fmt::format("{}: {}", to_string(reply.error().code), reply.error().message),
                /*graceful=*/false);
  } else if (w->exit_seen) {
    sup->retire(w, "exited after replying", /*graceful=*/false);
  } else if (stopping) {
    sup->retire(w, "pool stopping", /*graceful=*/true);
  } else if (recycle_reason) {
    ++totals.recycled;
    sup->retire(w, *recycle_reason, /*graceful=*/true);
  } else {
    release_worker(w, "free");
  }
  if (stopping) state_changed.notify_all();

  if (!reply) {
    ++totals.failures;
    error e = std::move(reply).error();
    if (stopping && is_worker_fault(e.code)) {
      e = error{errc::pool_stopped, "the pool stopped during the request: " + e.message};
    }
    return finish(std::move(e));
  }
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

}  // namespace procpool
