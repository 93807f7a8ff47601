// The fake worker answering pipelined requests: several written at once before any reply is
// read (pool/ASYNC.md, section 7). It answers them in order, gathers the replies of a batch
// into two writes, and still lets every reply out before anything that waits or ends it.
#include <poll.h>

#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "procpool/wire/file_io.hpp"
#include "procpool/wire/frame.hpp"
#include "procpool/wire/message.hpp"
#include "procpool/wire/worker_connection.hpp"
#include "support/process_audit.hpp"
#include "support/workers.hpp"

namespace procpool {
namespace {

using namespace std::chrono_literals;
using json = nlohmann::json;

constexpr auto patience = 10s;  // a bound for hangs, never a synchronisation

class FakeWorkerPipelining : public testing::leak_checked_test {
 protected:
  worker_connection ready(std::vector<std::string> flags = {}, json knobs = json::object()) {
    auto conn = worker_connection::start(testing::worker_launch(testing::worker_kind::fake, flags));
    EXPECT_TRUE(conn) << conn.error().message;
    auto hello = conn->handshake(knobs, deadline_after(patience));
    EXPECT_TRUE(hello) << hello.error().message;
    return std::move(*conn);
  }

  // Every request's frame in one write, before any reply is read.
  static void write_batch(worker_connection& conn, const std::vector<request>& batch) {
    std::string frames;
    for (const auto& r : batch) frames += encode_frame(encode(r));
    std::string_view pending = frames;
    while (!pending.empty()) {
      auto written = write_all(conn.process().stdin_fd(), pending);
      if (written) break;
      ASSERT_TRUE(would_block(written.error())) << written.error().message();
      pollfd p{conn.process().stdin_fd(), POLLOUT, 0};
      ASSERT_EQ(::poll(&p, 1, 10'000), 1);
    }
  }

  static std::vector<request> echoes(std::uint64_t first, std::uint64_t count) {
    std::vector<request> batch;
    for (std::uint64_t id = first; id < first + count; ++id) {
      batch.push_back({.id = id, .command = "echo", .args = {{"n", id}}});
    }
    return batch;
  }

  static result<response> next_reply(worker_connection& conn) {
    auto payload = conn.receive_payload(deadline_after(patience));
    if (!payload) return std::move(payload).error();
    return decode_response(*payload);
  }
};

TEST_F(FakeWorkerPipelining, AThousandRequestsInOneWriteAreAnsweredInOrder) {
  for (const bool flush_each : {false, true}) {
    auto conn = ready(flush_each ? std::vector<std::string>{"--flush-each"} : std::vector<std::string>{});
    write_batch(conn, echoes(1, 1000));
    for (std::uint64_t id = 1; id <= 1000; ++id) {
      auto reply = next_reply(conn);
      ASSERT_TRUE(reply) << reply.error().message;
      ASSERT_EQ(reply->id, id);
      EXPECT_EQ(reply->result, (json{{"n", id}}));
      EXPECT_LE(reply->t_recv_ns, reply->t_done_ns);
    }
  }
}

// A crash due on the 11th request: the ten replies before it reach the reader, then EOF.
TEST_F(FakeWorkerPipelining, RepliesBeforeACrashMidBatchAreDelivered) {
  auto conn = ready({}, {{"crash_after", 10}});
  write_batch(conn, echoes(1, 50));
  for (std::uint64_t id = 1; id <= 10; ++id) {
    auto reply = next_reply(conn);
    ASSERT_TRUE(reply) << reply.error().message;
    EXPECT_EQ(reply->id, id);
  }
  auto after = next_reply(conn);
  ASSERT_FALSE(after);
  EXPECT_EQ(after.error().code, errc::worker_crashed) << after.error().message;
}

// The reply before a 300 ms sleep is written before the sleep starts, not with the batch's
// later replies: it reaches the reader before the sleep ends on the worker's own clock.
TEST_F(FakeWorkerPipelining, AReplyDoesNotWaitBehindTheNextRequestsServiceTime) {
  auto conn = ready();
  write_batch(conn, {{.id = 1, .command = "echo", .args = {{"n", 1}}},
                     {.id = 2, .command = "sleep", .args = {{"ms", 300}}},
                     {.id = 3, .command = "echo", .args = {{"n", 3}}}});
  auto first = next_reply(conn);
  const std::int64_t t_first_read = monotonic_ns();
  ASSERT_TRUE(first) << first.error().message;
  auto slept = next_reply(conn);
  ASSERT_TRUE(slept) << slept.error().message;
  EXPECT_EQ(slept->id, 2u);
  EXPECT_LT(t_first_read, slept->t_done_ns) << "reply 1 was held until the sleep ended";
  auto last = next_reply(conn);
  ASSERT_TRUE(last) << last.error().message;
  EXPECT_EQ(last->id, 3u);
}

// A batch of four is answered in two writes: the first two replies are out before the third
// request is done, so that a pool can write the next requests while the worker serves the
// rest. Each request grows the worker by 128 MiB (touched page by page), which takes long
// enough to see, and never triggers a flush of its own as a service time would.
TEST_F(FakeWorkerPipelining, ABatchIsAnsweredInTwoWritesFromItsMiddle) {
  auto conn = ready({}, {{"memory_growth_kb", 128 * 1024}});
  write_batch(conn, echoes(1, 4));
  auto first = next_reply(conn);
  const std::int64_t t_first_read = monotonic_ns();
  ASSERT_TRUE(first) << first.error().message;
  std::vector<response> rest;
  for (int i = 0; i < 3; ++i) {
    auto reply = next_reply(conn);
    ASSERT_TRUE(reply) << reply.error().message;
    rest.push_back(std::move(*reply));
  }
  EXPECT_EQ(rest[1].id, 3u);
  EXPECT_LT(t_first_read, rest[1].t_done_ns) << "reply 1 was held until the batch was done";
}

// Garbage drawn for every request: the first frame out is the garbage, in its place.
TEST_F(FakeWorkerPipelining, AFaultFrameKeepsItsPlaceInTheBatch) {
  auto conn = ready({}, {{"garbage_probability", 1.0}});
  write_batch(conn, echoes(1, 5));
  auto reply = next_reply(conn);
  ASSERT_FALSE(reply);
  EXPECT_EQ(reply.error().code, errc::protocol_error) << reply.error().message;
}

}  // namespace
}  // namespace procpool
