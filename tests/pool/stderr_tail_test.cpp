#include "procpool/wire/stderr_tail.hpp"

#include <gtest/gtest.h>

namespace procpool {
namespace {

TEST(StderrTail, KeepsTheLastLines) {
  stderr_tail tail(1024);
  tail.append("one\ntwo\nthr");
  tail.append("ee\n");
  EXPECT_EQ(tail.last_lines(2), "two\nthree");
  EXPECT_EQ(tail.last_lines(10), "one\ntwo\nthree");
  EXPECT_EQ(tail.last_lines(0), "");
}

TEST(StderrTail, StaysBoundedUnderAFlood) {
  stderr_tail tail(100);
  for (int i = 0; i < 100000; ++i) tail.append("line " + std::to_string(i) + "\n");
  EXPECT_EQ(tail.last_lines(1), "line 99999");
  EXPECT_LE(tail.last_lines(1000).size(), 100u);
  EXPECT_GT(tail.total_bytes(), 100000u);
}

TEST(StderrTail, AChunkLargerThanCapacityKeepsItsEnd) {
  stderr_tail tail(8);
  tail.append("abcdefghijkl\n");
  EXPECT_EQ(tail.last_lines(1), "fghijkl");
}

}  // namespace
}  // namespace procpool
