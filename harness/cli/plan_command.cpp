#include "cli/plan_command.hpp"

#include <memory>
#include <string>

#include <fmt/format.h>

#include "analysis/plan.hpp"
#include "cli/exit_codes.hpp"
#include "cli/number_checks.hpp"
#include "results/results.hpp"

namespace procpool::harness {
namespace {

struct plan_cli {
  std::string results_path;
  plan_options options;
  std::string json_path;
  std::string markdown_path;
};

int run_plan(const plan_cli& cli) {
  auto results = read_results(cli.results_path);
  if (!results) {
    fmt::print(stderr, "procpool plan: {}\n", results.error().message);
    return exit_usage;
  }
  auto plan = plan_capacity(*results, cli.options);
  if (!plan) {
    fmt::print(stderr, "procpool plan: {}: {}\n", cli.results_path, plan.error().message);
    return exit_usage;
  }
  const std::string markdown = plan_markdown(*plan);
  fmt::print("{}", markdown);
  if (!cli.json_path.empty() && !write_file_atomically(cli.json_path, plan_json(*plan).dump(2) + "\n")) {
    fmt::print(stderr, "procpool plan: cannot write {}\n", cli.json_path);
    return exit_usage;
  }
  if (!cli.markdown_path.empty() && !write_file_atomically(cli.markdown_path, markdown)) {
    fmt::print(stderr, "procpool plan: cannot write {}\n", cli.markdown_path);
    return exit_usage;
  }
  return plan->recommended ? exit_ok : exit_failed;
}

}  // namespace

void add_plan_command(CLI::App& app, int& exit_code) {
  auto cli = std::make_shared<plan_cli>();
  auto* cmd = app.add_subcommand(
      "plan",
      "Size a pool from a measured sweep: the smallest number of workers that keeps the p99 "
      "response time within --p99-ms at --rate requests per second.\n"
      "Fits the Universal Scalability Law to throughput against the swept load.concurrency or "
      "pool.size (4 or more values, closed loop), measures the mean service time from the "
      "sampled requests, sizes the pool by Erlang C (M/M/c), and checks the size against the "
      "fitted curve, which must carry the rate with --headroom to spare. Prints the plan as "
      "Markdown.\n"
      "Exit 0 when a size is recommended, 1 when the target is beyond reach (the reasons are "
      "printed), 2 on a usage error (including results without a sweep of 4 or more points).");
  cmd->add_option("results", cli->results_path, "a results.json from procpool run or merge")->required();
  cmd->add_option("--rate", cli->options.rate, "arrivals to serve, requests per second")
      ->required()
      ->check(positive_number());
  cmd->add_option("--p99-ms", cli->options.p99_ms, "target p99 response time (wait + service), ms")
      ->required()
      ->check(positive_number());
  cmd->add_option("--headroom", cli->options.headroom,
                  "throughput margin: the fitted curve must carry rate x (1 + headroom) at the size")
      ->capture_default_str()
      ->check(non_negative_number());
  cmd->add_option("--axis", cli->options.axis,
                  "fit against this swept key: load.concurrency or pool.size (default: pool.size "
                  "when swept with 4 or more values)");
  cmd->add_option("--where", cli->options.where,
                  "KEY=VALUE: fit the cases with this value of another swept axis (repeatable; "
                  "default: the largest load.concurrency, load.model closed, else the first value)");
  cmd->add_option("--json", cli->json_path, "also write the plan as JSON to this file");
  cmd->add_option("--markdown", cli->markdown_path, "also write the Markdown to this file");
  cmd->callback([cli, &exit_code] { exit_code = run_plan(*cli); });
}

}  // namespace procpool::harness
