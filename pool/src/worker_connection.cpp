#include "procpool/wire/worker_connection.hpp"

#include <poll.h>

#include <array>
#include <csignal>
#include <mutex>

#include <fmt/format.h>

#include "procpool/wire/file_io.hpp"

namespace procpool {
namespace {

constexpr std::size_t read_chunk_bytes = 64 * 1024;

void ignore_sigpipe_once() {
  static std::once_flag once;
  std::call_once(once, [] { ::signal(SIGPIPE, SIG_IGN); });
}

}  // namespace

worker_connection::worker_connection(worker_process process, connection_options options)
    : process_(std::move(process)),
      options_(options),
      decoder_(options.max_frame_bytes),
      stderr_(options.stderr_tail_bytes) {
  ignore_sigpipe_once();
}

result<worker_connection> worker_connection::start(const launch_options& launch,
                                                   connection_options options) {
  auto proc = worker_process::launch(launch);
  if (!proc) return std::move(proc).error();
  return worker_connection(std::move(*proc), options);
}

error worker_connection::fail(errc code, std::string message) {
  broken_ = true;
  // Even when another thread drains stderr, read what is there now so that the message
  // quotes the worker's last words; both readers append to the same thread-safe tail.
  drain_stderr();
  std::string tail = stderr_.last_lines(options_.stderr_lines_in_errors);
  if (!tail.empty()) message += fmt::format("; last stderr lines:\n{}", tail);
  return error{code, std::move(message)};
}

error worker_connection::crashed(std::string_view what) {
  // The worker closed its end; give it a moment to finish exiting so the error can say how.
  const auto status = process_.peek_exit(std::chrono::milliseconds(100));
  return fail(errc::worker_crashed,
              fmt::format("worker {} {} ({})", process_.pid(), what,
                          status ? status->describe() : "still running"));
}

void worker_connection::drain_stderr() {
  const int fd = process_.stderr_fd();
  if (fd < 0) return;
  std::array<char, read_chunk_bytes> buf;
  // Stops at EAGAIN, or at end of stream (the fd stays readable at EOF, poll will not block).
  (void)read_all(fd, buf, [&](std::string_view chunk) { stderr_.append(chunk); });
}

result<void> worker_connection::send_payload(std::string_view payload, deadline until) {
  if (broken_) return error{errc::worker_crashed, "connection to the worker is already broken"};
  write_buffer_.clear();
  append_frame(write_buffer_, payload);
  if (auto sent = send_buffered(until); !sent) return std::move(sent).error();
  return {};
}

result<bool> worker_connection::send_buffered(deadline until) {
  std::string_view pending = write_buffer_;
  bool waited = false;
  while (true) {
    auto written = write_all(process_.stdin_fd(), pending);
    if (written) return waited;
    const std::error_code ec = written.error();
    if (ec == std::errc::broken_pipe) return crashed("closed its stdin");
    if (!would_block(ec)) {
      return fail(errc::worker_crashed, fmt::format("write to worker {} failed: {}",
                                                    process_.pid(), ec.message()));
    }
    // The pipe is full: the worker is not reading. Keep its stderr flowing while we wait.
    std::array<pollfd, 2> fds{{{process_.stdin_fd(), POLLOUT, 0},
                               {options_.drain_stderr ? process_.stderr_fd() : -1, POLLIN, 0}}};
    const auto ready = poll_until(fds, until);
    waited = true;
    if (ready && *ready == 0) {
      return fail(errc::request_timeout,
                  fmt::format("worker {} did not read its request before the deadline",
                              process_.pid()));
    }
    if (fds[1].revents != 0) drain_stderr();
  }
}

result<void> worker_connection::send_available(std::string_view& pending) {
  if (broken_) return error{errc::worker_crashed, "connection to the worker is already broken"};
  auto written = write_all(process_.stdin_fd(), pending);
  if (written) return {};
  const std::error_code ec = written.error();
  if (would_block(ec)) return {};
  if (ec == std::errc::broken_pipe) return crashed("closed its stdin");
  return fail(errc::worker_crashed,
              fmt::format("write to worker {} failed: {}", process_.pid(), ec.message()));
}

result<std::optional<std::string_view>> worker_connection::try_receive_payload() {
  if (broken_) return error{errc::worker_crashed, "connection to the worker is already broken"};
  std::array<char, read_chunk_bytes> buf;
  while (true) {
    auto frame = decoder_.next_view();
    if (!frame) {
      return fail(errc::protocol_error,
                  fmt::format("worker {}: {}", process_.pid(), frame.error().message));
    }
    if (*frame) return frame;

    const auto n = read_some(process_.stdout_fd(), buf);
    if (!n) {
      if (would_block(n.error())) return std::optional<std::string_view>{};
      return fail(errc::worker_crashed, fmt::format("read from worker {} failed: {}",
                                                    process_.pid(), n.error().message()));
    }
    if (*n > 0) {
      decoder_.feed({buf.data(), *n});
      continue;
    }
    if (decoder_.has_partial_frame()) {
      return fail(errc::protocol_error,
                  fmt::format("worker {} ended its stdout in the middle of a frame",
                              process_.pid()));
    }
    return crashed("closed its stdout");
  }
}

result<std::string_view> worker_connection::receive_payload(deadline until) {
  return receive_payload(until, std::nullopt);
}

result<std::string_view> worker_connection::receive_payload(deadline until,
                                                            std::optional<deadline> now) {
  if (broken_) return error{errc::worker_crashed, "connection to the worker is already broken"};
  bool stderr_open = options_.drain_stderr && process_.stderr_fd() >= 0;
  // Right after a request the reply is rarely there yet, so wait before reading rather than
  // spend a read() on EAGAIN: system calls are most of a round trip's cost. Bytes already
  // buffered may hold a whole frame, so those are looked at first.
  bool stdout_ready = decoder_.has_partial_frame();
  while (true) {
    if (stdout_ready) {
      auto payload = try_receive_payload();
      if (!payload) return std::move(payload).error();
      if (*payload) return **payload;
    }
    std::array<pollfd, 2> fds{{{process_.stdout_fd(), POLLIN, 0},
                               {stderr_open ? process_.stderr_fd() : -1, POLLIN, 0}}};
    const auto ready = now ? poll_until(fds, until, *now) : poll_until(fds, until);
    now.reset();
    if (ready && *ready == 0) {
      return fail(errc::request_timeout,
                  fmt::format("worker {} did not reply before the deadline", process_.pid()));
    }
    stdout_ready = fds[0].revents != 0;
    if (fds[1].revents & POLLIN) {
      drain_stderr();
    } else if (fds[1].revents != 0) {
      stderr_open = false;  // hung up: stop polling it, or poll would spin
    }
  }
}

result<response> worker_connection::call(const request_ref& req, deadline until,
                                         std::int64_t* t_sent_ns) {
  if (broken_) return error{errc::worker_crashed, "connection to the worker is already broken"};
  write_buffer_.clear();
  const std::size_t header = begin_frame(write_buffer_);
  encode_into(write_buffer_, req);
  end_frame(write_buffer_, header);
  // Stamped before the write: once written, the worker may stamp t_recv_ns before this
  // thread runs again. The stamp also starts the wait for the reply, a write later, unless
  // the write had to wait for room: then it is stale, and the wait reads the clock.
  const std::int64_t t_sent = monotonic_ns();
  if (t_sent_ns) *t_sent_ns = t_sent;
  const auto waited_for_room = send_buffered(until);
  if (!waited_for_room) return std::move(waited_for_room).error();
  auto payload = receive_payload(
      until, *waited_for_room ? std::nullopt : std::optional<deadline>(from_ns(t_sent)));
  if (!payload) return std::move(payload).error();
  auto reply = decode_response(*payload);
  if (!reply) {
    return fail(errc::protocol_error,
                fmt::format("worker {}: {}", process_.pid(), reply.error().message));
  }
  if (reply->id != req.id) {
    return fail(errc::protocol_error,
                fmt::format("worker {} answered id {} to request id {}", process_.pid(),
                            reply->id, req.id));
  }
  return reply;
}

namespace {

error as_start_failure(error e) {
  if (e.code == errc::start_failed) return e;
  return error{errc::start_failed,
               fmt::format("init handshake failed ({}): {}", to_string(e.code), e.message)};
}

}  // namespace

result<void> worker_connection::send_init(const nlohmann::json& init_args, deadline until) {
  auto sent = send_payload(encode(make_init_request(init_args)), until);
  if (!sent) return as_start_failure(std::move(sent).error());
  return {};
}

result<init_reply> worker_connection::finish_init(std::string_view payload) {
  auto reply = decode_init_reply(payload);
  if (!reply) {
    return as_start_failure(fail(errc::protocol_error, std::move(reply).error().message));
  }
  if (reply->base.id != init_request_id) {
    return as_start_failure(fail(errc::protocol_error,
                                 fmt::format("init reply has id {}", reply->base.id)));
  }
  if (!reply->base.ok) {
    return as_start_failure(fail(errc::worker_error,
                                 fmt::format("worker refused init: {}: {}",
                                             reply->base.failure.type,
                                             reply->base.failure.message)));
  }
  return reply;
}

result<init_reply> worker_connection::handshake(const nlohmann::json& init_args,
                                                deadline until) {
  if (auto sent = send_init(init_args, until); !sent) return std::move(sent).error();
  auto payload = receive_payload(until);
  if (!payload) return as_start_failure(std::move(payload).error());
  return finish_init(*payload);
}

}  // namespace procpool
