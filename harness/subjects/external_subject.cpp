// external_subject: a driver process owns the pool; this side writes submit lines from the
// callers' threads and one reader thread completes them from the driver's done lines. The
// reader thread also launches, watches, kills and reaps the driver, so that every process
// operation happens on one thread and PR_SET_PDEATHSIG is tied to the subject's lifetime.
#include "subjects/external_subject.hpp"

#include <poll.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <condition_variable>
#include <csignal>
#include <cstring>
#include <mutex>
#include <optional>
#include <string_view>
#include <thread>
#include <unordered_map>
#include <utility>

#include <fmt/format.h>

#include "procpool/wire/stderr_tail.hpp"
#include "procpool/wire/worker_process.hpp"

namespace procpool::harness {
namespace {

using namespace std::chrono_literals;
using json = nlohmann::json;

// How long the driver may take to exit after "stop" before its group is killed.
constexpr auto driver_exit_grace = 5s;
// How long stop() may spend writing "stop" to a driver that no longer reads its stdin.
constexpr auto stop_write_timeout = 1s;
constexpr std::size_t quoted_stderr_lines = 20;

// Milliseconds until `until` for poll(), rounded up so that poll never wakes just before it.
int poll_timeout_ms(deadline until) {
  const auto left = until - std::chrono::steady_clock::now();
  if (left <= std::chrono::steady_clock::duration::zero()) return 0;
  const auto ms = std::chrono::ceil<std::chrono::milliseconds>(left).count();
  return static_cast<int>(std::min<long long>(ms, 60'000));
}

void ignore_sigpipe() {
  // A write to a dead driver's stdin must be EPIPE, not a signal that kills the harness.
  static std::once_flag once;
  std::call_once(once, [] { ::signal(SIGPIPE, SIG_IGN); });
}

// A "done" line, checked field by field.
struct done_event {
  std::uint64_t id = 0;
  response reply;
  std::int64_t t_start_ns = 0;
  std::int64_t t_done_ns = 0;
  std::uint64_t worker_pid = 0;
};

result<done_event> parse_done(const json& line) {
  const auto bad = [](std::string what) {
    return error{errc::protocol_error, fmt::format("driver's done line: {}", what)};
  };
  const auto stamp = [&](const char* key, std::int64_t& out) -> bool {
    const auto it = line.find(key);
    if (it == line.end() || !it->is_number_integer()) return false;
    out = it->get<std::int64_t>();
    return true;
  };
  done_event d;
  const auto id = line.find("id");
  if (id == line.end() || !id->is_number_unsigned()) return bad("'id' must be an unsigned integer");
  d.id = id->get<std::uint64_t>();
  d.reply.id = d.id;
  const auto ok = line.find("ok");
  if (ok == line.end() || !ok->is_boolean()) return bad("'ok' must be a boolean");
  d.reply.ok = ok->get<bool>();
  if (d.reply.ok) {
    if (const auto r = line.find("result"); r != line.end()) d.reply.result = *r;
  } else {
    const auto e = line.find("error");
    if (e == line.end() || !e->is_object()) return bad("'error' must be an object when ok is false");
    const auto type = e->find("type");
    const auto message = e->find("message");
    if (type == e->end() || !type->is_string() || message == e->end() || !message->is_string()) {
      return bad("'error' needs string 'type' and 'message'");
    }
    d.reply.failure = {type->get<std::string>(), message->get<std::string>()};
  }
  if (!stamp("t_start_ns", d.t_start_ns) || !stamp("t_worker_recv_ns", d.reply.t_recv_ns) ||
      !stamp("t_worker_done_ns", d.reply.t_done_ns) || !stamp("t_done_ns", d.t_done_ns)) {
    return bad("t_start_ns, t_worker_recv_ns, t_worker_done_ns and t_done_ns must be integers");
  }
  if (const auto pid = line.find("worker_pid"); pid != line.end()) {
    if (!pid->is_number_unsigned()) return bad("'worker_pid' must be an unsigned integer");
    d.worker_pid = pid->get<std::uint64_t>();
  }
  return d;
}

// One call waiting for its done line; lives on the caller's stack while in waiters_.
struct waiter {
  std::condition_variable cv;
  bool done = false;
  std::optional<error> failure;  // set when the driver died or broke before answering
  done_event event;
  std::int64_t t_reply = 0;
};

enum class phase { launching, starting, running, stopping, finished };

class external_subject final : public subject {
 public:
  external_subject(std::vector<std::string> command, pool_options options)
      : command_(std::move(command)),
        options_(std::move(options)),
        stderr_(options_.stderr_tail_bytes),
        wake_fd_(::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK)) {
    ignore_sigpipe();
  }

  ~external_subject() override {
    stop({});
    if (wake_fd_ >= 0) ::close(wake_fd_);
  }

  result<void> start();

  result<response> call(std::string_view command, nlohmann::json args,
                        const call_options& options) override;
  bool wait_ready(deadline until) override;
  pool_stats stats() const override;
  void stop(const stop_options& options) override;

 private:
  deadline call_deadline(const call_options& o) const {
    if (o.reply_deadline) return *o.reply_deadline;
    return o.checkout_deadline.value_or(deadline_after(options_.checkout_timeout)) +
           options_.request_timeout;
  }
  result<void> write_line(std::string_view line, deadline until);
  result<response> finish_call(request_timeline& timeline, result<response> outcome);
  void wake() const noexcept;
  // Marks the driver broken (calls fail with `why` from now on) and has the reader kill it.
  void kill_driver(error why);
  std::string with_stderr(std::string message) const;

  // --- the reader thread -------------------------------------------------------------
  void run();
  void serve(worker_process& proc);
  bool read_stdout(int fd, std::string& pending);
  bool drain_stderr(int fd);
  void handle_line(std::string_view line);
  void handle_done(const json& line);
  void protocol_fault(std::string message);
  void finish(const exit_status& status);

  const std::vector<std::string> command_;
  const pool_options options_;
  stderr_tail stderr_;
  const int wake_fd_;
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
  std::size_t outstanding_ = 0;        // submitted, no done line yet (timed-out ones included)
  std::optional<error> broken_;        // once set, calls fail fast with it
  std::optional<std::string> refusal_; // the driver's "error" answer to start
  bool stop_requested_ = false;
  bool kill_now_ = false;
  std::optional<deadline> kill_at_;
  pool_stats totals_;

  std::mutex stop_mutex_;  // stop() is idempotent and may race with the destructor's
  std::thread reader_;
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
  const json start_line = {{"op", "start"}, {"config", {{"size", options_.size}}}};
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
  request_timeline timeline{.t_submit = monotonic_ns()};
  const deadline until = call_deadline(options);
  const std::uint64_t id = next_id_.fetch_add(1);
  timeline.request_id = id;
  waiter w;
  std::optional<error> refused;
  {
    std::lock_guard lock(mutex_);
    ++totals_.calls;
    if (phase_ != phase::running) {
      refused = broken_ ? *broken_
                        : error{errc::pool_stopped, "the external subject is stopping"};
    } else {
      waiters_.emplace(id, &w);
      ++outstanding_;
    }
  }
  if (refused) return finish_call(timeline, std::move(*refused));
  const json line = {{"op", "submit"},
                     {"id", id},
                     {"command", std::string(command)},
                     {"args", std::move(args)},
                     {"t_intended_ns", timeline.t_submit}};
  auto sent = write_line(line.dump(-1, ' ', false, json::error_handler_t::replace) + "\n", until);

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
    // The driver cannot cancel the task; its done line, if it ever comes, is discarded.
    waiters_.erase(id);
    changed_.notify_all();
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
  const done_event& d = w.event;
  timeline.worker = d.worker_pid;
  timeline.t_checkout = d.t_start_ns;
  timeline.t_sent = d.t_start_ns;
  timeline.t_worker_recv = d.reply.t_recv_ns;
  timeline.t_worker_done = d.reply.t_done_ns;
  if (d.reply.ok) return finish_call(timeline, d.reply);
  // The driver reports a pool that lost the task's process with a reserved error type.
  const errc code =
      d.reply.failure.type == "worker_crashed" ? errc::worker_crashed : errc::worker_error;
  return finish_call(timeline, error{code, d.reply.failure.message, d.reply.failure.type});
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
  std::size_t written = 0;
  std::optional<error> failure;
  while (written < line.size()) {
    const ssize_t n = ::write(fd, line.data() + written, line.size() - written);
    if (n > 0) {
      written += static_cast<std::size_t>(n);
      continue;
    }
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && errno == EAGAIN) {
      const int timeout = poll_timeout_ms(until);
      if (timeout == 0) break;
      pollfd p{.fd = fd, .events = POLLOUT, .revents = 0};
      ::poll(&p, 1, timeout);
      continue;
    }
    failure = error{errc::worker_crashed,
                    fmt::format("writing to the driver failed: {}", std::strerror(errno))};
    break;
  }
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
                      [&] { return waiters_.empty() || phase_ == phase::finished; });
  }
  (void)write_line(R"({"op":"stop"})" "\n", deadline_after(stop_write_timeout));
  {
    std::lock_guard lock(mutex_);
    kill_at_ = deadline_after(driver_exit_grace);
  }
  wake();
  reader_.join();
}

void external_subject::wake() const noexcept {
  const std::uint64_t one = 1;
  [[maybe_unused]] const auto n = ::write(wake_fd_, &one, sizeof one);
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

// Polls the driver's stdout, stderr, exit and the wake-up descriptor until the driver has
// exited (on its own, after stop, or killed) and is reaped.
void external_subject::serve(worker_process& proc) {
  std::string pending;
  bool stdout_open = true;
  bool stderr_open = true;
  bool stdin_closed = false;
  std::optional<deadline> kill_at;
  while (true) {
    pollfd fds[4] = {
        {.fd = stdout_open ? proc.stdout_fd() : -1, .events = POLLIN, .revents = 0},
        {.fd = stderr_open ? proc.stderr_fd() : -1, .events = POLLIN, .revents = 0},
        {.fd = proc.pidfd(), .events = POLLIN, .revents = 0},
        {.fd = wake_fd_, .events = POLLIN, .revents = 0},
    };
    const int n = ::poll(fds, 4, kill_at ? poll_timeout_ms(*kill_at) : -1);
    if (n < 0 && errno != EINTR) break;
    bool kill_now = false;
    {
      std::uint64_t ignored;
      [[maybe_unused]] const auto r = ::read(wake_fd_, &ignored, sizeof ignored);
      std::lock_guard lock(mutex_);
      kill_now = kill_now_;
      if (kill_at_) kill_at = kill_at_;
    }
    if (kill_at && !stdin_closed) {
      // After "stop" end of input means stop as well: it covers a stop line that could not
      // be written.
      std::unique_lock lock(write_mutex_);
      write_free_.wait(lock, [&] { return !writing_; });
      stdin_fd_ = -1;
      proc.close_stdin();
      stdin_closed = true;
    }
    if (stdout_open && fds[0].revents != 0) stdout_open = read_stdout(proc.stdout_fd(), pending);
    if (stderr_open && fds[1].revents != 0) stderr_open = drain_stderr(proc.stderr_fd());
    {
      std::lock_guard lock(mutex_);
      kill_now = kill_now || kill_now_;
    }
    if (kill_now || (kill_at && std::chrono::steady_clock::now() >= *kill_at)) {
      if (stderr_open) drain_stderr(proc.stderr_fd());
      finish(proc.kill());
      return;
    }
    if (fds[2].revents != 0) {
      // Exited: take what it wrote last, then reap (which also kills what is left of its
      // group: the pool's processes).
      if (stdout_open) read_stdout(proc.stdout_fd(), pending);
      if (stderr_open) drain_stderr(proc.stderr_fd());
      const auto status = proc.try_wait();
      finish(status.value_or(exit_status{}));
      return;
    }
  }
  finish(proc.kill());
}

// Reads what is available; false at end of file. Complete lines are handled as they come.
bool external_subject::read_stdout(int fd, std::string& pending) {
  char buffer[64 * 1024];
  while (true) {
    const ssize_t n = ::read(fd, buffer, sizeof buffer);
    if (n == 0) return false;
    if (n < 0) {
      if (errno == EINTR) continue;
      return errno == EAGAIN;
    }
    // What was pending holds no newline: search only the new bytes, so that a long line
    // arriving in many chunks is scanned once.
    std::size_t from = pending.size();
    pending.append(buffer, static_cast<std::size_t>(n));
    std::size_t begin = 0;
    for (std::size_t end; (end = pending.find('\n', from)) != std::string::npos;
         begin = from = end + 1) {
      handle_line(std::string_view(pending).substr(begin, end - begin));
    }
    pending.erase(0, begin);
    if (pending.size() > options_.max_frame_bytes) {
      protocol_fault(fmt::format("a line longer than {} bytes", options_.max_frame_bytes));
      pending.clear();
    }
    std::lock_guard lock(mutex_);
    if (kill_now_) return false;  // nothing more from this driver is trusted
  }
}

bool external_subject::drain_stderr(int fd) {
  char buffer[64 * 1024];
  while (true) {
    const ssize_t n = ::read(fd, buffer, sizeof buffer);
    if (n > 0) {
      stderr_.append(std::string_view(buffer, static_cast<std::size_t>(n)));
      continue;
    }
    if (n < 0 && errno == EINTR) continue;
    return n < 0 && errno == EAGAIN;
  }
}

void external_subject::handle_line(std::string_view text) {
  {
    std::lock_guard lock(mutex_);
    if (kill_now_) return;
  }
  if (!text.empty() && text.back() == '\r') text.remove_suffix(1);
  if (text.empty()) return;
  const json line = json::parse(text, nullptr, /*allow_exceptions=*/false);
  if (line.is_discarded() || !line.is_object()) {
    return protocol_fault(fmt::format("not a JSON object: {:.200}", text));
  }
  const auto event = line.find("event");
  if (event == line.end() || !event->is_string()) {
    return protocol_fault(fmt::format("no 'event' string: {:.200}", text));
  }
  const auto& name = event->get_ref<const std::string&>();
  if (name == "done") return handle_done(line);
  if (name == "stats" || name == "stopped") return;  // answers this side does not wait for
  std::unique_lock lock(mutex_);
  if (name == "started" && phase_ == phase::starting) {
    phase_ = phase::running;
    changed_.notify_all();
    return;
  }
  if (name == "error" && phase_ == phase::starting) {
    // The driver refused to start; it exits next, and finish() quotes this.
    const auto message = line.find("message");
    refusal_ = message != line.end() && message->is_string() ? message->get<std::string>()
                                                             : std::string(text);
    return;
  }
  lock.unlock();
  if (name == "error") {
    const auto message = line.find("message");
    return protocol_fault(fmt::format(
        "the driver reported an error: {}",
        message != line.end() && message->is_string() ? message->get<std::string>()
                                                      : std::string(text)));
  }
  protocol_fault(fmt::format("unexpected event '{}'", name));
}

void external_subject::handle_done(const json& line) {
  auto parsed = parse_done(line);
  if (!parsed) return protocol_fault(parsed.error().message);
  // An id is taken before its submit line is written, so a driver cannot answer it first.
  if (parsed->id == 0 || parsed->id >= next_id_.load()) {
    return protocol_fault(
        fmt::format("a done line for id {}, which was never submitted", parsed->id));
  }
  std::lock_guard lock(mutex_);
  if (outstanding_ > 0) --outstanding_;
  const auto it = waiters_.find(parsed->id);
  if (it == waiters_.end()) return;  // the caller gave up at its deadline: discard
  waiter& w = *it->second;
  waiters_.erase(it);
  w.event = std::move(*parsed);
  w.t_reply = monotonic_ns();
  w.done = true;
  w.cv.notify_one();
  changed_.notify_all();
}

void external_subject::protocol_fault(std::string message) {
  kill_driver(error{errc::protocol_error,
                    with_stderr(fmt::format("driver {} broke the protocol: {}", pid_, message))});
}

// The driver is gone and reaped: every waiting call fails, and so will every later one.
void external_subject::finish(const exit_status& status) {
  std::lock_guard lock(mutex_);
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
                                                       pool_options options) {
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
  auto s = std::make_unique<external_subject>(std::move(command), std::move(options));
  if (auto started = s->start(); !started) return std::move(started).error();
  return std::unique_ptr<subject>(std::move(s));
}

}  // namespace procpool::harness
