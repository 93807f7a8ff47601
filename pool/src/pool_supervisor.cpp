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

// The zygote template's descriptors the event loop waits on (duplicates, as for a worker).
struct template_io {
  explicit template_io(asio::io_context& io) : pidfd(io), err(io), channel(io) {}
  asio::posix::stream_descriptor pidfd;
  asio::posix::stream_descriptor err;
  asio::posix::stream_descriptor channel;  // open only until `ready`: forks poll it themselves
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
        guard(2 * p.options.size + 16),
        template_timer(io) {}
  ~state() { close_template({}); }

  pool_state& pool;
  asio::io_context io;
  asio::executor_work_guard<asio::io_context::executor_type> work;
  asio::steady_timer backoff_timer;
  asio::steady_timer housekeeping;
  std::thread thread;
  bool shutting_down = false;
  group_guard guard;
  // Zygote mode (pool/ZYGOTE.md): the template workers are forked from. It is launched
  // without blocking the loop; while it is not ready, the slots wait in pending_slots. A
  // failed launch or a death is one failed start, and a relaunch after a backoff of its own.
  enum class template_phase { down, launching, ready, backoff };
  std::shared_ptr<zygote_template> tpl;
  template_phase tpl_phase = template_phase::down;
  std::unique_ptr<template_io> tpl_io;
  asio::steady_timer template_timer;  // the ready deadline, then the relaunch backoff
  worker_facts tpl_facts;             // who the template's events are about
  worker_state tpl_state = worker_state::pending;
  std::uint32_t tpl_failure_streak = 0;

  bool zygote() const { return pool.options.worker.start_mode == start_mode::zygote; }
  static constexpr stop_plan kill_now{.after_stdin_close = std::chrono::milliseconds(0),
                                      .after_sigterm = std::chrono::milliseconds(0)};

  // --- starts -----------------------------------------------------------------------

  void pump() {
    if (zygote() && (!slots_waiting() || !template_ready())) return;  // its ready handler pumps
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
    if (zygote() && !template_usable()) return requeue(index);
    // The fork happens without the pool's lock: callers keep checking out meanwhile.
    auto conn = start_connection(
        launch, {.max_frame_bytes = o.max_frame_bytes, .stderr_tail_bytes = o.stderr_tail_bytes,
                 .drain_stderr = false});
    std::lock_guard lock(pool.mutex);
    if (!conn) {
      --pool.starting;
      if (zygote() && tpl && !tpl->usable()) {
        // The template broke, not this worker: one failure, counted as the template's.
        template_failed(conn.error().message);
        pool.schedule_replacement(index, /*count_failure=*/false);
        return;
      }
      start_failed(index, nullptr, conn.error().message);
      return;
    }
    auto w = std::make_shared<pool_worker>(id, index, std::move(*conn));
    w->state = worker_state::pending;
    if (zygote()) w->template_id = tpl_facts.worker;
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

  void on_init_reply(const std::shared_ptr<pool_worker>& w, result<std::string_view> payload) {
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
      pool.release_worker(w, "init done", w->t_ready_ns);
    }
    pool.state_changed.notify_all();
    asio::post(io, [this] { pump(); });
  }

  // A spawned worker, or in zygote mode one forked by the ready template. Either way a
  // worker_connection the rest of the pool treats alike.
  result<worker_connection> start_connection(const launch_options& launch,
                                             const connection_options& co) {
    if (!zygote()) return worker_connection::start(launch, co);
    auto forked = tpl->fork({{"PROCPOOL_WORKER_ID", launch.env.at("PROCPOOL_WORKER_ID")},
                             {"PROCPOOL_WORKER_SLOT", launch.env.at("PROCPOOL_WORKER_SLOT")}},
                            pool.options.start_timeout);
    if (!forked) return std::move(forked).error();
    return worker_connection(std::move(forked->process), co);
  }

  // A slot popped for a start that cannot happen yet goes back to wait, with no failure.
  void requeue(std::size_t index) {
    std::lock_guard lock(pool.mutex);
    --pool.starting;
    pool.schedule_replacement(index, /*count_failure=*/false);
  }

  // --- the zygote template ----------------------------------------------------------------

  // A zygote pool launches its template only once a worker is wanted (prewarm none).
  bool slots_waiting() {
    std::lock_guard lock(pool.mutex);
    return !pool.pending_slots.empty() && !pool.stopping;
  }

  // Launches the template when it is down; true once it is ready to fork.
  bool template_ready() {
    if (tpl_phase == template_phase::down) launch_template();
    return tpl_phase == template_phase::ready;
  }

  // Ready and still alive: a death the pidfd handler has not seen yet is handled here.
  bool template_usable() {
    if (tpl_phase != template_phase::ready) return false;
    if (tpl->usable()) return true;
    std::lock_guard lock(pool.mutex);
    template_failed(template_exit_message());
    return false;
  }

  void launch_template() {
    {
      std::lock_guard lock(pool.mutex);
      if (pool.stopping || shutting_down) return;
      tpl_facts = {.worker = pool.next_worker_id++,
                   .slot = pool.options.size,
                   .t_spawn_ns = monotonic_ns(),
                   .role = worker_role::zygote_template};
      tpl_state = worker_state::pending;
    }
    auto spawned = zygote_template::spawn(pool.options.worker, pool.options.ping_timeout);
    std::lock_guard lock(pool.mutex);
    if (!spawned) return template_failed(spawned.error().message);
    if (pool.stopping || shutting_down) {
      (void)(*spawned)->close(kill_now);  // the pool began to stop while it was spawned
      return;
    }
    tpl = std::move(*spawned);
    tpl_phase = template_phase::launching;
    tpl_facts.pid = tpl->pid();
    guard.add(tpl->pid());
    template_event(worker_state::starting, "zygote template spawned");
    tpl_io = std::make_unique<template_io>(io);
    tpl_io->pidfd.assign(::dup(tpl->pidfd()));
    tpl_io->channel.assign(::dup(tpl->channel_fd()));
    if (tpl->stderr_fd() >= 0) {
      tpl_io->err.assign(::dup(tpl->stderr_fd()));
      drain_template_stderr();
    }
    watch_template_exit();
    await_template_ready();
    // A preload slower than the start timeout is a start timeout, as a worker's start-up is.
    template_timer.expires_after(pool.options.start_timeout);
    template_timer.async_wait([this, t = tpl](error_code ec) {
      if (ec || t != tpl || tpl_phase != template_phase::launching) return;
      std::lock_guard lock2(pool.mutex);
      (void)tpl->drain_stderr();
      template_failed(fmt::format("zygote template {} did not finish its preload within {} ms{}",
                                  tpl->pid(), pool.options.start_timeout.count(),
                                  tpl->stderr_quote()));
    });
  }

  void await_template_ready() {
    tpl_io->channel.async_wait(asio::posix::descriptor_base::wait_read,
                               [this, t = tpl](error_code ec) {
      if (ec || t != tpl || tpl_phase != template_phase::launching) return;
      std::lock_guard lock(pool.mutex);
      auto ready = tpl->try_ready();
      if (!ready) return template_failed(ready.error().message);
      if (!*ready) return await_template_ready();
      on_template_ready();
    });
  }

  // REQUIRES: pool.mutex held.
  void on_template_ready() {
    template_timer.cancel();
    tpl_io->channel.close();
    tpl_phase = template_phase::ready;
    tpl_failure_streak = 0;
    const auto& ready = tpl->ready_message();
    tpl_facts.t_main_ns = ready.value("t_main_ns", std::int64_t{0});
    tpl_facts.t_init_done_ns = ready.value("t_preload_done_ns", std::int64_t{0});
    template_event(worker_state::idle, "zygote template ready");
    asio::post(io, [this] { pump(); });
  }

  void watch_template_exit() {
    tpl_io->pidfd.async_wait(asio::posix::descriptor_base::wait_read,
                             [this, t = tpl](error_code ec) {
      if (ec || t != tpl) return;
      std::lock_guard lock(pool.mutex);
      template_failed(template_exit_message());
    });
  }

  // Its stderr is read while it runs, so that a chatty preload or template never blocks.
  void drain_template_stderr() {
    tpl_io->err.async_wait(asio::posix::descriptor_base::wait_read,
                           [this, t = tpl](error_code ec) {
      if (ec || t != tpl || !tpl_io) return;
      if (tpl->drain_stderr()) drain_template_stderr();
    });
  }

  std::string template_exit_message() {
    (void)tpl->drain_stderr();
    const auto status = tpl->exit_status_now();
    return fmt::format("zygote template {} {}{}{}", tpl->pid(),
                       tpl_phase == template_phase::launching ? "during its preload: " : "",
                       status ? status->describe() : "exited", tpl->stderr_quote());
  }

  // The template failed to launch, or died: one failed start for the crash-loop guard (its
  // workers die with it, by their parent-death signal, and are replaced once it is back), and
  // a relaunch after a backoff of its own. REQUIRES: pool.mutex held.
  void template_failed(const std::string& message) {
    record_failed_start(message);
    template_event(worker_state::exited, message, exit_kind::fault);
    // Killed and reaped off the pool's lock: callers keep checking out meanwhile.
    tpl_io.reset();
    if (tpl) {
      asio::post(io, [this, dying = std::move(tpl)] {
        (void)dying->close(kill_now);
        guard.remove(dying->pid());
      });
    }
    tpl_phase = template_phase::backoff;
    ++tpl_failure_streak;
    template_timer.expires_after(pool.backoff_for(tpl_failure_streak));
    template_timer.async_wait([this](error_code ec) {
      if (ec || tpl_phase != template_phase::backoff) return;
      tpl_phase = template_phase::down;
      pump();
    });
  }

  // REQUIRES: pool.mutex held.
  void template_event(worker_state to, std::string_view cause, exit_kind exit = exit_kind::none) {
    const worker_state from = std::exchange(tpl_state, to);
    if (pool.options.observer.on_worker_event) {
      pool.options.observer.on_worker_event(make_worker_event(tpl_facts, from, to, cause, exit));
    }
  }

  // At the pool's stop, on the supervisor thread after its loop ended.
  void retire_template() {
    if (!tpl) return;
    {
      std::lock_guard lock(pool.mutex);
      template_event(worker_state::exited, "pool stopping", exit_kind::planned_stop);
    }
    // A template still in its preload reads no channel: waiting for its EOF would be in vain.
    close_template(tpl_phase == template_phase::launching ? kill_now : pool.options.worker_stop);
  }

  // Closes the template (it kills and reaps the workers it still holds) and reaps it. Its
  // workers' handles then report SIGKILL.
  void close_template(const stop_plan& plan) {
    tpl_io.reset();
    tpl_phase = template_phase::down;
    if (!tpl) return;
    const pid_t pid = tpl->pid();
    (void)tpl->close(plan);
    guard.remove(pid);
    tpl.reset();
  }

  // REQUIRES: pool.mutex held. `w` may be null when the launch itself failed.
  void start_failed(std::size_t index, const std::shared_ptr<pool_worker>& w,
                    const std::string& message) {
    if (w && lost_with_template(*w)) {
      // Killed by its parent-death signal: the template's failure is the one counted.
      finish(w, fmt::format("start failed: {} (its zygote template exited)", message));
      return;
    }
    if (w) {
      w->lost = true;
      finish(w, "start failed: " + message);
    } else {
      pool.schedule_replacement(index, /*count_failure=*/true);
    }
    record_failed_start(message);
    asio::post(io, [this] { pump(); });
  }

  // Counts a failed start (a worker's or the template's) in the crash-loop guard, which
  // degrades the pool, failing its waiters fast, after too many within the window.
  // REQUIRES: pool.mutex held.
  void record_failed_start(const std::string& message) {
    ++pool.totals.failed_starts;
    pool.last_start_failure = message;
    const std::int64_t now = monotonic_ns();
    pool.failed_start_times.push_back(now);
    const auto window = std::chrono::nanoseconds(pool.options.crash_loop_window).count();
    while (!pool.failed_start_times.empty() && pool.failed_start_times.front() < now - window) {
      pool.failed_start_times.pop_front();
    }
    if (!pool.degraded && pool.failed_start_times.size() >= pool.options.crash_loop_failures) {
      pool.degraded = true;
      pool.fail_waiters(error{errc::start_failed,
                              fmt::format("the pool is degraded after {} failed starts; last: {}",
                                          pool.failed_start_times.size(), message)});
      pool.state_changed.notify_all();
    }
  }

  // --- replies awaited by the supervisor (handshake, ping) -----------------------------

  // The payload is a view into the connection's buffer, for the handler to use at once.
  using reply_handler = void (state::*)(const std::shared_ptr<pool_worker>&,
                                        result<std::string_view>);

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
      (this->*handler)(w, **payload);
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
        pool.recall(w);       // or, parked, it is given back now
        return;
      case worker_state::starting:
        --pool.starting;
        w->conn.drain_stderr();
        start_failed(w->slot, w, fmt::format("worker {} {} during start-up{}", w->conn.process().pid(),
                                             how, quote_stderr(*w)));
        return;
      case worker_state::idle:
      case worker_state::pinging: {
        pool.remove_from_idle(*w);
        ++pool.totals.workers_lost;
        // One that died with its template leaves no backoff on its slot: that failure counted.
        const bool with_template = lost_with_template(*w);
        w->lost = !with_template;
        w->conn.drain_stderr();
        finish(w, fmt::format("crashed while idle: {}{}{}", how,
                              with_template ? " (its zygote template exited)" : "",
                              quote_stderr(*w)));
        return;
      }
      case worker_state::stopping:
        finish(w, how);
        return;
      default:
        return;
    }
  }

  // A forked worker whose template is gone died with it (or is about to). Its own template,
  // not the current one: a worker of a dead template may be noticed after the next is ready.
  bool lost_with_template(const pool_worker& w) {
    if (!zygote()) return false;
    if (w.template_id != tpl_facts.worker) return true;
    return !(tpl && tpl_phase == template_phase::ready && tpl->usable());
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
    // Workers parked by callers go back to the idle stack, to be pinged and aged like any.
    pool.recall_parked();
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

  void on_pong(const std::shared_ptr<pool_worker>& w, result<std::string_view> payload) {
    std::lock_guard lock(pool.mutex);
    if (w->state != worker_state::pinging) return;
    if (!payload) return lose(w, "failed a health ping: " + payload.error().message);
    auto reply = decode_response(*payload);
    if (!reply) return lose(w, "failed a health ping: " + reply.error().message);
    if (reply->id != w->io->ping_id || !reply->ok) {
      return lose(w, fmt::format("failed a health ping: answered id {} ok={}", reply->id, reply->ok));
    }
    pool.release_worker(w, "ping answered", monotonic_ns());
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
    s_->retire_template();
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
    // A caller found it dead; if its template died too, that failure is the one counted.
    if (!graceful && s_->lost_with_template(*w)) w->lost = false;
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
    s.template_timer.cancel();
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
