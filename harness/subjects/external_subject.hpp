// The `external` subject: any pool, in any language, behind a driver process that speaks the
// JSON-lines driver protocol on its stdin and stdout (harness/subjects/DRIVERS.md is the
// contract). Python drivers for concurrent.futures.ProcessPoolExecutor and
// multiprocessing.Pool live in python/drivers/.
//
//   auto pool = procpool::harness::make_external_subject(
//       {"/usr/bin/python3", "python/drivers/process_pool_executor.py"}, {.size = 4});
//   if (!pool) die(pool.error().message);
//   auto reply = (*pool)->call("sleep", {{"ms", 30}}, {});
//
// What it measures and what it cannot:
// - The pool's queueing and dispatch happen inside the driver, out of sight. In the request
//   timeline t_checkout and t_sent are both the driver's t_start_ns (when it handed the task
//   to its pool), so t_submit -> t_checkout is the hop through the driver's stdin and
//   t_sent -> t_worker_recv is the pool's own queue wait, dispatch and IPC. `worker` is the
//   pid of the process that ran the task (0 when none did, or none is known yet).
// - There is no checkout: call_options' checkout and reply deadlines form one deadline, the
//   reply deadline if given, else (checkout deadline or now + checkout_timeout) +
//   request_timeout. On expiry the call returns request_timeout, but a driver cannot cancel
//   a task: it keeps running in the pool. When its done line comes later, the observer's
//   on_request sees the same request_id a second time, still request_timeout, now with the
//   late completion's stamps and worker: the task's real occupancy of the pool.
// - Workers: what the driver reports of its processes (the pids in "started", "worker"
//   lifecycle events, each done line's pid and stamps) reaches observer.on_worker_event as
//   procpool's own worker events would (driver_workers.hpp), in the driver's stamps.
// - stats() is kept here from the calls' outcomes (no round trip to the driver): busy is
//   the tasks handed to the driver and not yet completed (timed-out ones included), capped
//   at size; the rest count as waiting_callers.
// - Of pool_options only size, start_timeout + init_timeout (the wait for "started"),
//   checkout_timeout, request_timeout, max_frame_bytes, stderr_tail_bytes, init_args'
//   init_ms (sent as config.init.init_ms when above 0) and the observer are used.
// - A cold start (subject_start::warm false) sends "warm": false; a driver that honours it
//   answers "started" before its workers are ready (and says "warm": false), an older one
//   ignores the field and warms its pool first.
//
// Errors: ok:false is worker_error with the driver's type, except type "worker_crashed" (the
// pool lost the process running the task), which is worker_crashed. If the driver exits,
// every waiting call gets worker_crashed; if it writes a line that breaks the protocol it
// is killed and every waiting call gets protocol_error. Either way later calls fail at once
// with the same code: a dead driver is not restarted.
//
// submit() writes the same submit line from the submitting thread and returns: the reader
// thread runs the completion on the done line, at the deadline (checked every 10 ms; the late
// done line then reaches the observer as for a call), or when the driver is gone. A line that
// cannot be written completes on the submitting thread before submit returns.
//
// Thread-safe: call() and submit() from any number of threads. The driver is launched from the subject's
// own reader thread (PR_SET_PDEATHSIG follows the launching thread, so the driver lives as
// long as the subject, not as long as whichever thread created it), in a process group of
// its own that holds the whole pool. Destruction stops the subject as stop() does: in-flight
// calls drain for up to drain_timeout, the driver gets "stop" and 5 s to exit, then its
// group is SIGKILLed and reaped.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "procpool/pool_options.hpp"
#include "procpool/result.hpp"
#include "subjects/subject.hpp"

namespace procpool::harness {

// REQUIRES: command[0] is the driver's executable (a path, or a name looked up in PATH).
// Returns once the driver has answered "started" (its pool created, and warmed unless a cold
// start was asked for and honoured); else start_failed quoting the driver's exit status or
// silence and its stderr tail, or invalid_options.
result<std::unique_ptr<subject>> make_external_subject(std::vector<std::string> command,
                                                       pool_options options,
                                                       subject_start start = {});

}  // namespace procpool::harness
