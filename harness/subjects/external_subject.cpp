// external_subject: a driver process owns the pool; this side writes submit lines from the
// callers' threads (and from whichever thread calls submit) and one reader thread completes
// them from the driver's done lines. The reader thread also launches, watches, kills and
// reaps the driver, so that every process operation happens on one thread and
// PR_SET_PDEATHSIG is tied to the subject's lifetime.
// The reader thread runs an Asio io_context of its own: reading lines from the driver's
// stdout, draining its stderr, waiting on its pidfd and on the kill deadline; other threads
// reach it by posting to that context.
#include "subjects/external_subject.hpp"

#include <poll.h>

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <csignal>
#include <limits>
#include <map>
#include <mutex>
#include <optional>
#include <string_view>
#include <thread>
#include <unordered_map>
#include <utility>

#include <boost/asio/buffer.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/posix/stream_descriptor.hpp>
#include <boost/asio/read_until.hpp>
#include <boost/asio/steady_timer.hpp>
#include <fmt/format.h>

#include "procpool/wire/file_io.hpp"
#include "procpool/wire/stderr_tail.hpp"
#include "procpool/wire/worker_process.hpp"
#include "subjects/driver_line.hpp"
#include "subjects/driver_workers.hpp"

namespace procpool::harness {
namespace {

namespace asio = boost::asio;
using namespace std::chrono_literals;
using json = nlohmann::json;
using boost::system::error_code;

// How long the driver may take to exit after "stop" before its group is killed.
constexpr auto driver_exit_grace = 5s;
// How long stop() may spend writing "stop" to a driver that no longer reads its stdin.
constexpr auto stop_write_timeout = 1s;
// Once the driver is reaped (its group killed), how long its pipes may take to reach end of
// file: they hold its last lines. Only a process that left the group can keep them open.
constexpr auto pipes_close_grace = 1s;
constexpr std::size_t quoted_stderr_lines = 20;
constexpr std::size_t stderr_chunk_bytes = 64 * 1024;

void ignore_sigpipe() {
  // A write to a dead driver's stdin must be EPIPE, not a signal that kills the harness.
  static std::once_flag once;
  std::call_once(once, [] { ::signal(SIGPIPE, SIG_IGN); });
}

// One call waiting for its done line; lives on the caller's stack while in waiters_.
struct waiter {
  std::condition_variable cv;
  bool done = false;
  std::optional<error> failure;  // set when the driver died or broke before answering
  driver_done event;
  std::int64_t t_reply = 0;
};

// A done line's outcome, its stamps copied into the request's timeline.
result<response> outcome_of(const driver_done& d, request_timeline& timeline) {
  timeline.worker = d.worker_pid;
  timeline.t_checkout = d.t_start_ns;
  timeline.t_sent = d.t_start_ns;
  timeline.t_worker_recv = d.reply.t_recv_ns;
  timeline.t_worker_done = d.reply.t_done_ns;
  if (d.reply.ok) return d.reply;
  // The driver reports a pool that lost the task's process with a reserved error type.
  const errc code =
      d.reply.failure.type == "worker_crashed" ? errc::worker_crashed : errc::worker_error;
  return error{code, d.reply.failure.message, d.reply.failure.type};
}

// One submitted request: completed by the reader thread from its done line, at its deadline
// or when the driver is gone, or by the submitting thread if its line could not be written.
struct submitted {
  request_timeline timeline;
  deadline until;
  subject_completion done;
};

// How often the reader thread looks for submitted requests past their deadline: the bound on
// how late a request_timeout is reported.
constexpr auto deadline_sweep_interval = 10ms;

enum class phase { launching, starting, running, stopping, finished };

class external_subject final : public subject {
 public:
  external_subject(std::vector<std::string> command, pool_options options, subject_start start)
      : command_(std::move(command)),
        options_(std::move(options)),
        start_(start),
        stderr_(options_.stderr_tail_bytes),
        workers_(options_.observer.on_worker_event) {
    ignore_sigpipe();
  }

  ~external_subject() override { stop({}); }

  result<void> start();

  result<response> call(std::string_view command, nlohmann::json args,
                        const call_options& options) override;
  bool submit(std::string_view command, nlohmann::json args, const call_options& options,
              subject_completion done) override;
  bool wait_ready(deadline until) override;
  pool_stats stats() const override;
  void stop(const stop_options& options) override;

 private:
  deadline call_deadline(const call_options& o) const {
    if (o.reply_deadline) return *o.reply_deadline;
    return o.checkout_deadline.value_or(deadline_after(options_.checkout_timeout)) +
           options_.request_timeout;
  }
  // A new request's timeline: its id and submit time.
  request_timeline open_request() {
    request_timeline timeline{{.t_submit = monotonic_ns()}};
    timeline.request_id = next_id_.fetch_add(1);
    return timeline;
  }
  // Counts the request and, while the driver runs, books it with `book` (under the lock);
  // otherwise the error that refuses it.
  template <class Book>
  std::optional<error> admit(Book&& book) {
    std::lock_guard lock(mutex_);
    ++totals_.calls;
    if (phase_ != phase::running) {
      return broken_ ? *broken_ : error{errc::pool_stopped, "the external subject is stopping"};
    }
    book();
    ++outstanding_;
    return std::nullopt;
  }
  result<void> write_line(std::string_view line, deadline until);
  result<response> finish_call(request_timeline& timeline, result<response> outcome);
  std::string submit_line(std::uint64_t id, std::string_view command, nlohmann::json args,
                          std::int64_t t_intended_ns) const;
  // Fails a submitted request whose line was not written, unless the reader completed it.
  void submit_failed(std::uint64_t id, error failure);
  void complete(submitted request, result<response> outcome);
  // Takes a submitted request out of the books, if still there. REQUIRES: mutex_ held.
  std::optional<submitted> take_submitted(std::uint64_t id);
  // Has the reader thread look at kill_now_ and kill_at_.
  void wake();
  // Marks the driver broken (calls fail with `why` from now on) and has the reader kill it.
  void kill_driver(error why);
  std::string with_stderr(std::string message) const;

  // --- the reader thread -------------------------------------------------------------
  void run();
  void serve(worker_process& proc);
  void read_line();
  void on_line(const error_code& ec, std::size_t length);
  void read_stderr();
  void wait_for_exit();
  void check_requests();
  void kill_now();
  void reaped(const exit_status& status);
  void release_descriptors();
  void handle_line(std::string_view line);
  void handle_done(driver_done done);
  void sweep_deadlines();
  void protocol_fault(std::string message);
  void finish(const exit_status& status);
  void record_finish(const exit_status& status);  // REQUIRES: mutex_ held

  const std::vector<std::string> command_;
  const pool_options options_;
  const subject_start start_;
  stderr_tail stderr_;
  std::atomic<std::uint64_t> next_id_{1};

  // One writer at a time puts whole lines on the driver's stdin (writing_), waiting for its
  // turn no longer than its deadline; the reader thread clears stdin_fd_ only when no write
  // is under way, before the descriptor is closed. A condition variable rather than a timed
  // mutex: ThreadSanitizer cannot follow pthread_mutex_clocklock.
  std::mutex write_mutex_;
  std::condition_variable write_free_;
  bool writing_ = false;
  int stdin_fd_ = -1;

  mutable std::mutex mutex_;
  std::condition_variable changed_;  // phase changes; a waiter left waiters_
  phase phase_ = phase::launching;
  pid_t pid_ = -1;
  std::unordered_map<std::uint64_t, waiter*> waiters_;
  std::unordered_map<std::uint64_t, submitted> submitted_;
  std::multimap<deadline, std::uint64_t> submitted_deadlines_;  // of submitted_'s requests
  // Requests that timed out while their task was still in the pool: their timeline, sent to
  // the observer again with the late completion's stamps if it comes.
  std::unordered_map<std::uint64_t, request_timeline> abandoned_;
  std::size_t outstanding_ = 0;        // submitted, no done line yet (timed-out ones included)
  std::optional<error> broken_;        // once set, calls fail fast with it
  std::optional<std::string> refusal_; // the driver's "error" answer to start
  bool stop_requested_ = false;
  bool kill_now_ = false;
  std::optional<deadline> kill_at_;
  pool_stats totals_;

  std::mutex stop_mutex_;  // stop() is idempotent and may race with the destructor's

  // The reader thread's own state. The descriptors are the worker_process's, lent to Asio
  // while serving and released (not closed) before the process is reaped or destroyed.
  asio::io_context io_;
  worker_process* proc_ = nullptr;
  std::optional<asio::posix::stream_descriptor> stdout_, stderr_pipe_, exit_;
  asio::steady_timer kill_timer_{io_};
  asio::steady_timer close_timer_{io_};
  asio::steady_timer sweep_timer_{io_};
  std::atomic<bool> sweeping_{false};  // the first submit starts the deadline sweep
  std::string pending_;  // stdout bytes after the last complete line
  std::vector<char> stderr_buffer_ = std::vector<char>(stderr_chunk_bytes);
  driver_workers workers_;  // the reader thread's only
  bool stdout_open_ = false;
  bool stderr_open_ = false;
  bool stdin_closed_ = false;
  bool kill_timer_armed_ = false;
  std::optional<exit_status> status_;

  std::thread reader_;  // last: started after, and joined before, everything above goes
};

// --- start ---------------------------------------------------------------------------------

result<void> external_subject::start() {
  const auto until = deadline_after(options_.start_timeout + options_.init_timeout);
  reader_ = std::thread([this] { run(); });
  {
    std::unique_lock lock(mutex_);
    changed_.wait(lock, [&] { return phase_ != phase::launching; });
    if (phase_ == phase::finished) return *broken_;
  }
  json start_line = {{"op", "start"}, {"config", {{"size", options_.size}}}};
  if (!start_.warm) start_line["warm"] = false;  // top level: older drivers ignore it
  const double init_ms = options_.init_args.is_object() && options_.init_args.contains("init_ms") &&
                                 options_.init_args["init_ms"].is_number()
                             ? options_.init_args["init_ms"].get<double>()
                             : 0.0;
  if (init_ms > 0) start_line["config"]["init"] = {{"init_ms", init_ms}};
  if (auto sent = write_line(start_line.dump() + "\n", until); !sent) {
    kill_driver(error{errc::start_failed,
                      fmt::format("cannot send start to the driver: {}", sent.error().message)});
  }
  std::unique_lock lock(mutex_);
  if (!changed_.wait_until(lock, until, [&] { return phase_ != phase::starting; })) {
    lock.unlock();
    kill_driver(error{errc::start_failed,
                      fmt::format("the driver did not answer start within {} ms",
                                  (options_.start_timeout + options_.init_timeout).count())});
    lock.lock();
  }
  changed_.wait(lock, [&] { return phase_ != phase::starting; });
  if (phase_ == phase::running) return {};
  return *broken_;
}

// --- calls ---------------------------------------------------------------------------------

result<response> external_subject::call(std::string_view command, nlohmann::json args,
                                        const call_options& options) {
  request_timeline timeline = open_request();
  const deadline until = call_deadline(options);
  const std::uint64_t id = timeline.request_id;
  waiter w;
  if (auto refused = admit([&] { waiters_.emplace(id, &w); })) {
    return finish_call(timeline, std::move(*refused));
  }
  auto sent = write_line(submit_line(id, command, std::move(args), timeline.t_submit), until);

  std::unique_lock lock(mutex_);
  if (!sent && !w.done) {
    waiters_.erase(id);
    changed_.notify_all();
    error failure = std::move(sent).error();
    if (failure.code == errc::request_timeout) {
      if (outstanding_ > 0) --outstanding_;  // the driver never got it
    } else if (broken_) {
      failure = *broken_;  // the reader already knows why the driver is gone
    } else if (stop_requested_) {
      failure = error{errc::pool_stopped, "the external subject was stopped"};
    }
    lock.unlock();
    return finish_call(timeline, std::move(failure));
  }
  if (!w.cv.wait_until(lock, until, [&] { return w.done; })) {
    // The driver cannot cancel the task: if its done line comes, it tells where and when
    // the task ran after all (handle_done).
    waiters_.erase(id);
    changed_.notify_all();
    if (options_.observer.on_request) {
      request_timeline late = timeline;
      late.t_reply = monotonic_ns();
      late.outcome = errc::request_timeout;
      abandoned_.emplace(id, late);
    }
    lock.unlock();
    return finish_call(timeline,
                       error{errc::request_timeout,
                             fmt::format("the external pool did not complete request {} "
                                         "before the deadline",
                                         id)});
  }
  lock.unlock();
  timeline.t_reply = w.t_reply;
  if (w.failure) return finish_call(timeline, *w.failure);
  return finish_call(timeline, outcome_of(w.event, timeline));
}

bool external_subject::submit(std::string_view command, nlohmann::json args,
                              const call_options& options, subject_completion done) {
  request_timeline timeline = open_request();
  const deadline until = call_deadline(options);
  const std::uint64_t id = timeline.request_id;
  auto refused = admit([&] {
    submitted_.emplace(id, submitted{timeline, until, std::move(done)});
    submitted_deadlines_.emplace(until, id);
  });
  if (refused) {
    done(finish_call(timeline, std::move(*refused)));
    return true;
  }
  if (!sweeping_.exchange(true)) asio::post(io_, [this] { sweep_deadlines(); });
  // Written from this thread, never the reader's: a full pipe to the driver may block it.
  auto sent = write_line(submit_line(id, command, std::move(args), timeline.t_submit), until);
  if (!sent) submit_failed(id, std::move(sent).error());
  return true;
}

std::string external_subject::submit_line(std::uint64_t id, std::string_view command,
                                          nlohmann::json args, std::int64_t t_intended_ns) const {
  const json line = {{"op", "submit"},
                     {"id", id},
                     {"command", std::string(command)},
                     {"args", std::move(args)},
                     {"t_intended_ns", t_intended_ns}};
  return line.dump(-1, ' ', false, json::error_handler_t::replace) + "\n";
}

void external_subject::submit_failed(std::uint64_t id, error failure) {
  std::unique_lock lock(mutex_);
  auto request = take_submitted(id);
  if (!request) return;  // the driver's end already completed it
  if (failure.code == errc::request_timeout) {
    if (outstanding_ > 0) --outstanding_;  // the driver never got it
  } else if (broken_) {
    failure = *broken_;
  } else if (stop_requested_) {
    failure = error{errc::pool_stopped, "the external subject was stopped"};
  }
  lock.unlock();
  complete(std::move(*request), std::move(failure));
}

std::optional<submitted> external_subject::take_submitted(std::uint64_t id) {
  auto node = submitted_.extract(id);
  if (node.empty()) return std::nullopt;
  auto [first, last] = submitted_deadlines_.equal_range(node.mapped().until);
  for (auto it = first; it != last; ++it) {
    if (it->second == id) {
      submitted_deadlines_.erase(it);
      break;
    }
  }
  if (submitted_.empty()) changed_.notify_all();  // stop() may be draining
  return std::move(node.mapped());
}

void external_subject::complete(submitted request, result<response> outcome) {
  request.done(finish_call(request.timeline, std::move(outcome)));
}

result<response> external_subject::finish_call(request_timeline& timeline,
                                               result<response> outcome) {
  if (timeline.t_reply == 0) timeline.t_reply = monotonic_ns();
  {
    std::lock_guard lock(mutex_);
    if (outcome) {
      ++totals_.calls_ok;
    } else if (outcome.error().code == errc::worker_error) {
      ++totals_.worker_errors;
    } else {
      ++totals_.failures;
    }
  }
  if (!outcome) timeline.outcome = outcome.error().code;
  if (options_.observer.on_request) options_.observer.on_request(timeline);
  return outcome;
}

result<void> external_subject::write_line(std::string_view line, deadline until) {
  int fd;
  {
    std::unique_lock lock(write_mutex_);
    if (!write_free_.wait_until(lock, until, [&] { return !writing_; })) {
      return error{errc::request_timeout, "timed out waiting to write to the driver's stdin"};
    }
    if (stdin_fd_ < 0) return error{errc::worker_crashed, "the driver has exited"};
    fd = stdin_fd_;
    writing_ = true;
  }
  // The reader thread waits for writing_ to clear before it closes the descriptor.
  std::string_view pending = line;
  std::optional<error> failure;
  while (true) {
    auto sent = write_all(fd, pending);
    if (sent) break;
    if (!would_block(sent.error())) {
      failure = error{errc::worker_crashed,
                      fmt::format("writing to the driver failed: {}", sent.error().message())};
      break;
    }
    pollfd p{.fd = fd, .events = POLLOUT, .revents = 0};
    if (auto ready = poll_until({&p, 1}, until); ready && *ready == 0) break;
  }
  const std::size_t written = line.size() - pending.size();
  {
    std::lock_guard lock(write_mutex_);
    writing_ = false;
  }
  write_free_.notify_all();
  if (failure) return *failure;
  if (written == line.size()) return {};
  if (written > 0) {
    // Half a line on the pipe would corrupt every later one: the driver cannot be used again.
    kill_driver(error{errc::protocol_error,
                      "a line to the driver was left half-written at a deadline (the driver "
                      "stopped reading its stdin); the driver was killed"});
  }
  return error{errc::request_timeout, "the driver did not read its stdin before the deadline"};
}

bool external_subject::wait_ready(deadline until) {
  std::unique_lock lock(mutex_);
  changed_.wait_until(lock, until, [&] {
    return phase_ != phase::launching && phase_ != phase::starting;
  });
  return phase_ == phase::running;
}

pool_stats external_subject::stats() const {
  std::lock_guard lock(mutex_);
  pool_stats s = totals_;
  s.size = options_.size;
  if (phase_ == phase::running || phase_ == phase::stopping) {
    s.busy = std::min(outstanding_, options_.size);
    s.idle = options_.size - s.busy;
    s.waiting_callers = outstanding_ - s.busy;
    s.starts = options_.size;
  } else if (phase_ == phase::launching || phase_ == phase::starting) {
    s.starting = options_.size;
  }
  s.degraded = phase_ == phase::finished && !stop_requested_;
  return s;
}

// --- stop ----------------------------------------------------------------------------------

void external_subject::stop(const stop_options& options) {
  std::lock_guard stop_lock(stop_mutex_);
  if (!reader_.joinable()) return;
  {
    std::unique_lock lock(mutex_);
    stop_requested_ = true;
    if (phase_ == phase::running) phase_ = phase::stopping;
    changed_.wait_for(lock, options.drain_timeout,
                      [&] {
                        return (waiters_.empty() && submitted_.empty()) ||
                               phase_ == phase::finished;
                      });
  }
  (void)write_line(R"({"op":"stop"})" "\n", deadline_after(stop_write_timeout));
  {
    std::lock_guard lock(mutex_);
    kill_at_ = deadline_after(driver_exit_grace);
  }
  wake();
  reader_.join();
}

void external_subject::wake() {
  asio::post(io_, [this] { check_requests(); });
}

void external_subject::kill_driver(error why) {
  {
    std::lock_guard lock(mutex_);
    if (!broken_) broken_ = std::move(why);
    kill_now_ = true;
  }
  wake();
}

std::string external_subject::with_stderr(std::string message) const {
  const std::string tail = stderr_.last_lines(quoted_stderr_lines);
  if (!tail.empty()) message += fmt::format("; driver stderr:\n{}", tail);
  return message;
}

// --- the reader thread ---------------------------------------------------------------------

void external_subject::run() {
  auto launched = worker_process::launch({.argv = command_});
  if (!launched) {
    std::lock_guard lock(mutex_);
    broken_ = error{errc::start_failed,
                    fmt::format("cannot launch the driver: {}", launched.error().message)};
    phase_ = phase::finished;
    changed_.notify_all();
    return;
  }
  worker_process proc = std::move(*launched);
  {
    std::lock_guard lock(write_mutex_);
    stdin_fd_ = proc.stdin_fd();
  }
  {
    std::lock_guard lock(mutex_);
    pid_ = proc.pid();
    phase_ = phase::starting;
    changed_.notify_all();
  }
  serve(proc);
  std::unique_lock lock(write_mutex_);
  write_free_.wait(lock, [&] { return !writing_; });
  stdin_fd_ = -1;  // proc's destructor closes the descriptor once no writer can hold it
}

// Serves the driver until it has exited (on its own, after stop, or killed), is reaped, and
// its pipes have given up their last bytes.
void external_subject::serve(worker_process& proc) {
  proc_ = &proc;
  stdout_.emplace(io_, proc.stdout_fd());
  stdout_open_ = true;
  read_line();
  stderr_pipe_.emplace(io_, proc.stderr_fd());
  stderr_open_ = true;
  read_stderr();
  if (proc.pidfd() >= 0) {
    exit_.emplace(io_, proc.pidfd());
    wait_for_exit();
  }
  check_requests();  // a kill or a stop may have been asked for before the loop began
  while (!status_ || stdout_open_ || stderr_open_) {
    if (io_.run_one() == 0) break;  // nothing left to wait for: cannot happen while serving
  }
  release_descriptors();
  if (!status_) status_ = proc.kill();
  finish(*status_);
  proc_ = nullptr;
}

// One line at a time: Asio finds the newline; the buffer is capped one byte above the longest
// line allowed, so a longer line fails to fit (not_found) however it arrives, in one read or
// in many.
void external_subject::read_line() {
  const std::size_t max = options_.max_frame_bytes;
  const std::size_t limit = max < std::numeric_limits<std::size_t>::max() ? max + 1 : max;
  asio::async_read_until(*stdout_, asio::dynamic_buffer(pending_, limit), '\n',
                         [this](const error_code& ec, std::size_t n) { on_line(ec, n); });
}

void external_subject::on_line(const error_code& ec, std::size_t length) {
  if (ec == asio::error::not_found) {
    protocol_fault(fmt::format("a line longer than {} bytes", options_.max_frame_bytes));
    pending_.clear();
    return read_line();  // on to end of file; the lines are no longer trusted
  }
  if (ec) {  // end of file, or cancelled
    stdout_open_ = false;
    return;
  }
  handle_line(std::string_view(pending_).substr(0, length - 1));
  pending_.erase(0, length);
  read_line();
}

void external_subject::read_stderr() {
  stderr_pipe_->async_read_some(asio::buffer(stderr_buffer_),
                                [this](const error_code& ec, std::size_t n) {
                                  if (ec) {
                                    stderr_open_ = false;
                                    return;
                                  }
                                  stderr_.append(std::string_view(stderr_buffer_.data(), n));
                                  read_stderr();
                                });
}

void external_subject::wait_for_exit() {
  exit_->async_wait(asio::posix::descriptor_base::wait_read, [this](const error_code& ec) {
    if (ec || status_) return;
    // Exited: reap, which also kills what is left of its group (the pool's processes); its
    // last lines are still in the pipes and are read on to end of file.
    (void)exit_->release();
    exit_.reset();
    reaped(proc_->try_wait().value_or(exit_status{}));
  });
}

// What other threads asked for (wake): kill now, or stop by a deadline.
void external_subject::check_requests() {
  if (status_) return;
  bool kill = false;
  std::optional<deadline> kill_at;
  {
    std::lock_guard lock(mutex_);
    kill = kill_now_;
    kill_at = kill_at_;
  }
  if (kill_at && !stdin_closed_) {
    // After "stop" end of input means stop as well: it covers a stop line that could not be
    // written.
    std::unique_lock lock(write_mutex_);
    write_free_.wait(lock, [&] { return !writing_; });
    stdin_fd_ = -1;
    proc_->close_stdin();
    stdin_closed_ = true;
  }
  if (kill_at && !kill_timer_armed_) {
    kill_timer_armed_ = true;
    kill_timer_.expires_at(*kill_at);
    kill_timer_.async_wait([this](const error_code& ec) {
      if (!ec) kill_now();
    });
  }
  if (kill) kill_now();
}

void external_subject::kill_now() {
  if (status_) return;
  if (exit_) {
    (void)exit_->release();  // the pidfd is closed by the reaping below
    exit_.reset();
  }
  reaped(proc_->kill());
}

void external_subject::reaped(const exit_status& status) {
  status_ = status;
  kill_timer_.cancel();
  close_timer_.expires_after(pipes_close_grace);
  close_timer_.async_wait([this](const error_code& ec) {
    if (ec) return;
    error_code ignored;
    if (stdout_) stdout_->cancel(ignored);
    if (stderr_pipe_) stderr_pipe_->cancel(ignored);
  });
}

// Hands the descriptors back to the worker_process, which closes them.
void external_subject::release_descriptors() {
  for (auto* d : {&stdout_, &stderr_pipe_, &exit_}) {
    if (*d) (void)(*d)->release();
    d->reset();
  }
  kill_timer_.cancel();
  close_timer_.cancel();
  sweep_timer_.cancel();
}

void external_subject::handle_line(std::string_view text) {
  {
    std::lock_guard lock(mutex_);
    if (kill_now_) return;
  }
  auto line = parse_driver_line(text);
  if (!line) return protocol_fault(std::move(line).error().message);
  switch (line->event) {
    case driver_event::blank:
    case driver_event::stats:  // answers this side does not wait for
    case driver_event::stopped:
      return;
    case driver_event::done:
      return handle_done(std::move(line->done));
    case driver_event::worker:
      return workers_.lifecycle(line->worker);
    case driver_event::pool:
      return workers_.sampled(line->pool);
    case driver_event::started:
    case driver_event::error:
      break;
  }
  std::unique_lock lock(mutex_);
  if (phase_ == phase::starting) {
    if (line->event == driver_event::started) {
      workers_.started(line->t_ns ? line->t_ns : monotonic_ns(), line->pids);
      phase_ = phase::running;
      changed_.notify_all();
    } else {
      // The driver refused to start; it exits next, and finish() quotes this.
      refusal_ = std::move(line->message);
    }
    return;
  }
  lock.unlock();
  if (line->event == driver_event::error) {
    return protocol_fault(fmt::format("the driver reported an error: {}", line->message));
  }
  protocol_fault("unexpected event 'started'");
}

void external_subject::handle_done(driver_done done) {
  // An id is taken before its submit line is written, so a driver cannot answer it first.
  if (done.id == 0 || done.id >= next_id_.load()) {
    return protocol_fault(
        fmt::format("a done line for id {}, which was never submitted", done.id));
  }
  if (!done.reply.ok && done.reply.failure.type == "worker_crashed") {
    workers_.crashed(done.worker_pid, done.t_done_ns, done.reply.failure.message);
  } else {
    workers_.ran(done.worker_pid, done.reply.t_recv_ns, done.reply.t_done_ns);
  }
  std::unique_lock lock(mutex_);
  if (outstanding_ > 0) --outstanding_;
  if (auto request = take_submitted(done.id)) {
    lock.unlock();
    request->timeline.t_reply = monotonic_ns();
    auto outcome = outcome_of(done, request->timeline);
    return complete(std::move(*request), std::move(outcome));
  }
  const auto it = waiters_.find(done.id);
  if (it == waiters_.end()) {
    // The caller gave up at its deadline: the late completion still says where the task ran.
    const auto late = abandoned_.find(done.id);
    if (late == abandoned_.end()) return;
    request_timeline timeline = late->second;
    abandoned_.erase(late);
    lock.unlock();
    timeline.worker = done.worker_pid;
    timeline.t_checkout = timeline.t_sent = done.t_start_ns;
    timeline.t_worker_recv = done.reply.t_recv_ns;
    timeline.t_worker_done = done.reply.t_done_ns;
    options_.observer.on_request(timeline);
    return;
  }
  waiter& w = *it->second;
  waiters_.erase(it);
  w.event = std::move(done);
  w.t_reply = monotonic_ns();
  w.done = true;
  w.cv.notify_one();
  changed_.notify_all();
}

// Submitted requests past their deadline fail with request_timeout; a done line that comes
// later is a late completion, as for a call (handle_done).
void external_subject::sweep_deadlines() {
  if (status_) return;
  std::vector<submitted> expired;
  {
    std::lock_guard lock(mutex_);
    const deadline now = std::chrono::steady_clock::now();
    while (!submitted_deadlines_.empty() && submitted_deadlines_.begin()->first <= now) {
      auto request = take_submitted(submitted_deadlines_.begin()->second);
      if (!request) {  // no such request: drop the entry rather than loop on it
        submitted_deadlines_.erase(submitted_deadlines_.begin());
        continue;
      }
      if (options_.observer.on_request) {
        request_timeline late = request->timeline;
        late.t_reply = monotonic_ns();
        late.outcome = errc::request_timeout;
        abandoned_.emplace(late.request_id, late);
      }
      expired.push_back(std::move(*request));
    }
  }
  for (auto& request : expired) {
    const std::uint64_t id = request.timeline.request_id;
    complete(std::move(request),
             error{errc::request_timeout,
                   fmt::format("the external pool did not complete request {} before the "
                               "deadline",
                               id)});
  }
  sweep_timer_.expires_after(deadline_sweep_interval);
  sweep_timer_.async_wait([this](const error_code& ec) {
    if (!ec) sweep_deadlines();
  });
}

void external_subject::protocol_fault(std::string message) {
  kill_driver(error{errc::protocol_error,
                    with_stderr(fmt::format("driver {} broke the protocol: {}", pid_, message))});
}

// The driver is gone and reaped: every waiting call fails, and so will every later one.
void external_subject::finish(const exit_status& status) {
  std::unordered_map<std::uint64_t, submitted> orphans;
  error why{errc::pool_stopped, ""};
  {
    std::lock_guard lock(mutex_);
    record_finish(status);
    orphans.swap(submitted_);
    submitted_deadlines_.clear();
    why = *broken_;
  }
  for (auto& [id, request] : orphans) complete(std::move(request), why);
}

void external_subject::record_finish(const exit_status& status) {
  if (phase_ == phase::starting) {
    const std::string why = refusal_ ? fmt::format("the driver refused to start: {}", *refusal_)
                            : broken_ ? broken_->message
                                      : std::string("the driver exited before answering start");
    broken_ = error{errc::start_failed, with_stderr(fmt::format(
                                            "{} (driver {} {})", why, pid_, status.describe()))};
  } else if (!broken_ && stop_requested_) {
    broken_ = error{errc::pool_stopped, "the external subject was stopped"};
  } else if (!broken_) {
    broken_ = error{errc::worker_crashed,
                    with_stderr(fmt::format("driver {} {}", pid_, status.describe()))};
    ++totals_.workers_lost;
  }
  phase_ = phase::finished;
  const std::int64_t now = monotonic_ns();
  workers_.pool_stopped(now);
  abandoned_.clear();
  for (auto& [id, w] : waiters_) {
    w->failure = broken_;
    w->t_reply = now;
    w->done = true;
    w->cv.notify_one();
  }
  waiters_.clear();
  outstanding_ = 0;
  changed_.notify_all();
}

}  // namespace

result<std::unique_ptr<subject>> make_external_subject(std::vector<std::string> command,
                                                       pool_options options,
                                                       subject_start start) {
  if (command.empty() || command.front().empty()) {
    return error{errc::invalid_options, "the external subject needs a driver command"};
  }
  if (options.size == 0) return error{errc::invalid_options, "size must be at least 1"};
  if (options.start_timeout.count() <= 0) {
    return error{errc::invalid_options, "start_timeout must be positive"};
  }
  if (options.init_timeout.count() < 0) {
    return error{errc::invalid_options, "init_timeout must not be negative"};
  }
  if (options.checkout_timeout.count() < 0) {
    return error{errc::invalid_options, "checkout_timeout must not be negative"};
  }
  if (options.request_timeout.count() <= 0) {
    return error{errc::invalid_options, "request_timeout must be positive"};
  }
  auto s = std::make_unique<external_subject>(std::move(command), std::move(options), start);
  if (auto started = s->start(); !started) return std::move(started).error();
  return std::unique_ptr<subject>(std::move(s));
}

}  // namespace procpool::harness
