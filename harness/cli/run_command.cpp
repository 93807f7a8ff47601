#include "cli/run_command.hpp"

#include <unistd.h>

#include <atomic>
#include <chrono>
#include <csignal>
#include <ctime>
#include <map>
#include <memory>
#include <optional>

#include <fmt/format.h>

#include "diagnosis/diagnosis.hpp"
#include "reports.hpp"
#include "cli/shard_option.hpp"
#include "results/files.hpp"
#include "results/journal.hpp"
#include "results/results.hpp"
#include "run/runner.hpp"
#include "run/record_fields.hpp"
#include "scenario/scenario.hpp"
#include "scenario/shards.hpp"

namespace procpool::harness {
namespace {

using json = nlohmann::json;

std::atomic<bool> interrupted{false};
static_assert(std::atomic<bool>::is_always_lock_free, "set from a signal handler");

void on_interrupt(int) { interrupted = true; }

struct run_options {
  std::string scenario_path;
  std::string out_dir;
  std::string resume_dir;
  std::string shard = "0/1";
  std::string balance_from;
  std::vector<std::string> overrides;
  bool quiet = false;
};

// The first line of a message: a driver's stderr can fill a screen.
std::string_view first_line(std::string_view text) { return text.substr(0, text.find('\n')); }

// One line per case; on a terminal, a live line rewritten in place that names the case
// running and the time left, estimated from the cases this process has run.
class progress {
 public:
  progress(std::size_t total, bool quiet) : total_(total), quiet_(quiet), live_(::isatty(STDERR_FILENO)) {}

  void case_starting(std::size_t done, const scenario_case& c) {
    if (quiet_ || !live_) return;
    fmt::print(stderr, "\r\033[K[{}/{}] running {}{}, {} timeouts so far", done, total_, c.id, eta(done),
               timeouts_);
  }

  // A case taken from the journal of the run being resumed.
  void case_kept(std::size_t done, const case_record& c) {
    ++kept_;
    timeouts_ += c.timeouts();
    if (quiet_ || live_) return;
    fmt::print(stderr, "case {}/{} {}: kept from the journal\n", done, total_, c.id);
  }

  void case_done(std::size_t done, const case_record& c) {
    timeouts_ += c.timeouts();
    if (quiet_) return;
    if (live_) fmt::print(stderr, "\r\033[K");
    if (c.error) {
      // Printed on a terminal too: a case that measured nothing must not scroll away unseen.
      fmt::print(stderr, "case {}/{} {}: {}: {}\n", done, total_, c.id, c.error->type, first_line(c.error->message));
    } else if (!live_) {
      fmt::print(stderr, "case {}/{} {}: {:.0f} req/s, p50 {} us, p99 {} us, {} timeouts\n", done, total_, c.id,
                 c.throughput_rps, c.latency_us.p50, c.latency_us.p99, c.timeouts());
    }
    if (live_ && done == total_) fmt::print(stderr, "[{}/{}] done, {} timeouts\n", done, total_, timeouts_);
  }

 private:
  // ", about 42s left"; nothing until a case has run here.
  std::string eta(std::size_t done) const {
    const std::size_t ran = done - kept_;
    if (ran == 0) return "";
    const double elapsed_s = std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count();
    return fmt::format(", about {:.0f}s left", elapsed_s / ran * (total_ - done));
  }

  std::size_t total_;
  bool quiet_;
  bool live_;
  std::size_t kept_ = 0;
  std::uint64_t timeouts_ = 0;
  std::chrono::steady_clock::time_point start_ = std::chrono::steady_clock::now();
};

// The journal a run appends to, and the cases an earlier attempt of it finished (--resume),
// by their index in the unsharded run.
struct run_journal {
  std::optional<journal_writer> writer;
  std::map<std::size_t, case_record> finished;
};

result<run_journal> open_journal(const run_options& opts, const std::string& out_dir, const journal_header& header) {
  run_journal out;
  if (opts.resume_dir.empty()) {
    auto writer = journal_writer::create(out_dir, header);
    if (!writer) return std::move(writer).error();
    out.writer.emplace(std::move(*writer));
    return out;
  }
  if (!std::filesystem::exists(std::filesystem::path(out_dir) / journal_file_name)) {
    return error{errc::invalid_options,
                 fmt::format("cannot resume {}: it holds no {} (procpool run writes one)", out_dir, journal_file_name)};
  }
  auto earlier = read_journal(out_dir);
  if (!earlier) return std::move(earlier).error();
  if (const auto differs = journal_mismatch(earlier->header, header); !differs.empty()) {
    return error{errc::invalid_options,
                 fmt::format("cannot resume {}: it ran another scenario or settings ({})", out_dir, differs)};
  }
  auto writer = journal_writer::reopen(out_dir, *earlier);
  if (!writer) return std::move(writer).error();
  out.writer.emplace(std::move(*writer));
  for (auto& c : earlier->cases) out.finished.insert_or_assign(c.index, std::move(c));
  return out;
}

// A case is journaled when it finished; an interrupted one is run again on resume. A journal
// that stops taking cases is said once, and the run goes on: results.json still gets written.
void journal_case(run_journal& journal, const case_record& c) {
  if (c.interrupted || !journal.writer) return;
  if (auto written = journal.writer->append(c); !written) {
    fmt::print(stderr, "procpool run: {}; the journal stops here\n", written.error().message);
    journal.writer.reset();
  }
}

// Runs the shard's cases in order into results["cases"], taking the ones the journal holds
// as they are, until the last or an interrupt.
void run_cases(const std::vector<scenario_case>& all_cases, const std::vector<std::size_t>& positions, bool quiet,
               run_journal& journal, json& results) {
  progress bar(positions.size(), quiet);
  for (std::size_t i = 0; i < positions.size() && !interrupted; ++i) {
    const std::size_t index = positions[i];  // position in the full run
    const scenario_case& the_case = all_cases[index];
    if (const auto kept = journal.finished.find(index); kept != journal.finished.end()) {
      results["cases"].push_back(kept->second);
      bar.case_kept(i + 1, kept->second);
      continue;
    }
    bar.case_starting(i, the_case);
    case_record c = run_case(the_case, index, interrupted);
    diagnose_case(c, the_case.scenario);
    if (c.timelines) keep_results_sample(*c.timelines);
    journal_case(journal, c);
    results["cases"].push_back(c);
    bar.case_done(i + 1, c);
    if (c.interrupted) break;
  }
}

// Each assertion and the path written, on stdout; the exit code they make.
int print_outcome(const json& results, const std::filesystem::path& written) {
  bool held = true;
  for (const auto& a : results["assertions"]) {
    held = held && a.at("held").get<bool>();
    fmt::print("assertion {}: {} ({})\n", a.at("assertion").get<std::string>(),
               a.at("held").get<bool>() ? "held" : "FAILED", a.at("detail").get<std::string>());
  }
  fmt::print("{}results: {}\n", results["partial"].get<bool>() ? "partial " : "", written.string());
  if (interrupted) return exit_failed;
  return held ? exit_ok : exit_failed;
}

// The shard's cases, by index in the unsharded run: every N-th, or balanced by the wall times
// of an earlier run (--balance-from).
result<std::vector<std::size_t>> positions_of_shard(const run_options& opts, const std::vector<scenario_case>& cases,
                                                    shard s) {
  if (opts.balance_from.empty()) return shard_positions(cases.size(), s);
  auto earlier = read_results(opts.balance_from);
  if (!earlier) return std::move(earlier).error();
  std::map<std::string, double, std::less<>> wall_ms;
  std::vector<case_record> measured;
  read_value((*earlier)["cases"], measured);
  for (const auto& c : measured) {
    if (!c.error && !c.interrupted) wall_ms[c.id] = c.wall_ms;
  }
  return balanced_shard_positions(cases, s, wall_ms);
}

// SIGINT and SIGTERM stop the run after the case in progress, which keeps what it finished.
void catch_interrupts() {
  struct sigaction action {};
  action.sa_handler = on_interrupt;
  ::sigaction(SIGINT, &action, nullptr);
  ::sigaction(SIGTERM, &action, nullptr);
}

void announce(const std::string& name, std::size_t cases, shard s, std::size_t kept, const std::string& out_dir) {
  fmt::print(stderr, "procpool run: {} ({} cases{}{}), results in {}\n", name, cases,
             s.count > 1 ? fmt::format(", shard {}/{}", s.index, s.count) : "",
             kept == 0 ? "" : fmt::format(", {} kept from the journal", kept), out_dir);
}

int run(const run_options& opts, const std::string& command_line) {
  auto file = load_scenario(opts.scenario_path, opts.overrides);
  if (!file) {
    fmt::print(stderr, "procpool run: {}\n", file.error().describe());
    return exit_usage;
  }
  auto shard = resolve_shard(opts.shard, getenv_lookup);
  if (!shard) {
    fmt::print(stderr, "procpool run: {}\n", shard.error().describe());
    return exit_usage;
  }
  if (!touch_shard_status_file(getenv_lookup)) {
    fmt::print(stderr, "procpool run: cannot write TEST_SHARD_STATUS_FILE\n");
    return exit_internal;
  }
  const std::string out_dir = !opts.resume_dir.empty() ? opts.resume_dir
                              : opts.out_dir.empty()    ? default_out_dir(file->scenario.name)
                                                        : opts.out_dir;
  // Before anything else: an output that cannot be written must not cost a run.
  if (auto ready = prepare_output_dir(out_dir); !ready) {
    fmt::print(stderr, "procpool run: {}\n", ready.error().message);
    return exit_internal;
  }
  const auto all_cases = expand(*file);
  const auto positions = positions_of_shard(opts, all_cases, *shard);
  if (!positions) {
    fmt::print(stderr, "procpool run: {}\n", positions.error().message);
    return exit_usage;
  }
  auto journal = open_journal(opts, out_dir,
                              {.scenario = scenario_to_json(file->scenario),
                               .shard_index = shard->index,
                               .shard_count = shard->count,
                               .total_cases = all_cases.size(),
                               .case_positions = *positions,
                               .command = command_line});
  if (!journal) {
    fmt::print(stderr, "procpool run: {}\n", journal.error().message);
    return journal.error().code == errc::io_error ? exit_internal : exit_usage;
  }

  json results = new_results(file->scenario, {.command_line = command_line,
                                              .shard_index = shard->index,
                                              .shard_count = shard->count,
                                              .total_cases = all_cases.size()});
  catch_interrupts();
  if (!opts.quiet) announce(file->scenario.name, positions->size(), *shard, journal->finished.size(), out_dir);
  run_cases(all_cases, *positions, opts.quiet, *journal, results);
  results["partial"] = interrupted.load() || results["cases"].size() != positions->size();
  diagnose_run(results);
  results["assertions"] = check_assertions(results);
  auto written = write_results_and_reports(out_dir, results, {});
  if (!written) {
    fmt::print(stderr, "procpool run: {}\n", written.error().message);
    return exit_internal;
  }
  return print_outcome(results, *written);
}

int merge(const std::vector<std::string>& dirs, const std::string& out_dir) {
  if (auto ready = prepare_output_dir(out_dir); !ready) {
    fmt::print(stderr, "procpool merge: {}\n", ready.error().message);
    return exit_internal;
  }
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
  auto* out = cmd->add_option("--out", opts->out_dir, "output directory (default reports/out/<name>-<time>)");
  cmd->add_option("--resume", opts->resume_dir,
                  "continue the run whose output directory is DIR: run only the cases missing from its "
                  "journal.jsonl, then write results.json and the reports over all of them; the scenario, "
                  "--set and --shard must be the run's own")
      ->type_name("DIR")
      ->excludes(out);
  cmd->add_option("--shard", opts->shard,
                  "run shard I of N (I from 0): a deterministic subset of the cases; "
                  "`procpool merge` joins the shards' outputs. auto or auto/N: I (and N) from the "
                  "CI engine's variables, PROCPOOL_SHARD_INDEX/COUNT, JOB_COMPLETION_INDEX, "
                  "TEST_SHARD_INDEX/TEST_TOTAL_SHARDS or GTEST_SHARD_INDEX/GTEST_TOTAL_SHARDS")
      ->capture_default_str();
  cmd->add_option("--balance-from", opts->balance_from,
                  "split the shards by each case's wall time in this earlier results.json (cases not in it "
                  "count as the mean), so that they finish together")
      ->type_name("RESULTS")
      ->check(CLI::ExistingFile);
  cmd->add_option("--set", opts->overrides, "override a scenario key: KEY=VALUE (repeatable)");
  cmd->add_flag("--quiet", opts->quiet, "no progress output");
  cmd->callback([opts, &exit_code, &app] {
    std::string line = "procpool run " + opts->scenario_path;
    if (!opts->out_dir.empty()) line += " --out " + opts->out_dir;
    if (!opts->resume_dir.empty()) line += " --out " + opts->resume_dir;
    if (opts->shard != "0/1") line += " --shard " + opts->shard;
    if (!opts->balance_from.empty()) line += " --balance-from " + opts->balance_from;
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
