// Prototype for pool/ZYGOTE.md: the chosen reaping and orphan design, measured.
// Standalone, not built by CMake:
//
//   g++ -std=c++20 -O1 -Wall -o /tmp/zygote_reaping pool/prototypes/zygote_reaping.cpp
//   /tmp/zygote_reaping bench [N=256] [preload_mb=0]   # fork latency vs posix_spawn
//   /tmp/zygote_reaping orphan [children=16]            # SIGKILL the owner: all gone < 2 s?
//   /tmp/zygote_reaping orphan-template [children=16]   # SIGKILL the template: children gone?
//
// Design under test (pool/ZYGOTE.md, option b): the owner launches the template (this binary,
// mode "template") with PR_SET_PDEATHSIG and a SOCK_SEQPACKET socketpair as its stdin. Per
// start the owner makes the child's three pipes and sends their child ends with SCM_RIGHTS;
// the template forks, the child sets its group, PR_SET_PDEATHSIG (then checks getppid),
// dup2s the pipes onto 0-2 and close_range(3)s the rest; the template passes back a pidfd
// it opened before it could reap. The owner polls that pidfd, killpg()s the group while the
// leader is still unreaped, and only then asks the template to reap ("reap" -> "reaped").
// Messages are one datagram of JSON each, as in pool/ZYGOTE.md (hand-formatted here).
#include <dirent.h>
#include <fcntl.h>
#include <linux/close_range.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <map>
#include <string>
#include <vector>

extern char** environ;

namespace {

std::string self_exe;

int64_t now_ns() {
  timespec ts{};
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return int64_t(ts.tv_sec) * 1'000'000'000 + ts.tv_nsec;
}

[[noreturn]] void die(const char* what) {
  std::fprintf(stderr, "[%d] %s: %s\n", getpid(), what, std::strerror(errno));
  std::exit(1);
}

int pidfd_open(pid_t pid) { return int(syscall(SYS_pidfd_open, pid, 0)); }
int pidfd_send_signal(int fd, int sig) { return int(syscall(SYS_pidfd_send_signal, fd, sig, nullptr, 0)); }

// ---- one datagram = one JSON message, fds as SCM_RIGHTS ----
bool send_msg(int sock, const std::string& json, const std::vector<int>& fds = {}) {
  iovec iov{const_cast<char*>(json.data()), json.size()};
  msghdr msg{};
  msg.msg_iov = &iov;
  msg.msg_iovlen = 1;
  alignas(cmsghdr) char control[CMSG_SPACE(sizeof(int) * 8)] = {};
  if (!fds.empty()) {
    msg.msg_control = control;
    msg.msg_controllen = CMSG_SPACE(sizeof(int) * fds.size());
    cmsghdr* c = CMSG_FIRSTHDR(&msg);
    c->cmsg_level = SOL_SOCKET;
    c->cmsg_type = SCM_RIGHTS;
    c->cmsg_len = CMSG_LEN(sizeof(int) * fds.size());
    std::memcpy(CMSG_DATA(c), fds.data(), sizeof(int) * fds.size());
  }
  ssize_t n;
  do n = sendmsg(sock, &msg, MSG_NOSIGNAL); while (n < 0 && errno == EINTR);
  return n == ssize_t(json.size());
}

// Returns false at EOF or error. Received fds are close-on-exec.
bool recv_msg(int sock, std::string& json, std::vector<int>& fds) {
  char buf[65536];
  iovec iov{buf, sizeof buf};
  msghdr msg{};
  msg.msg_iov = &iov;
  msg.msg_iovlen = 1;
  alignas(cmsghdr) char control[CMSG_SPACE(sizeof(int) * 8)];
  msg.msg_control = control;
  msg.msg_controllen = sizeof control;
  ssize_t n;
  do n = recvmsg(sock, &msg, MSG_CMSG_CLOEXEC); while (n < 0 && errno == EINTR);
  if (n <= 0) return false;
  if (msg.msg_flags & (MSG_TRUNC | MSG_CTRUNC)) { errno = EMSGSIZE; return false; }
  json.assign(buf, size_t(n));
  fds.clear();
  for (cmsghdr* c = CMSG_FIRSTHDR(&msg); c; c = CMSG_NXTHDR(&msg, c)) {
    if (c->cmsg_level == SOL_SOCKET && c->cmsg_type == SCM_RIGHTS) {
      const size_t count = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
      const int* data = reinterpret_cast<const int*>(CMSG_DATA(c));
      fds.insert(fds.end(), data, data + count);
    }
  }
  return true;
}

// Minimal field readers for the hand-formatted JSON of this prototype.
int64_t json_int(const std::string& json, const char* key, int64_t fallback = -1) {
  const std::string needle = std::string("\"") + key + "\":";
  const auto at = json.find(needle);
  return at == std::string::npos ? fallback : std::strtoll(json.c_str() + at + needle.size(), nullptr, 10);
}
std::string json_type(const std::string& json) {
  const std::string needle = "\"type\":\"";
  const auto at = json.find(needle);
  if (at == std::string::npos) return {};
  const auto end = json.find('"', at + needle.size());
  return json.substr(at + needle.size(), end - at - needle.size());
}

int count_threads() {
  DIR* d = opendir("/proc/self/task");
  if (!d) return -1;
  int n = 0;
  while (dirent* e = readdir(d)) n += e->d_name[0] != '.';
  closedir(d);
  return n;
}

// ---- the worker body a forked child (or a spawned "echo" process) runs ----
[[noreturn]] void echo_main(int64_t t_main_ns) {
  char line[256];
  ssize_t n;
  do n = read(0, line, sizeof line - 1); while (n < 0 && errno == EINTR);
  if (n <= 0) _exit(3);
  char out[512];
  const int len = std::snprintf(out, sizeof out, "%d %lld %.*s", int(getpid()), (long long)t_main_ns, int(n), line);
  if (write(1, out, size_t(len)) != len) _exit(4);
  // Stay alive until stdin reaches EOF, like a worker.
  while ((n = read(0, line, sizeof line)) != 0) {
    if (n < 0 && errno != EINTR) break;
  }
  _exit(0);
}

// ---- the template ----
[[noreturn]] void template_main(long preload_mb) {
  const int64_t t_main = now_ns();
  std::vector<char> preload(size_t(preload_mb) << 20);
  for (size_t i = 0; i < preload.size(); i += 4096) preload[i] = char(i);  // touch: private pages
  const int sock = 0;
  const pid_t self = getpid();
  std::map<int64_t, pid_t> children;
  if (!send_msg(sock, "{\"type\":\"ready\",\"protocol\":1,\"pid\":" + std::to_string(self) +
                          ",\"t_main_ns\":" + std::to_string(t_main) +
                          ",\"t_preload_done_ns\":" + std::to_string(now_ns()) + "}")) {
    _exit(70);
  }
  std::string json;
  std::vector<int> fds;
  while (recv_msg(sock, json, fds)) {
    const std::string type = json_type(json);
    const int64_t id = json_int(json, "id");
    auto error = [&](const char* t, const char* etype, const std::string& m) {
      send_msg(sock, std::string("{\"type\":\"") + t + "\",\"id\":" + std::to_string(id) +
                         ",\"error\":{\"type\":\"" + etype + "\",\"message\":\"" + m + "\"}}");
    };
    if (type == "fork") {
      if (fds.size() != 3) {
        for (int fd : fds) close(fd);
        error("fork_failed", "bad_request", "fork needs 3 fds");
        continue;
      }
      if (const int threads = count_threads(); threads != 1) {
        for (int fd : fds) close(fd);
        error("fork_failed", "threads_alive", std::to_string(threads) + " threads");
        continue;
      }
      const int64_t worker_id = json_int(json, "worker_id", 0);
      const int64_t t_fork = now_ns();
      const pid_t pid = fork();
      if (pid == 0) {
        const int64_t t_child = now_ns();
        setpgid(0, 0);
        if (prctl(PR_SET_PDEATHSIG, SIGKILL) != 0) _exit(127);
        if (getppid() != self) _exit(127);  // the template died between fork and prctl
        for (int i = 0; i < 3; ++i) {
          if (dup2(fds[size_t(i)], i) < 0) _exit(127);
        }
        if (close_range(3, ~0U, 0) != 0) _exit(127);
        sigset_t none;
        sigemptyset(&none);
        sigprocmask(SIG_SETMASK, &none, nullptr);
        for (int s : {SIGPIPE, SIGCHLD, SIGTERM, SIGINT}) signal(s, SIG_DFL);
        setenv("PROCPOOL_WORKER_ID", std::to_string(worker_id).c_str(), 1);
        echo_main(t_child);
      }
      for (int fd : fds) close(fd);
      if (pid < 0) {
        error("fork_failed", "fork_errno", std::strerror(errno));
        continue;
      }
      setpgid(pid, pid);  // also done by the child; whichever runs first
      const int pidfd = pidfd_open(pid);  // cannot be reaped yet: only we reap, on request
      if (pidfd < 0) {
        kill(pid, SIGKILL);
        waitpid(pid, nullptr, 0);
        error("fork_failed", "fork_errno", std::strerror(errno));
        continue;
      }
      children[id] = pid;
      send_msg(sock, "{\"type\":\"forked\",\"id\":" + std::to_string(id) + ",\"pid\":" + std::to_string(pid) +
                         ",\"t_fork_ns\":" + std::to_string(t_fork) + "}",
               {pidfd});
      close(pidfd);
    } else if (type == "reap") {
      for (int fd : fds) close(fd);
      const auto it = children.find(id);
      if (it == children.end()) { error("reap_failed", "unknown_id", "no such child"); continue; }
      int status = 0;
      const pid_t r = waitpid(it->second, &status, WNOHANG);
      if (r == 0) { error("reap_failed", "running", "child has not exited"); continue; }
      const int code = r > 0 && WIFEXITED(status) ? WEXITSTATUS(status) : -1;
      const int sig = r > 0 && WIFSIGNALED(status) ? WTERMSIG(status) : 0;
      children.erase(it);
      send_msg(sock, "{\"type\":\"reaped\",\"id\":" + std::to_string(id) + ",\"code\":" + std::to_string(code) +
                         ",\"signal\":" + std::to_string(sig) + "}");
    } else {
      for (int fd : fds) close(fd);
      error("error", "bad_request", "unknown type");
    }
  }
  // EOF: the pool is gone or done. Kill and reap whatever is left.
  for (const auto& [id, pid] : children) killpg(pid, SIGKILL);
  for (const auto& [id, pid] : children) waitpid(pid, nullptr, 0);
  _exit(0);
}

// ---- the owner side ----
struct template_handle {
  pid_t pid = -1;
  int sock = -1;
  int64_t t_launch_ns = 0, t_ready_ns = 0;
};

template_handle launch_template(long preload_mb) {
  int sv[2];
  if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) != 0) die("socketpair");
  template_handle t;
  t.t_launch_ns = now_ns();
  const pid_t parent = getpid();
  const pid_t pid = fork();
  if (pid == 0) {
    // The pool's worker_isolation, for the template.
    setpgid(0, 0);
    if (prctl(PR_SET_PDEATHSIG, SIGKILL) != 0) _exit(127);
    if (getppid() != parent) _exit(127);
    if (dup2(sv[1], 0) < 0) _exit(127);  // dup2 clears close-on-exec on fd 0
    close_range(3, ~0U, 0);
    const std::string mb = std::to_string(preload_mb);
    execl(self_exe.c_str(), self_exe.c_str(), "template", mb.c_str(), nullptr);
    _exit(127);
  }
  if (pid < 0) die("fork template");
  close(sv[1]);
  t.pid = pid;
  t.sock = sv[0];
  std::string json;
  std::vector<int> fds;
  if (!recv_msg(t.sock, json, fds) || json_type(json) != "ready") die("template not ready");
  t.t_ready_ns = now_ns();
  return t;
}

struct forked_child {
  int64_t id = 0;
  pid_t pid = -1;
  int pidfd = -1, in = -1, out = -1, err = -1;
  int64_t t_request_ns = 0, t_fork_ns = 0, t_forked_ns = 0, t_echo_ns = 0, t_child_main_ns = 0;
};

void send_fork(template_handle& t, forked_child& c) {
  int in[2], out[2], err[2];
  if (pipe2(in, O_CLOEXEC) || pipe2(out, O_CLOEXEC) || pipe2(err, O_CLOEXEC)) die("pipe2");
  c.t_request_ns = now_ns();
  if (!send_msg(t.sock, "{\"type\":\"fork\",\"id\":" + std::to_string(c.id) + ",\"worker_id\":" + std::to_string(c.id) +
                            ",\"env\":{\"PROCPOOL_WORKER_ID\":\"" + std::to_string(c.id) + "\"}}",
                {in[0], out[1], err[1]})) {
    die("send fork");
  }
  close(in[0]);
  close(out[1]);
  close(err[1]);
  c.in = in[1];
  c.out = out[0];
  c.err = err[0];
}

void recv_forked(template_handle& t, forked_child& c) {
  std::string json;
  std::vector<int> fds;
  if (!recv_msg(t.sock, json, fds)) die("recv forked");
  if (json_type(json) != "forked" || fds.size() != 1 || json_int(json, "id") != c.id) {
    std::fprintf(stderr, "unexpected reply: %s\n", json.c_str());
    std::exit(1);
  }
  c.t_forked_ns = now_ns();
  c.pid = pid_t(json_int(json, "pid"));
  c.t_fork_ns = json_int(json, "t_fork_ns");
  c.pidfd = fds[0];
}

void echo_round_trip(forked_child& c) {
  const std::string line = "hello " + std::to_string(c.id) + "\n";
  if (write(c.in, line.data(), line.size()) != ssize_t(line.size())) die("write child stdin");
  char buf[512];
  ssize_t n;
  do n = read(c.out, buf, sizeof buf - 1); while (n < 0 && errno == EINTR);
  if (n <= 0) die("read child stdout");
  buf[n] = 0;
  c.t_echo_ns = now_ns();
  int pid = 0;
  long long t_main = 0;
  if (std::sscanf(buf, "%d %lld", &pid, &t_main) != 2 || pid != c.pid) {
    std::fprintf(stderr, "bad echo: %s\n", buf);
    std::exit(1);
  }
  c.t_child_main_ns = t_main;
}

// pidfd readable -> killpg while the leader is unreaped -> "reap" -> "reaped".
void stop_and_reap(template_handle& t, forked_child& c) {
  close(c.in);
  pollfd p{c.pidfd, POLLIN, 0};
  if (poll(&p, 1, 2000) != 1) {
    pidfd_send_signal(c.pidfd, SIGKILL);
    poll(&p, 1, -1);
  }
  killpg(c.pid, SIGKILL);  // safe: the template has not reaped, so the group id is still ours
  if (!send_msg(t.sock, "{\"type\":\"reap\",\"id\":" + std::to_string(c.id) + "}")) die("send reap");
  std::string json;
  std::vector<int> fds;
  if (!recv_msg(t.sock, json, fds) || json_type(json) != "reaped" || json_int(json, "code") != 0) {
    std::fprintf(stderr, "unexpected reap reply: %s\n", json.c_str());
    std::exit(1);
  }
  for (int fd : {c.pidfd, c.out, c.err}) close(fd);
}

struct stats {
  double median_us, p90_us, p99_us, mean_us;
};
stats summarize(std::vector<int64_t> v) {
  std::sort(v.begin(), v.end());
  double sum = 0;
  for (auto x : v) sum += double(x);
  auto at = [&](double q) { return double(v[std::min(v.size() - 1, size_t(q * double(v.size())))]) / 1e3; };
  return {at(0.5), at(0.9), at(0.99), sum / double(v.size()) / 1e3};
}
void print(const char* label, const std::vector<int64_t>& v) {
  const auto s = summarize(v);
  std::printf("  %-46s median %8.1f us  p90 %8.1f  p99 %8.1f  mean %8.1f\n", label, s.median_us, s.p90_us, s.p99_us,
              s.mean_us);
}

int count_fds() {
  DIR* d = opendir("/proc/self/fd");
  int n = 0;
  while (dirent* e = readdir(d)) n += e->d_name[0] != '.';
  closedir(d);
  return n - 1;
}

// posix_spawn of `argv` with the child's three pipes; returns pid, fills the owner's ends.
pid_t spawn_with_pipes(const char* const argv[], int& in_w, int& out_r, int& err_r) {
  int in[2], out[2], err[2];
  if (pipe2(in, O_CLOEXEC) || pipe2(out, O_CLOEXEC) || pipe2(err, O_CLOEXEC)) die("pipe2");
  posix_spawn_file_actions_t fa;
  posix_spawn_file_actions_init(&fa);
  posix_spawn_file_actions_adddup2(&fa, in[0], 0);
  posix_spawn_file_actions_adddup2(&fa, out[1], 1);
  posix_spawn_file_actions_adddup2(&fa, err[1], 2);
  posix_spawnattr_t attr;
  posix_spawnattr_init(&attr);
  posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETPGROUP);
  posix_spawnattr_setpgroup(&attr, 0);
  pid_t pid = -1;
  if (posix_spawn(&pid, argv[0], &fa, &attr, const_cast<char* const*>(argv), environ) != 0) die("posix_spawn");
  posix_spawn_file_actions_destroy(&fa);
  posix_spawnattr_destroy(&attr);
  close(in[0]);
  close(out[1]);
  close(err[1]);
  in_w = in[1];
  out_r = out[0];
  err_r = err[0];
  return pid;
}

int bench_main(int n, long preload_mb) {
  std::printf("bench: %d children, template preload %ld MiB, %ld cores\n", n, preload_mb, sysconf(_SC_NPROCESSORS_ONLN));
  const int fds_before = count_fds();
  template_handle t = launch_template(preload_mb);
  std::printf("  template launch -> ready: %.1f ms\n", double(t.t_ready_ns - t.t_launch_ns) / 1e6);

  // 1. Sequential: one start at a time, full cycle (fork, echo, stop, reap).
  std::vector<int64_t> to_forked, fork_to_child, to_echo, reap;
  const int64_t t_seq0 = now_ns();
  for (int i = 0; i < n; ++i) {
    forked_child c;
    c.id = i + 1;
    send_fork(t, c);
    recv_forked(t, c);
    echo_round_trip(c);
    const int64_t t_stop = now_ns();
    stop_and_reap(t, c);
    reap.push_back(now_ns() - t_stop);
    to_forked.push_back(c.t_forked_ns - c.t_request_ns);
    fork_to_child.push_back(c.t_child_main_ns - c.t_fork_ns);
    to_echo.push_back(c.t_echo_ns - c.t_request_ns);
  }
  const int64_t t_seq = now_ns() - t_seq0;
  std::printf("zygote, sequential (%d cycles, total %.1f ms):\n", n, double(t_seq) / 1e6);
  print("fork request -> forked reply (pidfd in hand)", to_forked);
  print("template t_fork_ns -> child's first stamp", fork_to_child);
  print("fork request -> echoed line (ready)", to_echo);
  print("stop: close stdin -> reaped reply", reap);

  // 2. All alive at once: N started, pipelined with a window (the owner must keep reading
  //    replies while it sends, or both sides block on full socket buffers), all echoed.
  {
    std::vector<forked_child> kids(static_cast<size_t>(n));
    const char* window_env = std::getenv("ZYGOTE_WINDOW");  // test knob: 0 = send all first
    const int window = window_env ? (std::atoi(window_env) > 0 ? std::atoi(window_env) : n) : 16;
    const int64_t t0 = now_ns();
    int sent = 0, got = 0;
    while (got < n) {
      while (sent < n && sent - got < window) {
        kids[size_t(sent)].id = 100000 + sent;
        send_fork(t, kids[size_t(sent)]);
        ++sent;
      }
      recv_forked(t, kids[size_t(got)]);
      ++got;
    }
    for (auto& c : kids) echo_round_trip(c);
    const int64_t t_all = now_ns() - t0;
    for (auto& c : kids) stop_and_reap(t, c);
    std::printf("zygote, %d alive at once (window %d): all echoed in %.1f ms (%.1f us/worker)\n", n, window,
                double(t_all) / 1e6, double(t_all) / 1e3 / n);
  }

  // 3. Baselines: posix_spawn of /bin/true (spawn + waitpid), and of this binary in echo
  //    mode (spawn -> echoed line), all alive at once.
  {
    std::vector<int64_t> spawn_true;
    for (int i = 0; i < n; ++i) {
      const char* argv[] = {"/bin/true", nullptr};
      const int64_t t0 = now_ns();
      pid_t pid = -1;
      if (posix_spawn(&pid, argv[0], nullptr, nullptr, const_cast<char* const*>(argv), environ) != 0) die("spawn");
      waitpid(pid, nullptr, 0);
      spawn_true.push_back(now_ns() - t0);
    }
    std::printf("posix_spawn baselines:\n");
    print("posix_spawn(/bin/true) + waitpid", spawn_true);

    std::vector<int64_t> spawn_echo;
    struct spawned {
      pid_t pid;
      int in, out, err;
      int64_t t0;
    };
    std::vector<spawned> procs;
    const int64_t t_all0 = now_ns();
    for (int i = 0; i < n; ++i) {
      const char* argv[] = {self_exe.c_str(), "echo", nullptr};
      spawned s{};
      s.t0 = now_ns();
      s.pid = spawn_with_pipes(argv, s.in, s.out, s.err);
      procs.push_back(s);
    }
    for (auto& s : procs) {
      const std::string line = "hello\n";
      if (write(s.in, line.data(), line.size()) < 0) die("write");
      char buf[512];
      if (read(s.out, buf, sizeof buf) <= 0) die("read");
      spawn_echo.push_back(now_ns() - s.t0);
    }
    const int64_t t_all = now_ns() - t_all0;
    for (auto& s : procs) {
      close(s.in);
      waitpid(s.pid, nullptr, 0);
      close(s.out);
      close(s.err);
    }
    std::printf("posix_spawn(self echo), %d alive at once: all echoed in %.1f ms (%.1f us/worker)\n", n,
                double(t_all) / 1e6, double(t_all) / 1e3 / n);

    std::vector<int64_t> seq_echo;
    for (int i = 0; i < n; ++i) {
      const char* argv[] = {self_exe.c_str(), "echo", nullptr};
      spawned s{};
      s.t0 = now_ns();
      s.pid = spawn_with_pipes(argv, s.in, s.out, s.err);
      if (write(s.in, "hello\n", 6) < 0) die("write");
      char buf[512];
      if (read(s.out, buf, sizeof buf) <= 0) die("read");
      seq_echo.push_back(now_ns() - s.t0);
      close(s.in);
      waitpid(s.pid, nullptr, 0);
      close(s.out);
      close(s.err);
    }
    print("posix_spawn(self echo) -> echoed line, sequential", seq_echo);
  }

  close(t.sock);  // EOF: the template kills and reaps what is left, and exits
  int status = 0;
  waitpid(t.pid, &status, 0);
  std::printf("template exit at EOF: %s %d; owner fds before %d, after %d\n",
              WIFEXITED(status) ? "code" : "signal", WIFEXITED(status) ? WEXITSTATUS(status) : WTERMSIG(status),
              fds_before, count_fds());
  return 0;
}

// ---- orphan tests ----
// /proc/PID gone, or a zombie waiting for init: either way the process no longer runs.
char proc_state(pid_t pid) {
  char path[64];
  std::snprintf(path, sizeof path, "/proc/%d/stat", int(pid));
  FILE* f = std::fopen(path, "r");
  if (!f) return 0;
  char buf[512] = {};
  const size_t n = std::fread(buf, 1, sizeof buf - 1, f);
  std::fclose(f);
  buf[n] = 0;
  const char* close_paren = std::strrchr(buf, ')');
  return close_paren && close_paren[1] == ' ' ? close_paren[2] : '?';
}

// The owner: launches a template and `children` forked workers, reports the pids on
// `report_fd`, then waits to be killed.
[[noreturn]] void owner_main(int children, int report_fd) {
  template_handle t = launch_template(0);
  std::string pids = std::to_string(t.pid);
  std::vector<forked_child> kids(static_cast<size_t>(children));
  for (int i = 0; i < children; ++i) {
    kids[size_t(i)].id = i + 1;
    send_fork(t, kids[size_t(i)]);
    recv_forked(t, kids[size_t(i)]);
    echo_round_trip(kids[size_t(i)]);
    pids += " " + std::to_string(kids[size_t(i)].pid);
  }
  pids += "\n";
  if (write(report_fd, pids.data(), pids.size()) < 0) _exit(1);
  close(report_fd);
  while (true) pause();
}

int orphan_main(int children, bool kill_template) {
  // The test driver (not the owner: the owner is the pool's process and never sets this)
  // adopts the orphans, so that it can check they are reaped, not merely zombies waiting
  // for this sandbox's PID 1 (which reaps lazily, after hundreds of milliseconds).
  if (prctl(PR_SET_CHILD_SUBREAPER, 1) != 0) die("PR_SET_CHILD_SUBREAPER");
  int report[2];
  if (pipe2(report, O_CLOEXEC) != 0) die("pipe");
  const pid_t owner = fork();
  if (owner == 0) {
    close(report[0]);
    owner_main(children, report[1]);
  }
  close(report[1]);
  std::string text;
  char buf[4096];
  ssize_t n;
  while ((n = read(report[0], buf, sizeof buf)) > 0) text.append(buf, size_t(n));
  close(report[0]);
  std::vector<pid_t> pids;
  for (const char* p = text.c_str(); *p;) {
    char* end = nullptr;
    const long v = std::strtol(p, &end, 10);
    if (end == p) break;
    pids.push_back(pid_t(v));
    p = end;
  }
  if (pids.size() != size_t(children) + 1) {
    std::fprintf(stderr, "owner reported %zu pids\n", pids.size());
    return 1;
  }
  const pid_t victim = kill_template ? pids[0] : owner;
  std::printf("orphan%s: owner %d, template %d, %d children; SIGKILL %s\n", kill_template ? "-template" : "", int(owner),
              int(pids[0]), children, kill_template ? "the template" : "the owner");
  const size_t first = kill_template ? 1 : 0;  // watching the children (and the template)
  const int64_t t0 = now_ns();
  kill(victim, SIGKILL);
  int64_t t_gone = -1, t_reaped = -1;
  int zombies = 0;
  bool owner_reaped = false;
  while (now_ns() - t0 < 2'000'000'000LL) {
    // Reap whatever was re-parented to us (and the owner, when it is the victim).
    for (pid_t r; (r = waitpid(-1, nullptr, WNOHANG)) > 0;) owner_reaped |= r == owner;
    int running = 0;
    zombies = 0;
    for (size_t i = first; i < pids.size(); ++i) {
      const char s = proc_state(pids[i]);
      if (s == 'Z') ++zombies;
      else if (s != 0) ++running;
    }
    if (running == 0 && t_gone < 0) t_gone = now_ns() - t0;
    if (running == 0 && zombies == 0) {
      t_reaped = now_ns() - t0;
      break;
    }
    usleep(200);
  }
  if (t_gone < 0) {
    std::printf("  FAIL: processes still running 2 s after the SIGKILL:");
    for (size_t i = first; i < pids.size(); ++i) {
      const char s = proc_state(pids[i]);
      if (s != 0 && s != 'Z') std::printf(" %d(%c)", int(pids[i]), s);
    }
    std::printf("\n");
  } else {
    std::printf("  all %zu watched processes stopped running %.2f ms after the SIGKILL, all reaped at %.2f ms\n",
                pids.size() - first, double(t_gone) / 1e6, double(t_reaped) / 1e6);
  }
  if (kill_template) {
    const char s = proc_state(owner);
    std::printf("  owner still running after its template's death: %s\n", s != 0 && s != 'Z' ? "yes" : "no");
    kill(owner, SIGKILL);
  }
  if (!owner_reaped) waitpid(owner, nullptr, 0);
  for (pid_t r; (r = waitpid(-1, nullptr, WNOHANG)) > 0;) {
  }
  return t_gone < 0 || t_reaped < 0 ? 1 : 0;
}

}  // namespace

int main(int argc, char** argv) {
  char path[4096];
  const ssize_t len = readlink("/proc/self/exe", path, sizeof path - 1);
  if (len <= 0) die("readlink");
  self_exe.assign(path, size_t(len));
  const std::string mode = argc > 1 ? argv[1] : "bench";
  if (mode == "template") template_main(argc > 2 ? std::atol(argv[2]) : 0);
  if (mode == "echo") echo_main(now_ns());
  if (mode == "bench") return bench_main(argc > 2 ? std::atoi(argv[2]) : 256, argc > 3 ? std::atol(argv[3]) : 0);
  if (mode == "orphan") return orphan_main(argc > 2 ? std::atoi(argv[2]) : 16, false);
  if (mode == "orphan-template") return orphan_main(argc > 2 ? std::atoi(argv[2]) : 16, true);
  std::fprintf(stderr, "usage: %s bench [N] [preload_mb] | orphan [children] | orphan-template [children]\n", argv[0]);
  return 2;
}
