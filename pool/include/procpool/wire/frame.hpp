// Length-prefixed framing of the worker pipes: a 4-byte big-endian length, then the payload
// (Erlang's {packet, 4}).
//
// The decoder is incremental: feed it whatever a read() returned (one byte, or many frames at
// once) and pull complete frames out. A length above the configured maximum is rejected as
// soon as its 4 header bytes arrive, before any buffer is sized for it, so a worker that
// writes a bogus length can never make the pool allocate it.
//
//   procpool::frame_decoder decoder;            // 16 MiB maximum
//   decoder.feed({buf, n});
//   while (true) {
//     auto frame = decoder.next();
//     if (!frame) kill_worker(frame.error());   // oversize length: never trusted again
//     if (!*frame) break;                        // need more bytes
//     handle(**frame);
//   }
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "procpool/result.hpp"

namespace procpool {

inline constexpr std::size_t frame_header_bytes = 4;
inline constexpr std::size_t default_max_frame_bytes = std::size_t{16} << 20;

// Appends the frame for `payload` to `out`.
// REQUIRES: payload.size() <= UINT32_MAX
void append_frame(std::string& out, std::string_view payload);
std::string encode_frame(std::string_view payload);

// A frame written in place, its payload encoded straight into `out` with no copy:
//
//   const std::size_t header = procpool::begin_frame(out);
//   procpool::encode_into(out, request);
//   procpool::end_frame(out, header);
//
// begin_frame appends a header to fill in and returns where it is; end_frame fills it with
// the length of everything appended after it.
// REQUIRES (end_frame): that length <= UINT32_MAX
std::size_t begin_frame(std::string& out);
void end_frame(std::string& out, std::size_t header_at);

class frame_decoder {
 public:
  explicit frame_decoder(std::size_t max_frame_bytes = default_max_frame_bytes) noexcept
      : max_frame_bytes_(max_frame_bytes) {}

  // Buffers bytes read from the stream. Bytes fed after a failure are dropped.
  void feed(std::string_view bytes);

  // The next complete payload; an empty optional when more bytes are needed; a
  // protocol_error when the announced length exceeds the maximum. A failure is permanent:
  // the stream's framing cannot be recovered.
  result<std::optional<std::string>> next();
  // The same, the payload left in the decoder's buffer: the view is valid until the next
  // call of feed(), next() or next_view().
  result<std::optional<std::string_view>> next_view();

  // True when some bytes of an unfinished frame are buffered: at end of stream this means the
  // peer truncated a frame.
  bool has_partial_frame() const noexcept { return buffer_.size() > read_pos_; }
  std::size_t max_frame_bytes() const noexcept { return max_frame_bytes_; }

 private:
  // Drops the buffered bytes once every frame in them has been taken.
  void forget_consumed();

  std::string buffer_;
  std::size_t read_pos_ = 0;
  std::size_t max_frame_bytes_;
  std::optional<std::uint32_t> rejected_length_;
};

}  // namespace procpool
