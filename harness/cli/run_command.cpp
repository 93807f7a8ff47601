#include "cli/run_command.hpp"

#include <unistd.h>

#include <atomic>
#include <chrono>
#include <csignal>
#include <ctime>
#include <memory>

#include <fmt/format.h>

#include "diagnosis/diagnosis.hpp"
#include "reports.hpp"
#include "results/results.hpp"
#include "run/runner.hpp"
#include "scenario/scenario.hpp"

namespace procpool::harness {
namespace {

using json = nlohmann::json;

std::atomic<bool> interrupted{false};
static_assert(std::atomic<bool>::is_always_lock_free, "set from a signal handler");

void on_interrupt(int) { interrupted = true; }

struct run_options {
  std::string scenario_path;
  std::string out_dir;
  std::string shard = "0/1";
  std::vector<std::string> overrides;
  bool quiet = false;
};

// One line per case; on a terminal, a live line rewritten in place.
class progress {
 public:
  progress(std::size_t total, bool quiet) : total_(total), quiet_(quiet), live_(::isatty(STDERR_FILENO)) {}

  void case_done(std::size_t done, const case_record& c) {
    timeouts_ += c.timeouts();
    if (quiet_) return;
    const double elapsed_s = std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count();
    const double eta_s = done ? elapsed_s / done * (total_ - done) : 0;
    if (live_) {
      fmt::print(stderr, "\r\033[K[{}/{}] ETA {:.0f}s, {} timeouts so far; last: {}", done, total_,
                 eta_s, timeouts_, c.id);
      if (done == total_) fmt::print(stderr, "\n");
    } else {
      fmt::print(stderr, "case {}/{} {}: {:.0f} req/s, p50 {} us, p99 {} us, {} timeouts\n", done,
                 total_, c.id, c.throughput_rps, c.latency_us.p50, c.latency_us.p99, c.timeouts());
    }
  }

 private:
  std::size_t total_;
  bool quiet_;
  bool live_;
  std::uint64_t timeouts_ = 0;
  std::chrono::steady_clock::time_point start_ = std::chrono::steady_clock::now();
};

int run(const run_options& opts, const std::string& command_line) {
  auto file = load_scenario(opts.scenario_path, opts.overrides);
  if (!file) {
    fmt::print(stderr, "procpool run: {}\n", file.error().describe());
    return exit_usage;
  }
  auto shard = parse_shard(opts.shard);
  if (!shard) {
    fmt::print(stderr, "procpool run: {}\n", shard.error().describe());
    return exit_usage;
  }
  const auto all_cases = expand(*file);
  const auto cases = shard_cases(all_cases, shard->index, shard->count);
  const std::string out_dir = opts.out_dir.empty() ? default_out_dir(file->scenario.name) : opts.out_dir;

  json results = new_results(file->scenario, {.command_line = command_line,
                                              .shard_index = shard->index,
                                              .shard_count = shard->count,
                                              .total_cases = all_cases.size()});
  struct sigaction action {};
  action.sa_handler = on_interrupt;
  ::sigaction(SIGINT, &action, nullptr);
  ::sigaction(SIGTERM, &action, nullptr);

  if (!opts.quiet) {
    fmt::print(stderr, "procpool run: {} ({} cases{}), results in {}\n", file->scenario.name,
               cases.size(),
               shard->count > 1 ? fmt::format(", shard {}/{}", shard->index, shard->count) : "",
               out_dir);
  }
  progress bar(cases.size(), opts.quiet);
  for (std::size_t i = 0; i < cases.size() && !interrupted; ++i) {
    const std::size_t index = i * shard->count + shard->index;  // position in the full run
    case_record c = run_case(cases[i], index, interrupted);
    diagnose_case(c, cases[i].scenario);
    results["cases"].push_back(c);
    bar.case_done(i + 1, c);
    if (c.interrupted) break;
  }
  results["partial"] = interrupted.load() || results["cases"].size() != cases.size();
  diagnose_run(results);
  results["assertions"] = check_assertions(results);
  auto written = write_results_and_reports(out_dir, results, {});
  if (!written) {
    fmt::print(stderr, "procpool run: {}\n", written.error().message);
    return exit_internal;
  }
  bool held = true;
  for (const auto& a : results["assertions"]) {
    held = held && a.at("held").get<bool>();
    fmt::print("assertion {}: {} ({})\n", a.at("assertion").get<std::string>(),
               a.at("held").get<bool>() ? "held" : "FAILED", a.at("detail").get<std::string>());
  }
  fmt::print("{}results: {}\n", results["partial"].get<bool>() ? "partial " : "", written->string());
  if (interrupted) return exit_failed;
  return held ? exit_ok : exit_failed;
}

int merge(const std::vector<std::string>& dirs, const std::string& out_dir) {
  std::vector<json> shards;
  for (const auto& dir : dirs) {
    auto doc = read_results(std::filesystem::path(dir) / "results.json");
    if (!doc) {
      fmt::print(stderr, "procpool merge: {}\n", doc.error().message);
      return exit_usage;
    }
    shards.push_back(std::move(*doc));
  }
  auto merged = merge_results(shards);
  if (!merged) {
    fmt::print(stderr, "procpool merge: {}\n", merged.error().message);
    return exit_usage;
  }
  diagnose_run(*merged);
  (*merged)["assertions"] = check_assertions(*merged);
  auto written = write_results_and_reports(out_dir, *merged, {});
  if (!written) {
    fmt::print(stderr, "procpool merge: {}\n", written.error().message);
    return exit_internal;
  }
  fmt::print("merged {} cases from {} inputs{}: {}\n", (*merged)["cases"].size(), dirs.size(),
             (*merged)["partial"].get<bool>() ? " (partial)" : "", written->string());
  for (const auto& a : (*merged)["assertions"]) {
    if (!a.at("held").get<bool>()) return exit_failed;
  }
  return exit_ok;
}

}  // namespace

void add_run_command(CLI::App& app, int& exit_code) {
  auto opts = std::make_shared<run_options>();
  auto* cmd = app.add_subcommand(
      "run", "Run a scenario: every case of its sweep, each with a fresh subject and workers; "
             "writes results.json and, rendered from it, report.md, report.html, junit.xml and "
             "cases.csv into --out. Exit 0 when every assertion held, 1 when one "
             "failed or the run was interrupted, 2 on a configuration error.");
  cmd->add_option("scenario", opts->scenario_path, "the scenario file (TOML)")
      ->required()
      ->check(CLI::ExistingFile);
  cmd->add_option("--out", opts->out_dir, "output directory (default reports/out/<name>-<time>)");
  cmd->add_option("--shard", opts->shard,
                  "run shard I of N (I from 0): a deterministic subset of the cases; "
                  "`procpool merge` joins the shards' outputs")
      ->capture_default_str();
  cmd->add_option("--set", opts->overrides, "override a scenario key: KEY=VALUE (repeatable)");
  cmd->add_flag("--quiet", opts->quiet, "no progress output");
  cmd->callback([opts, &exit_code, &app] {
    std::string line = "procpool run " + opts->scenario_path;
    if (!opts->out_dir.empty()) line += " --out " + opts->out_dir;
    if (opts->shard != "0/1") line += " --shard " + opts->shard;
    for (const auto& o : opts->overrides) line += " --set " + o;
    (void)app;
    exit_code = run(*opts, line);
  });
}

void add_merge_command(CLI::App& app, int& exit_code) {
  auto dirs = std::make_shared<std::vector<std::string>>();
  auto out = std::make_shared<std::string>();
  auto* cmd = app.add_subcommand(
      "merge", "Join the results of shards (procpool run --shard I/N) into one results.json "
               "with exactly the cases of the unsharded run.");
  cmd->add_option("dirs", *dirs, "shard output directories")->required()->check(CLI::ExistingDirectory);
  cmd->add_option("--out", *out, "output directory")->required();
  cmd->callback([dirs, out, &exit_code] { exit_code = merge(*dirs, *out); });
}

}  // namespace procpool::harness
