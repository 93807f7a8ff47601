// What a successful pool::call or worker_lease::call returns: the worker's result and when
// each step of the request happened.
//
//   auto r = pool.call("echo", {{"hello", "world"}});
//   if (!r) return r.error();
//   use(r->value);
//   log("worker {} took {} ns", r->worker, r->timing.t_reply - r->timing.t_submit);
//
// Stamps are procpool::monotonic_ns() (CLOCK_MONOTONIC, shared with the worker, so its own
// stamps compare with the pool's). They are the ones pool_observer::on_request reports.
#pragma once

#include <cstdint>

#include <nlohmann/json.hpp>

#include "procpool/request_timing.hpp"

namespace procpool {

struct reply {
  nlohmann::json value;          // the worker's "result"
  std::uint64_t worker = 0;      // the worker that served it (worker_event::worker)
  std::uint64_t request_id = 0;  // request_timeline::request_id of this call
  request_timing timing;
};

}  // namespace procpool
