// When each step of a request happened: the one list of a request's stamps, shared by the
// observer's request_timeline, the reply of a successful call, and the harness's records.
//
//   const request_timing& t = reply.timing;
//   auto in_worker_ns = t.t_worker_done - t.t_worker_recv;
//
// Stamps are procpool::monotonic_ns() (CLOCK_MONOTONIC, shared with the worker, so its own
// stamps compare with the pool's); 0 when a step did not happen.
#pragma once

#include <cstdint>

namespace procpool {

struct request_timing {
  std::int64_t t_submit = 0;       // the call was made
  // A worker was checked out: t_submit itself when the caller's own worker was free at once
  // (no lock, no wait); a lease's: when it was taken.
  std::int64_t t_checkout = 0;
  std::int64_t t_sent = 0;         // the request was written to the worker
  // It became its worker's oldest unanswered request: the worker began on it. t_sent when
  // nothing was ahead of it (always so at pipeline_depth 1); 0 if it never got there.
  std::int64_t t_head = 0;
  std::int64_t t_worker_recv = 0;  // the worker read it (the worker's stamp)
  std::int64_t t_worker_done = 0;  // the worker finished it (the worker's stamp)
  std::int64_t t_reply = 0;        // the reply was read back
};

}  // namespace procpool
