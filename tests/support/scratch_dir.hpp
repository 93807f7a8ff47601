// Test support: a fresh directory for each test, removed with everything in it when the test
// ends, pass or fail, so that no test leaves files behind or sees another's.
//
//   class Journal : public procpool::testing::with_scratch_dir<> {};
//   TEST_F(Journal, X) { std::ofstream(dir_ / "a.toml") << "..."; }
//
// The directory is <tmp>/procpool-<suite>-<test>-<pid>. A fixture that also needs the process
// audit derives from with_scratch_dir<leak_checked_test>.
#pragma once

#include <unistd.h>

#include <filesystem>
#include <string>

#include <gtest/gtest.h>

namespace procpool::testing {

template <class Base = ::testing::Test>
class with_scratch_dir : public Base {
 protected:
  void SetUp() override {
    Base::SetUp();
    const auto* test = ::testing::UnitTest::GetInstance()->current_test_info();
    dir_ = std::filesystem::temp_directory_path() / ("procpool-" + std::string(test->test_suite_name()) + "-" +
                                                     test->name() + "-" + std::to_string(::getpid()));
    std::filesystem::remove_all(dir_);
    std::filesystem::create_directories(dir_);
  }
  void TearDown() override {
    std::filesystem::remove_all(dir_);
    Base::TearDown();
  }

  std::filesystem::path dir_;
};

}  // namespace procpool::testing
