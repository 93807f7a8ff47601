// The journal: cases read back as they were appended, a line cut short by a kill is ignored
// and cut off before the next append, a damaged line is named, and a resumed run that is not
// the same run is told where it differs. The merge of shards: every shard exactly once, and
// a warning for shards from unlike hosts.
#include "results/journal.hpp"
#include "results/results.hpp"
#include "support/scratch_dir.hpp"

#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <sstream>

#include <gtest/gtest.h>

namespace procpool::harness {
namespace {

using json = nlohmann::json;

class Journal : public testing::with_scratch_dir<> {
 protected:
  static case_record a_case(std::size_t index, double throughput) {
    case_record c;
    c.id = "load.concurrency=" + std::to_string(index) + "#r0";
    c.index = index;
    c.throughput_rps = throughput;
    c.outcomes = {{"ok", 10}, {"request_timeout", 2}};
    return c;
  }

  std::string text() const {
    std::ifstream in(dir_ / journal_file_name);
    std::stringstream s;
    s << in.rdbuf();
    return s.str();
  }

  const journal_header header_{.scenario = {{"name", "j"}, {"pool", {{"size", 2}}}},
                               .shard_index = 0,
                               .shard_count = 1,
                               .total_cases = 3,
                               .case_positions = {0, 1, 2},
                               .command = "procpool run j.toml"};
};

TEST_F(Journal, CasesReadBackAsTheyWereAppended) {
  auto writer = journal_writer::create(dir_, header_);
  ASSERT_TRUE(writer) << writer.error().message;
  ASSERT_TRUE(writer->append(a_case(0, 100.5)));
  ASSERT_TRUE(writer->append(a_case(2, 300)));
  auto read = read_journal(dir_);
  ASSERT_TRUE(read) << read.error().message;
  EXPECT_EQ(read->header.scenario, header_.scenario);
  EXPECT_EQ(read->header.command, header_.command);
  ASSERT_EQ(read->cases.size(), 2u);
  EXPECT_EQ(json(read->cases[0]), json(a_case(0, 100.5)));
  EXPECT_EQ(read->cases[1].index, 2u);
  EXPECT_EQ(read->complete_bytes, text().size());
}

TEST_F(Journal, ALineCutShortIsIgnoredAndCutOffBeforeTheNextAppend) {
  auto writer = journal_writer::create(dir_, header_);
  ASSERT_TRUE(writer && writer->append(a_case(0, 100)));
  const std::string whole = text();
  std::ofstream(dir_ / journal_file_name, std::ios::app) << R"({"id":"load.concurrency=1#r0","thro)";
  auto read = read_journal(dir_);
  ASSERT_TRUE(read) << read.error().message;
  EXPECT_EQ(read->cases.size(), 1u);
  EXPECT_EQ(read->complete_bytes, whole.size());

  auto resumed = journal_writer::reopen(dir_, *read);
  ASSERT_TRUE(resumed && resumed->append(a_case(1, 200)));
  auto again = read_journal(dir_);
  ASSERT_TRUE(again) << again.error().message;
  ASSERT_EQ(again->cases.size(), 2u);
  EXPECT_EQ(again->cases[1].throughput_rps, 200);
}

TEST_F(Journal, ADamagedLineIsNamedAndAnythingElseIsNotAJournal) {
  auto writer = journal_writer::create(dir_, header_);
  ASSERT_TRUE(writer && writer->append(a_case(0, 100)));
  std::ofstream(dir_ / journal_file_name, std::ios::app) << "not json\n";
  auto read = read_journal(dir_);
  ASSERT_FALSE(read);
  EXPECT_EQ(read.error().code, errc::invalid_options);
  EXPECT_NE(read.error().message.find("line 3"), std::string::npos) << read.error().message;

  std::ofstream(dir_ / journal_file_name) << R"({"schema":"procpool.results/1"})" << '\n';
  auto other = read_journal(dir_);
  ASSERT_FALSE(other);
  EXPECT_NE(other.error().message.find("not a procpool.journal/1 journal"), std::string::npos);

  std::filesystem::remove(dir_ / journal_file_name);
  auto missing = read_journal(dir_);
  ASSERT_FALSE(missing);
  EXPECT_EQ(missing.error().code, errc::io_error);
}

TEST_F(Journal, AnotherRunIsToldWhereItDiffers) {
  EXPECT_EQ(journal_mismatch(header_, header_), "");
  journal_header other = header_;
  other.scenario["pool"]["size"] = 3;
  EXPECT_EQ(journal_mismatch(header_, other), "pool.size: 3 here, 2 in the journal");
  other = header_;
  other.shard_index = 1;
  other.shard_count = 2;
  EXPECT_EQ(journal_mismatch(header_, other), "the shard: 1/2 here, 0/1 in the journal");
  other = header_;
  other.command = "another command line, same run";
  EXPECT_EQ(journal_mismatch(header_, other), "");
}

TEST_F(Journal, TextThatIsNotUtf8IsReplacedNotThrown) {
  journal_header latin1 = header_;
  latin1.scenario["description"] = "caf\xe9";
  auto writer = journal_writer::create(dir_, latin1);
  ASSERT_TRUE(writer) << writer.error().message;
  auto read = read_journal(dir_);
  ASSERT_TRUE(read) << read.error().message;
  EXPECT_EQ(read->header.scenario["description"], "caf\xef\xbf\xbd");
}

// ---- merge ----

json shard_doc(std::size_t index, std::size_t count, std::string kernel = "6.1") {
  return {{"schema", "procpool.results/1"},
          {"scenario", {{"name", "m"}}},
          {"environment", {{"cores", 2}, {"kernel", kernel}, {"cpu_model", "x"}, {"cpu_limit", nullptr}}},
          {"run", {{"shard", {{"index", index}, {"count", count}}}, {"total_cases", count}}},
          {"cases", {{{"id", "c" + std::to_string(index)}, {"index", index}}}}};
}

TEST(Merge, EveryShardExactlyOnceOrANamedError) {
  auto whole = merge_results({shard_doc(1, 3), shard_doc(0, 3), shard_doc(2, 3)});
  ASSERT_TRUE(whole) << whole.error().message;
  EXPECT_EQ((*whole)["cases"].size(), 3u);
  EXPECT_EQ((*whole)["partial"], false);
  EXPECT_FALSE(whole->contains("warnings"));

  auto missing = merge_results({shard_doc(0, 3), shard_doc(2, 3)});
  ASSERT_FALSE(missing);
  EXPECT_EQ(missing.error().message, "shard 1 of 3 is missing");
  auto twice = merge_results({shard_doc(0, 2), shard_doc(0, 2), shard_doc(1, 2)});
  ASSERT_FALSE(twice);
  EXPECT_EQ(twice.error().message, "shard 0 of 2 appears twice");
  auto cut = merge_results({shard_doc(0, 2), shard_doc(1, 3)});
  ASSERT_FALSE(cut);
  EXPECT_NE(cut.error().message.find("cut differently"), std::string::npos);
  json other = shard_doc(1, 2);
  other["scenario"]["name"] = "another";
  auto different = merge_results({shard_doc(0, 2), other});
  ASSERT_FALSE(different);
  EXPECT_NE(different.error().message.find("different scenarios"), std::string::npos);
}

// A document that says nothing readable about its shard counts as the whole run, shard 0 of 1.
TEST(Merge, AShardThatCannotBeReadIsTheWholeRun) {
  json no_run = shard_doc(0, 2);
  no_run.erase("run");
  json odd = shard_doc(1, 2);
  odd["run"]["shard"]["count"] = "two";
  auto merged = merge_results({no_run, odd});
  ASSERT_FALSE(merged);
  EXPECT_EQ(merged.error().message, "shard 1 of 1 does not exist");
}

TEST(Merge, ShardsFromUnlikeHostsAreMergedWithAWarning) {
  auto merged = merge_results({shard_doc(0, 2, "6.1"), shard_doc(1, 2, "5.10")});
  ASSERT_TRUE(merged) << merged.error().message;
  ASSERT_TRUE(merged->contains("warnings"));
  EXPECT_NE((*merged)["warnings"][0].get<std::string>().find("2 kinds of host"), std::string::npos);
}

}  // namespace
}  // namespace procpool::harness
