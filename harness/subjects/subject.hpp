// The pool under test, behind one interface: procpool::pool itself, or a reference subject
// that reproduces a known flawed architecture (reference_pools.hpp).
//
//   auto subject = procpool::harness::make_subject({.kind = subject_type::sequential_init}, options);
//   if (!subject) fail(subject.error().message);
//   auto reply = (*subject)->call("echo", args, {});
//
// Every implementation is thread-safe, returns the typed errors of procpool::errc, reports
// through pool_options::observer, and stops (killing and reaping every worker) when
// destroyed.
#pragma once

#include <functional>
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
#include "scenario/scenario.hpp"

namespace procpool::harness {

// What a submitted request's completion receives: call()'s outcome.
using subject_completion = std::function<void(result<response>)>;

class subject {
 public:
  virtual ~subject() = default;

  // An ok:false reply is errc::worker_error with the worker's type and message.
  virtual result<response> call(std::string_view command, nlohmann::json args,
                                const call_options& options) = 0;
  result<response> call(std::string_view command, nlohmann::json args = nullptr) {
    return call(command, std::move(args), call_options{});
  }
  // Issues the request without waiting for it: `done` receives the outcome exactly once, on
  // the subject's own thread (on this one, before submit returns, when the request fails at
  // once), and must neither block nor call into the subject. False when the subject does not
  // implement submit; `done` is then never called.
  virtual bool submit(std::string_view /*command*/, nlohmann::json /*args*/,
                      const call_options& /*options*/, subject_completion /*done*/) {
    return false;
  }
  virtual bool wait_ready(deadline until) = 0;
  virtual pool_stats stats() const = 0;
  // Idempotent.
  virtual void stop(const stop_options& options) = 0;
  void stop() { stop(stop_options{}); }
};

// How the run starts the subject. procpool and the reference pools start their workers
// (pool_options::prewarm) whatever this says; the runner decides whether to wait for them.
struct subject_start {
  bool warm = true;  // external: false asks the driver to answer "started" before warming
};

// `config.command` is the driver's command line for subject_type::external.
result<std::unique_ptr<subject>> make_subject(const subject_config& config, pool_options options,
                                              subject_start start = {});

}  // namespace procpool::harness
