// Configuration of a procpool::pool, as a plain aggregate.
//
//   procpool::pool_options options{
//       .worker = {.argv = {"python3", "-m", "procpool_worker"}},
//       .size = 8,
//       .prewarm = procpool::prewarm_mode::parallel,
//       .request_timeout = std::chrono::seconds(5),
//   };
//
// Every field has a usable default; pool::create rejects impossible values with
// errc::invalid_options naming the field.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>

#include <nlohmann/json.hpp>

#include "procpool/error.hpp"
#include "procpool/pool_events.hpp"
#include "procpool/result.hpp"
#include "procpool/wire/worker_process.hpp"

namespace procpool {

enum class prewarm_mode {
  none,        // start workers on demand, when a caller finds none free
  sequential,  // start all workers at creation, one at a time
  parallel,    // start all workers at creation, up to max_concurrent_starts at once
};

enum class affinity_mode {
  hint,    // prefer the worker that last served the key; any free worker otherwise
  strict,  // wait for the worker that last served the key while it lives
};

struct pool_options {
  // Each worker also gets PROCPOOL_WORKER_ID (unique for the pool's lifetime, in start
  // order) and PROCPOOL_WORKER_SLOT (the position it fills) in its environment.
  launch_options worker;
  nlohmann::json init_args = nlohmann::json::object();
  std::size_t size = 4;
  prewarm_mode prewarm = prewarm_mode::parallel;
  // Workers starting at once (launch to init reply). 0 = the number of cores.
  std::size_t max_concurrent_starts = 0;
  // A worker must answer its init request within start_timeout + init_timeout of its spawn.
  // From outside the two phases cannot be told apart until the reply arrives, so they
  // form one deadline; the reply's stamps then split it.
  std::chrono::milliseconds start_timeout{10'000};
  std::chrono::milliseconds init_timeout{10'000};
  // Defaults for calls that give no deadline of their own.
  std::chrono::milliseconds checkout_timeout{5'000};
  std::chrono::milliseconds request_timeout{30'000};
  // Callers allowed to wait for a worker at once; one more gets queue_full. 0 = unbounded.
  // For submit (and calls queued with them at pipeline_depth > 1): requests queued and not
  // yet written.
  std::size_t max_queue = 0;
  // Requests pool::submit and pool::map write to one worker before its first reply is read
  // (1 to 1024). 1 is one request at a time. Deeper pipelines save a round trip per request
  // on tiny tasks; the pool pipelines only when no worker is free, and less on a worker
  // whose tasks take long (see pool/ASYNC.md, "Choosing a worker"). Above 1, a call() that
  // finds no worker free (and has no affinity key) queues with the submitted requests and
  // may be pipelined too; leases never pipeline.
  std::size_t pipeline_depth = 1;

  // Recycling, done between requests: after this many requests (0 = never), plus a random
  // 0..recycle_jitter more so that workers started together do not recycle together...
  std::uint64_t recycle_after_requests = 0;
  std::uint64_t recycle_jitter = 0;
  // ...after this age (0 = never)...
  std::chrono::milliseconds recycle_after_age{0};
  // ...or when the worker's resident set exceeds this many KiB (0 = never), checked
  // every rss_check_every requests.
  std::uint64_t recycle_above_rss_kib = 0;
  std::uint64_t rss_check_every = 16;

  // Idle workers are pinged this often (0 = never); no pong within ping_timeout: replaced.
  std::chrono::milliseconds idle_ping_interval{0};
  std::chrono::milliseconds ping_timeout{1'000};

  // Restart backoff after consecutive failures of one slot: initial * 2^(n-1), capped.
  std::chrono::milliseconds restart_backoff_initial{10};
  std::chrono::milliseconds restart_backoff_max{2'000};
  // Crash-loop guard: this many failed starts within the window make the pool degraded:
  // calls that find no free worker fail fast with start_failed until a start succeeds.
  std::size_t crash_loop_failures = 5;
  std::chrono::milliseconds crash_loop_window{10'000};

  affinity_mode affinity = affinity_mode::hint;

  // Graceful stop of a worker: close stdin, wait, SIGTERM its group, wait, SIGKILL.
  stop_plan worker_stop = {};

  std::size_t max_frame_bytes = std::size_t{16} << 20;
  std::size_t stderr_tail_bytes = 64 * 1024;

  // Seed for recycling jitter; runs with the same seed recycle at the same counts.
  std::uint64_t seed = 1;

  pool_observer observer = {};
};

// The checks pool::create makes on `options`, without starting anything: an
// errc::invalid_options naming the first field at fault. For validating a configuration
// early (at load time), and for other pools taking pool_options to refuse the same inputs
// with the same words.
result<void> validate(const pool_options& options);

}  // namespace procpool
