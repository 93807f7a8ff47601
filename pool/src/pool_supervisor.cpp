// The supervisor: one thread running an Asio io_context that owns every worker's lifetime.
// It launches workers (so PR_SET_PDEATHSIG binds them to this long-lived thread), completes
// their handshakes without blocking, drains their stderr, learns of their exits through
// pidfds, pings idle workers, recycles and replaces them.
#include <unistd.h>

#include <array>
#include <csignal>
#include <thread>

#include <boost/asio/io_context.hpp>
#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/posix/stream_descriptor.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <fmt/format.h>

#include "group_guard.hpp"
#include "zygote_template.hpp"
#include "pool_impl.hpp"

namespace procpool {

namespace asio = boost::asio;
using boost::system::error_code;

struct worker_io {
  explicit worker_io(asio::io_context& io) : pidfd(io), err(io), out(io), timer(io) {}
  asio::posix::stream_descriptor pidfd;  // duplicates: the worker_process keeps its own fds
  asio::posix::stream_descriptor err;
  asio::posix::stream_descriptor out;    // open only while a handshake or ping is awaited
  asio::steady_timer timer;              // handshake, ping and graceful-stop deadlines
  std::array<char, 16 * 1024> err_buffer;
  std::uint64_t ping_id = 0;
};

pool_worker::pool_worker(std::uint64_t id_, std::size_t slot_, worker_connection conn_)
    : id(id_), slot(slot_), conn(std::move(conn_)) {}
pool_worker::~pool_worker() = default;

struct supervisor::state {
  using pool_state = procpool::pool::impl;

  explicit state(pool_state& p)
      : pool(p),
        work(asio::make_work_guard(io)),
        backoff_timer(io),
        housekeeping(io),
        // A recycled worker may still be stopping while its replacement runs.
        guard(2 * p.options.size + 16) {}
  ~state() { close_template(); }

  pool_state& pool;
  asio::io_context io;
  asio::executor_work_guard<asio::io_context::executor_type> work;
  asio::steady_timer backoff_timer;
  asio::steady_timer housekeeping;
  std::thread thread;
  bool shutting_down = false;
  group_guard guard;
  // Zygote mode: the template workers are forked from; null until the first start, and after
  // it failed or broke (the next start launches a new one).
  std::shared_ptr<zygote_template> tpl;

  // --- starts -----------------------------------------------------------------------

  void pump() {
    std::vector<std::size_t> to_start;
    {
      std::lock_guard lock(pool.mutex);
      if (pool.stopping) return;
      const std::size_t cap = pool.effective_start_cap();
      const std::int64_t now = monotonic_ns();
      std::int64_t earliest = 0;
      for (std::size_t n = pool.pending_slots.size(); n > 0 && pool.starting < cap; --n) {
        const std::size_t index = pool.pending_slots.front();
        pool.pending_slots.pop_front();
        pool_slot& slot = pool.slots[index];
        if (slot.not_before_ns > now) {
          pool.pending_slots.push_back(index);
          earliest = earliest == 0 ? slot.not_before_ns : std::min(earliest, slot.not_before_ns);
          continue;
        }
        slot.queued = false;
        ++pool.starting;
        to_start.push_back(index);
      }
      if (earliest != 0) {
        backoff_timer.expires_after(std::chrono::nanoseconds(earliest - now));
        backoff_timer.async_wait([this](error_code ec) {
          if (!ec) pump();
        });
      }
    }
    for (std::size_t index : to_start) launch(index);
  }

  void launch(std::size_t index) {
    const pool_options& o = pool.options;
    launch_options launch = o.worker;
    std::uint64_t id;
    {
      std::lock_guard lock(pool.mutex);
      id = pool.next_worker_id++;
    }
    // Lets a worker tell itself apart from its siblings and predecessors (seeds, logs).
    launch.env["PROCPOOL_WORKER_ID"] = std::to_string(id);
    launch.env["PROCPOOL_WORKER_SLOT"] = std::to_string(index);
    // The fork happens without the pool's lock: callers keep checking out meanwhile.
    auto conn = start_connection(
        launch, {.max_frame_bytes = o.max_frame_bytes, .stderr_tail_bytes = o.stderr_tail_bytes,
                 .drain_stderr = false});
    std::lock_guard lock(pool.mutex);
    if (!conn) {
      --pool.starting;
      start_failed(index, nullptr, conn.error().message);
      return;
    }
    auto w = std::make_shared<pool_worker>(id, index, std::move(*conn));
    w->state = worker_state::pending;
    w->t_spawn_ns = w->conn.process().t_spawn_ns();
    w->recycle_at = pool.draw_recycle_at();
    pool.slots[index].worker = w;
    pool.live[w->id] = w;
    guard.add(w->conn.process().pid());
    pool.set_state(*w, worker_state::starting, "spawned");

    const auto start_deadline = std::chrono::steady_clock::time_point(
        std::chrono::nanoseconds(w->t_spawn_ns) + o.start_timeout + o.init_timeout);
    if (auto sent = w->conn.send_init(o.init_args, start_deadline); !sent) {
      --pool.starting;
      start_failed(index, w, sent.error().message);
      return;
    }
    w->io = std::make_unique<worker_io>(io);
    w->io->pidfd.assign(::dup(w->conn.process().pidfd()));
    w->io->err.assign(::dup(w->conn.process().stderr_fd()));
    read_stderr(w);
    w->io->pidfd.async_wait(asio::posix::descriptor_base::wait_read,
                            [this, w](error_code ec) { on_exit(w, ec); });
    await_reply(w, start_deadline, &state::on_init_reply, fmt::format(
        "did not finish start-up and init within {} ms",
        (o.start_timeout + o.init_timeout).count()));
  }

  void on_init_reply(const std::shared_ptr<pool_worker>& w, result<std::string> payload) {
    std::lock_guard lock(pool.mutex);
    if (w->state != worker_state::starting) return;
    --pool.starting;
    if (!payload) return start_failed(w->slot, w, payload.error().message);
    auto hello = w->conn.finish_init(*payload);
    if (!hello) return start_failed(w->slot, w, hello.error().message);
    w->t_main_ns = hello->t_main_ns;
    w->t_init_done_ns = hello->t_init_done_ns;
    w->t_ready_ns = monotonic_ns();
    ++pool.totals.starts;
    pool_slot& slot = pool.slots[w->slot];
    slot.ever_ready = true;
    if (pool.degraded) pool.degraded = false;
    pool.failed_start_times.clear();
    if (pool.stopping) {
      graceful_stop(w, "pool stopping", exit_kind::planned_stop);
    } else {
      pool.release_worker(w, "init done");
    }
    pool.state_changed.notify_all();
    asio::post(io, [this] { pump(); });
  }

  // A spawned worker, or in zygote mode one forked by the template (launched first when
  // there is none). Either way a worker_connection the rest of the pool treats alike.
  result<worker_connection> start_connection(const launch_options& launch,
                                             const connection_options& co) {
    if (launch.start_mode != start_mode::zygote) return worker_connection::start(launch, co);
    if (auto ready = ensure_template(); !ready) return std::move(ready).error();
    auto forked = tpl->fork({{"PROCPOOL_WORKER_ID", launch.env.at("PROCPOOL_WORKER_ID")},
                             {"PROCPOOL_WORKER_SLOT", launch.env.at("PROCPOOL_WORKER_SLOT")}},
                            pool.options.start_timeout);
    if (!forked) {
      // A template that broke its channel takes its workers with it; the next start
      // launches a new one. fork_failed leaves it usable.
      if (!tpl->usable()) close_template();
      return std::move(forked).error();
    }
    return worker_connection(std::move(forked->process), co);
  }

  // TODO(issue 12, pool/ZYGOTE.md, "what is left" step 1): this waits for `ready` on the
  // supervisor thread (up to start_timeout), blocking its event loop; make it asynchronous.
  // The restart backoff and crash-loop guard apply through the failed start it causes.
  result<void> ensure_template() {
    if (tpl && tpl->usable()) return {};
    close_template();
    auto launched = zygote_template::launch(pool.options.worker, pool.options.start_timeout,
                                            pool.options.ping_timeout);
    if (!launched) return std::move(launched).error();
    tpl = std::move(*launched);
    guard.add(tpl->pid());
    return {};
  }

  // Closes the template (it kills and reaps the workers it still holds) and reaps it. Its
  // workers' handles then report SIGKILL.
  void close_template() {
    if (!tpl) return;
    const pid_t pid = tpl->pid();
    (void)tpl->close(pool.options.worker_stop);
    guard.remove(pid);
    tpl.reset();
  }

  // REQUIRES: pool.mutex held. `w` may be null when the launch itself failed.
  void start_failed(std::size_t index, const std::shared_ptr<pool_worker>& w,
                    const std::string& message) {
    ++pool.totals.failed_starts;
    pool.last_start_failure = message;
    const std::int64_t now = monotonic_ns();
    pool.failed_start_times.push_back(now);
    const auto window = std::chrono::nanoseconds(pool.options.crash_loop_window).count();
    while (!pool.failed_start_times.empty() && pool.failed_start_times.front() < now - window) {
      pool.failed_start_times.pop_front();
    }
    if (w) {
      w->lost = true;
      finish(w, "start failed: " + message);
    } else {
      pool.schedule_replacement(index, /*count_failure=*/true);
    }
    if (!pool.degraded && pool.failed_start_times.size() >= pool.options.crash_loop_failures) {
      pool.degraded = true;
      pool.fail_waiters(error{errc::start_failed,
                              fmt::format("the pool is degraded after {} failed starts; last: {}",
                                          pool.failed_start_times.size(), message)});
      pool.state_changed.notify_all();
    }
    asio::post(io, [this] { pump(); });
  }

  // --- replies awaited by the supervisor (handshake, ping) -----------------------------

  using reply_handler = void (state::*)(const std::shared_ptr<pool_worker>&, result<std::string>);

  void await_reply(const std::shared_ptr<pool_worker>& w, deadline until, reply_handler handler,
                   std::string timeout_message) {
    w->io->out.assign(::dup(w->conn.process().stdout_fd()));
    w->io->timer.expires_at(until);
    w->io->timer.async_wait([this, w, handler, timeout_message](error_code ec) {
      if (ec || !w->io || !w->io->out.is_open()) return;
      w->io->out.close();
      (this->*handler)(w, error{errc::request_timeout,
                                fmt::format("worker {} {}", w->conn.process().pid(),
                                            timeout_message)});
    });
    wait_readable(w, handler);
  }

  void wait_readable(const std::shared_ptr<pool_worker>& w, reply_handler handler) {
    w->io->out.async_wait(asio::posix::descriptor_base::wait_read,
                          [this, w, handler](error_code ec) {
      if (ec || !w->io || !w->io->out.is_open()) return;
      auto payload = w->conn.try_receive_payload();
      if (payload && !*payload) return wait_readable(w, handler);
      w->io->out.close();
      w->io->timer.cancel();
      if (!payload) return (this->*handler)(w, std::move(payload).error());
      (this->*handler)(w, std::move(**payload));
    });
  }

  // --- stderr and exits ------------------------------------------------------------------

  void read_stderr(const std::shared_ptr<pool_worker>& w) {
    auto& buffer = w->io->err_buffer;
    w->io->err.async_read_some(asio::buffer(buffer), [this, w](error_code ec, std::size_t n) {
      if (ec || !w->io) return;  // end of stream, or the worker is gone
      w->conn.stderr_sink().append({w->io->err_buffer.data(), n});
      read_stderr(w);
    });
  }

  void on_exit(const std::shared_ptr<pool_worker>& w, error_code ec) {
    if (ec || !w->io) return;
    std::lock_guard lock(pool.mutex);
    const auto status = w->conn.process().peek_exit(std::chrono::milliseconds(0));
    const std::string how = status ? status->describe() : "exited";
    switch (w->state) {
      case worker_state::busy:
        w->exit_seen = true;  // the caller holding it will find out and give it back
        return;
      case worker_state::starting:
        --pool.starting;
        w->conn.drain_stderr();
        start_failed(w->slot, w, fmt::format("worker {} {} during start-up{}", w->conn.process().pid(),
                                             how, quote_stderr(*w)));
        return;
      case worker_state::idle:
      case worker_state::pinging:
        pool.remove_from_idle(*w);
        ++pool.totals.workers_lost;
        w->lost = true;
        w->conn.drain_stderr();
        finish(w, fmt::format("crashed while idle: {}{}", how, quote_stderr(*w)));
        return;
      case worker_state::stopping:
        finish(w, how);
        return;
      default:
        return;
    }
  }

  static std::string quote_stderr(const pool_worker& w) {
    std::string tail = w.conn.stderr_lines(5);
    return tail.empty() ? "" : "; last stderr lines:\n" + tail;
  }

  // The worker is gone or must go now: kill its group, reap it, release its descriptors and
  // queue the slot's replacement. REQUIRES: pool.mutex held.
  void finish(const std::shared_ptr<pool_worker>& w, const std::string& cause,
              exit_kind exit = exit_kind::none) {
    if (w->state == worker_state::exited) return;
    w->conn.process().kill();
    guard.remove(w->conn.process().pid());
    w->io.reset();
    pool.forget_worker(*w);
    pool.set_state(*w, worker_state::exited, cause, exit);
    if (pool.slots[w->slot].worker == w) pool.schedule_replacement(w->slot, w->lost);
    pool.state_changed.notify_all();
    if (shutting_down && pool.live.empty()) {
      work.reset();
      io.stop();
    } else {
      asio::post(io, [this] { pump(); });
    }
  }

  // A busy worker at shutdown, its caller past the drain deadline. A lease between calls
  // may never come back: take the worker from it. Otherwise kill the worker; its caller
  // finds out and gives it back. REQUIRES: pool.mutex held.
  void revoke_or_kill(const std::shared_ptr<pool_worker>& w) {
    auto seen = w->lease.load();
    for (;;) {
      if (seen == lease_state::held) {
        if (!w->lease.compare_exchange_weak(seen, lease_state::revoked)) continue;
        --pool.busy;
        finish(w, "pool stopping: its lease was revoked");
        return;
      }
      if (seen == lease_state::in_call &&
          !w->lease.compare_exchange_weak(seen, lease_state::revoke_requested)) {
        continue;
      }
      w->conn.process().signal_group(SIGKILL);
      return;
    }
  }

  // Close stdin, then SIGTERM the group, then SIGKILL it. REQUIRES: pool.mutex held.
  void graceful_stop(const std::shared_ptr<pool_worker>& w, const std::string& cause, exit_kind exit) {
    if (w->state != worker_state::stopping) pool.set_state(*w, worker_state::stopping, cause, exit);
    w->conn.process().close_stdin();
    if (!w->io) return finish(w, cause);
    const stop_plan plan = pool.options.worker_stop;
    w->io->out.close();
    w->io->timer.expires_after(plan.after_stdin_close);
    w->io->timer.async_wait([this, w, plan](error_code ec) {
      if (ec || !w->io) return;
      std::lock_guard lock(pool.mutex);
      w->conn.process().signal_group(SIGTERM);
      w->io->timer.expires_after(plan.after_sigterm);
      w->io->timer.async_wait([this, w](error_code ec2) {
        if (ec2 || !w->io) return;
        std::lock_guard lock2(pool.mutex);
        finish(w, "did not stop in time: killed");
      });
    });
  }

  // --- idle workers: pings and age ------------------------------------------------------

  std::chrono::milliseconds housekeeping_period() const {
    const auto& o = pool.options;
    std::chrono::milliseconds period{0};
    if (o.idle_ping_interval.count() > 0) period = o.idle_ping_interval;
    if (o.recycle_after_age.count() > 0) {
      const auto age_tick = std::max(std::chrono::milliseconds(10), o.recycle_after_age / 4);
      period = period.count() == 0 ? age_tick : std::min(period, age_tick);
    }
    return period;
  }

  void arm_housekeeping() {
    const auto period = housekeeping_period();
    if (period.count() == 0 || shutting_down) return;
    housekeeping.expires_after(period);
    housekeeping.async_wait([this](error_code ec) {
      if (ec) return;
      look_after_idle_workers();
      arm_housekeeping();
    });
  }

  void look_after_idle_workers() {
    std::lock_guard lock(pool.mutex);
    if (pool.stopping) return;
    const auto& o = pool.options;
    const std::int64_t now = monotonic_ns();
    const auto idle_snapshot = pool.idle;
    for (const auto& w : idle_snapshot) {
      if (o.recycle_after_age.count() > 0 &&
          now - w->t_ready_ns >= std::chrono::nanoseconds(o.recycle_after_age).count()) {
        pool.remove_from_idle(*w);
        ++pool.totals.recycled;
        graceful_stop(w, "recycled at its maximum age", exit_kind::recycled);
      } else if (o.idle_ping_interval.count() > 0 &&
                 now - w->idle_since_ns >= std::chrono::nanoseconds(o.idle_ping_interval).count()) {
        pool.remove_from_idle(*w);
        pool.set_state(*w, worker_state::pinging, "health ping");
        w->io->ping_id = pool.next_request_id++;
        const request ping{.id = w->io->ping_id, .command = "ping"};
        const deadline until = deadline_after(o.ping_timeout);
        if (auto sent = w->conn.send_payload(encode(ping), until); !sent) {
          lose(w, "failed a health ping: " + sent.error().message);
          continue;
        }
        await_reply(w, until, &state::on_pong,
                    fmt::format("did not answer a health ping within {} ms", o.ping_timeout.count()));
      }
    }
  }

  void on_pong(const std::shared_ptr<pool_worker>& w, result<std::string> payload) {
    std::lock_guard lock(pool.mutex);
    if (w->state != worker_state::pinging) return;
    if (!payload) return lose(w, "failed a health ping: " + payload.error().message);
    auto reply = decode_response(*payload);
    if (!reply) return lose(w, "failed a health ping: " + reply.error().message);
    if (reply->id != w->io->ping_id || !reply->ok) {
      return lose(w, fmt::format("failed a health ping: answered id {} ok={}", reply->id, reply->ok));
    }
    pool.release_worker(w, "ping answered");
  }

  // REQUIRES: pool.mutex held.
  void lose(const std::shared_ptr<pool_worker>& w, const std::string& cause) {
    ++pool.totals.workers_lost;
    w->lost = true;
    finish(w, cause);
  }
};

supervisor::supervisor(pool::impl& p) : s_(std::make_unique<state>(p)) {}

supervisor::~supervisor() {
  if (s_->thread.joinable()) shutdown();
}

void supervisor::start() {
  s_->thread = std::thread([this] {
    s_->io.run();
    // On this thread: the template's parent-death signal is tied to it.
    s_->close_template();
  });
  asio::post(s_->io, [this] {
    s_->pump();
    s_->arm_housekeeping();
  });
}

void supervisor::pump_starts() {
  asio::post(s_->io, [this] { s_->pump(); });
}

void supervisor::retire(std::shared_ptr<pool_worker> w, std::string cause, exit_kind exit) {
  // Called by a caller holding the pool's lock: the state changes now, the work is posted.
  const bool graceful = exit == exit_kind::planned_stop || exit == exit_kind::recycled;
  if (!graceful) {
    w->lost = true;
    ++s_->pool.totals.workers_lost;
  }
  s_->pool.set_state(*w, worker_state::stopping, cause, exit);
  asio::post(s_->io, [this, w = std::move(w), cause = std::move(cause), graceful, exit] {
    std::lock_guard lock(s_->pool.mutex);
    if (graceful) {
      s_->graceful_stop(w, cause, exit);
    } else {
      s_->finish(w, cause);
    }
  });
}

void supervisor::shutdown() {
  if (!s_->thread.joinable()) return;
  asio::post(s_->io, [this] {
    state& s = *s_;
    s.shutting_down = true;
    s.backoff_timer.cancel();
    s.housekeeping.cancel();
    std::lock_guard lock(s.pool.mutex);
    s.pool.pending_slots.clear();
    const auto workers = s.pool.live;
    for (const auto& [id, w] : workers) {
      if (w->state == worker_state::busy) {
        s.revoke_or_kill(w);
      } else if (w->state == worker_state::starting) {
        --s.pool.starting;
        s.finish(w, "pool stopping during start-up", exit_kind::planned_stop);
      } else if (w->state != worker_state::stopping) {
        s.pool.remove_from_idle(*w);
        s.graceful_stop(w, "pool stopping", exit_kind::planned_stop);
      }
    }
    if (s.pool.live.empty()) {
      s.work.reset();
      s.io.stop();
    }
  });
  s_->thread.join();
}

}  // namespace procpool
