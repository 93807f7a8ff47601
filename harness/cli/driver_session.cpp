#include "cli/driver_session.hpp"

#include <poll.h>

#include <algorithm>
#include <array>
#include <utility>

#include "procpool/wire/file_io.hpp"

namespace procpool::harness::driver_check {
namespace {

using namespace std::chrono_literals;

constexpr std::size_t max_line_bytes = std::size_t{16} << 20;  // the harness's max_frame_bytes
constexpr std::size_t quoted_chars = 300;
constexpr std::size_t quoted_stderr_lines = 8;
// Once the driver has exited, how long its pipes may take to give up their last bytes.
constexpr auto pipes_close_grace = 1s;

}  // namespace

double ms(std::int64_t ns) { return static_cast<double>(ns) / 1e6; }

std::string printable(std::string_view text) {
  std::string out;
  for (const char c : text.substr(0, quoted_chars)) {
    const auto byte = static_cast<unsigned char>(c);
    if (byte < 0x20 || byte == 0x7f) {
      out += fmt::format("\\x{:02x}", byte);
    } else {
      out += c;
    }
  }
  if (text.size() > quoted_chars) out += fmt::format("... ({} bytes)", text.size());
  return out;
}

std::string quote(std::string_view line) {
  if (line.size() <= quoted_chars) return fmt::format("`{}`", printable(line));
  return fmt::format("`{}`... ({} bytes)", printable(line.substr(0, quoted_chars)), line.size());
}

std::optional<std::string> driver_pipe::write_line(std::string_view line, deadline until) {
  const std::string framed = std::string(line) + "\n";
  std::string_view pending = framed;
  while (true) {
    const int fd = proc_.stdin_fd();
    if (fd < 0) return "its stdin is closed";
    auto sent = write_all(fd, pending);
    if (sent) return std::nullopt;
    if (!would_block(sent.error())) {
      return fmt::format("writing to its stdin failed: {}", sent.error().message());
    }
    pollfd p{.fd = fd, .events = POLLOUT, .revents = 0};
    const auto ready = poll_until({&p, 1}, until);
    if (!ready) return fmt::format("poll failed: {}", ready.error().message());
    if (*ready == 0) return "it did not read its stdin";
  }
}

driver_pipe::got driver_pipe::read_line(stdout_line& out, deadline until) {
  while (lines_.empty()) {
    if (!stdout_open_) return got::end_of_output;
    if (std::chrono::steady_clock::now() >= until) return got::timed_out;
    pump(until);
  }
  out = std::move(lines_.front());
  lines_.pop_front();
  return got::line;
}

std::optional<exit_status> driver_pipe::wait_exit(deadline until) {
  std::optional<deadline> pipes_until;
  while (true) {
    const bool exited = proc_.status().has_value();
    if (exited && !stdout_open_ && !stderr_open_) break;
    if (exited && !pipes_until) pipes_until = std::min(until, deadline_after(pipes_close_grace));
    const deadline limit = pipes_until.value_or(until);
    if (std::chrono::steady_clock::now() >= limit) break;
    pump(limit);
  }
  return proc_.status();
}

// One wait for whatever comes first: a chunk of stdout or stderr, or the driver's exit.
void driver_pipe::pump(deadline until) {
  const bool reaped = proc_.status().has_value();
  // Without a pidfd (kernels before 5.3) the exit is looked for every 20 ms.
  const bool no_pidfd = !reaped && proc_.pidfd() < 0;
  std::array<pollfd, 3> fds{{
      {.fd = stdout_open_ ? proc_.stdout_fd() : -1, .events = POLLIN, .revents = 0},
      {.fd = stderr_open_ ? proc_.stderr_fd() : -1, .events = POLLIN, .revents = 0},
      {.fd = reaped ? -1 : proc_.pidfd(), .events = POLLIN, .revents = 0},
  }};
  (void)poll_until(fds, no_pidfd ? std::min(until, deadline_after(20ms)) : until);
  if (fds[0].revents != 0) read_stdout();
  if (fds[1].revents != 0) read_stderr();
  if (fds[2].revents != 0 || no_pidfd) (void)proc_.try_wait();
}

void driver_pipe::read_stdout() {
  const auto end =
      read_all(proc_.stdout_fd(), buffer_, [&](std::string_view chunk) { take(chunk); });
  if (end && *end == read_end::would_block) return;
  stdout_open_ = false;  // end of file, or an error, which ends the output just the same
  if (!partial_.empty() && !overlong_) lines_.push_back({std::move(partial_), false, true});
  partial_.clear();
}

void driver_pipe::read_stderr() {
  const auto end =
      read_all(proc_.stderr_fd(), buffer_, [&](std::string_view chunk) { stderr_.append(chunk); });
  if (!end || *end == read_end::end_of_file) stderr_open_ = false;
}

void driver_pipe::take(std::string_view chunk) {
  while (!chunk.empty()) {
    const auto newline = chunk.find('\n');
    if (!overlong_) {
      partial_.append(chunk.substr(0, newline));
      if (partial_.size() > max_line_bytes) {
        lines_.push_back({partial_.substr(0, quoted_chars), true, false});
        partial_.clear();
        overlong_ = true;
      }
    }
    if (newline == std::string_view::npos) return;
    if (!overlong_) lines_.push_back({std::move(partial_)});
    partial_.clear();
    overlong_ = false;
    chunk.remove_prefix(newline + 1);
  }
}

void session::finish(const std::vector<std::string_view>& names) {
  for (const auto name : names) {
    if (results_.find(name) != results_.end()) continue;
    check_result skipped;
    skipped.outcome = verdict::skip;
    skipped.detail = broken_in_.empty()
                         ? std::string("not run")
                         : fmt::format("not run: the driver failed \"{}\"", broken_in_);
    results_.emplace(std::string(name), std::move(skipped));
  }
  pipe_.reset();
}

std::vector<std::string> session::stderr_notes() const {
  std::vector<std::string> notes;
  const std::string tail = pipe_ ? pipe_->stderr_lines(quoted_stderr_lines) : std::string();
  std::string_view rest = tail;
  while (!rest.empty()) {
    const auto newline = rest.find('\n');
    notes.push_back("stderr: " + printable(rest.substr(0, newline)));
    if (newline == std::string_view::npos) break;
    rest.remove_prefix(newline + 1);
  }
  return notes;
}

done_tally session::tally() const {
  done_tally t = tally_;
  for (const auto& [id, task] : tasks_) {
    if (!task.answerable) continue;
    ++t.submitted;
    if (task.answers > 0) ++t.answered;
  }
  return t;
}

step<void> session::send(const json& op, std::string_view what) {
  return send_text(op.dump(), what);
}

step<void> session::send_text(std::string_view line, std::string_view what) {
  const auto failure = pipe_->write_line(line, step_deadline());
  if (!failure) return {};
  const auto status = pipe_->wait_exit(deadline_after(std::min<std::chrono::milliseconds>(
      std::chrono::milliseconds(options_.timeout_ms), 2 * pipes_close_grace)));
  return problem{fmt::format("cannot write {} to the driver: {}{}", what, *failure,
                             status ? "; it " + status->describe() : std::string()),
                 stderr_notes(), true};
}

step<std::uint64_t> session::submit(std::string_view command, json args, bool answerable) {
  const std::uint64_t id = next_id_++;
  task& t = tasks_[id];
  t.command = command;
  t.answerable = answerable;
  t.t_sent = monotonic_ns();
  const json op = {{"op", "submit"},
                   {"id", id},
                   {"command", command},
                   {"args", std::move(args)},
                   {"t_intended_ns", t.t_sent}};
  auto sent = send(op, fmt::format("the submit line for id {}", id));
  if (!sent) return std::move(sent).error();
  return id;
}

step<received_line> session::start(bool warm, json config) {
  json op = {{"op", "start"}, {"config", std::move(config)}};
  if (!warm) op["warm"] = false;  // top level: config rejects unknown keys
  if (auto sent = send(op, "the start line"); !sent) return std::move(sent).error();
  return await_event(driver_event::started, "the started line", /*dones_expected=*/false);
}

step<received_line> session::await_event(driver_event kind, std::string_view what,
                                         bool dones_expected) {
  junk_.clear();
  const deadline until = step_deadline();
  while (true) {
    auto event = next_event(what, until);
    if (!event) return std::move(event).error();
    if (!*event) continue;
    const received_line& line = **event;
    if (line.line.event == kind) {
      if (auto junk = junk_problem()) return *junk;
      return line;
    }
    if (line.line.event != driver_event::done || !dones_expected) return out_of_turn(line, what);
  }
}

step<received_line> session::await_done(std::uint64_t id) {
  junk_.clear();
  const task& t = tasks_.at(id);
  const std::string what = fmt::format("the done line for id {} ({})", id, t.command);
  const deadline until = step_deadline();
  while (t.answers == 0) {
    auto event = next_event(what, until);
    if (!event) return std::move(event).error();
    if (*event && (*event)->line.event != driver_event::done) return out_of_turn(**event, what);
  }
  if (t.malformed) return problem{fmt::format("the done line for id {} is {}", id, *t.malformed)};
  if (auto junk = junk_problem()) return *junk;
  return *t.done;
}

step<session::ending> session::await_exit(std::string_view when) {
  const auto status = pipe_->wait_exit(step_deadline());
  if (!status) {
    return problem{
        fmt::format("the driver did not exit within {} ms {}", options_.timeout_ms, when),
        stderr_notes(), true};
  }
  ending end{*status, {}};
  stdout_line line;
  while (pipe_->read_line(line, deadline{}) == driver_pipe::got::line) {
    if (line.text.empty() || line.text == "\r") continue;
    end.lines.push_back(line.text);
    (void)file(std::move(line));  // books any done line, for "one done per id"
  }
  return end;
}

step<std::optional<received_line>> session::next_event(std::string_view what, deadline until) {
  stdout_line line;
  switch (pipe_->read_line(line, until)) {
    case driver_pipe::got::timed_out:
      return timed_out(what);
    case driver_pipe::got::end_of_output:
      return ended(what);
    case driver_pipe::got::line:
      break;
  }
  return file(std::move(line));
}

namespace {

// parse_driver_line's message, without the copy of the line it may end with (it is quoted).
std::string parse_message(std::string message, std::string_view text) {
  const std::string echoed = fmt::format(": {:.200}", text);
  if (message.size() > echoed.size() && message.ends_with(echoed)) {
    message.resize(message.size() - echoed.size());
  }
  return message;
}

// The id of a done line that parse_driver_line refused, when it has a readable one.
std::optional<std::uint64_t> malformed_done_id(std::string_view text) {
  const json raw = json::parse(text, nullptr, /*allow_exceptions=*/false);
  if (!raw.is_object()) return std::nullopt;
  const auto event = raw.find("event");
  const auto id = raw.find("id");
  if (event == raw.end() || *event != "done" || id == raw.end() || !id->is_number_unsigned()) {
    return std::nullopt;
  }
  return id->get<std::uint64_t>();
}

}  // namespace

// Files one line: a done line in the ledger (a malformed one too, when its id was submitted:
// it is that task's answer, and fails the check awaiting it), worker and pool lines counted,
// blank lines dropped, and a line that is not protocol kept to be quoted. Returns the events
// the caller may be awaiting, done lines included.
std::optional<received_line> session::file(stdout_line line) {
  if (line.overlong) {
    junk_.push_back(fmt::format("longer than {} MiB, the harness's limit, starting {}",
                                max_line_bytes >> 20, quote(line.text)));
    return std::nullopt;
  }
  if (line.unterminated) {
    junk_.push_back(
        fmt::format("the last of its output, without a newline (the harness never "
                    "reads it): {}",
                    quote(line.text)));
    return std::nullopt;
  }
  auto parsed = parse_driver_line(line.text);
  if (!parsed) {
    std::string why =
        fmt::format("not protocol ({}): {}", parse_message(parsed.error().message, line.text),
                    quote(line.text));
    const auto id = malformed_done_id(line.text);
    if (id && tasks_.count(*id) != 0) {
      book_malformed_done(*id, std::move(why));
    } else {
      junk_.push_back(std::move(why));
    }
    return std::nullopt;
  }
  switch (parsed->event) {
    case driver_event::blank:
      return std::nullopt;
    case driver_event::worker:
      ++worker_lines_;
      return std::nullopt;
    case driver_event::pool:
      ++pool_lines_;
      return std::nullopt;
    case driver_event::done:
    case driver_event::started:
    case driver_event::error:
    case driver_event::stats:
    case driver_event::stopped:
      break;
  }
  received_line r{std::move(*parsed), json::parse(line.text, nullptr, false), std::move(line.text),
                  monotonic_ns()};
  if (r.line.event == driver_event::done) book_done(r);
  return r;
}

void session::book_done(const received_line& done) {
  ++done_lines_;
  const std::uint64_t id = done.line.done.id;
  const auto it = tasks_.find(id);
  if (it == tasks_.end()) {
    tally_.id_faults.push_back(
        fmt::format("a done line for id {}, which was never submitted: {}", id, quote(done.text)));
    return;
  }
  task& t = it->second;
  if (++t.answers > 1) {
    tally_.id_faults.push_back(
        fmt::format("a second done line for id {} ({}): {}", id, t.command, quote(done.text)));
    return;
  }
  t.arrival = ++arrivals_;
  check_stamps(t, done);
  t.done = done;
}

void session::book_malformed_done(std::uint64_t id, std::string why) {
  ++done_lines_;
  task& t = tasks_.at(id);
  if (++t.answers > 1) {
    tally_.id_faults.push_back(
        fmt::format("a second done line for id {} ({}), {}", id, t.command, why));
    return;
  }
  t.arrival = ++arrivals_;
  t.malformed = std::move(why);
}

namespace {

// The stamps of one done line against harness/subjects/DRIVERS.md: set, in order, and on the
// clock this side reads.
std::string stamp_fault(const task& t, const received_line& r) {
  const driver_done& d = r.line.done;
  const std::int64_t recv = d.reply.t_recv_ns;
  const std::int64_t finished = d.reply.t_done_ns;
  if (d.t_start_ns == 0 || d.t_done_ns == 0)
    return "t_start_ns and t_done_ns must always be set (non-zero)";
  if (d.reply.ok && (recv == 0 || finished == 0)) {
    return "an ok task's t_worker_recv_ns and t_worker_done_ns must be set (non-zero)";
  }
  const bool worker_stamped = recv != 0 || finished != 0;
  if (worker_stamped && !(d.t_start_ns <= recv && recv <= finished && finished <= d.t_done_ns)) {
    return "the stamps must be ordered t_start_ns <= t_worker_recv_ns <= t_worker_done_ns <= "
           "t_done_ns";
  }
  if (d.t_start_ns > d.t_done_ns) return "t_start_ns is after t_done_ns";
  if (d.reply.ok && d.worker_pid == 0) return "an ok task's worker_pid must be a pid (> 0)";
  const auto intended = r.raw.find("t_intended_ns");
  if (intended == r.raw.end() || !intended->is_number_integer() ||
      intended->get<std::int64_t>() != t.t_sent) {
    return fmt::format("t_intended_ns must be copied back from the submit ({})", t.t_sent);
  }
  if (d.t_start_ns < t.t_sent) {
    return fmt::format(
        "t_start_ns is {:.3f} ms before the submit line was written: stamps must be "
        "CLOCK_MONOTONIC nanoseconds",
        ms(t.t_sent - d.t_start_ns));
  }
  if (d.t_done_ns > r.t_read) {
    return fmt::format(
        "t_done_ns is {:.3f} ms after the done line was read: stamps must be "
        "CLOCK_MONOTONIC nanoseconds",
        ms(d.t_done_ns - r.t_read));
  }
  return {};
}

}  // namespace

void session::check_stamps(const task& t, const received_line& done) {
  ++tally_.stamps_checked;
  if (auto fault = stamp_fault(t, done); !fault.empty()) {
    tally_.stamp_faults.push_back(fmt::format("the done line for id {} ({}): {}: {}",
                                              done.line.done.id, t.command, fault,
                                              quote(done.text)));
  }
}

std::optional<problem> session::junk_problem() const {
  if (junk_.empty()) return std::nullopt;
  std::string why = "the driver wrote a line that is " + junk_.front();
  if (junk_.size() > 1) why += fmt::format(" (and {} more such lines)", junk_.size() - 1);
  return problem{std::move(why)};
}

std::string session::junk_suffix() const {
  if (junk_.empty()) return {};
  return "; before that it wrote a line that is " + junk_.front();
}

problem session::timed_out(std::string_view what) const {
  return problem{
      fmt::format("{} did not come within {} ms{}", what, options_.timeout_ms, junk_suffix()),
      stderr_notes(), true};
}

problem session::ended(std::string_view what) {
  const auto status = pipe_->wait_exit(deadline_after(std::min<std::chrono::milliseconds>(
      std::chrono::milliseconds(options_.timeout_ms), 2 * pipes_close_grace)));
  const std::string how = status ? status->describe() : "closed its stdout but is still running";
  return problem{fmt::format("the driver {} before {} came{}", how, what, junk_suffix()),
                 stderr_notes(), true};
}

problem session::out_of_turn(const received_line& event, std::string_view what) const {
  return problem{fmt::format("the driver wrote {} while {} was awaited: {}",
                             event.line.event == driver_event::error ? "an error" : "another line",
                             what, quote(event.text)),
                 stderr_notes(), true};
}

}  // namespace procpool::harness::driver_check
