// Reference subjects: pools that reproduce two known flawed architectures, so that the harness
// can run them beside procpool::pool and show, from their events and timelines, what each
// flaw does under load. The diagnosis is only trustworthy if it names these two correctly.
//
// Both speak the same protocol through the same worker_connection and worker_process as
// procpool::pool, take the same pool_options and return the same typed errors; only the
// dispatch and the start-up strategy differ. They are deliberately simple: no recycling,
// pings, backoff, crash-loop guard or affinity (those pool_options fields are ignored).
//
//   auto pool = procpool::harness::make_serial_manager_pool(
//       {.worker = procpool::harness::fake_worker_launch(), .size = 4});
//   if (!pool) die(pool.error().message);
//   auto reply = (*pool)->call("sleep", {{"ms", 30}}, {});
//
// Thread-safe: call() from any number of threads. Destruction stops the pool as stop() does;
// workers never outlive it (each is launched from the pool's long-lived manager thread, in a
// process group of its own, and stop() kills and reaps every one).
#pragma once

#include <memory>
#include <optional>
#include <string_view>

#include <nlohmann/json.hpp>

#include "procpool/clock.hpp"
#include "procpool/wire/message.hpp"
#include "procpool/pool.hpp"
#include "procpool/pool_options.hpp"
#include "procpool/pool_stats.hpp"
#include "procpool/result.hpp"
#include "subjects/subject.hpp"

namespace procpool::harness {

// The first of two flawed pools this project was written to replace, modelled on NimblePool:
// one manager (an actor) owns every worker and performs every request itself. Callers only
// enqueue and wait, so requests are served one at a time however many workers sit idle: the
// `architectural.dispatch` verdict must fire on it. Workers are all spawned at creation and
// then handshaken in turn; a worker that faults is replaced on the manager thread before the
// next request is taken, so the queue also waits for restarts.
//
// checkout_timeout bounds the time a request waits in the manager's queue; once the manager
// has taken it, the reply deadline bounds the rest. max_queue bounds that queue.
result<std::unique_ptr<subject>> make_serial_manager_pool(pool_options options);

// The second of them, which scenarios/seed-v2-replay.toml replays: callers check workers out
// on their own threads (FIFO waiters, a returned worker handed straight to the longest
// waiter), but workers are created only on demand and started one at a time, spawn then
// handshake then the next, on a single manager thread. A burst of callers on a cold pool
// therefore waits for the sum of the start times instead of the longest: the
// `architectural.startup_serialization` verdict must fire on it even though every single start
// looks normal.
//
// A failed start fails the longest-waiting caller with start_failed (no retry loop). A
// worker that faults is killed by the caller that saw the fault; its replacement is started
// when a later caller finds no free worker.
result<std::unique_ptr<subject>> make_sequential_init_pool(pool_options options);

}  // namespace procpool::harness
