// Load generators: a closed loop (C callers, each waiting for its reply before the next
// request) and an open loop (arrivals on a schedule, at a constant or Poisson rate). Either
// is issued by caller threads blocking in subject::call, or (load.issue "submit") by one
// generator thread through subject::submit, which keeps load.in_flight requests outstanding
// with no thread for each.
//
// The open loop measures latency from each request's intended start, not from when a caller
// got round to it: a stalled subject cannot hide its stall by slowing the generator
// (coordinated omission, corrected as wrk2 does). Requests that started more than a
// millisecond after their intended time are counted as late starts.
#pragma once

#include <atomic>
#include <cstdint>
#include <map>
#include <string>

#include <nlohmann/json.hpp>

#include "run/histogram.hpp"
#include "scenario/scenario.hpp"
#include "subjects/subject.hpp"

namespace procpool::harness {

struct request_spec {
  std::string command;
  nlohmann::json args;
};

struct load_outcome {
  latency_histogram latency_us;                   // every request, whatever its outcome
  std::map<std::string, std::uint64_t> outcomes;  // "ok" and errc names
  std::uint64_t late_starts = 0;                  // open loop only
  std::uint64_t issued = 0;
  std::int64_t wall_ns = 0;
  bool interrupted = false;
  bool submit_refused = false;  // load.issue "submit" with a subject that does not implement it
};

// The request a case sends: echo with a small payload, or sleep/burn for the service time.
request_spec request_for(const scenario& s);

// Runs the load until `load.requests` are done (or `load.duration_ms` passed), or until
// `interrupted` becomes true.
load_outcome run_load(subject& target, const load_config& load, const request_spec& request,
                      std::uint64_t seed, const std::atomic<bool>& interrupted);

}  // namespace procpool::harness
