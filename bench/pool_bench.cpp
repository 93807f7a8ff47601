// procpool::pool against the leanest possible pipe ping-pong with the same worker binary.
//
//   BM_RawPipeEcho            the baseline: one worker_process, a pre-encoded echo frame
//                             written with ::write, the reply read with poll + read and a
//                             frame_decoder; no pool, no worker_connection, no JSON per call.
//   BM_PoolCallEcho           the same echo through pool::call (pool size = callers).
//   .../threads:2             two callers: raw = one worker per benchmark thread; pool = one
//                             shared pool of 2 workers. items_per_second is wall-clock
//                             throughput of both callers together (UseRealTime).
//   BM_PoolCallEcho_Affinity  diagnostic: two callers, each with its own affinity key, so
//                             each keeps to one worker as the raw callers do.
//   BM_CheckoutReturn/N       pool.checkout() + lease.release() on a ready pool of N
//                             workers, no I/O.
//   BM_EncodeRequest          the caller's own CPU per echo call, steadier than any round
//   BM_DecodeReply            trip: writing the request frame, and reading the reply (id,
//                             a 64-byte string, two clock stamps) into a response.
//   BM_StartWorkers/1024      pool::create to wait_ready for 1,024 fake workers (manual
//                             time), with the manager's resident memory per worker and a
//                             breakdown of where a start's time goes.
//   BM_PoolCallEcho_Python    echo through a pool of one Python worker, for reference.
//
// Pools are created once and cached across Google Benchmark's repeated calls (see
// cached_pool); main() stops every pool before exit, and each raw worker is stopped by the
// thread that started it, so no worker outlives the program.
#include <malloc.h>
#include <poll.h>
#include <sched.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <deque>
#include <fstream>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include <benchmark/benchmark.h>
#include <fmt/format.h>

#include "procpool/wire/frame.hpp"
#include "procpool/wire/message.hpp"
#include "procpool/pool.hpp"
#include "procpool/worker_lease.hpp"
#include "procpool/wire/worker_process.hpp"
#include "subjects/worker_locator.hpp"

namespace {

using namespace std::chrono_literals;

constexpr std::size_t payload_bytes = 64;
constexpr auto io_timeout = 10s;
constexpr auto ready_timeout = 120s;

const std::string& echo_payload() {
  static const std::string payload(payload_bytes, 'x');
  return payload;
}

// Marks the benchmark skipped before its loop, then runs the loop zero times so that a
// multi-threaded run still passes Google Benchmark's start/stop barriers.
void skip(benchmark::State& state, const std::string& message) {
  state.SkipWithError(message.c_str());
  for (auto _ : state) {
  }
}

// --- where two callers run -----------------------------------------------------------------

// With two benchmark threads, samples every 16th iteration whether this thread runs on the
// CPU the other thread last reported: callers sharing one CPU cannot overlap their work, and
// on 2 cores that caps throughput whatever the pool does. Reported as `callers_same_cpu`,
// the fraction of samples, averaged over both threads.
struct caller_cpus {
  std::atomic<int> cpu[2] = {-1, -1};
};

caller_cpus& last_cpus() {
  static caller_cpus c;
  return c;
}

class same_cpu_sampler {
 public:
  explicit same_cpu_sampler(const benchmark::State& state)
      : me_(state.thread_index()), active_(state.threads() == 2) {
    // Thread 0 resets before the loop's start barrier; nobody samples before it.
    if (active_ && me_ == 0) {
      last_cpus().cpu[0].store(-1);
      last_cpus().cpu[1].store(-1);
    }
  }

  void sample() {
    if (!active_ || (++tick_ & 15) != 0) return;
    const int cpu = ::sched_getcpu();
    last_cpus().cpu[me_].store(cpu, std::memory_order_relaxed);
    const int other = last_cpus().cpu[1 - me_].load(std::memory_order_relaxed);
    if (other < 0) return;
    ++samples_;
    if (other == cpu) ++same_;
  }

  void report(benchmark::State& state) const {
    if (!active_ || samples_ == 0) return;
    state.counters["callers_same_cpu"] = benchmark::Counter(
        static_cast<double>(same_) / static_cast<double>(samples_),
        benchmark::Counter::kAvgThreads);
  }

 private:
  int me_;
  bool active_;
  std::uint64_t tick_ = 0, samples_ = 0, same_ = 0;
};

// --- where a call's time goes (the *_Timeline diagnostics) ---------------------------------

// Sums of one caller thread's request segments, from the pool's request timelines or, for
// the raw baseline, from the worker's stamps in each reply. All clocks are CLOCK_MONOTONIC,
// shared by the caller and the worker.
struct timeline_sums {
  double before_send = 0;  // call entered .. request write begins (checkout, encoding)
  double to_worker = 0;    // write begins .. the worker has decoded the request
  double in_worker = 0;    // the worker's own handling
  double back = 0;         // the worker's reply stamp .. the reply is decoded by the caller
  double after_reply = 0;  // reply decoded .. the worker is given back (pool only)
  std::uint64_t n = 0;
  std::uint64_t last_worker = 0;     // pool only: the worker of this thread's previous call
  std::uint64_t worker_changes = 0;  // calls served by another worker than the previous one

  void report(benchmark::State& state) const {
    if (n == 0) return;
    const double k = static_cast<double>(n) * 1e3;  // ns sums -> us means
    const auto avg = benchmark::Counter::kAvgThreads;
    state.counters["before_send_us"] = benchmark::Counter(before_send / k, avg);
    state.counters["to_worker_us"] = benchmark::Counter(to_worker / k, avg);
    state.counters["in_worker_us"] = benchmark::Counter(in_worker / k, avg);
    state.counters["back_us"] = benchmark::Counter(back / k, avg);
    state.counters["after_reply_us"] = benchmark::Counter(after_reply / k, avg);
    state.counters["worker_changes"] = benchmark::Counter(
        static_cast<double>(worker_changes) / static_cast<double>(n), avg);
  }
};

// The pool's observer runs on the caller's thread: each benchmark thread sums its own.
thread_local timeline_sums this_thread_timeline;

// --- the raw baseline ------------------------------------------------------------------------

class raw_worker {
 public:
  explicit raw_worker(procpool::worker_process process) : process_(std::move(process)) {}

  // Spawns the fake worker and completes the init handshake by hand.
  static procpool::result<raw_worker> start(const procpool::launch_options& launch) {
    auto process = procpool::worker_process::launch(launch);
    if (!process) return std::move(process).error();
    raw_worker w(std::move(*process));
    const std::string init =
        procpool::encode_frame(procpool::encode(procpool::make_init_request(nlohmann::json::object())));
    if (auto e = w.write_all(init)) return procpool::error{procpool::errc::start_failed, *e};
    std::string reply;
    if (auto e = w.read_frame(reply)) return procpool::error{procpool::errc::start_failed, *e};
    auto hello = procpool::decode_init_reply(reply);
    if (!hello) return std::move(hello).error();
    if (!hello->base.ok) {
      return procpool::error{procpool::errc::start_failed,
                             "init refused: " + hello->base.failure.message};
    }
    return w;
  }

  // Error text, or nothing on success.
  std::optional<std::string> write_all(std::string_view bytes) {
    while (!bytes.empty()) {
      const ssize_t n = ::write(process_.stdin_fd(), bytes.data(), bytes.size());
      if (n > 0) {
        bytes.remove_prefix(static_cast<std::size_t>(n));
        continue;
      }
      if (n < 0 && errno == EINTR) continue;
      if (n < 0 && errno == EAGAIN) {
        pollfd p{process_.stdin_fd(), POLLOUT, 0};
        if (::poll(&p, 1, poll_ms()) == 0) return "timed out writing to the worker";
        continue;
      }
      return fmt::format("write to worker failed: {}", std::strerror(errno));
    }
    return std::nullopt;
  }

  // Reads one frame into `out`: poll for readable, read, feed the decoder.
  std::optional<std::string> read_frame(std::string& out) {
    while (true) {
      auto frame = decoder_.next();
      if (!frame) return frame.error().message;
      if (*frame) {
        out = std::move(**frame);
        return std::nullopt;
      }
      pollfd p{process_.stdout_fd(), POLLIN, 0};
      const int ready = ::poll(&p, 1, poll_ms());
      if (ready == 0) return "timed out waiting for the worker's reply";
      if (ready < 0 && errno != EINTR) return fmt::format("poll failed: {}", std::strerror(errno));
      const ssize_t n = ::read(process_.stdout_fd(), buffer_, sizeof buffer_);
      if (n > 0) {
        decoder_.feed({buffer_, static_cast<std::size_t>(n)});
      } else if (n == 0) {
        return "the worker closed its stdout";
      } else if (errno != EAGAIN && errno != EINTR) {
        return fmt::format("read from worker failed: {}", std::strerror(errno));
      }
    }
  }

  void stop() { process_.stop({}); }

 private:
  static int poll_ms() {
    return static_cast<int>(std::chrono::milliseconds(io_timeout).count());
  }

  procpool::worker_process process_;
  procpool::frame_decoder decoder_;
  char buffer_[64 * 1024];
};

void raw_echo(benchmark::State& state, bool timeline) {
  // Each benchmark thread owns its worker, launched from that thread and stopped by it.
  auto worker = raw_worker::start(procpool::harness::fake_worker_launch());
  if (!worker) return skip(state, worker.error().message);
  auto w = std::make_unique<raw_worker>(std::move(*worker));

  const std::string frame = procpool::encode_frame(
      procpool::encode(procpool::request{.id = 1, .command = "echo", .args = echo_payload()}));
  std::string reply;
  // One checked round trip: the worker really echoes what the loop will send.
  std::optional<std::string> problem = w->write_all(frame);
  if (!problem) problem = w->read_frame(reply);
  if (!problem) {
    auto r = procpool::decode_response(reply);
    if (!r || !r->ok || r->result != echo_payload()) {
      problem = "the fake worker did not echo the payload: " + reply;
    }
  }
  if (problem) {
    w->stop();
    return skip(state, *problem);
  }

  same_cpu_sampler where(state);
  timeline_sums sums;
  for (auto _ : state) {
    const std::int64_t t_sent = timeline ? procpool::monotonic_ns() : 0;
    if (auto e = w->write_all(frame); e) {
      state.SkipWithError(e->c_str());
      break;
    }
    if (auto e = w->read_frame(reply); e) {
      state.SkipWithError(e->c_str());
      break;
    }
    benchmark::DoNotOptimize(reply.data());
    if (timeline) {
      const std::int64_t t_read = procpool::monotonic_ns();
      if (auto r = procpool::decode_response(reply); r) {
        sums.to_worker += static_cast<double>(r->t_recv_ns - t_sent);
        sums.in_worker += static_cast<double>(r->t_done_ns - r->t_recv_ns);
        sums.back += static_cast<double>(t_read - r->t_done_ns);
        ++sums.n;
      }
    }
    where.sample();
  }
  state.SetItemsProcessed(state.iterations());
  where.report(state);
  sums.report(state);
  w->stop();
}

void BM_RawPipeEcho(benchmark::State& state) { raw_echo(state, /*timeline=*/false); }

// Diagnostic: the raw echo with the worker's stamps decoded after each round trip (the
// decoding is extra work in the loop; the segments are unaffected by it).
void BM_RawPipeEcho_Timeline(benchmark::State& state) { raw_echo(state, /*timeline=*/true); }

// Why wait_ready gave up on `p`: a degraded pool names its last start failure.
std::string not_ready(procpool::pool& p) {
  const auto s = p.stats();
  std::string why = fmt::format("{} of {} workers ready, {} starting, {} failed starts", s.ready(),
                                s.size, s.starting, s.failed_starts);
  if (s.degraded) {
    // A degraded pool fails a checkout at once, quoting the last start failure.
    if (auto probe = p.checkout(procpool::call_options{.checkout_deadline = procpool::deadline_after(0s)});
        !probe) {
      why += "; " + probe.error().message;
    }
  } else {
    why = fmt::format("not ready within {} s: {}", ready_timeout.count(), why);
  }
  return why;
}

// --- the pool cache ----------------------------------------------------------------------

// Pools are kept between the calls Google Benchmark makes of one benchmark function
// (iteration-count probing, repetitions), so each is created once. Small pools (up to
// small_pool_size workers) may coexist, so that the echo benchmarks can be interleaved
// (--benchmark_enable_random_interleaving) without re-creating pools; a bigger pool is kept
// alone: making it stops every other pool, and making a small one stops the big one.
constexpr std::size_t small_pool_size = 8;

struct cached_entry {
  std::size_t size = 0;
  std::unique_ptr<procpool::pool> pool;  // null when it could not be made
  std::string error;
};

struct pool_cache {
  std::mutex mutex;
  std::map<std::string, cached_entry> entries;
};

pool_cache& cache() {
  static pool_cache c;
  return c;
}

// Stops and forgets the pools `drop` selects. REQUIRES: cache().mutex held.
template <class Pred>
void drop_cached_pools_locked(Pred drop) {
  auto& entries = cache().entries;
  for (auto it = entries.begin(); it != entries.end();) {
    if (drop(it->second)) {
      if (it->second.pool) it->second.pool->stop();
      it = entries.erase(it);
    } else {
      ++it;
    }
  }
}

void drop_cached_pools() {
  std::lock_guard lock(cache().mutex);
  drop_cached_pools_locked([](const cached_entry&) { return true; });
}

// The ready pool for `key`, made with `options` on first use, or nullptr with `error` set.
// Safe to call from every benchmark thread at once: one makes it, the others wait.
procpool::pool* cached_pool(const std::string& key,
                            const std::function<procpool::pool_options()>& make_options,
                            std::string& error) {
  auto& c = cache();
  std::lock_guard lock(c.mutex);
  auto it = c.entries.find(key);
  if (it == c.entries.end()) {
    procpool::pool_options options = make_options();
    const bool big = options.size > small_pool_size;
    drop_cached_pools_locked(
        [big](const cached_entry& e) { return big || e.size > small_pool_size; });
    cached_entry entry;
    entry.size = options.size;
    auto made = procpool::pool::create(std::move(options));
    if (!made) {
      entry.error = made.error().message;
    } else {
      entry.pool = std::make_unique<procpool::pool>(std::move(*made));
      if (entry.pool->wait_ready(procpool::deadline_after(ready_timeout)) !=
          procpool::ready_state::ready) {
        entry.error = fmt::format("pool '{}': {}", key, not_ready(*entry.pool));
        entry.pool->stop();
        entry.pool.reset();
      }
    }
    it = c.entries.emplace(key, std::move(entry)).first;
  }
  error = it->second.error;
  return it->second.pool.get();
}

// --- echo through the pool -----------------------------------------------------------------

enum class echo_mode {
  plain,
  affinity,  // each caller passes its own affinity key
  timeline,  // the pool reports each request's timeline (an observer on the request path)
};

void pool_echo(benchmark::State& state, const std::string& worker_name,
               const procpool::launch_options& launch, echo_mode mode = echo_mode::plain) {
  const auto size = static_cast<std::size_t>(state.threads());
  std::string error;
  const bool timeline = mode == echo_mode::timeline;
  procpool::pool* p = cached_pool(
      fmt::format("echo/{}/{}{}", worker_name, size, timeline ? "/timeline" : ""), [&] {
        procpool::pool_options options{.worker = launch, .size = size,
                                       .prewarm = procpool::prewarm_mode::parallel};
        if (timeline) {
          options.observer.on_request = [](const procpool::request_timeline& t) {
            if (t.outcome) return;
            auto& sums = this_thread_timeline;
            sums.before_send += static_cast<double>(t.t_sent - t.t_submit);
            sums.to_worker += static_cast<double>(t.t_worker_recv - t.t_sent);
            sums.in_worker += static_cast<double>(t.t_worker_done - t.t_worker_recv);
            sums.back += static_cast<double>(t.t_reply - t.t_worker_done);
            sums.after_reply += static_cast<double>(procpool::monotonic_ns() - t.t_reply);
            if (sums.last_worker != 0 && t.worker != sums.last_worker) ++sums.worker_changes;
            sums.last_worker = t.worker;
            ++sums.n;
          };
        }
        return options;
      }, error);
  if (!p) return skip(state, error);

  const nlohmann::json args = echo_payload();
  if (auto r = p->call("echo", args); !r || r->value != args) {
    return skip(state, r ? "the worker did not echo the payload" : r.error().message);
  }
  procpool::call_options co;
  if (mode == echo_mode::affinity) co.affinity_key = fmt::format("caller-{}", state.thread_index());
  this_thread_timeline = {};
  same_cpu_sampler where(state);
  for (auto _ : state) {
    auto reply = p->call("echo", args, co);
    if (!reply) {
      state.SkipWithError(reply.error().message.c_str());
      break;
    }
    benchmark::DoNotOptimize(reply->value);
    where.sample();
  }
  state.SetItemsProcessed(state.iterations());
  where.report(state);
  this_thread_timeline.report(state);
}

void BM_PoolCallEcho(benchmark::State& state) {
  pool_echo(state, "fake", procpool::harness::fake_worker_launch());
}

void BM_PoolCallEcho_Affinity(benchmark::State& state) {
  pool_echo(state, "fake", procpool::harness::fake_worker_launch(), echo_mode::affinity);
}

void BM_PoolCallEcho_Timeline(benchmark::State& state) {
  pool_echo(state, "fake", procpool::harness::fake_worker_launch(), echo_mode::timeline);
}

void BM_PoolCallEcho_Python(benchmark::State& state) {
  pool_echo(state, "python", procpool::harness::python_worker_launch());
}

// --- streaming: pipelined workers, submit and map --------------------------------------------

// The payload of the Python peers' comparison (bench/peers.py): a small dict.
nlohmann::json stream_payload() { return {{"n", 1}, {"text", "hello"}, {"values", {1, 2, 3}}}; }

// Baseline: one fake worker kept up to `window` requests deep by hand, refilled half a window
// at a time in one write, its replies read through one decoder, and no JSON: the least a
// pipelined pipe loop can do per request.
void BM_RawPipelinedEcho(benchmark::State& state) {
  const auto window = static_cast<std::size_t>(state.range(0));
  auto worker = raw_worker::start(procpool::harness::fake_worker_launch());
  if (!worker) return skip(state, worker.error().message);
  auto w = std::make_unique<raw_worker>(std::move(*worker));
  const std::string frame = procpool::encode_frame(
      procpool::encode(procpool::request{.id = 1, .command = "echo", .args = echo_payload()}));
  std::string batch, reply;
  std::size_t outstanding = 0;
  for (auto _ : state) {
    if (outstanding <= window / 2) {
      batch.clear();
      for (; outstanding < window; ++outstanding) batch += frame;
      if (auto e = w->write_all(batch)) {
        state.SkipWithError(e->c_str());
        break;
      }
    }
    if (auto e = w->read_frame(reply)) {
      state.SkipWithError(e->c_str());
      break;
    }
    --outstanding;
    benchmark::DoNotOptimize(reply.data());
  }
  while (outstanding > 0 && !w->read_frame(reply)) --outstanding;
  state.SetItemsProcessed(state.iterations());
  w->stop();
}

procpool::pool* stream_pool(benchmark::State& state, const std::string& worker_name,
                            const procpool::launch_options& launch, std::size_t workers,
                            std::size_t depth) {
  std::string error;
  procpool::pool* p = cached_pool(
      fmt::format("stream/{}/{}/{}", worker_name, workers, depth), [&] {
        return procpool::pool_options{.worker = launch, .size = workers,
                                      .prewarm = procpool::prewarm_mode::parallel,
                                      .pipeline_depth = depth};
      }, error);
  if (!p) skip(state, error);
  return p;
}

// pool::map over an endless source: each iteration consumes one result in order.
void stream_map(benchmark::State& state, procpool::pool& p, const nlohmann::json& args,
                std::size_t window) {
  auto results = p.map("echo", [&] { return std::optional<nlohmann::json>(args); },
                       {.window = window});
  for (auto _ : state) {
    auto r = results.next();
    if (!r || !*r) {
      state.SkipWithError(r ? (*r).error().message.c_str() : "the stream ended");
      break;
    }
    benchmark::DoNotOptimize((*r)->value);
  }
  state.SetItemsProcessed(state.iterations());
}

// map with its default window (size x depth x 2): the worker is kept as deep as the raw
// loop keeps it, and the next batch already waits in the dispatcher when its replies arrive.
void BM_PoolMapEcho(benchmark::State& state) {
  const auto depth = static_cast<std::size_t>(state.range(0));
  auto* p = stream_pool(state, "fake", procpool::harness::fake_worker_launch(), 1, depth);
  if (p) stream_map(state, *p, echo_payload(), 0);
}

// A ring of `window` futures: the oldest is waited for, then replaced by a new submit.
void BM_PoolSubmitEcho(benchmark::State& state) {
  const auto window = static_cast<std::size_t>(state.range(0));
  auto* p = stream_pool(state, "fake", procpool::harness::fake_worker_launch(), 1, window);
  if (!p) return;
  const nlohmann::json args = echo_payload();
  std::deque<procpool::reply_future> ring;
  for (auto _ : state) {
    while (ring.size() < window) ring.push_back(p->submit("echo", args));
    auto r = ring.front().get();
    ring.pop_front();
    if (!r) {
      state.SkipWithError(r.error().message.c_str());
      break;
    }
    benchmark::DoNotOptimize(r->value);
  }
  for (auto& f : ring) (void)f.get();
  state.SetItemsProcessed(state.iterations());
}

// The Python comparison of bench/peers.py: 2 Python workers, pipelined 16 deep, map's default
// window (64), the same small dict.
void BM_PoolMapEcho_Python(benchmark::State& state) {
  const auto workers = static_cast<std::size_t>(state.range(0));
  auto* p = stream_pool(state, "python", procpool::harness::python_worker_launch(), workers, 16);
  if (p) stream_map(state, *p, stream_payload(), 0);
}

// --- checkout and return -----------------------------------------------------------------

void BM_CheckoutReturn(benchmark::State& state) {
  const auto size = static_cast<std::size_t>(state.range(0));
  std::string error;
  procpool::pool* p = cached_pool(fmt::format("checkout/{}", size), [&] {
    return procpool::pool_options{.worker = procpool::harness::fake_worker_launch(),
                                  .size = size, .prewarm = procpool::prewarm_mode::parallel};
  }, error);
  if (!p) return skip(state, error);

  for (auto _ : state) {
    auto lease = p->checkout();
    if (!lease) {
      state.SkipWithError(lease.error().message.c_str());
      break;
    }
    lease->release();
  }
  state.SetItemsProcessed(state.iterations());
}

// --- the caller's message work ------------------------------------------------------------

void BM_EncodeRequest(benchmark::State& state) {
  const nlohmann::json args = echo_payload();
  std::string frame;
  std::uint64_t id = 1'000'000;
  for (auto _ : state) {
    frame.clear();
    const std::size_t header = procpool::begin_frame(frame);
    procpool::encode_into(frame, procpool::request_ref{id++, "echo", args});
    procpool::end_frame(frame, header);
    benchmark::DoNotOptimize(frame.data());
  }
  state.SetItemsProcessed(state.iterations());
}

void BM_DecodeReply(benchmark::State& state) {
  const std::int64_t now = procpool::monotonic_ns();
  const std::string reply = procpool::encode(procpool::response{.id = 1'000'000,
                                                                 .ok = true,
                                                                 .result = echo_payload(),
                                                                 .t_recv_ns = now,
                                                                 .t_done_ns = now + 2'000});
  for (auto _ : state) {
    auto decoded = procpool::decode_response(reply);
    if (!decoded) {
      state.SkipWithError(decoded.error().message.c_str());
      break;
    }
    benchmark::DoNotOptimize(decoded->result);
  }
  state.SetItemsProcessed(state.iterations());
}

// --- starting many workers ---------------------------------------------------------------

// VmRSS of this process, KiB; -1 when unreadable.
long resident_kib() {
  std::ifstream status("/proc/self/status");
  std::string line;
  while (std::getline(status, line)) {
    if (line.rfind("VmRSS:", 0) == 0) return std::stol(line.substr(6));
  }
  return -1;
}

// What the pool's observer reports about one start, kept small and preallocated so that
// recording it barely shows in the memory measured.
struct start_record {
  std::int64_t t_spawn_ns = 0;      // just before the fork
  std::int64_t t_launched_ns = 0;   // the supervisor got back from the launch call
  std::int64_t t_main_ns = 0;       // the worker's main() began
  std::int64_t t_init_done_ns = 0;  // the worker finished init
  std::int64_t t_ready_ns = 0;      // the supervisor marked it idle
};

// Only stores into the preallocated `records`: allocating here would show in the memory measured.
procpool::pool_observer recording_observer(std::vector<start_record>& records) {
  procpool::pool_observer observer;
  observer.on_worker_event = [&records](const procpool::worker_event& e) {
    if (e.worker >= records.size()) return;
    auto& r = records[e.worker];
    if (e.to == procpool::worker_state::starting) {
      r.t_spawn_ns = e.t_spawn_ns;
      r.t_launched_ns = e.t_ns;
    } else if (e.from == procpool::worker_state::starting && e.to == procpool::worker_state::idle) {
      r.t_main_ns = e.t_main_ns;
      r.t_init_done_ns = e.t_init_done_ns;
      r.t_ready_ns = e.t_ns;
    }
  };
  return observer;
}

// Start-up breakdown, averaged over every start of every iteration (ms).
struct start_breakdown {
  double launch_call = 0, spawn_to_main = 0, main_to_init_done = 0, init_done_to_ready = 0;
  std::size_t starts = 0;
  // The launch call for the first and the last tenth of the workers: whether a start gets
  // dearer as the pool grows.
  double launch_first = 0, launch_last = 0;
  std::size_t n_first = 0, n_last = 0;

  // `records` by worker id, 1-based, of a pool of `size` workers.
  void add(const std::vector<start_record>& records, std::size_t size) {
    for (std::size_t id = 1; id < records.size(); ++id) {
      const auto& r = records[id];
      if (r.t_ready_ns == 0 || r.t_main_ns == 0) continue;
      ++starts;
      const double call_ms = static_cast<double>(r.t_launched_ns - r.t_spawn_ns) / 1e6;
      launch_call += call_ms;
      if (id <= size / 10) {
        launch_first += call_ms;
        ++n_first;
      } else if (id > size - size / 10) {
        launch_last += call_ms;
        ++n_last;
      }
      spawn_to_main += static_cast<double>(r.t_main_ns - r.t_spawn_ns) / 1e6;
      main_to_init_done += static_cast<double>(r.t_init_done_ns - r.t_main_ns) / 1e6;
      init_done_to_ready += static_cast<double>(r.t_ready_ns - r.t_init_done_ns) / 1e6;
    }
  }

  void report(benchmark::State& state) const {
    if (starts > 0) {
      const double k = static_cast<double>(starts);
      state.counters["launch_call_ms"] = launch_call / k;
      state.counters["spawn_to_main_ms"] = spawn_to_main / k;
      state.counters["main_to_init_ms"] = main_to_init_done / k;
      state.counters["init_to_ready_ms"] = init_done_to_ready / k;
    }
    if (n_first > 0 && n_last > 0) {
      state.counters["launch_first10pct_ms"] = launch_first / static_cast<double>(n_first);
      state.counters["launch_last10pct_ms"] = launch_last / static_cast<double>(n_last);
    }
  }
};

void BM_StartWorkers(benchmark::State& state) {
  const auto size = static_cast<std::size_t>(state.range(0));
  drop_cached_pools();  // only the pool being measured may exist
  double total_s = 0, total_kib = 0;
  start_breakdown breakdown;
  for (auto _ : state) {
    std::vector<start_record> records(size + 1);  // by worker id, 1-based
    const procpool::pool_observer observer = recording_observer(records);
    // Hand freed heap back to the kernel so that the new pool cannot hide in memory a
    // previous one left behind.
    ::malloc_trim(0);
    const long rss_before = resident_kib();
    const auto t0 = std::chrono::steady_clock::now();
    auto made = procpool::pool::create({.worker = procpool::harness::fake_worker_launch(),
                                        .size = size,
                                        .prewarm = procpool::prewarm_mode::parallel,
                                        .observer = observer});
    if (!made) {
      state.SkipWithError(made.error().message.c_str());
      break;
    }
    const bool ready =
        made->wait_ready(procpool::deadline_after(ready_timeout)) == procpool::ready_state::ready;
    const auto t1 = std::chrono::steady_clock::now();
    const long rss_after = resident_kib();
    if (!ready) {
      const std::string why = not_ready(*made);
      made->stop();
      state.SkipWithError(why.c_str());
      break;
    }
    const double seconds = std::chrono::duration<double>(t1 - t0).count();
    state.SetIterationTime(seconds);
    total_s += seconds;
    total_kib += static_cast<double>(rss_after - rss_before);
    made->stop();  // not timed: manual time covers create .. ready only
    breakdown.add(records, size);
  }
  if (state.iterations() > 0 && total_s > 0) {
    const double n = static_cast<double>(state.iterations());
    state.counters["kib_per_worker"] = total_kib / n / static_cast<double>(size);
    state.counters["starts_per_s"] = static_cast<double>(size) * n / total_s;
    state.counters["ready_ms"] = total_s / n * 1e3;
  }
  breakdown.report(state);
}

// Registration order is run order: raw and pool side by side, then the pools that need
// many workers, the Python pool last.
BENCHMARK(BM_RawPipeEcho)->UseRealTime()->Threads(1)->Unit(benchmark::kMicrosecond);
BENCHMARK(BM_PoolCallEcho)->UseRealTime()->Threads(1)->Unit(benchmark::kMicrosecond);
BENCHMARK(BM_RawPipeEcho)->UseRealTime()->Threads(2)->Unit(benchmark::kMicrosecond);
BENCHMARK(BM_PoolCallEcho)->UseRealTime()->Threads(2)->Unit(benchmark::kMicrosecond);
BENCHMARK(BM_PoolCallEcho_Affinity)->UseRealTime()->Threads(2)->Unit(benchmark::kMicrosecond);
BENCHMARK(BM_RawPipeEcho_Timeline)->UseRealTime()->Threads(1)->Threads(2)->Unit(benchmark::kMicrosecond);
BENCHMARK(BM_PoolCallEcho_Timeline)->UseRealTime()->Threads(1)->Threads(2)->Unit(benchmark::kMicrosecond);
BENCHMARK(BM_CheckoutReturn)->UseRealTime()->Arg(8)->Arg(64)->Arg(512);
BENCHMARK(BM_EncodeRequest);
BENCHMARK(BM_DecodeReply);
BENCHMARK(BM_StartWorkers)->Arg(1024)->UseManualTime()->Iterations(1)->Unit(benchmark::kMillisecond);
BENCHMARK(BM_PoolCallEcho_Python)->UseRealTime()->Unit(benchmark::kMicrosecond);
BENCHMARK(BM_RawPipelinedEcho)->UseRealTime()->ArgName("window")->Arg(16)->Unit(benchmark::kMicrosecond);
BENCHMARK(BM_PoolMapEcho)->UseRealTime()->ArgName("depth")->Arg(16)->Unit(benchmark::kMicrosecond);
BENCHMARK(BM_PoolSubmitEcho)->UseRealTime()->ArgName("window")->Arg(16)->Unit(benchmark::kMicrosecond);
BENCHMARK(BM_PoolMapEcho_Python)->UseRealTime()->ArgName("workers")->Arg(2)->Unit(benchmark::kMicrosecond);

}  // namespace

int main(int argc, char** argv) {
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  drop_cached_pools();  // every worker is reaped before exit
  return 0;
}
