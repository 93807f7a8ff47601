// The frame decoder under any chunking of its input: it must yield exactly the frames, and the
// failure, that one pass over the whole stream finds.
//
// Input: byte 0 is the maximum frame length (0 to 254 bytes, 255 for the 16 MiB default);
// byte 1 says how many chunk sizes follow (1 to 8), each 0 to 255 bytes (0 feeds nothing), used
// in turn; the rest is the stream.
#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "fuzz_check.hpp"
#include "procpool/wire/frame.hpp"

namespace {

using procpool::fuzz::check;

struct expected_stream {
  std::vector<std::string> frames;
  bool oversize = false;  // a length above the maximum ends the stream
  bool partial = false;   // bytes of an unfinished frame are left over
};

// The stream read in one pass, straight from the format's definition.
expected_stream read_whole(std::string_view stream, std::size_t max) {
  expected_stream out;
  std::size_t pos = 0;
  while (stream.size() - pos >= procpool::frame_header_bytes) {
    const auto* h = reinterpret_cast<const unsigned char*>(stream.data() + pos);
    const std::size_t length = (std::size_t{h[0]} << 24) | (std::size_t{h[1]} << 16) |
                               (std::size_t{h[2]} << 8) | std::size_t{h[3]};
    if (length > max) {
      out.oversize = true;
      return out;
    }
    if (stream.size() - pos - procpool::frame_header_bytes < length) break;
    out.frames.emplace_back(stream.substr(pos + procpool::frame_header_bytes, length));
    pos += procpool::frame_header_bytes + length;
  }
  out.partial = pos < stream.size();
  return out;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size < 2) return 0;
  const std::size_t max = data[0] == 255 ? procpool::default_max_frame_bytes : data[0];
  const std::size_t chunk_count = 1 + data[1] % 8;
  if (size < 2 + chunk_count) return 0;
  const std::vector<std::size_t> chunks(data + 2, data + 2 + chunk_count);
  const std::string_view stream(reinterpret_cast<const char*>(data) + 2 + chunk_count,
                                size - 2 - chunk_count);
  const expected_stream expected = read_whole(stream, max);

  procpool::frame_decoder decoder(max);
  check(decoder.max_frame_bytes() == max, "max_frame_bytes() is not the maximum given");
  std::vector<std::string> frames;
  bool failed = false;
  const auto drain = [&] {
    while (true) {
      auto frame = decoder.next();
      if (!frame) {
        check(frame.error().code == procpool::errc::protocol_error,
              "an oversize length is not a protocol_error", frame.error().message);
        failed = true;
        return;
      }
      check(!failed, "a frame came after the stream failed");
      if (!*frame) return;
      frames.push_back(std::move(**frame));
    }
  };
  const bool progresses =
      std::any_of(chunks.begin(), chunks.end(), [](std::size_t n) { return n > 0; });
  std::size_t pos = 0;
  for (std::size_t i = 0; pos < stream.size(); ++i) {
    const std::size_t n = progresses ? chunks[i % chunks.size()] : stream.size();
    const std::string_view piece = stream.substr(pos, n);
    decoder.feed(piece);
    pos += piece.size();
    drain();
  }
  drain();
  if (failed) {
    // A failure is permanent, whatever is fed after it.
    decoder.feed(stream);
    check(!decoder.next(), "the decoder recovered from a failure");
  }
  check(frames == expected.frames, "the frames differ from one pass over the stream");
  check(failed == expected.oversize, failed ? "an oversize length was reported wrongly"
                                            : "an oversize length was not reported");
  if (!failed) {
    check(decoder.has_partial_frame() == expected.partial,
          "has_partial_frame() is wrong at the end of the stream");
  }

  // Encoding the frames found gives back the stream up to the end of the last one.
  std::string reencoded;
  for (const auto& frame : frames) procpool::append_frame(reencoded, frame);
  check(stream.substr(0, reencoded.size()) == reencoded, "the frames do not re-encode");
  return 0;
}
