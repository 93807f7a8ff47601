#include "procpool/wire/frame.hpp"

#include <fmt/format.h>

#include <cassert>
#include <limits>

namespace procpool {

void append_frame(std::string& out, std::string_view payload) {
  const std::size_t header = begin_frame(out);
  out.append(payload);
  end_frame(out, header);
}

std::size_t begin_frame(std::string& out) {
  const std::size_t at = out.size();
  out.append(frame_header_bytes, '\0');
  return at;
}

void end_frame(std::string& out, std::size_t header_at) {
  const std::size_t length = out.size() - header_at - frame_header_bytes;
  assert(length <= std::numeric_limits<std::uint32_t>::max());
  const auto n = static_cast<std::uint32_t>(length);
  out[header_at] = static_cast<char>(n >> 24);
  out[header_at + 1] = static_cast<char>(n >> 16);
  out[header_at + 2] = static_cast<char>(n >> 8);
  out[header_at + 3] = static_cast<char>(n);
}

std::string encode_frame(std::string_view payload) {
  std::string out;
  out.reserve(frame_header_bytes + payload.size());
  append_frame(out, payload);
  return out;
}

void frame_decoder::forget_consumed() {
  if (read_pos_ == buffer_.size()) {
    buffer_.clear();
    read_pos_ = 0;
  }
}

void frame_decoder::feed(std::string_view bytes) {
  if (rejected_length_) return;
  // Compact lazily: moving the unread tail only when it is at most half the buffer keeps
  // the cost linear in the bytes fed. A buffer whose frames were all taken is emptied here.
  if (read_pos_ > 0 && read_pos_ * 2 >= buffer_.size()) {
    buffer_.erase(0, read_pos_);
    read_pos_ = 0;
  }
  buffer_.append(bytes);
}

result<std::optional<std::string>> frame_decoder::next() {
  auto payload = next_view();
  if (!payload) return std::move(payload).error();
  if (!*payload) return std::optional<std::string>{};
  return std::optional<std::string>{std::string(**payload)};
}

result<std::optional<std::string_view>> frame_decoder::next_view() {
  if (!rejected_length_) {
    // The previous view's bytes may go now; clearing earlier would have overwritten them.
    forget_consumed();
    const std::size_t available = buffer_.size() - read_pos_;
    if (available < frame_header_bytes) return std::optional<std::string_view>{};
    const auto* h = reinterpret_cast<const unsigned char*>(buffer_.data() + read_pos_);
    const std::uint32_t length = (std::uint32_t{h[0]} << 24) | (std::uint32_t{h[1]} << 16) |
                                 (std::uint32_t{h[2]} << 8) | std::uint32_t{h[3]};
    if (length <= max_frame_bytes_) {
      if (available - frame_header_bytes < length) return std::optional<std::string_view>{};
      const std::string_view payload(buffer_.data() + read_pos_ + frame_header_bytes, length);
      read_pos_ += frame_header_bytes + length;
      return std::optional<std::string_view>{payload};
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
