#include "cli/compare_command.hpp"

#include <algorithm>
#include <filesystem>
#include <memory>
#include <string>

#include <fmt/format.h>

#include "analysis/compare.hpp"
#include "analysis/history_changes.hpp"
#include "analysis/history_store.hpp"
#include "cli/exit_codes.hpp"
#include "cli/number_checks.hpp"
#include "results/results.hpp"

namespace procpool::harness {
namespace {

struct compare_cli {
  std::string base_path;
  std::string candidate_path;
  compare_options options;
  std::string markdown_path;
  std::string baseline_db;  // instead of BASE: the history's last runs
  std::size_t baseline_runs = 5;
};

result<std::vector<baseline_case>> history_baseline(const compare_cli& cli, std::size_t& runs_used) {
  auto history = read_history(cli.baseline_db);
  if (!history) return history.error();
  runs_used = std::min(cli.baseline_runs, history->runs.size());
  return baseline_of(history->runs, history->cases, cli.baseline_runs);
}

// NEW against the last runs of a history (procpool history add): each repetition stored
// there is one base sample.
int run_compare_to_history(const compare_cli& cli) {
  if (!cli.candidate_path.empty()) {
    fmt::print(stderr, "procpool compare: with --baseline-db, give only NEW\n");
    return exit_usage;
  }
  auto candidate = read_results(cli.base_path);
  if (!candidate) {
    fmt::print(stderr, "procpool compare: {}\n", candidate.error().message);
    return exit_usage;
  }
  std::size_t runs_used = 0;
  auto baseline = history_baseline(cli, runs_used);
  if (!baseline) {
    fmt::print(stderr, "procpool compare: {}\n", baseline.error().message);
    return exit_usage;
  }
  auto diff = compare_to_baseline(*baseline, *candidate, cli.options);
  if (!diff) {
    fmt::print(stderr, "procpool compare: {} ({} against {})\n", diff.error().message, cli.base_path, cli.baseline_db);
    return exit_usage;
  }
  fmt::print("BASE the last {} runs of {}\nNEW  {}\n\n{}", runs_used,
             cli.baseline_db, cli.base_path, comparison_text(*diff));
  if (!cli.markdown_path.empty() && !write_file_atomically(cli.markdown_path, comparison_markdown(*diff))) {
    fmt::print(stderr, "procpool compare: cannot write {}\n", cli.markdown_path);
    return exit_usage;
  }
  return diff->regressions() > 0 ? exit_failed : exit_ok;
}

int run_compare(const compare_cli& cli) {
  if (!cli.baseline_db.empty()) return run_compare_to_history(cli);
  if (cli.candidate_path.empty()) {
    fmt::print(stderr, "procpool compare: give BASE and NEW, or NEW and --baseline-db\n");
    return exit_usage;
  }
  auto base = read_results(cli.base_path);
  if (!base) {
    fmt::print(stderr, "procpool compare: {}\n", base.error().message);
    return exit_usage;
  }
  auto candidate = read_results(cli.candidate_path);
  if (!candidate) {
    fmt::print(stderr, "procpool compare: {}\n", candidate.error().message);
    return exit_usage;
  }
  auto diff = compare_results(*base, *candidate, cli.options);
  if (!diff) {
    fmt::print(stderr, "procpool compare: {} ({} against {})\n", diff.error().message, cli.base_path,
               cli.candidate_path);
    return exit_usage;
  }
  fmt::print("BASE {}\nNEW  {}\n\n{}", cli.base_path, cli.candidate_path, comparison_text(*diff));
  if (!cli.markdown_path.empty() && !write_file_atomically(cli.markdown_path, comparison_markdown(*diff))) {
    fmt::print(stderr, "procpool compare: cannot write {}\n", cli.markdown_path);
    return exit_usage;
  }
  return diff->regressions() > 0 ? exit_failed : exit_ok;
}

}  // namespace

void add_compare_command(CLI::App& app, int& exit_code) {
  auto cli = std::make_shared<compare_cli>();
  auto* cmd = app.add_subcommand(
      "compare",
      "Compare two runs' results.json (BASE, then NEW) and report regressions.\n"
      "Cases are matched by their swept values (params), whatever their repetition. Per "
      "matched case: when both sides have at least 3 repetitions, throughput, latency p50 and "
      "p99 are compared over the per-repetition figures; otherwise latency is compared over "
      "the sampled successful requests (submission to reply) and throughput is shown but not "
      "tested (requests of one run share its machine's load: for a gate, run 4 or more "
      "repetitions). Each test is a two-sided Mann-Whitney U test.\n"
      "A change is a regression when it is significant (p < alpha) and larger than the "
      "threshold in the bad direction (latency up, throughput down); an improvement in the "
      "good direction. Cases found in one run only are listed, not compared.\n"
      "With --baseline-db, give only NEW: the base samples are every repetition of each case "
      "in the history's last --baseline-runs runs (procpool history add).\n"
      "Exit 0 when there is no regression, 1 when there is one, 2 on a usage error (a file "
      "missing or not a results document, no case in common).");
  cmd->add_option("base", cli->base_path, "the baseline results.json (NEW with --baseline-db)")->required();
  cmd->add_option("new", cli->candidate_path, "the results.json to check against it");
  cmd->add_option("--baseline-db", cli->baseline_db, "compare NEW against this run history instead of BASE");
  cmd->add_option("--baseline-runs", cli->baseline_runs, "how many of the history's last runs make the base")
      ->capture_default_str()
      ->check(positive_number());
  cmd->add_option("--threshold", cli->options.threshold_pct,
                  "smallest change, in percent, that counts as a regression or improvement")
      ->capture_default_str()
      ->check(non_negative_number());
  cmd->add_option("--alpha", cli->options.alpha, "significance level of the tests")
      ->capture_default_str()
      ->check(CLI::Range(0.0, 1.0));
  cmd->add_option("--markdown", cli->markdown_path,
                  "also write the table as Markdown to this file (for a pull-request comment)");
  cmd->callback([cli, &exit_code] { exit_code = run_compare(*cli); });
}

}  // namespace procpool::harness
