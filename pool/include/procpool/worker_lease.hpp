// A worker checked out of a pool for several requests in a row: a session pinned to one
// process, or a caller that wants the checkout and the I/O as separate steps.
//
//   auto lease = pool.checkout();
//   if (!lease) return lease.error();
//   auto a = lease->call("load", path);
//   auto b = lease->call("query", q);   // same worker, no checkout in between
//   // the worker goes back to the pool when `lease` is destroyed or released
//
// After a fault (timeout, crash, protocol error) the lease is broken: later calls fail with
// the same error, and on release the worker is killed and replaced rather than reused.
// Not thread-safe: one thread uses a lease at a time.
//
// A lease may outlive its pool safely. Stopping the pool waits up to its drain timeout for
// the lease to be released, then revokes it and stops the worker; afterwards call() fails
// with errc::pool_stopped, held() is false and release() does nothing.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string_view>

#include <nlohmann/json.hpp>

#include "procpool/clock.hpp"
#include "procpool/pool.hpp"
#include "procpool/reply.hpp"
#include "procpool/result.hpp"

namespace procpool {

namespace detail {
struct pool_worker;  // the pool's record of one worker process
}  // namespace detail

class worker_lease {
 public:
  worker_lease(worker_lease&& other) noexcept;
  worker_lease& operator=(worker_lease&& other) noexcept;
  worker_lease(const worker_lease&) = delete;
  worker_lease& operator=(const worker_lease&) = delete;
  ~worker_lease();  // releases

  // One request to the leased worker; the deadline defaults to now + request_timeout.
  // timing.t_checkout is when the lease was taken.
  result<reply> call(std::string_view command, const nlohmann::json& args = nullptr,
                     std::optional<deadline> reply_deadline = std::nullopt);

  // Gives the worker back to the pool now. Idempotent.
  void release();

  // False once released, or revoked by the pool's stop.
  bool held() const noexcept;
  std::uint64_t worker_id() const noexcept;

 private:
  friend class pool;
  worker_lease(pool::impl* owner, std::shared_ptr<detail::pool_worker> worker,
               std::int64_t t_checkout_ns);

  // Dereferenced only while the worker's lease state says the pool has not revoked it: the
  // pool outlives every unrevoked lease.
  pool::impl* pool_ = nullptr;
  std::shared_ptr<detail::pool_worker> worker_;
  std::int64_t t_checkout_ns_ = 0;
  std::optional<error> fault_;
};

}  // namespace procpool
