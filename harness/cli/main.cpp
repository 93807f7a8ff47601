// procpool: the command line of the harness.
#include <CLI/CLI.hpp>

#include <exception>
#include <string>
#include <vector>

#include <fmt/format.h>
#include <fmt/ranges.h>

#include "cli/compare_command.hpp"
#include "cli/driver_check_command.hpp"
#include "cli/history_command.hpp"
#include "cli/plan_command.hpp"
#include "cli/report_command.hpp"
#include "cli/roundtrip_command.hpp"
#include "cli/run_command.hpp"
#include "cli/triage_command.hpp"

namespace {

// CLI11 takes an unknown word for a stray argument and answers "A subcommand is required":
// name it as what it is, and the commands there are.
bool is_unknown_command(CLI::App& app, int argc, char** argv) {
  if (argc < 2 || argv[1][0] == '-') return false;
  std::vector<std::string> names;
  for (const auto* sub : app.get_subcommands({})) {
    if (sub->get_name() == argv[1]) return false;
    names.push_back(sub->get_name());
  }
  fmt::print(stderr, "procpool: unknown command '{}'; the commands are: {}\nRun with --help for more information.\n",
             argv[1], fmt::join(names, ", "));
  return true;
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"procpool: a process pool and the harness that measures it"};
  app.require_subcommand(1);
  int exit_code = 0;
  procpool::harness::add_run_command(app, exit_code);
  procpool::harness::add_merge_command(app, exit_code);
  procpool::harness::add_triage_command(app, exit_code);
  procpool::harness::add_compare_command(app, exit_code);
  procpool::harness::add_plan_command(app, exit_code);
  procpool::harness::add_report_command(app, exit_code);
  procpool::harness::add_roundtrip_command(app, exit_code);
  procpool::harness::add_history_command(app, exit_code);
  procpool::harness::add_driver_check_command(app, exit_code);
  if (is_unknown_command(app, argc, argv)) return procpool::harness::exit_usage;
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    // Usage errors exit 2, as every procpool command does; --help exits 0.
    const int code = app.exit(e);
    return code == 0 ? procpool::harness::exit_ok : procpool::harness::exit_usage;
  } catch (const std::exception& e) {
    fmt::print(stderr, "procpool: internal error: {}\n", e.what());
    return procpool::harness::exit_internal;
  }
  return exit_code;
}
