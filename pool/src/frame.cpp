#include "procpool/wire/frame.hpp"

#include <fmt/format.h>

#include <cassert>
#include <limits>

namespace procpool {

void append_frame(std::string& out, std::string_view payload) {
  assert(payload.size() <= std::numeric_limits<std::uint32_t>::max());
  const auto n = static_cast<std::uint32_t>(payload.size());
  const char header[frame_header_bytes] = {
      static_cast<char>(n >> 24), static_cast<char>(n >> 16), static_cast<char>(n >> 8),
      static_cast<char>(n)};
  out.append(header, frame_header_bytes);
  out.append(payload);
}

std::string encode_frame(std::string_view payload) {
  std::string out;
  out.reserve(frame_header_bytes + payload.size());
  append_frame(out, payload);
  return out;
}

void frame_decoder::feed(std::string_view bytes) {
  if (rejected_length_) return;
  // Compact lazily: moving the unread tail only when it is at most half the buffer keeps
  // the cost linear in the bytes fed.
  if (read_pos_ > 0 && read_pos_ * 2 >= buffer_.size()) {
    buffer_.erase(0, read_pos_);
    read_pos_ = 0;
  }
  buffer_.append(bytes);
}

result<std::optional<std::string>> frame_decoder::next() {
  if (!rejected_length_) {
    const std::size_t available = buffer_.size() - read_pos_;
    if (available < frame_header_bytes) return std::optional<std::string>{};
    const auto* h = reinterpret_cast<const unsigned char*>(buffer_.data() + read_pos_);
    const std::uint32_t length = (std::uint32_t{h[0]} << 24) | (std::uint32_t{h[1]} << 16) |
                                 (std::uint32_t{h[2]} << 8) | std::uint32_t{h[3]};
    if (length <= max_frame_bytes_) {
      if (available - frame_header_bytes < length) return std::optional<std::string>{};
      std::string payload = buffer_.substr(read_pos_ + frame_header_bytes, length);
      read_pos_ += frame_header_bytes + length;
      if (read_pos_ == buffer_.size()) {
        buffer_.clear();
        read_pos_ = 0;
      }
      return std::optional<std::string>{std::move(payload)};
    }
    rejected_length_ = length;
    buffer_.clear();
    buffer_.shrink_to_fit();
    read_pos_ = 0;
  }
  return error{errc::protocol_error,
               fmt::format("frame length {} exceeds the maximum of {} bytes", *rejected_length_,
                           max_frame_bytes_)};
}

}  // namespace procpool
