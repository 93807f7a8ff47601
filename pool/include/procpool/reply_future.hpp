// procpool::reply_future: the handle pool::submit returns for a request under way.
//
// A request submitted to the pool runs without a thread of the caller's: the pool's
// dispatcher thread writes it to a worker and reads the reply. The future is how the caller
// meets the outcome again: wait for it, poll it, or hand it a callback.
//
//   auto f = pool.submit("echo", {{"n", 1}});
//   ...                                     // other work; nothing blocks meanwhile
//   auto r = f.get();                       // the same result<reply> call() returns
//   if (!r) log(procpool::to_string(r.error().code), r.error().message);
//
//   pool.submit("echo", args).then([](procpool::result<procpool::reply> r) { ... });
//
// The outcome is delivered exactly once: by get() or by the callback given to then(). A
// callback runs on the pool's dispatcher thread (on the caller's, inside then(), when the
// outcome is already there) and must not block: every worker's I/O waits for it. From a
// callback, get() and wait() on a future that is not ready return at once (get() with
// errc::invalid_options) rather than wait for the thread they run on.
//
// Dropping a future does not cancel its request: the request runs, the pool's observer sees
// it, the outcome is discarded. cancel() takes a request back only while no worker has it.
#pragma once

#include <cstdint>
#include <functional>

#include "procpool/clock.hpp"
#include "procpool/reply.hpp"
#include "procpool/result.hpp"

namespace procpool {

namespace detail {
class pending_request;
class map_stream;
}

// What a submitted request's callback receives.
using completion = std::function<void(result<reply>)>;

class reply_future {
 public:
  reply_future() noexcept = default;
  explicit reply_future(detail::pending_request* state) noexcept : state_(state) {}
  reply_future(reply_future&& other) noexcept;
  reply_future& operator=(reply_future&& other) noexcept;
  reply_future(const reply_future&) = delete;
  reply_future& operator=(const reply_future&) = delete;
  ~reply_future();

  // False when default-constructed, moved from, or after get() or then().
  bool valid() const noexcept { return state_ != nullptr; }
  // The request's id, as request_timeline::request_id and reply::request_id report it.
  std::uint64_t request_id() const noexcept;
  // The outcome is there: get() will not wait.
  bool ready() const noexcept;
  void wait() const;
  // True when the outcome arrived before `until`.
  bool wait_until(deadline until) const;
  // Waits for the outcome and hands it over; the future is then !valid().
  result<reply> get();
  // Hands the outcome to `done` once it arrives (at once when it is there); the future is
  // then !valid().
  void then(completion done);
  // Takes the request back if no worker has it yet: it completes with errc::cancelled and
  // true is returned. False once it was written, or when it is already over.
  bool cancel();

 private:
  friend class detail::map_stream;  // keeps a reference of its own to cancel at its end
  detail::pending_request* state_ = nullptr;
};

}  // namespace procpool
