#include "procpool/wire/frame.hpp"

#include <gtest/gtest.h>

#include <atomic>
#include <cstdlib>
#include <new>
#include <string>
#include <vector>

// Records the largest single allocation, to prove that an oversize length is rejected before
// any buffer is sized for it.
namespace {
std::atomic<std::size_t> largest_allocation{0};
}  // namespace

// GCC pairs the replaced new with free() across inlining and warns; the pair is consistent.
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wmismatched-new-delete"
void* operator new(std::size_t n) {
  std::size_t seen = largest_allocation.load();
  while (n > seen && !largest_allocation.compare_exchange_weak(seen, n)) {
  }
  if (void* p = std::malloc(n ? n : 1)) return p;
  throw std::bad_alloc();
}
void operator delete(void* p) noexcept { std::free(p); }
void operator delete(void* p, std::size_t) noexcept { std::free(p); }
#pragma GCC diagnostic pop

namespace procpool {
namespace {

// Every complete payload, through next(), or through next_view() with each view copied
// before the next call, as its contract asks.
std::vector<std::string> drain(frame_decoder& decoder, bool views = false) {
  std::vector<std::string> out;
  auto take = [&](auto frame) {
    EXPECT_TRUE(frame.has_value()) << frame.error().message;
    if (!frame || !*frame) return false;
    out.emplace_back(**frame);
    return true;
  };
  while (views ? take(decoder.next_view()) : take(decoder.next())) {
  }
  return out;
}

const std::vector<std::string> sample_payloads = {
    "{\"id\":1}", "", std::string(1000, 'a'), std::string("\0\x01\xff", 3), "x"};

std::string sample_stream() {
  std::string stream;
  for (const auto& p : sample_payloads) append_frame(stream, p);
  return stream;
}

TEST(Frame, EncodesBigEndianLengthThenPayload) {
  EXPECT_EQ(encode_frame("abc"), std::string("\0\0\0\x03" "abc", 7));
  EXPECT_EQ(encode_frame(std::string(0x010203, 'z')).substr(0, 4), std::string("\0\x01\x02\x03", 4));
}

TEST(Frame, WrittenInPlaceIsTheFrameOfWhatWasAppendedAfterTheHeader) {
  for (const auto& payload : sample_payloads) {
    std::string out = "before";
    const std::size_t header = begin_frame(out);
    out += payload;
    end_frame(out, header);
    EXPECT_EQ(out, "before" + encode_frame(payload));
  }
}

// The buffer is emptied once every frame in it is taken, but only at the next call: the view
// of the last frame must still read its bytes, and the next frame must not be mixed with them.
TEST(FrameDecoder, TheLastFramesViewOutlivesItsBufferUntilTheNextCall) {
  frame_decoder decoder;
  decoder.feed(encode_frame("first"));
  auto first = decoder.next_view();
  ASSERT_TRUE(first && *first);
  EXPECT_FALSE(decoder.has_partial_frame());
  EXPECT_EQ(**first, "first");
  decoder.feed(encode_frame("second"));
  auto second = decoder.next_view();
  ASSERT_TRUE(second && *second);
  EXPECT_EQ(**second, "second");
  auto none = decoder.next_view();
  ASSERT_TRUE(none);
  EXPECT_FALSE(*none);
}

TEST(FrameDecoder, RoundTripsManyFramesFedAtOnce) {
  frame_decoder decoder;
  decoder.feed(sample_stream());
  EXPECT_EQ(drain(decoder), sample_payloads);
  EXPECT_FALSE(decoder.has_partial_frame());
}

// Through next() and through next_view().
TEST(FrameDecoder, AcceptsEverySplitOfTheStream) {
  const std::string stream = sample_stream();
  for (const bool views : {false, true}) {
    for (std::size_t cut = 0; cut <= stream.size(); ++cut) {
      frame_decoder decoder;
      decoder.feed(std::string_view(stream).substr(0, cut));
      auto got = drain(decoder, views);
      decoder.feed(std::string_view(stream).substr(cut));
      auto rest = drain(decoder, views);
      got.insert(got.end(), rest.begin(), rest.end());
      ASSERT_EQ(got, sample_payloads) << "split at byte " << cut;
    }
  }
}

TEST(FrameDecoder, AcceptsOneByteAtATime) {
  const std::string stream = sample_stream();
  frame_decoder decoder;
  std::vector<std::string> got;
  for (char c : stream) {
    decoder.feed(std::string_view(&c, 1));
    auto some = drain(decoder);
    got.insert(got.end(), some.begin(), some.end());
  }
  EXPECT_EQ(got, sample_payloads);
}

TEST(FrameDecoder, ZeroLengthPayloadIsAFrame) {
  frame_decoder decoder;
  decoder.feed(std::string("\0\0\0\0", 4));
  auto frame = decoder.next();
  ASSERT_TRUE(frame);
  ASSERT_TRUE(*frame);
  EXPECT_EQ(**frame, "");
}

TEST(FrameDecoder, AcceptsExactlyTheMaximum) {
  frame_decoder decoder(64);
  decoder.feed(encode_frame(std::string(64, 'm')));
  auto frame = decoder.next();
  ASSERT_TRUE(frame);
  ASSERT_TRUE(*frame);
  EXPECT_EQ((*frame)->size(), 64u);
}

TEST(FrameDecoder, RejectsOneByteOverTheMaximum) {
  frame_decoder decoder(64);
  decoder.feed(encode_frame(std::string(65, 'm')));
  auto frame = decoder.next();
  ASSERT_FALSE(frame);
  EXPECT_EQ(frame.error().code, errc::protocol_error);
  EXPECT_NE(frame.error().message.find("exceeds the maximum"), std::string::npos);
}

TEST(FrameDecoder, RejectsOversizeLengthWithoutAllocatingIt) {
  frame_decoder decoder;  // 16 MiB maximum
  largest_allocation = 0;
  decoder.feed("\xff\xff\xff\xf0");
  auto frame = decoder.next();
  ASSERT_FALSE(frame);
  EXPECT_LT(largest_allocation.load(), std::size_t{1} << 20);
  // The failure is permanent: later bytes are not trusted to resynchronise the stream.
  decoder.feed(encode_frame("ok"));
  EXPECT_FALSE(decoder.next());
}

TEST(FrameDecoder, TruncatedStreamAtEveryByteLeavesAPartialFrame) {
  const std::string frame = encode_frame("{\"id\":7,\"ok\":true}");
  for (std::size_t cut = 1; cut < frame.size(); ++cut) {
    frame_decoder decoder;
    decoder.feed(std::string_view(frame).substr(0, cut));
    auto next = decoder.next();
    ASSERT_TRUE(next);
    EXPECT_FALSE(*next) << "cut at " << cut;
    EXPECT_TRUE(decoder.has_partial_frame()) << "cut at " << cut;
  }
}

}  // namespace
}  // namespace procpool
