// driver-check: the checks, each one step of a `session` (driver_session.hpp) with one
// launched driver, and the table of sessions at the end. The sessions that need a fresh driver
// run on threads of their own; the results are printed in one fixed order once all have
// finished. The contract checked is harness/subjects/DRIVERS.md.
#include "cli/driver_check_command.hpp"

#include <fmt/format.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <chrono>
#include <csignal>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <exception>
#include <limits>
#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <thread>
#include <utility>
#include <vector>

#include "cli/driver_session.hpp"
#include "cli/exit_codes.hpp"
#include "procpool/clock.hpp"
#include "subjects/driver_line.hpp"

namespace procpool::harness {
namespace {

using namespace driver_check;
using namespace std::chrono_literals;

// Every check starts a pool of two: enough for one task to overtake another.
constexpr int pool_size = 2;
// A sleep or a burn may measure a hair under what it was asked for (clock granularity).
constexpr double measure_slack_ms = 1.0;
constexpr int protocol_error_status = 65;  // EX_DATAERR
constexpr int cold_init_ms = 300;

check_result outcome(verdict v, std::string detail) {
  check_result r;
  r.outcome = v;
  r.detail = std::move(detail);
  return r;
}
check_result passed(std::string detail = {}) { return outcome(verdict::pass, std::move(detail)); }
check_result warned(std::string detail) { return outcome(verdict::warn, std::move(detail)); }
check_result failed(std::string detail) { return outcome(verdict::fail, std::move(detail)); }

problem prefixed(std::string_view prefix, problem p) {
  p.why = fmt::format("{}{}", prefix, p.why);
  return p;
}

// --- the checks ----------------------------------------------------------------------------------

json start_config(int init_ms = 0) {
  json config = {{"size", pool_size}};
  if (init_ms > 0) config["init"] = {{"init_ms", init_ms}};
  return config;
}

// Nested, with escapes and non-ASCII text: what an echo must give back unchanged.
const json& echo_args() {
  static const json args =
      json::parse(R"({"text":"h\u00e9llo \"driver\"\n\ttab","number":42.5,"count":-7,)"
                  R"("list":[1,"two",null,true,{"nested":[]}]})");
  return args;
}

std::optional<std::string> not_ok(const received_line& done) {
  if (done.line.done.reply.ok) return std::nullopt;
  return fmt::format("the task failed (ok is false): {}", quote(done.text));
}

// "started" against harness/subjects/DRIVERS.md: an integer t_ns on this side's clock; pids, when
// listed, distinct and positive.
std::optional<std::string> started_fault(const received_line& r, std::int64_t t_sent) {
  const auto t = r.raw.find("t_ns");
  constexpr auto max = static_cast<std::uint64_t>(std::numeric_limits<std::int64_t>::max());
  if (t == r.raw.end() || !t->is_number_integer() ||
      (t->is_number_unsigned() && t->get<std::uint64_t>() > max)) {
    return fmt::format("\"started\" needs an integer t_ns (CLOCK_MONOTONIC nanoseconds): {}",
                       quote(r.text));
  }
  const auto t_ns = t->get<std::int64_t>();
  if (t_ns < t_sent || t_ns > r.t_read) {
    return fmt::format(
        "t_ns is not between the writing of the start line and the reading of "
        "\"started\" ({:+.3f} ms from the start line): stamps must be "
        "CLOCK_MONOTONIC nanoseconds: {}",
        ms(t_ns - t_sent), quote(r.text));
  }
  if (const auto pids = r.raw.find("pids"); pids != r.raw.end()) {
    std::set<std::uint64_t> seen;
    bool good = pids->is_array();
    for (const auto& pid : good ? *pids : json::array()) {
      good = good && pid.is_number_unsigned() && pid.get<std::uint64_t>() > 0 &&
             seen.insert(pid.get<std::uint64_t>()).second;
    }
    if (!good)
      return fmt::format("\"pids\" must list distinct positive integers: {}", quote(r.text));
  }
  return std::nullopt;
}

std::string pids_text(const received_line& started) {
  if (started.line.pids.empty()) return "no pids";
  std::string out = "pids";
  for (const auto pid : started.line.pids)
    out += fmt::format("{} {}", out.size() > 4 ? "," : "", pid);
  return out;
}

// 1: a warm start answered by "started"; worker and pool lines on the way must parse.
check_result check_start(session& s) {
  const std::int64_t t_sent = monotonic_ns();
  auto started = s.start(/*warm=*/true, start_config());
  if (!started) return std::move(started).error();
  if (auto fault = started_fault(*started, t_sent)) return failed(*fault);
  return passed(fmt::format("started in {:.0f} ms; {}; {} worker and {} pool lines",
                            ms(started->t_read - t_sent), pids_text(*started), s.worker_lines(),
                            s.pool_lines()));
}

// The ids check_echo submits for the sleep and burn checks, which await their own.
struct batch_ids {
  std::uint64_t echo = 0;
  std::uint64_t sleep = 0;
  std::uint64_t burn = 0;
};

// 2: echo gives its args back; sleep and burn go to the pool with it.
check_result check_echo(session& s, batch_ids& ids) {
  auto echo = s.submit("echo", echo_args());
  if (!echo) return std::move(echo).error();
  auto sleep = s.submit("sleep", {{"ms", 100}});
  if (!sleep) return std::move(sleep).error();
  auto burn = s.submit("burn", {{"ms", 30}});
  if (!burn) return std::move(burn).error();
  ids = {*echo, *sleep, *burn};
  auto done = s.await_done(ids.echo);
  if (!done) return std::move(done).error();
  if (auto fault = not_ok(*done)) return failed(*fault);
  if (done->line.done.reply.result != echo_args()) {
    return failed(fmt::format("the result is not the args, which were {}: {}", echo_args().dump(),
                              quote(done->text)));
  }
  return passed();
}

// 2: sleep and burn report a measure at least what they were asked for.
check_result check_measured(session& s, std::uint64_t id, const std::string& key, double asked_ms) {
  auto done = s.await_done(id);
  if (!done) return std::move(done).error();
  if (auto fault = not_ok(*done)) return failed(*fault);
  const json& result = done->line.done.reply.result;
  const auto it = result.is_object() ? result.find(key) : result.end();
  if (!result.is_object() || it == result.end() || !it->is_number()) {
    return failed(
        fmt::format("the result must be {{\"{}\": <number>}}: {}", key, quote(done->text)));
  }
  const double measured = it->get<double>();
  if (measured < asked_ms - measure_slack_ms) {
    return failed(
        fmt::format("{} is {} for {} ms asked: {}", key, measured, asked_ms, quote(done->text)));
  }
  return passed(fmt::format("{} {:.1f}", key, measured));
}

// 4: with two workers, an echo submitted after a 400 ms sleep comes back first.
check_result check_out_of_order(session& s) {
  auto slow = s.submit("sleep", {{"ms", 400}});
  if (!slow) return std::move(slow).error();
  auto fast = s.submit("echo", {{"after", "the sleep"}});
  if (!fast) return std::move(fast).error();
  auto fast_done = s.await_done(*fast);
  if (!fast_done && fast_done.error().fatal) return std::move(fast_done).error();
  // Both, before judging either: the next check must find no task of this one running.
  auto slow_done = s.await_done(*slow);
  if (!fast_done) return std::move(fast_done).error();
  if (!slow_done) return std::move(slow_done).error();
  for (const auto* done : {&*fast_done, &*slow_done}) {
    if (auto fault = not_ok(*done)) return failed(*fault);
  }
  if (s.task_of(*slow).arrival < s.task_of(*fast).arrival) {
    return failed(
        fmt::format("the done line of a 400 ms sleep (id {}) came before that of the echo "
                    "submitted after it (id {}) to a pool of {}: completions must be "
                    "reported as they happen, not in submission order: {}",
                    *slow, *fast, pool_size, quote(slow_done->text)));
  }
  return passed(fmt::format("the echo's done came {:.0f} ms before the sleep's",
                            ms(slow_done->t_read - fast_done->t_read)));
}

// 5: an unknown command fails with error.type "unknown_command".
check_result check_unknown_command(session& s) {
  auto id = s.submit("no_such_command", {{"x", 1}});
  if (!id) return std::move(id).error();
  auto done = s.await_done(*id);
  if (!done) return std::move(done).error();
  const response& reply = done->line.done.reply;
  if (reply.ok) {
    return failed(
        fmt::format("an unknown command must fail (ok false, error.type "
                    "\"unknown_command\"): {}",
                    quote(done->text)));
  }
  if (reply.failure.type != "unknown_command") {
    return failed(fmt::format("error.type is \"{}\", not \"unknown_command\": {}",
                              reply.failure.type, quote(done->text)));
  }
  return passed();
}

// 6: stats' counts are integers, and with nothing outstanding say so.
check_result check_stats(session& s) {
  if (auto sent = s.send({{"op", "stats"}}, "the stats line"); !sent)
    return std::move(sent).error();
  auto stats = s.await_event(driver_event::stats, "the stats line");
  if (!stats) return std::move(stats).error();
  const json& raw = stats->raw;
  std::map<std::string, std::uint64_t> counts;
  for (const char* key : {"size", "busy", "queued", "completed"}) {
    const auto it = raw.find(key);
    if (it == raw.end() || !it->is_number_unsigned()) {
      return failed(
          fmt::format("\"stats\" needs integer counts size, busy, queued and completed "
                      "(>= 0): {}",
                      quote(stats->text)));
    }
    counts[key] = it->get<std::uint64_t>();
  }
  if (counts["size"] != static_cast<std::uint64_t>(pool_size) || counts["busy"] != 0 ||
      counts["queued"] != 0 || counts["completed"] != s.done_lines()) {
    return failed(
        fmt::format("with every task done, a pool of {} that wrote {} done lines must "
                    "count size {}, busy 0, queued 0, completed {}: {}",
                    pool_size, s.done_lines(), pool_size, s.done_lines(), quote(stats->text)));
  }
  return passed(fmt::format("size {}, busy 0, queued 0, completed {}", pool_size, s.done_lines()));
}

check_result exit_fault(session& s, const exit_status& status, std::string_view when, int wanted) {
  check_result r = failed(fmt::format("the driver {} {}; it must exit with status {}",
                                      status.describe(), when, wanted));
  r.notes = s.stderr_notes();
  return r;
}

// 7: stop is answered by "stopped", which is the driver's last line, and a clean exit.
check_result check_stop(session& s) {
  if (auto sent = s.send({{"op", "stop"}}, "the stop line"); !sent) return std::move(sent).error();
  auto stopped = s.await_event(driver_event::stopped, "the stopped line");
  if (!stopped) return std::move(stopped).error();
  auto end = s.await_exit("after its stopped line");
  if (!end) return std::move(end).error();
  if (!end->lines.empty()) {
    return failed(fmt::format(
        "the driver wrote after its stopped line: {}{}", quote(end->lines.front()),
        end->lines.size() > 1 ? fmt::format(" (and {} more lines)", end->lines.size() - 1)
                              : std::string()));
  }
  if (!end->status.exited_cleanly()) return exit_fault(s, end->status, "after its stopped line", 0);
  return passed(
      fmt::format("exited {:.0f} ms after stopped", ms(monotonic_ns() - stopped->t_read)));
}

// 8: end of input stops the driver as stop does.
check_result check_end_of_stdin(session& s) {
  auto started = s.start(/*warm=*/true, start_config());
  if (!started) return prefixed("starting: ", std::move(started).error());
  s.close_stdin();
  auto end = s.await_exit("after the end of its stdin");
  if (!end) return std::move(end).error();
  bool stopped = false;
  for (const auto& text : end->lines) {
    const auto line = parse_driver_line(text);
    const bool allowed = line && !stopped &&
                         (line->event == driver_event::stopped ||
                          line->event == driver_event::worker || line->event == driver_event::pool);
    if (!allowed) {
      return failed(
          fmt::format("at the end of its stdin the driver may write \"stopped\", and before "
                      "it worker and pool lines, nothing else: {}",
                      quote(text)));
    }
    stopped = line->event == driver_event::stopped;
  }
  if (!end->status.exited_cleanly())
    return exit_fault(s, end->status, "at the end of its stdin", 0);
  return passed(stopped ? "stopped, exited 0" : "exited 0 without a stopped line");
}

// 9: a line the driver cannot accept is answered by "error" and exit status 65.
struct bad_input {
  std::string_view check;
  bool after_start;
  std::string_view line;  // written as it is; empty: a well-formed submit (before start)
};

constexpr std::array<bad_input, 4> bad_inputs{{
    {"error on non-JSON line", true, "this is not JSON {"},
    {"error on unknown op", true, R"({"op":"frobnicate"})"},
    {"error on submit before start", false, ""},
    {"error on second start", true, R"({"op":"start","config":{"size":2}})"},
}};

check_result check_bad_input(session& s, const bad_input& input) {
  if (input.after_start) {
    auto started = s.start(/*warm=*/true, start_config());
    if (!started) return prefixed("starting, before the bad line: ", std::move(started).error());
  }
  if (input.line.empty()) {
    auto sent = s.submit("echo", {{"x", 1}}, /*answerable=*/false);
    if (!sent) return std::move(sent).error();
  } else if (auto sent = s.send_text(input.line, "the bad line"); !sent) {
    return std::move(sent).error();
  }
  auto error = s.await_event(driver_event::error, "the error line", /*dones_expected=*/false);
  if (!error) return std::move(error).error();
  auto end = s.await_exit("after its error line");
  if (!end) return std::move(end).error();
  if (end->status.code != protocol_error_status || end->status.signal != 0) {
    return exit_fault(s, end->status, "after its error line", protocol_error_status);
  }
  return passed(fmt::format("\"{}\"", printable(error->line.message)));
}

// 10: a cold start is answered at once, says so, and the pool still serves.
check_result check_cold_start(session& s) {
  const std::int64_t t_sent = monotonic_ns();
  auto started = s.start(/*warm=*/false, start_config(cold_init_ms));
  if (!started) return std::move(started).error();
  if (auto fault = started_fault(*started, t_sent)) return failed(*fault);
  const double took = ms(started->t_read - t_sent);
  if (started->line.cold) {
    return passed(fmt::format("\"warm\": false honoured; started in {:.0f} ms with init_ms {}",
                              took, cold_init_ms));
  }
  return warned(
      fmt::format("the driver ignores \"warm\": false and starts warm (started in {:.0f} ms "
                  "with init_ms {}): allowed, but a scenario's load.start = \"cold\" then "
                  "measures a warm pool",
                  took, cold_init_ms));
}

check_result check_cold_echo(session& s) {
  const std::int64_t t_sent = monotonic_ns();
  auto id = s.submit("echo", echo_args());
  if (!id) return std::move(id).error();
  auto done = s.await_done(*id);
  if (!done) return std::move(done).error();
  if (auto fault = not_ok(*done)) return failed(*fault);
  if (done->line.done.reply.result != echo_args()) {
    return failed(fmt::format("the result is not the args: {}", quote(done->text)));
  }
  return passed(fmt::format("done {:.0f} ms after the submit", ms(done->t_read - t_sent)));
}

// --- the table -----------------------------------------------------------------------------------

void warm_session(session& s) {
  batch_ids ids;
  s.check("start", [&] { return check_start(s); });
  s.check("echo", [&] { return check_echo(s, ids); });
  s.check("sleep", [&] { return check_measured(s, ids.sleep, "slept_ms", 100); });
  s.check("burn", [&] { return check_measured(s, ids.burn, "burned_ms", 30); });
  s.check("out-of-order completion", [&] { return check_out_of_order(s); });
  s.check("unknown command", [&] { return check_unknown_command(s); });
  s.check("stats", [&] { return check_stats(s); });
  s.check("stop", [&] { return check_stop(s); });
}

template <std::size_t I>
void bad_input_session(session& s) {
  s.check(bad_inputs[I].check, [&] { return check_bad_input(s, bad_inputs[I]); });
}

// Each session is one driver run, reporting its checks in order; a check that breaks the
// session (a timeout, an exit, a line out of turn) leaves the rest of its checks skipped.
struct session_script {
  std::vector<std::string_view> checks;
  void (*run)(session&);
};

const std::vector<session_script>& scripts() {
  static const std::vector<session_script> table = {
      {{"start", "echo", "sleep", "burn", "out-of-order completion", "unknown command", "stats",
        "stop"},
       warm_session},
      {{"end of stdin"},
       [](session& s) { s.check("end of stdin", [&] { return check_end_of_stdin(s); }); }},
      {{bad_inputs[0].check}, bad_input_session<0>},
      {{bad_inputs[1].check}, bad_input_session<1>},
      {{bad_inputs[2].check}, bad_input_session<2>},
      {{bad_inputs[3].check}, bad_input_session<3>},
      {{"cold start", "echo after cold start"},
       [](session& s) {
         s.check("cold start", [&] { return check_cold_start(s); });
         s.check("echo after cold start", [&] { return check_cold_echo(s); });
       }},
  };
  return table;
}

// Checks over every session's done lines.
constexpr std::string_view stamps_check = "done stamps";
constexpr std::string_view ids_check = "one done per id";

// The order of the output.
constexpr std::array<std::string_view, 17> printed_order{
    "start", "echo", "sleep", "burn", stamps_check, "out-of-order completion", "unknown command",
    "stats", "stop", "end of stdin", bad_inputs[0].check, bad_inputs[1].check, bad_inputs[2].check,
    bad_inputs[3].check, "cold start", "echo after cold start", ids_check};

std::string and_more(const std::vector<std::string>& faults, std::string_view what) {
  if (faults.size() < 2) return faults.front();
  return fmt::format("{} (and {} more {})", faults.front(), faults.size() - 1, what);
}

// 3: the stamps of every well-formed done line.
check_result check_all_stamps(const std::vector<done_tally>& tallies) {
  std::size_t checked = 0;
  std::vector<std::string> faults;
  for (const auto& t : tallies) {
    checked += t.stamps_checked;
    faults.insert(faults.end(), t.stamp_faults.begin(), t.stamp_faults.end());
  }
  if (!faults.empty()) return failed(and_more(faults, "done lines"));
  if (checked == 0) return outcome(verdict::skip, "no well-formed done line to check");
  return passed(fmt::format("{} done lines", checked));
}

// 11: exactly one done line per submitted id, over every session.
check_result check_all_ids(const std::vector<done_tally>& tallies) {
  std::size_t submitted = 0;
  std::size_t answered = 0;
  std::vector<std::string> faults;
  for (const auto& t : tallies) {
    submitted += t.submitted;
    answered += t.answered;
    faults.insert(faults.end(), t.id_faults.begin(), t.id_faults.end());
  }
  if (!faults.empty()) return failed(and_more(faults, "such lines"));
  if (submitted == 0) return outcome(verdict::skip, "no task was submitted");
  if (answered == submitted) return passed(fmt::format("{} ids, each answered once", submitted));
  return passed(fmt::format("{} of {} ids answered, each once; the others' checks failed above",
                            answered, submitted));
}

// Runs every session, `jobs` at a time; each on one thread from launch to reaping, since
// PR_SET_PDEATHSIG follows the thread that launched the driver.
std::vector<std::unique_ptr<session>> run_sessions(const check_options& o) {
  const auto& table = scripts();
  std::vector<std::unique_ptr<session>> sessions;
  for (std::size_t i = 0; i < table.size(); ++i) sessions.push_back(std::make_unique<session>(o));
  std::vector<std::exception_ptr> failures(table.size());
  std::atomic<std::size_t> next{0};
  auto work = [&] {
    for (std::size_t i = next++; i < table.size(); i = next++) {
      try {
        table[i].run(*sessions[i]);
        sessions[i]->finish(table[i].checks);
      } catch (...) {
        failures[i] = std::current_exception();
      }
    }
  };
  std::vector<std::thread> threads;
  for (std::size_t t = 0; t < std::min<std::size_t>(o.jobs, table.size()); ++t)
    threads.emplace_back(work);
  for (auto& t : threads) t.join();
  for (const auto& failure : failures) {
    if (failure) std::rethrow_exception(failure);
  }
  return sessions;
}

const char* label(verdict v) {
  switch (v) {
    case verdict::pass:
      return "PASS";
    case verdict::warn:
      return "WARN";
    case verdict::fail:
      return "FAIL";
    case verdict::skip:
      return "SKIP";
  }
  return "?";
}

int print_results(const std::map<std::string, check_result, std::less<>>& results, std::size_t runs,
                  double seconds) {
  std::map<verdict, int> counts;
  for (const auto name : printed_order) {
    const check_result& r = results.find(name)->second;
    ++counts[r.outcome];
    if (r.outcome == verdict::pass) {
      fmt::print("PASS {}{}\n", name, r.detail.empty() ? "" : fmt::format(" ({})", r.detail));
    } else {
      fmt::print("{} {}: {}\n", label(r.outcome), name, r.detail);
    }
    for (const auto& note : r.notes) fmt::print("    {}\n", note);
  }
  const bool conforms = counts[verdict::fail] == 0 && counts[verdict::skip] == 0;
  fmt::print(
      "driver-check: {} passed, {} warned, {} failed, {} skipped ({} driver runs, {:.1f} s): {}\n",
      counts[verdict::pass], counts[verdict::warn], counts[verdict::fail], counts[verdict::skip],
      runs, seconds, conforms ? "the driver keeps the protocol" : "the driver breaks the protocol");
  std::fflush(stdout);
  return conforms ? exit_ok : exit_failed;
}

// Why `program` cannot be run, as the usage error says it; nullopt when it can.
std::optional<std::string> unrunnable(const std::string& program) {
  const auto runnable = [](const std::string& path) {
    struct stat st {};
    return ::stat(path.c_str(), &st) == 0 && S_ISREG(st.st_mode) &&
           ::access(path.c_str(), X_OK) == 0;
  };
  if (program.empty()) return "the driver command is empty";
  if (program.find('/') != std::string::npos) {
    if (runnable(program)) return std::nullopt;
    return fmt::format("'{}' is not an executable file", program);
  }
  const char* path = std::getenv("PATH");
  std::string_view dirs = path != nullptr ? path : "/usr/bin:/bin";
  while (true) {
    const auto colon = dirs.find(':');
    const std::string_view dir = dirs.substr(0, colon);
    if (runnable(fmt::format("{}/{}", dir.empty() ? "." : dir, program))) return std::nullopt;
    if (colon == std::string_view::npos) break;
    dirs.remove_prefix(colon + 1);
  }
  return fmt::format("'{}' is not found in PATH", program);
}

int run_driver_check(const check_options& o) {
  if (o.command.empty()) {
    fmt::print(stderr, "procpool driver-check: give the driver's command after --\n");
    return exit_usage;
  }
  if (auto why = unrunnable(o.command.front())) {
    fmt::print(stderr, "procpool driver-check: cannot run the driver: {}\n", *why);
    return exit_usage;
  }
  // A write to a driver that has exited must be EPIPE, not a signal that ends the check.
  ::signal(SIGPIPE, SIG_IGN);
  const auto t0 = std::chrono::steady_clock::now();
  const auto sessions = run_sessions(o);
  std::map<std::string, check_result, std::less<>> results;
  std::vector<done_tally> tallies;
  for (const auto& s : sessions) {
    for (const auto& [name, r] : s->results()) results.emplace(name, r);
    tallies.push_back(s->tally());
  }
  results.emplace(std::string(stamps_check), check_all_stamps(tallies));
  results.emplace(std::string(ids_check), check_all_ids(tallies));
  const std::chrono::duration<double> took = std::chrono::steady_clock::now() - t0;
  return print_results(results, sessions.size(), took.count());
}

}  // namespace

void add_driver_check_command(CLI::App& app, int& exit_code) {
  auto o = std::make_shared<check_options>();
  auto* cmd = app.add_subcommand(
      "driver-check",
      "Check that an external-pool driver (COMMAND, after `--`) keeps the driver protocol "
      "(harness/subjects/DRIVERS.md): a warm start, echo, sleep and burn, the done lines' stamps, "
      "completions out of order, an unknown command, stats, stop, end of input, the error and "
      "exit status 65 for each kind of bad input, a cold start, one done per id. Launches the "
      "driver once per group of checks, each in a process group of its own that is killed "
      "afterwards. Prints PASS, WARN, FAIL or SKIP per check, quoting what the driver wrote, "
      "then a summary. Exit 0 when no check failed, 1 when one did, 2 on a usage error.");
  cmd->add_option("command", o->command, "the driver's command and its arguments, after --")
      ->required();
  cmd->add_option("--timeout-ms", o->timeout_ms,
                  "limit on each step: an answer, a done line, an exit")
      ->capture_default_str()
      ->check(CLI::Range(1, 3'600'000));
  cmd->add_option("--jobs,-j", o->jobs,
                  "driver runs at once (the output's order does not depend on it)")
      ->capture_default_str()
      ->check(CLI::Range(1, 16));
  cmd->callback([o, &exit_code] { exit_code = run_driver_check(*o); });
}

}  // namespace procpool::harness
