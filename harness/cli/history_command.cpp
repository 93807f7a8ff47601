#include "cli/history_command.hpp"

#include <memory>
#include <string>

#include <fmt/format.h>

#include "analysis/history_changes.hpp"
#include "analysis/history_store.hpp"
#include "cli/exit_codes.hpp"
#include "cli/number_checks.hpp"
#include "report_history.hpp"
#include "results/files.hpp"
#include "results/results.hpp"

namespace procpool::harness {
namespace {

struct history_cli {
  std::string db_path;
  std::string results_path;
  std::string label;
  std::string out_dir = "history-report";
  double alpha = 0.01;
  double min_change_pct = 5;
};

int fail(std::string_view command, const error& e) {
  fmt::print(stderr, "procpool history {}: {}\n", command, e.message);
  return exit_usage;
}

int run_add(const history_cli& cli) {
  auto doc = read_results(cli.results_path);
  if (!doc) return fail("add", doc.error());
  auto store = history_store::open(cli.db_path);
  if (!store) return fail("add", store.error());
  auto id = store->add_run(*doc, cli.label);
  if (!id) return fail("add", id.error());
  fmt::print("added {} to {} as run {}{}\n", cli.results_path, cli.db_path, *id,
             cli.label.empty() ? "" : fmt::format(" ({})", cli.label));
  return exit_ok;
}

result<history_changes> load_changes(const history_cli& cli, std::vector<history_case>& cases) {
  auto history = read_history(cli.db_path);
  if (!history) return history.error();
  cases = std::move(history->cases);
  return find_history_changes(std::move(history->runs), cases,
                              {.alpha = cli.alpha, .min_relative_change = cli.min_change_pct / 100});
}

int run_changes(const history_cli& cli) {
  std::vector<history_case> cases;
  auto changes = load_changes(cli, cases);
  if (!changes) return fail("changes", changes.error());
  fmt::print("{}", changes_text(*changes));
  return changes->failing() > 0 ? exit_failed : exit_ok;
}

int run_report(const history_cli& cli) {
  std::vector<history_case> cases;
  auto changes = load_changes(cli, cases);
  if (!changes) return fail("report", changes.error());
  const std::filesystem::path dir = cli.out_dir;
  if (auto ready = prepare_output_dir(dir / "charts"); !ready) return fail("report", ready.error());
  const auto pages = render_history_report(*changes, cases);
  for (const auto& [name, svg] : pages.charts) {
    if (auto w = write_file_atomically(dir / name, svg); !w) return fail("report", w.error());
  }
  if (auto w = write_file_atomically(dir / "history.md", pages.markdown); !w) return fail("report", w.error());
  if (auto w = write_file_atomically(dir / "history.html", pages.html); !w) return fail("report", w.error());
  fmt::print("wrote {} and {} ({} charts)\n", (dir / "history.html").string(), (dir / "history.md").string(),
             pages.charts.size());
  return exit_ok;
}

void add_detection_options(CLI::App* cmd, history_cli& cli) {
  cmd->add_option("--alpha", cli.alpha, "significance level of the permutation test")
      ->capture_default_str()
      ->check(CLI::Range(0.0, 1.0));
  cmd->add_option("--min-change", cli.min_change_pct,
                  "smallest shift of the median, in percent, that counts as a change point")
      ->capture_default_str()
      ->check(non_negative_number());
}

}  // namespace

void add_history_command(CLI::App& app, int& exit_code) {
  auto cli = std::make_shared<history_cli>();
  auto* history = app.add_subcommand(
      "history",
      "Keep runs in a SQLite history and find the runs where a case's figures shifted.");
  history->require_subcommand(1);

  auto* add = history->add_subcommand(
      "add", "Store a results.json in the history: its scenario, host and every case's figures.\n"
             "Exit 0 when stored, 2 on a usage error (a file missing or not a results document, a "
             "database that cannot be written).");
  add->add_option("results", cli->results_path, "the results.json to store")->required();
  add->add_option("--db", cli->db_path, "the history's SQLite file (created when missing)")->required();
  add->add_option("--label", cli->label, "a name for the run (a commit, a build number)");
  add->callback([cli, &exit_code] { exit_code = run_add(*cli); });

  auto* changes = history->add_subcommand(
      "changes",
      "List the change points of every case's throughput, latency p50 and p99 and timeout rate "
      "in run order (E-divisive means with a permutation test; harness/analysis/HISTORY.md).\n"
      "Exit 1 when a figure's latest change point is a regression (throughput down, latency or "
      "timeout rate up) that still holds in the newest run, 0 otherwise, 2 on a usage error.");
  changes->add_option("--db", cli->db_path, "the history's SQLite file")->required();
  add_detection_options(changes, *cli);
  changes->callback([cli, &exit_code] { exit_code = run_changes(*cli); });

  auto* report = history->add_subcommand(
      "report", "Write history.html (offline) and history.md with charts/*.svg: a trend chart per "
                "case and figure, change points marked.\nExit 0 when written, 2 on a usage error.");
  report->add_option("--db", cli->db_path, "the history's SQLite file")->required();
  report->add_option("--out", cli->out_dir, "the directory to write to")->capture_default_str();
  add_detection_options(report, *cli);
  report->callback([cli, &exit_code] { exit_code = run_report(*cli); });
}

}  // namespace procpool::harness
