#include "plan.hpp"

namespace procpool::harness {

void add_plan_command(CLI::App& app, int& exit_code) {
  (void)app;
  (void)exit_code;
}

}  // namespace procpool::harness
