// Synchronous framed conversation with one worker over its stdin and stdout.
//
// The calling thread does the I/O itself: `call` writes the request frame and waits for the
// reply with poll(), draining the worker's stderr into a bounded tail meanwhile, so a chatty
// worker never blocks. Any fault (timeout, end of stream, bad frame, wrong id) marks the
// connection broken: the worker's state is unknown and it must be killed, never reused.
//
//   auto conn = procpool::worker_connection::start({.argv = {"procpool-fake-worker"}});
//   auto hello = conn->handshake({}, procpool::deadline_after(2s));
//   auto reply = conn->call({.id = 1, .command = "echo", .args = "hi"}, deadline);
//
// Not thread-safe: one caller at a time. The first connection sets SIGPIPE to ignored in the
// whole process, so that writing to a dead worker fails with EPIPE (worker_crashed) instead
// of killing the pool.
#pragma once

#include <chrono>
#include <cstddef>
#include <optional>
#include <string>

#include <nlohmann/json.hpp>

#include "procpool/clock.hpp"
#include "procpool/wire/frame.hpp"
#include "procpool/wire/message.hpp"
#include "procpool/result.hpp"
#include "procpool/wire/stderr_tail.hpp"
#include "procpool/wire/worker_process.hpp"

namespace procpool {

struct connection_options {
  std::size_t max_frame_bytes = default_max_frame_bytes;
  std::size_t stderr_tail_bytes = 64 * 1024;
  // How many stderr lines an error message quotes.
  std::size_t stderr_lines_in_errors = 10;
  // When false the connection never reads stderr: someone else (the pool's supervisor)
  // drains it into stderr_sink().
  bool drain_stderr = true;
};

class worker_connection {
 public:
  explicit worker_connection(worker_process process, connection_options options = {});
  static result<worker_connection> start(const launch_options& launch,
                                         connection_options options = {});

  // Sends the init request and waits for the worker's init reply. A refused init
  // (ok:false), a crash or a timeout is start_failed, quoting the worker's stderr.
  result<init_reply> handshake(const nlohmann::json& init_args, deadline until);

  // The two halves of `handshake`, for an event loop that waits for the reply itself.
  result<void> send_init(const nlohmann::json& init_args, deadline until);
  result<init_reply> finish_init(std::string_view payload);

  // Sends `req` and waits for its reply. ok:false replies are values (response::ok false),
  // not errors: the worker is healthy. Errors: request_timeout, worker_crashed,
  // protocol_error (bad frame, bad JSON, wrong id). `t_sent_ns`, when given, receives the
  // time the request's write began.
  // The request is encoded straight into the connection's write buffer and the reply
  // decoded where it was read: no copy of either on the way.
  result<response> call(const request_ref& req, deadline until,
                        std::int64_t* t_sent_ns = nullptr);

  // The two halves of `call`, for callers that pipeline or inject faults. A received payload
  // is a view into the connection's read buffer, valid until the next receive.
  result<void> send_payload(std::string_view payload, deadline until);
  result<std::string_view> receive_payload(deadline until);
  // Reads what stdout holds without blocking: a complete payload, or nothing yet.
  result<std::optional<std::string_view>> try_receive_payload();

  // For an event loop that pipelines requests: writes what the pipe takes of `pending`
  // without blocking and removes it from the front. All written when `pending` is empty; a
  // full pipe is not an error. Errors as send_payload's.
  result<void> send_available(std::string_view& pending);
  // Marks the connection broken for a fault its owner saw (a reply deadline it kept
  // itself), quoting the worker's last stderr lines as the connection's own faults do.
  error break_with(errc code, std::string message) { return fail(code, std::move(message)); }

  // Reads whatever stderr holds without blocking.
  void drain_stderr();
  std::string stderr_lines(std::size_t max_lines) const { return stderr_.last_lines(max_lines); }
  stderr_tail& stderr_sink() noexcept { return stderr_; }

  bool broken() const noexcept { return broken_; }
  worker_process& process() noexcept { return process_; }
  const worker_process& process() const noexcept { return process_; }

 private:
  // Writes write_buffer_ whole, waiting for room in the pipe until `until`. True when it
  // had to wait.
  result<bool> send_buffered(deadline until);
  // receive_payload, whose first wait counts from `now` when the caller has just read it.
  result<std::string_view> receive_payload(deadline until, std::optional<deadline> now);
  error fail(errc code, std::string message);
  error crashed(std::string_view what);

  worker_process process_;
  connection_options options_;
  frame_decoder decoder_;
  stderr_tail stderr_;
  std::string write_buffer_;
  bool broken_ = false;
};

}  // namespace procpool
