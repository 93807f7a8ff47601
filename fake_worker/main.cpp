// procpool-fake-worker: a fast worker speaking the procpool protocol on stdin/stdout, with
// knobs for start-up and init latency, service time and every fault the pool must survive.
#include <fcntl.h>
#include <sys/prctl.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <ctime>
#include <list>
#include <optional>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include <CLI/CLI.hpp>
#include <fmt/format.h>

#include "knobs.hpp"
#include "procpool/clock.hpp"
#include "procpool/wire/file_io.hpp"
#include "procpool/wire/frame.hpp"
#include "procpool/wire/message.hpp"
#include "zygote.hpp"

namespace {

using procpool::monotonic_ns;
using namespace procpool::fake;

constexpr int exit_bad_request = 65;  // EX_DATAERR

void write_or_exit(int fd, std::string_view bytes) {
  if (!procpool::write_all(fd, bytes)) ::_exit(0);  // the pool went away
}

// Sleeps `ms` of wall time, accurately: the kernel wakes a sleeper some tens of
// microseconds late (more in a VM), which would inflate every modelled service time, so the
// last stretch is spun instead of slept.
void sleep_ms(double ms) {
  if (ms <= 0) return;
  using clock = std::chrono::steady_clock;
  const auto until = clock::now() + std::chrono::duration_cast<clock::duration>(
                                        std::chrono::duration<double, std::milli>(ms));
  constexpr auto spin = std::chrono::microseconds(200);
  if (until - clock::now() > spin) std::this_thread::sleep_until(until - spin);
  while (clock::now() < until) {
  }
}

// Busy-waits until this thread has used `ms` of CPU time: under CPU contention it takes
// longer than `ms` of wall time, which is exactly what contention experiments look for.
void burn_cpu_ms(double ms) {
  auto cpu_ns = [] {
    timespec ts{};
    ::clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return ts.tv_sec * 1'000'000'000LL + ts.tv_nsec;
  };
  const long long until = cpu_ns() + static_cast<long long>(ms * 1e6);
  while (cpu_ns() < until) {
  }
}

[[noreturn]] void hang_forever(const std::string& mode) {
  if (mode == "spin") {
    while (true) burn_cpu_ms(1000);
  }
  while (true) ::pause();
}

void spawn_grandchild() {
  const pid_t pid = ::fork();
  if (pid != 0) return;
  // Stays in the worker's process group on purpose: only a group kill reaches it.
  const int null_fd = ::open("/dev/null", O_RDWR);
  for (int fd = 0; fd < 3; ++fd) ::dup2(null_fd, fd);
  ::close_range(3, ~0U, 0);
  while (true) ::pause();
}

// The seed knob mixed with the PROCPOOL_WORKER_ID a pool gives each worker it starts: runs
// with one seed repeat, while each worker of a pool, and each replacement, draws its own.
std::uint64_t worker_seed(std::uint64_t seed) {
  const char* id = std::getenv("PROCPOOL_WORKER_ID");
  const std::uint64_t worker_id = id ? std::strtoull(id, nullptr, 10) : 0;
  return seed + worker_id * 0x9E3779B97F4A7C15ULL;
}

// Replies are gathered while more requests wait in the input (a pool that pipelines writes
// several before it reads) and written together: when the input has no complete request
// left, at the middle of a batch of 4 or more (serve_batch), at 64 KiB, and before anything
// that waits or ends the process (a service time, a fault, an exit), so that a reply never
// waits behind work that is not its own.
class fake_worker {
 public:
  fake_worker(knobs k, std::int64_t t_main_ns, bool flush_each)
      : knobs_(std::move(k)), t_main_ns_(t_main_ns), flush_each_(flush_each) {}

  [[noreturn]] void serve() {
    procpool::frame_decoder decoder;
    std::vector<char> buf(64 * 1024);
    std::vector<std::string> batch;
    while (true) {
      const auto n = procpool::read_some(STDIN_FILENO, buf);
      if (!n || *n == 0) exit_now(0);
      decoder.feed({buf.data(), *n});
      batch.clear();
      std::optional<std::string> bad_input;
      while (true) {
        auto frame = decoder.next();
        if (!frame) {
          bad_input = frame.error().message;  // after the requests before it are answered
          break;
        }
        if (!*frame) break;
        batch.push_back(std::move(**frame));
      }
      serve_batch(batch);
      if (bad_input) die_bad_input(*bad_input);
      flush();  // about to block on the input
    }
  }

 private:
  static constexpr std::size_t flush_at_bytes = 64 * 1024;
  static constexpr std::size_t split_batches_from = 4;

  // A batch of split_batches_from requests or more is answered in two writes, at its middle
  // and at its end. The pool reads the first half's replies and writes the next requests
  // while this worker serves the second half, so the worker finds them waiting when it is
  // done instead of blocking on an empty pipe for the pool's turnaround: with one write per
  // batch a pipelined worker idled for that turnaround once per batch.
  void serve_batch(const std::vector<std::string>& batch) {
    const std::size_t middle = batch.size() >= split_batches_from ? batch.size() / 2 : 0;
    for (std::size_t i = 0; i < batch.size(); ++i) {
      handle(batch[i]);
      if (i + 1 == middle) flush();
    }
  }

  void emit(std::string_view bytes) {
    out_.append(bytes);
    if (flush_each_ || out_.size() >= flush_at_bytes) flush();
  }

  void flush() {
    if (out_.empty()) return;
    write_or_exit(STDOUT_FILENO, out_);
    out_.clear();
  }

  [[noreturn]] void exit_now(int code) {
    flush();
    ::_exit(code);
  }

  [[noreturn]] void die_bad_input(const std::string& why) {
    flush();
    fmt::print(stderr, "procpool-fake-worker: {}\n", why);
    std::fflush(stderr);
    ::_exit(exit_bad_request);
  }

  void reply(procpool::response r, std::int64_t t_recv_ns) {
    r.t_recv_ns = t_recv_ns;
    r.t_done_ns = monotonic_ns();
    emit(procpool::encode_frame(procpool::encode(r)));
  }

  void reply_error(std::uint64_t id, std::string type, std::string message, std::int64_t t_recv) {
    reply({.id = id, .ok = false, .failure = {std::move(type), std::move(message)}}, t_recv);
  }

  void handle(const std::string& payload) {
    const std::int64_t t_recv = monotonic_ns();
    auto req = procpool::decode_request(payload);
    if (!req) die_bad_input(req.error().message);
    if (req->command == procpool::init_command) return handle_init(*req, t_recv);
    if (!initialised_) {
      return reply_error(req->id, "not_initialised", "the first request must be init", t_recv);
    }
    if (req->command == "ping") return reply({.id = req->id, .result = "pong"}, t_recv);
    handle_request(*req, t_recv);
  }

  void handle_init(const procpool::request& req, std::int64_t t_recv) {
    if (auto problem = apply_init_args(req.args, knobs_)) {
      return reply_error(req.id, "bad_init", *problem, t_recv);
    }
    rng_.seed(worker_seed(knobs_.seed));
    if (knobs_.ignore_sigterm) ::signal(SIGTERM, SIG_IGN);
    flush();  // before anything below waits or exits
    if (knobs_.exit_during_init) ::_exit(knobs_.crash_exit_code);
    if (knobs_.never_ready) hang_forever("sleep");
    sleep_ms(knobs_.init_ms);
    flood_stderr(knobs_.stderr_flood_mb);
    initialised_ = true;
    procpool::init_reply r{.base = {.id = req.id, .result = {{"pid", ::getpid()}}},
                           .pid = ::getpid(),
                           .t_main_ns = t_main_ns_,
                           .t_init_done_ns = monotonic_ns()};
    r.base.t_recv_ns = t_recv;
    r.base.t_done_ns = monotonic_ns();
    emit(procpool::encode_frame(procpool::encode(r)));
  }

  void handle_request(const procpool::request& req, std::int64_t t_recv) {
    const bool crash_due = knobs_.crash_after > 0 && served_ == knobs_.crash_after;
    ++served_;
    // Each fault happens after the replies before it reached the pool, as it would unbatched.
    if (crash_due || draw(knobs_.crash_probability)) crash();
    if (draw(knobs_.hang_probability)) {
      flush();
      hang_forever(knobs_.hang_mode);
    }
    if (draw(knobs_.garbage_probability)) {
      return emit(procpool::encode_frame("\x01garbage, not JSON {"));
    }
    if (draw(knobs_.truncated_probability)) {
      std::string partial = procpool::encode_frame(std::string(100, 'x'));
      partial.resize(procpool::frame_header_bytes + 10);
      emit(partial);
      exit_now(0);
    }
    if (draw(knobs_.oversize_probability)) {
      emit("\xff\xff\xff\xf0");
      flush();
      hang_forever("sleep");
    }
    const std::uint64_t reply_id = draw(knobs_.wrong_id_probability) ? req.id + 1'000'000 : req.id;
    if (draw(knobs_.slow_probability)) {
      flush();
      sleep_ms(knobs_.slow_ms);
    }
    grow_memory();

    if (req.command == "echo") {
      spend(service_time_ms(), knobs_.service_cpu);
      return reply({.id = reply_id, .result = req.args}, t_recv);
    }
    if (req.command == "sleep" || req.command == "burn") {
      const bool burn = req.command == "burn";
      const nlohmann::json* ms = req.args.is_object() && req.args.contains("ms")
                                     ? &req.args["ms"] : nullptr;
      if (!ms || !ms->is_number() || ms->get<double>() < 0) {
        return reply_error(reply_id, "bad_args", fmt::format("{} needs args {{\"ms\": >= 0}}",
                                                             req.command), t_recv);
      }
      spend(ms->get<double>(), burn);
      return reply({.id = reply_id,
                    .result = {{burn ? "burned_ms" : "slept_ms", ms->get<double>()}}},
                   t_recv);
    }
    reply_error(reply_id, "unknown_command", fmt::format("unknown command '{}'", req.command),
                t_recv);
  }

  bool draw(double p) { return p > 0 && std::uniform_real_distribution<double>(0, 1)(rng_) < p; }

  double service_time_ms() {
    const auto& k = knobs_;
    if (k.service_dist == "uniform") {
      return std::uniform_real_distribution<double>(k.service_min_ms, k.service_max_ms)(rng_);
    }
    if (k.service_dist == "exponential") {
      return k.service_ms > 0 ? std::exponential_distribution<double>(1.0 / k.service_ms)(rng_)
                              : 0.0;
    }
    if (k.service_dist == "lognormal") {
      return k.service_ms > 0
                 ? std::lognormal_distribution<double>(std::log(k.service_ms), k.service_sigma)(rng_)
                 : 0.0;
    }
    return k.service_ms;
  }

  void spend(double ms, bool burn) {
    if (ms > 0) flush();  // the replies before it are done: they must not wait for this one
    if (burn) {
      burn_cpu_ms(ms);
    } else {
      sleep_ms(ms);
    }
  }

  [[noreturn]] void crash() {
    flush();
    if (knobs_.crash_mode == "segv") {
      // A sanitizer runtime would catch the signal and exit normally; die by it for real.
      ::signal(SIGSEGV, SIG_DFL);
      ::raise(SIGSEGV);
    }
    if (knobs_.crash_mode == "kill") ::raise(SIGKILL);
    ::_exit(knobs_.crash_exit_code);
  }

  // Writes whole lines until at least `mib` MiB are out, so the tail stays quotable.
  static void flood_stderr(double mib) {
    if (mib <= 0) return;
    std::string block;
    while (block.size() < 64 * 1024) block += "procpool-fake-worker: stderr flood line\n";
    const auto total = static_cast<std::size_t>(mib * 1024 * 1024);
    for (std::size_t written = 0; written < total; written += block.size()) {
      write_or_exit(STDERR_FILENO, block);
    }
  }

  void grow_memory() {
    if (knobs_.memory_growth_kb <= 0) return;
    auto& chunk = retained_.emplace_back(static_cast<std::size_t>(knobs_.memory_growth_kb * 1024));
    // Touch every page so the growth shows in RSS, not only in the address space.
    for (std::size_t i = 0; i < chunk.size(); i += 4096) chunk[i] = 1;
  }

  knobs knobs_;
  std::int64_t t_main_ns_;
  std::mt19937_64 rng_;
  bool initialised_ = false;
  std::uint64_t served_ = 0;
  std::list<std::vector<char>> retained_;
  bool flush_each_ = false;  // one write per reply: the unbatched baseline
  std::string out_;          // replies not written yet
};

// The worker's life from its t_main_ns on, spawned or forked by a zygote template.
[[noreturn]] void run_worker(knobs k, std::int64_t t_main_ns, bool flush_each) {
  if (k.ignore_sigterm) ::signal(SIGTERM, SIG_IGN);
  if (k.grandchild) spawn_grandchild();
  fake_worker(std::move(k), t_main_ns, flush_each).serve();
}

// PROCPOOL_ZYGOTE_FD names the control channel; pool/ZYGOTE.md puts it on fd 0.
int control_fd() {
  const char* fd = std::getenv("PROCPOOL_ZYGOTE_FD");
  return fd && *fd ? std::atoi(fd) : 0;
}

}  // namespace

int main(int argc, char** argv) {
  const std::int64_t t_start_ns = monotonic_ns();
  knobs k;
  CLI::App app{
      "procpool-fake-worker: a fast worker speaking the procpool protocol (4-byte big-endian "
      "length frames of JSON on stdin/stdout). Commands: echo (returns args after the service "
      "time), sleep {\"ms\"}, burn {\"ms\"} (CPU time), ping. Every knob below can also be set "
      "per worker in the init request's args, by the same name with '_' for '-'."};
  add_knob_flags(app, k);
  bool print_knobs = false;
  // Hidden (no group): for tests that hold other workers' knob lists to this one.
  app.add_flag("--knobs-json", print_knobs, "print the knob table as JSON and exit")->group("");
  // Hidden: the baseline of the pipelining benchmarks, one write per reply.
  bool flush_each = false;
  app.add_flag("--flush-each", flush_each, "write each reply at once instead of in batches")
      ->group("");
  // Not knobs: they shape the template, which no init request reaches.
  bool zygote = false;
  std::size_t preload_mib = 0;
  app.add_flag("--zygote", zygote,
               "be a zygote template (pool/ZYGOTE.md): the control channel on fd 0 "
               "(PROCPOOL_ZYGOTE_FD), --startup-ms and --preload-mib as the preload, then fork "
               "workers on request");
  app.add_option("--preload-mib", preload_mib,
                 "with --zygote: MiB of private memory the preload touches, shared with each "
                 "forked worker copy-on-write")
      ->capture_default_str();
  CLI11_PARSE(app, argc, argv);
  if (print_knobs) {
    fmt::print("{}\n", knob_table_json().dump(1));
    return 0;
  }
  if (auto problem = validate(k)) {
    fmt::print(stderr, "procpool-fake-worker: {}\n", *problem);
    return 2;
  }
  // Sleeps model service times of a millisecond or so: the default 50 us timer slack would
  // add itself to every one of them.
  ::prctl(PR_SET_TIMERSLACK, 1UL);
  if (zygote) {
    // The start-up latency is the template's preload, paid once; each forked worker's
    // t_main_ns is its own stamp right after the fork.
    return serve_template({.control_fd = control_fd(),
                           .t_main_ns = t_start_ns,
                           .preload_ms = k.startup_ms,
                           .preload_mib = preload_mib},
                          [&k, flush_each](std::int64_t t_main_ns) {
                            run_worker(k, t_main_ns, flush_each);
                          });
  }
  // Start-up latency is modelled before t_main_ns so that it is measured as spawn-to-main,
  // like a slow interpreter or loader would be.
  sleep_ms(k.startup_ms);
  run_worker(std::move(k), monotonic_ns(), flush_each);
}
