// The smaps_rollup reader: on the test process itself, on text, and on a pid that is gone.
#include <unistd.h>

#include <gtest/gtest.h>

#include <vector>

#include "procpool/smaps_rollup.hpp"

namespace procpool {
namespace {

TEST(SmapsRollup, ReadsThisProcessWithUssAndPssWithinRss) {
  if (::access("/proc/self/smaps_rollup", R_OK) != 0) GTEST_SKIP() << "no smaps_rollup (Linux < 4.14)";
  // 8 MiB written here are private and resident: they must show in the USS.
  std::vector<char> touched(8 << 20, 1);
  const auto m = read_smaps_rollup(::getpid());
  ASSERT_TRUE(m) << m.error();
  EXPECT_GT(m->rss_kib, 0u);
  EXPECT_GE(m->uss_kib, 8u << 10);
  EXPECT_LE(m->uss_kib, m->pss_kib);
  EXPECT_LE(m->pss_kib, m->rss_kib);
  EXPECT_EQ(touched[touched.size() - 1], 1);
}

TEST(SmapsRollup, ParsesTheFiguresAndAddsThePrivateLines) {
  const auto m = parse_smaps_rollup(
      "55d0c8e6b000-7ffd5b1f2000 ---p 00000000 00:00 0                          [rollup]\n"
      "Rss:                4096 kB\n"
      "Pss:                2048 kB\n"
      "Pss_Anon:            512 kB\n"
      "Shared_Clean:       1024 kB\n"
      "Private_Clean:       300 kB\n"
      "Private_Dirty:       700 kB\n");
  ASSERT_TRUE(m) << m.error();
  EXPECT_EQ(m->rss_kib, 4096u);
  EXPECT_EQ(m->pss_kib, 2048u);  // not Pss_Anon
  EXPECT_EQ(m->uss_kib, 1000u);
}

TEST(SmapsRollup, MissingFiguresAndMissingProcessesAreErrorsThatSayWhy) {
  const auto empty = parse_smaps_rollup("");
  ASSERT_FALSE(empty);
  EXPECT_NE(empty.error().find("lacks"), std::string::npos) << empty.error();
  // Above the kernel's pid_max (at most 2^22): never a live process.
  const auto gone = read_smaps_rollup(1 << 23);
  ASSERT_FALSE(gone);
  EXPECT_NE(gone.error().find("/proc/8388608/smaps_rollup"), std::string::npos) << gone.error();
}

}  // namespace
}  // namespace procpool
