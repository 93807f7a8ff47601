// The fake worker's zygote template: see zygote.hpp, and pool/ZYGOTE.md for the messages.
#include "zygote.hpp"

#include <dirent.h>
#include <signal.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <map>
#include <memory>
#include <new>
#include <optional>
#include <string>
#include <thread>

#include <fmt/format.h>

#include "procpool/wire/control_channel.hpp"
#include "procpool/clock.hpp"
#include "zygote_child.hpp"

namespace procpool::fake {

using zygote::control_message;
using zygote::max_control_fds;
using zygote::max_control_message_bytes;
using zygote::receive_message;
using zygote::send_message;
namespace {

using json = nlohmann::json;

constexpr int exit_preload_failed = 70;  // EX_SOFTWARE
constexpr int protocol_version = 1;

// A refusal: the `error` object of a *_failed or `error` reply.
struct refusal {
  std::string type;
  std::string message;
};

std::string errno_text(const char* call) {
  return fmt::format("{}: {}", call, std::strerror(errno));
}

// The preload: `ms` of wall time, then `mib` MiB of private memory, every page written.
// Kept for the template's life, so each child shares it copy-on-write.
std::optional<std::unique_ptr<char[]>> preload(double ms, std::size_t mib) {
  if (ms > 0) std::this_thread::sleep_for(std::chrono::duration<double, std::milli>(ms));
  const std::size_t bytes = mib << 20;
  std::unique_ptr<char[]> memory(bytes ? new (std::nothrow) char[bytes] : nullptr);
  if (bytes && !memory) return std::nullopt;
  for (std::size_t i = 0; i < bytes; i += 4096) memory[i] = static_cast<char>(i >> 12 | 1);
  return memory;
}

// Threads of this process, counted in /proc/self/task so that native ones are seen too.
int thread_count() {
  DIR* dir = ::opendir("/proc/self/task");
  if (!dir) return -1;
  int n = 0;
  while (dirent* e = ::readdir(dir)) n += e->d_name[0] != '.';
  ::closedir(dir);
  return n;
}

std::optional<std::uint64_t> request_id(const json& message) {
  const auto it = message.find("id");
  if (it == message.end() || !it->is_number_unsigned()) return std::nullopt;
  return it->get<std::uint64_t>();
}

// The `env` of a fork request: an object of strings (absent: empty).
std::optional<std::vector<std::pair<std::string, std::string>>> request_env(const json& message) {
  std::vector<std::pair<std::string, std::string>> env;
  const auto it = message.find("env");
  if (it == message.end()) return env;
  if (!it->is_object()) return std::nullopt;
  for (const auto& [name, value] : it->items()) {
    if (!value.is_string() || name.empty() || name.find('=') != std::string::npos)
      return std::nullopt;
    env.emplace_back(name, value.get<std::string>());
  }
  return env;
}

json exit_fields(int status) {
  if (WIFEXITED(status)) return {{"code", WEXITSTATUS(status)}, {"signal", 0}};
  return {{"code", -1}, {"signal", WIFSIGNALED(status) ? WTERMSIG(status) : 0}};
}

class template_loop {
 public:
  template_loop(const template_options& options, const worker_main& worker)
      : sock_(options.control_fd), self_(::getpid()), worker_(worker) {}

  // Serves until EOF; returns the exit code.
  int serve() {
    while (true) {
      auto received = receive_message(sock_);
      if (!received) return channel_failed(received.error());
      if (!*received) return 0;
      if (auto sent = dispatch(std::move(**received)); !sent) return channel_failed(sent.error());
    }
  }

  // At EOF or any channel failure: every child still held is killed (its group) and reaped.
  ~template_loop() {
    for (const auto& [id, pid] : children_) ::killpg(pid, SIGKILL);
    for (const auto& [id, pid] : children_) retry_eintr([&] { return ::waitpid(pid, nullptr, 0); });
  }

 private:
  // The pool closing its end while a reply is on its way is an ordinary shutdown.
  static int channel_failed(const std::error_code& ec) {
    if (ec == std::errc::broken_pipe || ec == std::errc::connection_reset) return 0;
    fmt::print(stderr, "procpool-fake-worker: zygote control channel failed: {}\n", ec.message());
    return 1;
  }

  io_result<void> dispatch(control_message message) {
    json body = json::parse(message.payload, nullptr, false);
    const std::string type = body.is_object() && body.contains("type") && body["type"].is_string()
                                 ? body["type"].get<std::string>()
                                 : std::string();
    if (message.truncated)
      return refuse(type, body, {"bad_request", "message or descriptors truncated"});
    if (type.empty())
      return refuse(type, body, {"bad_request", "not a JSON object with a string type"});
    if (type == "fork") return fork_child(body, std::move(message.fds));
    if (!message.fds.empty())
      return refuse(type, body, {"bad_request", type + " carries no descriptors"});
    if (type == "reap") return reap(body);
    if (type == "status") return status(body);
    return refuse(type, body, {"bad_request", fmt::format("unknown message type '{}'", type)});
  }

  // fork_failed / reap_failed for those requests, `error` for any other.
  io_result<void> refuse(const std::string& type, const json& body, refusal why) {
    const char* reply = type == "fork" ? "fork_failed" : type == "reap" ? "reap_failed" : "error";
    json out = {{"type", reply}, {"error", {{"type", why.type}, {"message", why.message}}}};
    if (body.is_object() && body.contains("id")) out["id"] = body["id"];
    return send_message(sock_, out);
  }

  io_result<void> fork_child(const json& body, std::vector<unique_fd> fds) {
    const auto id = request_id(body);
    const auto env = request_env(body);
    if (!id) return refuse("fork", body, {"bad_request", "fork needs an unsigned integer id"});
    if (fds.size() != 3) {
      return refuse("fork", body,
                    {"bad_request", fmt::format("fork needs 3 descriptors, got {}", fds.size())});
    }
    if (!env) return refuse("fork", body, {"bad_request", "env must map names to strings"});
    if (children_.contains(*id)) return refuse("fork", body, {"bad_request", "id already in use"});
    if (const int threads = thread_count(); threads != 1) {
      return refuse("fork", body,
                    {"threads_alive", fmt::format("{} threads in /proc/self/task", threads)});
    }
    std::fflush(nullptr);  // or the child would write the template's buffered output again
    const std::int64_t t_fork_ns = monotonic_ns();
    const pid_t pid = ::fork();
    if (pid == 0) run_child({self_, {fds[0].get(), fds[1].get(), fds[2].get()}, *env});
    if (pid < 0) return refuse("fork", body, {"fork_errno", errno_text("fork")});
    ::setpgid(pid, pid);  // the child does it too; EACCES or ESRCH here are fine
    fds.clear();
    // Only this process reaps, and only on `reap`: the pid cannot have been reused yet.
    unique_fd pidfd(static_cast<int>(::syscall(SYS_pidfd_open, pid, 0)));
    if (!pidfd) {
      const std::string why = errno_text("pidfd_open");
      ::kill(pid, SIGKILL);
      retry_eintr([&] { return ::waitpid(pid, nullptr, 0); });
      return refuse("fork", body, {"fork_errno", why});
    }
    children_.emplace(*id, pid);
    const int pidfds[] = {pidfd.get()};
    return send_message(
        sock_, {{"type", "forked"}, {"id", *id}, {"pid", pid}, {"t_fork_ns", t_fork_ns}}, pidfds);
  }

  // The child, from fork() to _exit(): it never returns into this loop.
  [[noreturn]] void run_child(const child_setup& setup) {
    if (auto problem = become_worker(setup)) {
      fmt::print(stderr, "procpool-fake-worker: zygote child set-up failed: {}\n", *problem);
      std::fflush(stderr);
      ::_exit(exit_child_setup_failed);
    }
    worker_(monotonic_ns());
    ::_exit(0);
  }

  io_result<void> reap(const json& body) {
    const auto child = find_child(body);
    if (!child) return refuse("reap", body, {"unknown_id", "no unreaped child with this id"});
    int status = 0;
    const pid_t r = retry_eintr([&] { return ::waitpid((*child)->second, &status, WNOHANG); });
    if (r == 0)
      return refuse("reap", body,
                    {"running", fmt::format("child {} has not exited", (*child)->second)});
    if (r < 0) return refuse("reap", body, {"fork_errno", errno_text("waitpid")});
    json out = {{"type", "reaped"}, {"id", (*child)->first}};
    out.update(exit_fields(status));
    children_.erase(*child);
    return send_message(sock_, out);
  }

  io_result<void> status(const json& body) {
    const auto child = find_child(body);
    if (!child) return refuse("status", body, {"unknown_id", "no unreaped child with this id"});
    siginfo_t info{};
    if (retry_eintr([&] {
          return ::waitid(P_PID, static_cast<id_t>((*child)->second), &info,
                          WEXITED | WNOHANG | WNOWAIT);
        }) < 0) {
      return refuse("status", body, {"fork_errno", errno_text("waitid")});
    }
    json out = {{"type", "status"}, {"id", (*child)->first}, {"running", info.si_pid == 0}};
    if (info.si_pid == 0) {
      out.update({{"code", -1}, {"signal", 0}});
    } else if (info.si_code == CLD_EXITED) {
      out.update({{"code", info.si_status}, {"signal", 0}});
    } else {
      out.update({{"code", -1}, {"signal", info.si_status}});
    }
    return send_message(sock_, out);
  }

  std::optional<std::map<std::uint64_t, pid_t>::iterator> find_child(const json& body) {
    const auto id = request_id(body);
    if (!id) return std::nullopt;
    const auto it = children_.find(*id);
    if (it == children_.end()) return std::nullopt;
    return it;
  }

  int sock_;
  pid_t self_;
  const worker_main& worker_;
  std::map<std::uint64_t, pid_t> children_;  // request id -> pid, forked and not yet reaped
};

}  // namespace

int serve_template(const template_options& options, const worker_main& worker) {
  // An inherited SIG_IGN would make the kernel reap the children itself.
  ::signal(SIGCHLD, SIG_DFL);
  const auto memory = preload(options.preload_ms, options.preload_mib);
  if (!memory) {
    fmt::print(stderr, "procpool-fake-worker: zygote preload of {} MiB failed\n",
               options.preload_mib);
    (void)send_message(
        options.control_fd,
        {{"type", "preload_failed"},
         {"error",
          {{"type", "bad_alloc"},
           {"message", fmt::format("cannot allocate {} MiB", options.preload_mib)}}}});
    return exit_preload_failed;
  }
  const json ready = {{"type", "ready"},
                      {"protocol", protocol_version},
                      {"pid", ::getpid()},
                      {"t_main_ns", options.t_main_ns},
                      {"t_preload_done_ns", monotonic_ns()}};
  if (auto sent = send_message(options.control_fd, ready); !sent) {
    fmt::print(
        stderr,
        "procpool-fake-worker: --zygote needs a SOCK_SEQPACKET control channel on fd {}: {}\n",
        options.control_fd, sent.error().message());
    return 1;
  }
  return template_loop(options, worker).serve();
}

}  // namespace procpool::fake
