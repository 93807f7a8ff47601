// The pool's side of a zygote template: see zygote_template.hpp and pool/ZYGOTE.md.
#include "zygote_template.hpp"

#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <csignal>
#include <utility>

#include <fmt/format.h>

#include "procpool/clock.hpp"
#include "procpool/wire/file_io.hpp"

namespace procpool {
namespace {

using json = nlohmann::json;

constexpr std::size_t stderr_keep_bytes = 16 * 1024;  // the tail quoted in errors

error start_failed(std::string message) { return error{errc::start_failed, std::move(message)}; }

// The template's launch options: the worker's, plus --zygote and the channel's fd number.
launch_options template_options(const launch_options& worker) {
  launch_options options = worker;
  options.argv.push_back("--zygote");
  options.env["PROCPOOL_ZYGOTE_FD"] = "0";
  // These name one worker: each `fork` carries its own.
  options.env.erase("PROCPOOL_WORKER_ID");
  options.env.erase("PROCPOOL_WORKER_SLOT");
  return options;
}

struct socket_pair {
  unique_fd ours, theirs;
};

io_result<socket_pair> open_channel() {
  int sv[2];
  if (::socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) != 0) {
    return std::error_code(errno, std::system_category());
  }
  socket_pair pair{unique_fd(sv[0]), unique_fd(sv[1])};
  if (auto r = set_nonblocking(pair.ours.get()); !r) return r.error();
  return pair;
}

// "message" of a reply's `error` object, or the whole reply when it has none.
std::string describe_error(const json& reply) {
  const auto it = reply.find("error");
  if (it != reply.end() && it->is_object()) {
    return fmt::format("{}: {}", it->value("type", "?"), it->value("message", ""));
  }
  return reply.dump();
}

std::optional<json> parse_object(const std::string& payload) {
  json parsed = json::parse(payload, nullptr, /*allow_exceptions=*/false);
  if (!parsed.is_object() || !parsed.contains("type") || !parsed["type"].is_string()) {
    return std::nullopt;
  }
  return parsed;
}

bool has_id(const json& reply, std::uint64_t id) {
  const auto it = reply.find("id");
  return it != reply.end() && it->is_number_unsigned() && it->get<std::uint64_t>() == id;
}

std::optional<exit_status> decode_status(const json& reply) {
  const auto code = reply.find("code"), signal = reply.find("signal");
  if (code == reply.end() || signal == reply.end() || !code->is_number_integer() ||
      !signal->is_number_integer()) {
    return std::nullopt;
  }
  return exit_status{.code = code->get<int>(), .signal = signal->get<int>()};
}

}  // namespace

// ---- zygote_template ---------------------------------------------------------------------

zygote_template::zygote_template(worker_process process, unique_fd channel)
    : process_(std::move(process)), channel_(std::move(channel)) {}

zygote_template::~zygote_template() {
  if (!process_.status()) (void)close({});
}

result<std::shared_ptr<zygote_template>> zygote_template::spawn(
    const launch_options& worker, std::chrono::milliseconds reply_timeout) {
  auto channel = open_channel();
  if (!channel) {
    return start_failed(fmt::format("cannot create the zygote control channel: {}",
                                    channel.error().message()));
  }
  auto process = worker_process::launch_template(template_options(worker), channel->theirs.get());
  if (!process) return std::move(process).error();
  channel->theirs.reset();  // the template's copy is its only one: its exit is our EOF
  std::shared_ptr<zygote_template> tpl(
      new zygote_template(std::move(*process), std::move(channel->ours)));
  tpl->reply_timeout_ = reply_timeout;
  return tpl;
}

result<std::shared_ptr<zygote_template>> zygote_template::launch(
    const launch_options& worker, std::chrono::milliseconds ready_timeout,
    std::chrono::milliseconds reply_timeout) {
  const deadline until = deadline_after(ready_timeout);
  auto tpl = spawn(worker, reply_timeout);
  if (!tpl) return tpl;
  if (auto ready = (*tpl)->await_ready(until); !ready) {
    (*tpl)->process_.kill();
    return std::move(ready).error();  // quotes the stderr: fail()
  }
  return tpl;
}

result<bool> zygote_template::try_ready() {
  if (!channel_) return start_failed(fmt::format("zygote template unusable: {}", fault_));
  drain_stderr();
  auto got = zygote::receive_message(channel_.get());
  if (!got && would_block(got.error())) return false;
  if (!got) return fail(fmt::format("zygote channel failed: {}", got.error().message()));
  if (!*got) return fail("zygote template closed its channel (exited)");
  if ((*got)->truncated) return fail("zygote template sent a truncated message");
  if (auto ready = accept_ready((*got)->payload); !ready) return std::move(ready).error();
  return true;
}

bool zygote_template::usable() const noexcept {
  if (!channel_ || process_.pidfd() < 0) return false;
  pollfd p{.fd = process_.pidfd(), .events = POLLIN, .revents = 0};
  return ::poll(&p, 1, 0) == 0;  // readable: it exited
}

result<void> zygote_template::await_ready(deadline until) {
  auto message = receive(until);
  if (!message) return std::move(message).error();
  return accept_ready(message->payload);
}

result<void> zygote_template::accept_ready(const std::string& payload) {
  const auto reply = parse_object(payload);
  if (!reply) return fail("zygote template sent a malformed first message");
  const std::string type = (*reply)["type"];
  if (type == "preload_failed") {
    return fail(fmt::format("zygote template's preload failed: {}", describe_error(*reply)));
  }
  if (type != "ready" || reply->value("protocol", 0) != 1) {
    return fail(fmt::format("zygote template sent '{}' instead of ready (protocol 1)", type));
  }
  ready_ = *reply;
  return {};
}

bool zygote_template::drain_stderr() {
  if (process_.stderr_fd() < 0 || !stderr_open_) return false;
  const auto end = read_all(process_.stderr_fd(), stderr_text_);
  if (!end || *end == read_end::end_of_file) stderr_open_ = false;
  if (stderr_text_.size() > stderr_keep_bytes) {
    stderr_text_.erase(0, stderr_text_.size() - stderr_keep_bytes);
  }
  return stderr_open_;
}

std::string zygote_template::stderr_quote() const {
  if (stderr_text_.empty()) return "";
  return fmt::format("; template stderr: {}", stderr_text_);
}

error zygote_template::fail(std::string what) {
  drain_stderr();
  channel_.reset();
  fault_ = fmt::format("{}{}", what, stderr_quote());
  return start_failed(fault_);
}

result<zygote::control_message> zygote_template::receive(deadline until) {
  if (!channel_) return start_failed(fmt::format("zygote template unusable: {}", fault_));
  while (true) {
    pollfd polled[2] = {{.fd = channel_.get(), .events = POLLIN, .revents = 0},
                        {.fd = stderr_open_ ? process_.stderr_fd() : -1,
                         .events = POLLIN,
                         .revents = 0}};
    auto ready = poll_until(polled, until);
    if (!ready) return fail(fmt::format("poll on the zygote channel: {}", ready.error().message()));
    if (*ready == 0) return fail("zygote template did not answer in time");
    // The template's stderr is drained while waiting: a chatty preload must not block it.
    if (polled[1].revents != 0) drain_stderr();
    if (polled[0].revents == 0) continue;
    auto got = zygote::receive_message(channel_.get());
    if (!got && would_block(got.error())) continue;
    if (!got) return fail(fmt::format("zygote channel failed: {}", got.error().message()));
    if (!*got) return fail("zygote template closed its channel (exited)");
    if ((*got)->truncated) return fail("zygote template sent a truncated message");
    return std::move(**got);
  }
}

result<void> zygote_template::send(const json& body, std::span<const int> fds, deadline until) {
  if (!channel_) return start_failed(fmt::format("zygote template unusable: {}", fault_));
  while (true) {
    auto sent = zygote::send_message(channel_.get(), body, fds);
    if (sent) return {};
    if (!would_block(sent.error())) {
      return fail(fmt::format("zygote channel failed: {}", sent.error().message()));
    }
    pollfd p{.fd = channel_.get(), .events = POLLOUT, .revents = 0};
    auto ready = poll_until({&p, 1}, until);
    if (!ready || *ready == 0) return fail("zygote channel stayed full");
  }
}

result<forked_worker> zygote_template::fork(const std::map<std::string, std::string>& env,
                                            std::chrono::milliseconds timeout) {
  const deadline until = deadline_after(timeout);
  auto in = open_pipe(), out = open_pipe(), err = open_pipe();
  for (const auto* pipe : {&in, &out, &err}) {
    if (!*pipe) {
      return start_failed(fmt::format("cannot create pipes for a forked worker: {}",
                                      pipe->error().message()));
    }
  }
  const std::uint64_t id = next_id_++;
  const std::int64_t t_spawn_ns = monotonic_ns();
  const int child_ends[] = {in->read.get(), out->write.get(), err->write.get()};
  if (auto sent = send({{"type", "fork"}, {"id", id}, {"env", env}}, child_ends, until); !sent) {
    return std::move(sent).error();
  }
  // Once sent, the template holds the child's ends; ours must go, or the worker's EOFs never come.
  in->read.reset();
  out->write.reset();
  err->write.reset();
  auto message = receive(until);
  if (!message) return std::move(message).error();
  const auto reply = parse_object(message->payload);
  if (!reply || !has_id(*reply, id)) return fail("zygote template sent a malformed reply to fork");
  if ((*reply)["type"] == "fork_failed") {
    return start_failed(fmt::format("zygote template could not fork: {}", describe_error(*reply)));
  }
  const auto pid = reply->find("pid");
  if ((*reply)["type"] != "forked" || message->fds.size() != 1 || pid == reply->end() ||
      !pid->is_number_integer()) {
    return fail(fmt::format("zygote template answered fork with {}", reply->dump()));
  }
  for (const auto* fd : {&in->write, &out->read, &err->read}) (void)set_nonblocking(fd->get());
  return forked_worker{
      .process = worker_process::adopt_forked(pid->get<pid_t>(), std::move(message->fds[0]),
                                              std::move(in->write), std::move(out->read),
                                              std::move(err->read), t_spawn_ns, shared_from_this(),
                                              id),
      .id = id,
      .t_fork_ns = reply->value("t_fork_ns", std::int64_t{0})};
}

result<std::optional<exit_status>> zygote_template::reap(std::uint64_t id) {
  const deadline until = deadline_after(reply_timeout_);
  if (auto sent = send({{"type", "reap"}, {"id", id}}, {}, until); !sent) {
    return std::move(sent).error();
  }
  auto message = receive(until);
  if (!message) return std::move(message).error();
  const auto reply = parse_object(message->payload);
  if (!reply || !has_id(*reply, id) || !message->fds.empty()) {
    return fail("zygote template sent a malformed reply to reap");
  }
  if ((*reply)["type"] == "reaped") {
    if (auto status = decode_status(*reply)) return std::optional<exit_status>(*status);
  }
  if ((*reply)["type"] == "reap_failed" && reply->contains("error") &&
      (*reply)["error"].value("type", "") == "running") {
    return std::optional<exit_status>();
  }
  return fail(fmt::format("zygote template answered reap with {}", reply->dump()));
}

exit_status zygote_template::close(const stop_plan& plan) {
  channel_.reset();
  if (fault_.empty()) fault_ = "closed";
  drain_stderr();
  // stop() closes a stdin we do not have, then waits for the template's exit at EOF.
  return process_.stop(plan);
}

}  // namespace procpool
