#include "compare.hpp"

namespace procpool::harness {

void add_compare_command(CLI::App& app, int& exit_code) {
  (void)app;
  (void)exit_code;
}

}  // namespace procpool::harness
