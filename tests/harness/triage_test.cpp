// `procpool triage -- COMMAND` in its degraded environments: planted memory-, I/O- and
// CPU-sensitive commands (tests/harness/triage/) fail where they should and nowhere else, the
// report names the resource, and nothing an environment starts (hogs, the memory hog, the
// writer's scratch file, a cgroup) outlives a run, even an interrupted one.
#include <poll.h>
#include <unistd.h>

#include <csignal>
#include <filesystem>
#include <fstream>
#include <thread>

#include <fmt/format.h>
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "procpool/wire/worker_process.hpp"
#include "run/cpu_quota.hpp"
#include "run/pressure.hpp"
#include "support/process_audit.hpp"
#include "support/scratch_dir.hpp"

namespace procpool::harness {
namespace {

using namespace std::chrono_literals;
using json = nlohmann::json;
namespace fs = std::filesystem;

constexpr std::uint64_t mib = 1024 * 1024;
const std::string planted = std::string(PROCPOOL_SOURCE_DIR) + "/tests/harness/triage/";

std::uint64_t mem_available_mib() {
  std::ifstream in("/proc/meminfo");
  std::string key, unit;
  std::uint64_t kib = 0;
  while (in >> key >> kib >> unit) {
    if (key == "MemAvailable:") return kib / 1024;
  }
  return 0;
}

// Files the environments leave in `dir`, and cgroups they leave under this process's own.
std::vector<std::string> leftovers(const fs::path& dir) {
  std::vector<std::string> found;
  for (const auto& entry : fs::directory_iterator(dir)) {
    if (entry.path().filename().string().starts_with(".procpool-io-pressure-")) found.push_back(entry.path());
  }
  cpu_quota probe(50);
  if (!probe.available()) return found;
  for (const auto& entry : fs::directory_iterator(fs::path(probe.path()).parent_path())) {
    const auto name = entry.path().filename().string();
    if (name.starts_with("procpool-triage-") && entry.path() != probe.path()) found.push_back(entry.path());
  }
  return found;
}

const json* environment(const json& doc, const std::string& name) {
  for (const auto& e : doc["environments"]) {
    if (e["name"] == name) return &e;
  }
  return nullptr;
}

class TriageEnvironments : public testing::with_scratch_dir<testing::leak_checked_test> {
 protected:
  std::vector<std::string> triage_argv(const std::string& name, std::vector<std::string> command,
                                       std::vector<std::string> options = {}) {
    std::vector<std::string> argv = {PROCPOOL_CLI, "triage", "--quiet", "--memory-mb", memory_mb_, "--out", dir_ / name};
    argv.insert(argv.end(), options.begin(), options.end());
    argv.push_back("--");
    argv.insert(argv.end(), command.begin(), command.end());
    return argv;
  }

  // Four runs in each environment: enough for Fisher's test to call 4 of 4 against 0 of 4.
  json triage(const std::string& name, std::vector<std::string> command, std::vector<std::string> options = {},
              int runs = 4) {
    options.insert(options.end(), {"--runs", std::to_string(runs)});
    auto proc = worker_process::launch({.argv = triage_argv(name, command, options)});
    EXPECT_TRUE(proc) << proc.error().message;
    proc->close_stdin();
    auto status = proc->wait_for(300s);
    EXPECT_TRUE(status && status->code == 0);
    EXPECT_EQ(leftovers(dir_ / name), std::vector<std::string>{});
    std::ifstream in(dir_ / name / "triage.json");
    return json::parse(in, nullptr, /*allow_exceptions=*/false);
  }

  std::string memory_mb_ = "1024";
};

TEST(Pressure, MemoryIsHeldWhileTheScopeLastsAndBoundedByWhatIsAvailable) {
  EXPECT_EQ(bounded_memory_hog_bytes(0, 8192 * mib), 4096 * mib);          // half by default
  EXPECT_EQ(bounded_memory_hog_bytes(100000 * mib, 8192 * mib), 6144 * mib);  // a quarter stays free
  EXPECT_EQ(bounded_memory_hog_bytes(0, 400 * mib), 0u);                    // 512 MiB stays free
  const long before = testing::rss_kib(::getpid());
  {
    memory_pressure memory(128 * mib);
    ASSERT_EQ(memory.bytes(), 128 * mib);
    EXPECT_GE(testing::rss_kib(::getpid()) - before, 120 * 1024);
  }
  EXPECT_LT(testing::rss_kib(::getpid()) - before, 16 * 1024);
}

TEST(Pressure, TheWritersScratchFileIsGoneWithTheScope) {
  const fs::path dir = fs::temp_directory_path() / ("procpool-io-test-" + std::to_string(::getpid()));
  fs::create_directories(dir);
  {
    io_pressure io(dir);
    ASSERT_TRUE(io.running()) << io.error();
    std::this_thread::sleep_for(100ms);
    EXPECT_EQ(std::distance(fs::directory_iterator(dir), fs::directory_iterator()), 1);
  }
  EXPECT_TRUE(fs::is_empty(dir));
  fs::remove_all(dir);
  io_pressure nowhere("/proc/no-such-dir");
  EXPECT_FALSE(nowhere.running());
  EXPECT_NE(nowhere.error().find("/proc/no-such-dir"), std::string::npos);
}

TEST_F(TriageEnvironments, AMemorySensitiveCommandFailsUnderMemoryPressureOnly) {
  const std::uint64_t hog_mib = bounded_memory_hog_bytes(6144 * mib, available_memory_bytes()) / mib;
  if (hog_mib < 6144) GTEST_SKIP() << "too little memory for a 6 GiB hog";
  memory_mb_ = "6144";
  // Needs all but 2.5 GiB of what is available now: the hog takes some 5 GiB of MemAvailable
  // away, while other work on a shared machine (tests beside this one, builds) moves it by
  // up to a GiB or so.
  const std::string needed = std::to_string(mem_available_mib() - 2560);
  const json doc = triage("memory", {planted + "needs_memory.py", needed});
  EXPECT_EQ(doc["conclusion"], "environmental") << doc.dump(1);
  EXPECT_EQ((*environment(doc, "memory"))["failed"], 4);
  EXPECT_EQ(doc["sensitive_to"], json::array({"memory"})) << doc.dump(1);
  EXPECT_EQ(doc["resource_finding"], "fails under memory pressure only: memory-sensitive");
}

TEST_F(TriageEnvironments, AnIoSensitiveCommandFailsUnderIoPressure) {
  if (!fs::exists("/proc/pressure/io")) GTEST_SKIP() << "no /proc/pressure/io: the planted command cannot tell";
  // Five runs: the writer's stalls vary, and 4 of 5 against none is still p < 0.05.
  const json doc = triage("io", {planted + "needs_quiet_disk.py", dir_.string()}, {}, 5);
  EXPECT_EQ(doc["conclusion"], "environmental") << doc.dump(1);
  EXPECT_GE((*environment(doc, "io"))["failed"].get<int>(), 4) << doc.dump(1);
  // A stray stall elsewhere (another test's I/O) may fail a run, not an environment.
  const auto& sensitive = doc["sensitive_to"];
  EXPECT_NE(std::find(sensitive.begin(), sensitive.end(), "io"), sensitive.end()) << doc.dump(1);
  EXPECT_EQ(std::find(sensitive.begin(), sensitive.end(), "memory"), sensitive.end()) << doc.dump(1);
}

TEST_F(TriageEnvironments, ACpuOnlyCommandIsLeftAloneByMemoryAndIoPressure) {
  if (std::thread::hardware_concurrency() < 2) GTEST_SKIP() << "needs two CPUs to hold a command to one";
  const json doc = triage("cpu", {"/bin/sh", "-c", "test \"$(nproc)\" -gt 1"});
  EXPECT_EQ((*environment(doc, "memory"))["failed"], 0);
  EXPECT_EQ((*environment(doc, "io"))["failed"], 0);
  EXPECT_EQ((*environment(doc, "one-cpu"))["failed"], 4);
  EXPECT_EQ(doc["sensitive_to"], json::array({"cpu"})) << doc.dump(1);
  EXPECT_EQ(doc["resource_finding"], "fails under CPU contention only: CPU-sensitive");
  // A cgroup quota leaves the CPU count alone; the fallback to one CPU does not, and says why.
  const json& quota = *environment(doc, "quota");
  const bool fell_back = quota["description"].get<std::string>().find("cannot be written") != std::string::npos;
  EXPECT_EQ(quota["failed"], fell_back ? 4 : 0) << quota.dump();
}

TEST_F(TriageEnvironments, ACommandShortOfCpuFailsUnderTheCgroupQuota) {
  if (cpu_quota probe(5); !probe.available()) GTEST_SKIP() << "cpu.max cannot be written here: " << probe.why_not();
  const json doc = triage("quota", {planted + "needs_cpu_share.py", "0.2"}, {"--cpu-quota", "5"});
  EXPECT_EQ((*environment(doc, "quota"))["failed"], 4) << doc.dump(1);
  EXPECT_EQ((*environment(doc, "memory"))["failed"], 0) << doc.dump(1);
  const auto& sensitive = doc["sensitive_to"];
  EXPECT_NE(std::find(sensitive.begin(), sensitive.end(), "cpu"), sensitive.end()) << doc.dump(1);
}

// Reads the triage's stderr until `wanted`, then interrupts it with SIGINT.
int interrupt_after(worker_process& proc, std::string_view wanted) {
  std::string text;
  char c;
  pollfd p{.fd = proc.stderr_fd(), .events = POLLIN, .revents = 0};
  while (text.find(wanted) == std::string::npos && ::poll(&p, 1, 60000) == 1 && ::read(proc.stderr_fd(), &c, 1) == 1) {
    text += c;
  }
  EXPECT_NE(text.find(wanted), std::string::npos) << text;
  ::kill(proc.pid(), SIGINT);
  auto status = proc.wait_for(60s);
  return status ? status->code : -1;
}

TEST_F(TriageEnvironments, AnInterruptedTriageLeavesNoHogFileOrCgroupBehind) {
  // The line of the environment before is printed as the next one starts: the SIGINT lands in it.
  for (const auto& [before, name] : {std::pair{"one-cpu", "in-memory"}, std::pair{"memory", "in-io"},
                                     std::pair{"io", "in-quota"}}) {
    auto argv = triage_argv(name, {"/bin/sleep", "0.3"}, {"--runs", "50"});
    argv.erase(std::find(argv.begin(), argv.end(), "--quiet"));
    auto proc = worker_process::launch({.argv = argv});
    ASSERT_TRUE(proc) << proc.error().message;
    proc->close_stdin();
    EXPECT_EQ(interrupt_after(*proc, fmt::format("{:<10} run 1/", before)), 1) << name;
    EXPECT_EQ(leftovers(dir_ / name), std::vector<std::string>{}) << name;
    EXPECT_EQ(testing::reap_leftovers(2000ms), std::vector<std::string>{}) << name;
  }
}

}  // namespace
}  // namespace procpool::harness
