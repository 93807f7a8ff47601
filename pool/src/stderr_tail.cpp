#include "procpool/wire/stderr_tail.hpp"

namespace procpool {

stderr_tail::stderr_tail(stderr_tail&& other) noexcept {
  std::lock_guard lock(other.mutex_);
  buffer_ = std::move(other.buffer_);
  capacity_ = other.capacity_;
  total_bytes_ = other.total_bytes_;
}

stderr_tail& stderr_tail::operator=(stderr_tail&& other) noexcept {
  if (this != &other) {
    std::scoped_lock lock(mutex_, other.mutex_);
    buffer_ = std::move(other.buffer_);
    capacity_ = other.capacity_;
    total_bytes_ = other.total_bytes_;
  }
  return *this;
}

void stderr_tail::append(std::string_view bytes) {
  std::lock_guard lock(mutex_);
  total_bytes_ += bytes.size();
  if (bytes.size() >= capacity_) {
    buffer_.assign(bytes.substr(bytes.size() - capacity_));
    return;
  }
  buffer_.append(bytes);
  // Trim only once the buffer has doubled, so trimming stays amortised O(1) per byte.
  if (buffer_.size() >= 2 * capacity_) buffer_.erase(0, buffer_.size() - capacity_);
}

std::uint64_t stderr_tail::total_bytes() const {
  std::lock_guard lock(mutex_);
  return total_bytes_;
}

std::string stderr_tail::last_lines(std::size_t max_lines) const {
  std::lock_guard lock(mutex_);
  std::string_view view = buffer_;
  if (view.size() > capacity_) view.remove_prefix(view.size() - capacity_);
  while (!view.empty() && view.back() == '\n') view.remove_suffix(1);
  std::size_t start = view.size();
  for (std::size_t lines = 0; lines < max_lines && start > 0;) {
    const std::size_t nl = view.rfind('\n', start - 1);
    ++lines;
    if (nl == std::string_view::npos) {
      start = 0;
      break;
    }
    if (lines == max_lines) {
      start = nl + 1;
      break;
    }
    start = nl;
  }
  return std::string(view.substr(start));
}

}  // namespace procpool
