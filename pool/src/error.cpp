#include "procpool/error.hpp"

namespace procpool {

std::string_view to_string(errc code) noexcept {
  switch (code) {
    case errc::checkout_timeout: return "checkout_timeout";
    case errc::request_timeout: return "request_timeout";
    case errc::worker_crashed: return "worker_crashed";
    case errc::protocol_error: return "protocol_error";
    case errc::queue_full: return "queue_full";
    case errc::pool_stopped: return "pool_stopped";
    case errc::worker_error: return "worker_error";
    case errc::start_failed: return "start_failed";
    case errc::invalid_options: return "invalid_options";
    case errc::io_error: return "io_error";
    case errc::queued_behind_fault: return "queued_behind_fault";
    case errc::cancelled: return "cancelled";
  }
  return "unknown";
}

}  // namespace procpool
