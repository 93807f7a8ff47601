// write_file_atomically: whole files or none, no temporary left behind, io_error naming the
// file when it cannot write; prepare_output_dir: refuses an output before any work;
// write_results: a results.json whatever text the document holds.
#include "results/files.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>

#include <gtest/gtest.h>

#include "procpool/wire/file_io.hpp"
#include "results/results.hpp"
#include "support/scratch_dir.hpp"

namespace procpool::harness {
namespace {

class WriteFileAtomically : public testing::with_scratch_dir<> {
 protected:
  static std::string read(const std::filesystem::path& path) {
    std::ifstream in(path, std::ios::binary);
    std::stringstream ss;
    ss << in.rdbuf();
    return ss.str();
  }
};

TEST_F(WriteFileAtomically, WritesAndReplacesWholeFilesLeavingNoTemporary) {
  const auto path = dir_ / "note.md";
  ASSERT_TRUE(write_file_atomically(path, "first version, longer than the second\n"));
  EXPECT_EQ(read(path), "first version, longer than the second\n");
  ASSERT_TRUE(write_file_atomically(path, "second\n"));
  EXPECT_EQ(read(path), "second\n");
  std::size_t files = 0;
  for (const auto& entry : std::filesystem::directory_iterator(dir_)) {
    EXPECT_NE(entry.path().extension(), ".tmp") << "a temporary file left behind";
    ++files;
  }
  EXPECT_EQ(files, 1u);
}

TEST_F(WriteFileAtomically, AMissingDirectoryIsAnIoErrorNamingTheFile) {
  const auto path = dir_ / "no-such-dir" / "note.md";
  auto written = write_file_atomically(path, "x");
  ASSERT_FALSE(written);
  EXPECT_EQ(written.error().code, errc::io_error);
  EXPECT_NE(written.error().message.find("no-such-dir"), std::string::npos)
      << written.error().message;
}

// A FIFO stands for /dev/stdout: written to, never renamed over.
TEST_F(WriteFileAtomically, WritesInPlaceWhatCannotBeReplaced) {
  const auto path = dir_ / "fifo";
  ASSERT_EQ(::mkfifo(path.c_str(), 0600), 0);
  // Opened for reading first, so that the writer's open does not wait for a reader.
  const unique_fd reader(::open(path.c_str(), O_RDONLY | O_NONBLOCK | O_CLOEXEC));
  ASSERT_TRUE(reader);
  ASSERT_TRUE(write_file_atomically(path, "through the fifo"));
  std::string out;
  ASSERT_TRUE(read_all(reader.get(), out));
  EXPECT_EQ(out, "through the fifo");
  EXPECT_TRUE(std::filesystem::is_fifo(path));
}

TEST_F(WriteFileAtomically, PrepareOutputDirCreatesTheDirectoryAndLeavesNothingInIt) {
  const auto out = dir_ / "a" / "b";
  ASSERT_TRUE(prepare_output_dir(out));
  EXPECT_TRUE(std::filesystem::is_directory(out));
  EXPECT_TRUE(std::filesystem::is_empty(out)) << "the write check left its probe behind";
}

// /proc refuses new entries even to root, who may write anywhere else.
TEST_F(WriteFileAtomically, PrepareOutputDirRefusesWhatCannotBeWrittenNamingIt) {
  for (const std::filesystem::path& out : {std::filesystem::path("/proc/procpool-no-such-dir"), dir_ / "file" / "x"}) {
    std::ofstream(dir_ / "file") << "a file, not a directory";
    auto ready = prepare_output_dir(out);
    ASSERT_FALSE(ready) << out;
    EXPECT_EQ(ready.error().code, errc::io_error);
    EXPECT_NE(ready.error().message.find(out.string()), std::string::npos) << ready.error().message;
  }
}

using WriteResults = WriteFileAtomically;

// Text that is not UTF-8 makes json's dump() throw: written as U+FFFD instead, so that the run
// is not lost at its very end.
TEST_F(WriteResults, TextThatIsNotUtf8IsWrittenAsReplacementCharacters) {
  const nlohmann::json doc = {{"description", "caf\xe9"}, {"command_line", "run \xff.toml"}};
  result<std::filesystem::path> written = std::filesystem::path();
  ASSERT_NO_THROW(written = write_results(dir_, doc));
  ASSERT_TRUE(written) << written.error().message;
  const auto back = nlohmann::json::parse(read(*written));
  EXPECT_EQ(back["description"], "caf\xef\xbf\xbd");
  EXPECT_EQ(back["command_line"], "run \xef\xbf\xbd.toml");
}

}  // namespace
}  // namespace procpool::harness
