#include "cli/triage_command.hpp"

#include <poll.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <csignal>
#include <ctime>
#include <fstream>
#include <functional>
#include <map>
#include <memory>
#include <thread>

#include <fmt/format.h>

#include "cli/triage_environments.hpp"
#include "diagnosis/diagnosis.hpp"
#include "run/environment.hpp"
#include "run/pressure.hpp"
#include "reports.hpp"
#include "results/files.hpp"
#include "results/results.hpp"
#include "cli/exit_codes.hpp"
#include "cli/number_checks.hpp"
#include "run/runner.hpp"
#include "scenario/scenario.hpp"
#include "statistics/statistics.hpp"

namespace procpool::harness {
namespace {

using json = nlohmann::json;

std::atomic<bool> interrupted{false};
void on_interrupt(int) { interrupted = true; }

// A difference in failure rates counts when Fisher's exact test gives p below this.
constexpr double triage_alpha = 0.05;
// Failures "persist" in the baseline when its rate is at least this share of the worst.
constexpr double persist_share = 0.5;

struct triage_options {
  std::string scenario_path;
  std::string case_id;
  std::vector<std::string> overrides;
  std::vector<std::string> command;
  std::size_t runs = 10;
  double timeout_s = 600;
  std::string out_dir;
  bool quiet = false;
  std::uint64_t memory_mb = 0;  // 0: half of the available memory
  double cpu_quota_percent = 25;
};

// One environment's runs.
struct tally {
  std::string name;
  std::string description;
  std::string resource = {};  // what the environment takes away: cpu, memory, io, or nothing
  std::string problem = {};   // what did not go as planned in it
  std::size_t runs = 0;
  std::size_t failed = 0;
  std::map<std::string, std::uint64_t> verdicts = {};  // scenario: the diagnosis of the runs
  std::vector<double> seconds = {};
  double rate() const { return runs ? static_cast<double>(failed) / runs : 0.0; }
  double median_s() const {
    if (seconds.empty()) return 0;
    auto sorted = seconds;
    std::sort(sorted.begin(), sorted.end());
    return sorted[sorted.size() / 2];
  }
};

struct conclusion {
  std::string label;  // environmental | architectural | not reproduced | inconclusive
  std::string because;
  json comparisons = json::array();
  std::string amplified_by = {};  // an architectural verdict behind environmental failures
  std::vector<std::string> sensitive_to = {};  // the resources whose loss makes it fail
  std::string resource_finding = {};           // "fails under memory pressure only: memory-sensitive"
};

// `baseline` is the environment with the least in it (idealised for a scenario, as-is for
// a command); the others add CPU hogs or take CPUs away.
conclusion decide(const tally& baseline, const std::vector<tally>& all) {
  conclusion c;
  std::size_t total_failed = 0;
  double worst_rate = 0;
  double min_p = 1;
  std::string worst;
  for (const auto& t : all) {
    total_failed += t.failed;
    if (&t == &baseline) continue;
    const double p = fisher_exact_greater(t.failed, t.runs - t.failed, baseline.failed,
                                          baseline.runs - baseline.failed);
    c.comparisons.push_back({{"environment", t.name},
                             {"against", baseline.name},
                             {"p_value", p},
                             {"test", "Fisher's exact, one-sided: fails more often"}});
    if (t.rate() >= worst_rate) {
      worst_rate = t.rate();
      worst = t.name;
    }
    min_p = std::min(min_p, p);
  }
  if (total_failed == 0) {
    c.label = "not reproduced";
    c.because = fmt::format("no run failed in any environment ({} runs each)", baseline.runs);
    return c;
  }
  if (baseline.failed > 0 && baseline.rate() >= persist_share * worst_rate) {
    c.label = "architectural";
    c.because = fmt::format(
        "failures persist in the {} environment ({}/{} runs, against {:.0f}% at worst elsewhere): "
        "the environment does not explain them",
        baseline.name, baseline.failed, baseline.runs, 100 * worst_rate);
    return c;
  }
  if (min_p < triage_alpha) {
    c.label = "environmental";
    c.because = fmt::format(
        "the failure rate depends on the environment: {}/{} runs failed {}, against {:.0f}% in {} "
        "(Fisher's exact test, p = {:.2g})",
        baseline.failed, baseline.runs, baseline.name == "idealised" ? "when idealised" : "as-is",
        100 * worst_rate, worst, min_p);
    return c;
  }
  c.label = "inconclusive";
  c.because = fmt::format(
      "failures are too few to tell ({} in all; smallest p = {:.2g}): rerun with more --runs",
      total_failed, min_p);
  return c;
}

// Failures can need the environment to happen and still be the architecture's doing: a pool
// that starts workers one at a time times out only when starts are slow. When the failed
// runs' own verdicts are mostly architectural, the environmental conclusion says so.
void note_architectural_amplification(conclusion& c, const std::vector<tally>& tallies) {
  if (c.label != "environmental") return;
  std::map<std::string, std::uint64_t> verdicts;
  std::uint64_t total = 0;
  for (const auto& t : tallies) {
    for (const auto& [v, n] : t.verdicts) {
      verdicts[v] += n;
      total += n;
    }
  }
  const auto top = std::max_element(verdicts.begin(), verdicts.end(),
                                    [](const auto& a, const auto& b) { return a.second < b.second; });
  if (top == verdicts.end() || verdict_family(top->first) != "architectural" || 2 * top->second < total) return;
  c.because += fmt::format(
      "; but {} of the {} failed requests were judged {}: the environment triggers the failures "
      "and the architecture turns it into timeouts",
      top->second, total, top->first);
  c.amplified_by = top->first;
}

std::string resource_adjective(const std::string& resource) {
  return resource == "cpu" ? "CPU" : resource == "io" ? "I/O" : resource;
}

// Which resources the failures follow: those of the environments that fail more often than
// the baseline (p < triage_alpha), said only of an environmental conclusion.
void attribute_resources(conclusion& c, const tally& baseline, const std::vector<tally>& tallies) {
  if (c.label != "environmental") return;
  for (const auto& t : tallies) {
    if (&t == &baseline || t.resource.empty()) continue;
    const double p = fisher_exact_greater(t.failed, t.runs - t.failed, baseline.failed,
                                          baseline.runs - baseline.failed);
    if (p < triage_alpha && std::find(c.sensitive_to.begin(), c.sensitive_to.end(), t.resource) == c.sensitive_to.end()) {
      c.sensitive_to.push_back(t.resource);
    }
  }
  if (c.sensitive_to.empty()) return;
  std::vector<std::string> phrases, adjectives;
  for (const auto& r : c.sensitive_to) {
    phrases.push_back(resource_phrase(r));
    adjectives.push_back(resource_adjective(r));
  }
  if (c.sensitive_to.size() == 1) {
    c.resource_finding = fmt::format("fails under {} only: {}-sensitive", phrases.front(), adjectives.front());
    return;
  }
  const std::string last_phrase = phrases.back(), last_adjective = adjectives.back();
  phrases.pop_back();
  adjectives.pop_back();
  c.resource_finding = fmt::format("fails under {} and {}: {}- and {}-sensitive", fmt::join(phrases, ", "),
                                   last_phrase, fmt::join(adjectives, "-, "), last_adjective);
}

std::string markdown(const std::string& title, const std::vector<tally>& tallies,
                     const conclusion& c, bool with_verdicts) {
  std::string md = fmt::format("# Triage: {}\n\n**{}**: {}.\n\n", title, c.label, c.because);
  if (!c.resource_finding.empty()) md += fmt::format("**Resource**: {}.\n\n", c.resource_finding);
  md += "| environment | what it changes | runs | failed | failure rate | median time (s) |";
  md += with_verdicts ? " verdicts |\n|---|---|---|---|---|---|---|\n" : "\n|---|---|---|---|---|---|\n";
  for (const auto& t : tallies) {
    md += fmt::format("| {} | {} | {} | {} | {:.0f}% | {:.2f} |", t.name, t.description, t.runs,
                      t.failed, 100 * t.rate(), t.median_s());
    if (with_verdicts) {
      std::vector<std::string> parts;
      for (const auto& [v, n] : t.verdicts) parts.push_back(fmt::format("{} x{}", v, n));
      md += fmt::format(" {} |", parts.empty() ? "none" : fmt::format("{}", fmt::join(parts, ", ")));
    }
    md += "\n";
  }
  md += "\n";
  for (const auto& t : tallies) {
    if (!t.problem.empty()) md += fmt::format("- {}: {}\n", t.name, t.problem);
  }
  for (const auto& cmp : c.comparisons) {
    md += fmt::format("- {} against {}: p = {:.3g} ({})\n", cmp["environment"].get<std::string>(),
                      cmp["against"].get<std::string>(), cmp["p_value"].get<double>(),
                      cmp["test"].get<std::string>());
  }
  return md;
}

json triage_json(const std::vector<tally>& tallies, const conclusion& c) {
  json environments = json::array();
  for (const auto& t : tallies) {
    environments.push_back({{"name", t.name},
                            {"description", t.description},
                            {"resource", t.resource},
                            {"runs", t.runs},
                            {"failed", t.failed},
                            {"failure_rate", t.rate()},
                            {"median_s", t.median_s()},
                            {"verdicts", t.verdicts}});
  }
  json out = {{"conclusion", c.label}, {"because", c.because}, {"environments", environments},
              {"comparisons", c.comparisons}};
  if (!c.amplified_by.empty()) out["amplified_by"] = c.amplified_by;
  out["sensitive_to"] = c.sensitive_to;
  if (!c.resource_finding.empty()) out["resource_finding"] = c.resource_finding;
  for (std::size_t i = 0; i < tallies.size(); ++i) {
    if (!tallies[i].problem.empty()) out["environments"][i]["problem"] = tallies[i].problem;
  }
  return out;
}

void print_line(const triage_options& o, const tally& t, std::size_t k, bool failed, const std::string& detail) {
  if (o.quiet) return;
  fmt::print(stderr, "{:<10} run {}/{}: {}{}\n", t.name, k + 1, o.runs, failed ? "FAILED" : "ok",
             detail.empty() ? "" : " (" + detail + ")");
}

std::size_t host_cores() { return std::max<std::size_t>(1, read_environment().cores); }

// ---- A scenario case ----

std::optional<scenario_case> find_case(const std::vector<scenario_case>& cases, const std::string& id) {
  for (const auto& c : cases) {
    if (c.id == id || c.id == id + "#r0") return c;
  }
  return std::nullopt;
}

// The case named by --case, or the cases there are, on stderr.
std::optional<scenario_case> case_to_triage(const std::vector<scenario_case>& cases, const triage_options& o) {
  auto found = find_case(cases, o.case_id);
  if (!found) {
    std::string known;
    for (std::size_t i = 0; i < cases.size() && i < 12; ++i) known += "\n  " + cases[i].id;
    fmt::print(stderr, "procpool triage: {}: no case {}; the cases are:{}{}\n", o.scenario_path,
               o.case_id, known, cases.size() > 12 ? "\n  ..." : "");
  }
  return found;
}

// An environment a scenario case is rerun in: what it changes in the case's scenario.
struct scenario_environment {
  std::string name;
  std::string description;
  void (*apply)(scenario&, std::size_t cores);
  std::string resource = {};
  // Pressure held around the run, in this process (where the pool's workers start from).
  std::uint64_t memory_bytes = 0;
  bool io = false;
};

std::vector<scenario_environment> scenario_environments(std::size_t cores, std::uint64_t memory_bytes) {
  return {
      {"idealised", "no injected start-up or init latency, no CPU hogs, every CPU",
       [](scenario& s, std::size_t) {
         s.worker.startup_ms = 0;
         s.worker.init_ms = 0;
         s.environment.cpu_hogs = 0;
         s.environment.cpus = 0;
       }},
      {"as-is", "the case as the scenario sets it", [](scenario&, std::size_t) {}},
      {"degraded", fmt::format("as-is plus {} CPU hogs (one per core)", cores),
       [](scenario& s, std::size_t n) { s.environment.cpu_hogs = n; }, "cpu"},
      {"memory", fmt::format("as-is plus {} MiB of RAM held and kept resident by a hog", memory_bytes >> 20),
       [](scenario&, std::size_t) {}, "memory", memory_bytes},
      {"io", "as-is plus two writers fsyncing 1 MiB at a time in the output directory", [](scenario&, std::size_t) {},
       "io", 0, true},
  };
}

// Run k of the case in one environment, with an id of its own.
scenario_case case_in_environment(const scenario_case& found, const scenario_environment& env, std::size_t k,
                                  std::size_t cores) {
  scenario_case run = found;
  env.apply(run.scenario, cores);
  run.repetition = k;
  run.id = fmt::format("{}#{}#r{}", found.id.substr(0, found.id.find('#')), env.name, k);
  // The settings an environment may change are recorded as it applied them, so that the
  // reports show each run as it ran.
  std::erase_if(run.params, [](const auto& p) {
    return p.first == "worker.startup_ms" || p.first == "worker.init_ms" ||
           p.first == "environment.cpu_hogs" || p.first == "environment.cpus";
  });
  run.params.emplace_back("triage.environment", env.name);
  run.params.emplace_back("worker.startup_ms", run.scenario.worker.startup_ms);
  run.params.emplace_back("worker.init_ms", run.scenario.worker.init_ms);
  run.params.emplace_back("environment.cpu_hogs", run.scenario.environment.cpu_hogs);
  return run;
}

// Counts a diagnosed case in its environment's tally: it failed when any request did or its
// subject could not be created.
void tally_case(tally& t, const case_record& c, const triage_options& o, std::size_t k) {
  ++t.runs;
  const std::uint64_t bad = c.failed();
  const bool failed = bad > 0 || c.error.has_value();
  t.failed += failed;
  t.seconds.push_back(c.wall_ms / 1e3);
  for (const auto& [v, n] : c.verdicts) t.verdicts[v] += n;
  print_line(o, t, k, failed, bad ? fmt::format("{} requests failed", bad) : "");
}

// Every run of the case, interleaved so that drift on the machine spreads over every
// environment; each case goes into `results`, each count into its environment's tally.
void rerun_case(const triage_options& o, const scenario_case& found,
                const std::vector<scenario_environment>& environments, std::size_t cores,
                std::vector<tally>& tallies, json& results) {
  for (std::size_t k = 0; k < o.runs && !interrupted; ++k) {
    for (std::size_t e = 0; e < environments.size() && !interrupted; ++e) {
      const scenario_case run = case_in_environment(found, environments[e], k, cores);
      std::optional<degraded_scope> pressure;
      if (environments[e].memory_bytes > 0 || environments[e].io) {
        pressure.emplace(environment_plan{.memory_bytes = environments[e].memory_bytes, .io = environments[e].io},
                         o.out_dir);
      }
      case_record c = run_case(run, results["cases"].size(), interrupted);
      pressure.reset();  // before the diagnosis, which the pressure has no business slowing
      diagnose_case(c, run.scenario);
      if (c.timelines) keep_results_sample(*c.timelines);
      if (c.interrupted) break;
      tally_case(tallies[e], c, o, k);
      results["cases"].push_back(c);
    }
  }
}

// Concludes, and writes results.json, the reports and triage.md into the output directory.
int conclude_scenario_triage(const triage_options& o, const scenario_case& found,
                             const std::vector<tally>& tallies, json& results) {
  conclusion c = decide(tallies.front(), tallies);
  note_architectural_amplification(c, tallies);
  attribute_resources(c, tallies.front(), tallies);
  results["triage"] = triage_json(tallies, c);
  results["partial"] = false;
  diagnose_run(results);
  results["assertions"] = check_assertions(results);
  const std::string& out_dir = o.out_dir;  // prepared by triage_scenario
  auto written = write_results_and_reports(out_dir, results, {});
  if (!written) {
    fmt::print(stderr, "procpool triage: {}\n", written.error().message);
    return exit_internal;
  }
  const std::string md = markdown(fmt::format("case {} of {}", found.id, o.scenario_path), tallies, c, true);
  if (auto w = write_file_atomically(std::filesystem::path(out_dir) / "triage.md", md); !w) {
    fmt::print(stderr, "procpool triage: {}\n", w.error().message);
    return exit_internal;
  }
  fmt::print("{}\nresults: {}\n", md, written->string());
  return exit_ok;
}

// The output directory, named now and proved writable before any run: exit 3 at once when
// it is not, rather than after the runs.
std::optional<std::string> prepared_out_dir(const triage_options& o, const std::string& default_name) {
  const std::string out_dir = o.out_dir.empty() ? default_out_dir(default_name) : o.out_dir;
  if (auto ready = prepare_output_dir(out_dir); !ready) {
    fmt::print(stderr, "procpool triage: {}\n", ready.error().message);
    return std::nullopt;
  }
  return out_dir;
}

int triage_scenario(const triage_options& options, const std::string& command_line) {
  auto file = load_scenario(options.scenario_path, options.overrides);
  if (!file) {
    fmt::print(stderr, "procpool triage: {}\n", file.error().describe());
    return exit_usage;
  }
  triage_options o = options;
  // The case first: a usage error must not leave an empty output directory behind.
  const auto found = case_to_triage(expand(*file), o);
  if (!found) return exit_usage;
  if (auto out_dir = prepared_out_dir(o, "triage-" + file->scenario.name)) {
    o.out_dir = *out_dir;
  } else {
    return exit_internal;
  }
  const std::size_t cores = host_cores();
  const auto environments =
      scenario_environments(cores, bounded_memory_hog_bytes(o.memory_mb << 20, available_memory_bytes()));
  std::vector<tally> tallies;
  for (const auto& env : environments) {
    tallies.push_back({.name = env.name, .description = env.description, .resource = env.resource});
  }

  json results =
      new_results(found->scenario, {.command_line = command_line, .total_cases = o.runs * environments.size()});
  results["scenario"]["sweep"] = json::array();
  if (!o.quiet) {
    fmt::print(stderr, "procpool triage: case {} of {}, {} runs in each of {} environments\n",
               found->id, o.scenario_path, o.runs, environments.size());
  }
  rerun_case(o, *found, environments, cores, tallies, results);
  if (interrupted) {
    fmt::print(stderr, "procpool triage: interrupted; nothing concluded\n");
    return exit_failed;
  }
  return conclude_scenario_triage(o, *found, tallies, results);
}

// ---- Any test command ----

struct command_run {
  bool failed = false;
  double seconds = 0;
  std::string detail;
};

// Runs the command in its own process group, drains its output (keeping the tail for the
// report), and kills the group at the timeout.
command_run run_command_once(const std::vector<std::string>& argv, double timeout_s, std::string& tail,
                             const std::function<void(pid_t)>& started) {
  command_run r;
  const auto t0 = std::chrono::steady_clock::now();
  auto proc = worker_process::launch({.argv = argv});
  if (!proc) {
    r.failed = true;
    r.detail = proc.error().message;
    return r;
  }
  started(proc->pid());
  proc->close_stdin();
  const auto deadline = t0 + std::chrono::duration<double>(timeout_s);
  std::array<pollfd, 3> fds = {pollfd{proc->stdout_fd(), POLLIN, 0}, pollfd{proc->stderr_fd(), POLLIN, 0},
                               pollfd{proc->pidfd(), POLLIN, 0}};
  bool timed_out = false;
  while (!interrupted) {
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
    if (left.count() <= 0) {
      timed_out = true;
      break;
    }
    if (::poll(fds.data(), fds.size(), static_cast<int>(std::min<std::int64_t>(left.count(), 200))) < 0 &&
        errno != EINTR) {
      break;
    }
    for (std::size_t i = 0; i < 2; ++i) {
      if (fds[i].fd < 0 || !(fds[i].revents & (POLLIN | POLLHUP))) continue;
      char buffer[4096];
      const ssize_t n = ::read(fds[i].fd, buffer, sizeof buffer);
      if (n > 0) {
        tail.append(buffer, static_cast<std::size_t>(n));
        if (tail.size() > 8192) tail.erase(0, tail.size() - 8192);
      } else if (n == 0) {
        fds[i].fd = -1;
      }
    }
    if (fds[2].revents & POLLIN) break;
  }
  const exit_status status = (timed_out || interrupted) ? proc->kill() : proc->stop({});
  r.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  if (timed_out) {
    r.failed = true;
    r.detail = fmt::format("timed out after {:.0f} s", timeout_s);
  } else if (!status.exited_cleanly()) {
    r.failed = true;
    r.detail = status.describe();
  }
  return r;
}

// Concludes, and writes triage.md and triage.json into the output directory.
int conclude_command_triage(const triage_options& o, const std::string& command_line,
                            const std::vector<tally>& tallies, const std::string& last_failure) {
  conclusion c = decide(tallies.front(), tallies);
  attribute_resources(c, tallies.front(), tallies);
  std::string md = markdown(fmt::format("`{}`", fmt::join(o.command, " ")), tallies, c, false);
  // The slowest environment, now that there are several kinds of degradation to compare.
  const tally& slowest = *std::max_element(tallies.begin() + 1, tallies.end(),
                                           [](const tally& a, const tally& b) { return a.median_s() < b.median_s(); });
  const double slowdown = tallies.front().median_s() > 0 ? slowest.median_s() / tallies.front().median_s() : 0;
  md += fmt::format("\nMedian time under {} (the slowest) against as-is: {:.2f}x.\n", slowest.name, slowdown);
  if (!last_failure.empty()) md += fmt::format("\nLast failure: {}\n", last_failure);
  const std::filesystem::path out_dir = o.out_dir;  // prepared by triage_command
  json doc = triage_json(tallies, c);
  doc["command"] = o.command;
  doc["command_line"] = command_line;
  doc["median_slowdown"] = slowdown;
  for (const auto& [name, text] : {std::pair{"triage.md", md}, std::pair{"triage.json", doc.dump(1) + "\n"}}) {
    if (auto w = write_file_atomically(out_dir / name, text); !w) {
      fmt::print(stderr, "procpool triage: {}\n", w.error().message);
      return exit_internal;
    }
  }
  fmt::print("{}\nwritten: {}\n", md, (out_dir / "triage.md").string());
  return exit_ok;
}

// One run of the command in one environment, counted in its tally. The environment lasts
// exactly as long as the run: whatever it started is gone when this returns.
void run_in_environment(const triage_options& o, const environment_plan& plan, tally& t, std::size_t k,
                        std::string& last_failure) {
  command_run r;
  std::string tail;
  {
    degraded_scope scope(plan, o.out_dir);
    r = run_command_once(o.command, o.timeout_s, tail, [&](pid_t pid) { scope.adopt(pid); });
    if (t.problem.empty()) t.problem = scope.problem();
  }
  if (interrupted) return;
  ++t.runs;
  t.failed += r.failed;
  t.seconds.push_back(r.seconds);
  if (r.failed) {
    ++t.verdicts[r.detail.starts_with("timed out") ? "timed out" : "failed"];
    last_failure = fmt::format("{} ({}), output ends:\n{}", t.name, r.detail, tail);
  }
  print_line(o, t, k, r.failed, r.detail);
}

int triage_command(const triage_options& options, const std::string& command_line) {
  triage_options o = options;
  if (auto out_dir = prepared_out_dir(o, "triage-command")) {
    o.out_dir = *out_dir;
  } else {
    return exit_internal;
  }
  const std::uint64_t memory = bounded_memory_hog_bytes(o.memory_mb << 20, available_memory_bytes());
  const auto plans = command_environments({.cores = host_cores(), .memory_bytes = memory,
                                           .cpu_quota_percent = o.cpu_quota_percent, .scratch_dir = o.out_dir});
  std::vector<tally> tallies;
  for (const auto& p : plans) tallies.push_back({.name = p.name, .description = p.description, .resource = p.resource});
  if (!o.quiet) {
    fmt::print(stderr, "procpool triage: `{}`, {} runs in each of {} environments\n",
               fmt::join(o.command, " "), o.runs, plans.size());
    if (plans.back().quota_percent == 0) fmt::print(stderr, "procpool triage: quota: {}\n", plans.back().description);
  }
  std::string last_failure;
  for (std::size_t k = 0; k < o.runs && !interrupted; ++k) {
    for (std::size_t e = 0; e < plans.size() && !interrupted; ++e) run_in_environment(o, plans[e], tallies[e], k, last_failure);
  }
  if (interrupted) {
    fmt::print(stderr, "procpool triage: interrupted; nothing concluded\n");
    return exit_failed;
  }
  return conclude_command_triage(o, command_line, tallies, last_failure);
}

}  // namespace

namespace {

// What the parsed command line asks for: a command's triage, or a scenario case's.
int run_triage(triage_options& o, const std::string& help) {
  struct sigaction action {};
  action.sa_handler = on_interrupt;
  ::sigaction(SIGINT, &action, nullptr);
  ::sigaction(SIGTERM, &action, nullptr);
  if (o.command.empty()) {
    fmt::print(stderr, "procpool triage: give SCENARIO --case ID, or -- COMMAND...\n\n{}", help);
    return exit_usage;
  }
  if (o.case_id.empty()) {
    return triage_command(o, fmt::format("procpool triage --runs {} -- {}", o.runs, fmt::join(o.command, " ")));
  }
  if (o.command.size() != 1) {
    fmt::print(stderr, "procpool triage: --case takes one scenario file (got {} arguments)\n", o.command.size());
    return exit_usage;
  }
  o.scenario_path = o.command.front();
  o.command.clear();
  if (!std::filesystem::is_regular_file(o.scenario_path)) {
    fmt::print(stderr, "procpool triage: {}: no such scenario file\n", o.scenario_path);
    return exit_usage;
  }
  std::string line = fmt::format("procpool triage {} --case {} --runs {}", o.scenario_path, o.case_id, o.runs);
  for (const auto& s : o.overrides) line += " --set " + s;
  if (!o.out_dir.empty()) line += " --out " + o.out_dir;
  return triage_scenario(o, line);
}

}  // namespace

void add_triage_command(CLI::App& app, int& exit_code) {
  auto o = std::make_shared<triage_options>();
  auto* cmd = app.add_subcommand(
      "triage",
      "Is a failure environmental or architectural, and which resource does it follow? Reruns "
      "one case of a scenario --runs times in five environments: idealised (no injected "
      "start-up or init latency, no CPU hogs), as-is, degraded (one CPU hog per core), and as-is "
      "under memory pressure and under I/O pressure; or, "
      "after `--`, any test command as-is, with CPU hogs, with hogs on one CPU, under memory "
      "pressure, under I/O pressure, and under a cgroup CPU quota. Compares failure rates with "
      "Fisher's exact test: environmental when failures depend on the environment and vanish "
      "without it (and then which resources they follow: CPU, memory, I/O), architectural when "
      "they persist in the least degraded environment, else not reproduced or inconclusive. "
      "Writes triage.md (and, for a scenario, results.json and the reports; for a command, "
      "triage.json) into --out. Exit 0 when the triage ran, 1 when interrupted, 2 on a "
      "usage error.");
  // One positional list: the scenario with --case, or the command after `--` (whose own
  // options `--` keeps from being read as triage's).
  cmd->add_option("args", o->command, "SCENARIO (with --case), or -- COMMAND [ARGS...]");
  cmd->add_option("--case", o->case_id, "the case to rerun: its id from results.json or report.md "
                                        "(the #rN suffix may be left out)");
  cmd->add_option("--set", o->overrides, "override a scenario key: KEY=VALUE (repeatable)");
  cmd->add_option("--runs,-K", o->runs, "runs in each environment")->capture_default_str()->check(CLI::Range(1, 100000));
  cmd->add_option("--timeout", o->timeout_s, "command mode: seconds before a run counts as failed and is killed")
      ->capture_default_str()
      ->check(positive_number());
  cmd->add_option("--out", o->out_dir, "output directory (default reports/out/triage-<name>-<time>)");
  cmd->add_option("--memory-mb", o->memory_mb,
                  "RAM the memory environment's hog holds, MiB (default: half of what is "
                  "available; never so much that less than a quarter, or 512 MiB, stays free)");
  cmd->add_option("--cpu-quota", o->cpu_quota_percent,
                  "command mode: the quota environment's share of one CPU, percent (cgroup v2 cpu.max)")
      ->capture_default_str()
      ->check(CLI::Range(1.0, 100.0));
  cmd->add_flag("--quiet", o->quiet, "no per-run lines");
  cmd->callback([o, &exit_code, cmd] { exit_code = run_triage(*o, cmd->help()); });
}

}  // namespace procpool::harness
