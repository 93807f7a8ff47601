#include <gtest/gtest.h>

#include "process_audit.hpp"

int main(int argc, char** argv) {
  ::testing::InitGoogleTest(&argc, argv);
  procpool::testing::become_subreaper();
  return RUN_ALL_TESTS();
}
