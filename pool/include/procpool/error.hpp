// Typed errors returned by every procpool call.
//
// The library never throws across its API: each call returns a `result<T>` (see result.hpp)
// holding either a value or an `error`. The error code says what happened in terms a caller
// can act on; the message carries the detail (exit status, last stderr lines, ...).
//
//   if (auto r = conn.call(req, deadline); !r) {
//     if (r.error().code == procpool::errc::request_timeout) retry_later();
//     log(r.error().message);
//   }
#pragma once

#include <string>
#include <string_view>

namespace procpool {

enum class errc {
  checkout_timeout,  // no worker became free before the caller's deadline
  request_timeout,   // the worker did not answer in time; it was killed
  worker_crashed,    // the worker exited or closed its pipes while serving the request
  protocol_error,    // the worker broke framing or sent a malformed or mismatched reply
  queue_full,        // the bounded wait queue was full; the request was not queued
  pool_stopped,      // the pool is stopping or stopped
  worker_error,      // the worker answered ok:false; `worker_type` holds its error type
  start_failed,      // a worker could not be started or failed its init handshake
  invalid_options,   // a pool cannot be created with these options; the message names the field
  io_error,          // the harness could not read or write a file (the message says which and
                     // why); the pool's own calls never return it
  queued_behind_fault,  // written to a worker behind a request that timed out, crashed it or
                        // broke the protocol; the worker was killed before answering this
                        // one. The message names the cause. Safe to retry: this request did
                        // not cause the fault (a worker that works ahead may have started it)
  cancelled,            // taken back (reply_future::cancel, a dropped map) before any
                        // worker had it
};

// The stable snake_case name used in results, reports and logs.
std::string_view to_string(errc code) noexcept;

// True for the errors after which a worker's state is unknown (it missed its deadline,
// died, or broke the protocol): such a worker is killed and replaced, never reused.
constexpr bool is_worker_fault(errc code) noexcept {
  return code == errc::request_timeout || code == errc::worker_crashed ||
         code == errc::protocol_error || code == errc::queued_behind_fault;
}

struct error {
  errc code;
  std::string message;
  // For errc::worker_error: the "type" the worker put in its error object.
  std::string worker_type = {};
};

}  // namespace procpool
