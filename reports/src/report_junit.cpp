// junit.xml: one testcase per case, failed when one of the scenario's assertions does not hold
// for that case, plus a "sweep analysis" testcase for verdicts only a sweep can reach (such as
// architectural.scaling). Every testcase carries properties with its figures and verdict
// counts; `procpool.failure_family` says which verdict family its failures belong to, so CI can
// tell a machine's fault from the pool's, or report environmental-only failures as skipped.
// The runs of a repeated case (its repetitions, or triage's reruns) are one testcase, with its
// failed runs as Maven Surefire writes reruns: flakyFailure when a later run passed,
// rerunFailure when every run failed.
#include <algorithm>
#include <map>
#include <set>

#include <fmt/format.h>

#include "report_model.hpp"
#include "report_text.hpp"
#include "reports.hpp"
#include "results/run_records.hpp"
#include "run/record_fields.hpp"

namespace procpool::harness {
namespace {

using json = nlohmann::json;
using report_text::xml_escape;

struct testcase {
  std::string name;
  double seconds = 0;
  std::vector<std::pair<std::string, std::string>> properties;
  enum class state { passed, failed, skipped, error } result = state::passed;
  std::string type;     // failure or error type
  std::string message;  // one line
  std::string body;     // the evidence, several lines
  // Failed runs folded into this testcase: element is flakyFailure, flakyError,
  // rerunFailure or rerunError; type, message and body as above.
  struct rerun {
    std::string element, type, message, body;
  };
  std::vector<rerun> reruns = {};
  bool failing() const { return result == state::failed || result == state::error; }
};

void property(testcase& t, std::string name, std::string value) {
  t.properties.emplace_back(std::move(name), std::move(value));
}

std::string findings_text(const harness::case_record& c) {
  std::string out;
  if (!c.findings) return out;
  for (const auto& f : *c.findings) {
    out += fmt::format("{} x{}: {}", f.verdict.empty() ? "?" : f.verdict, f.count, f.summary);
    if (!f.rule.empty()) out += fmt::format(" [rule: {}]", f.rule);
    out += '\n';
    if (f.evidence.is_object()) {
      for (const auto& [name, value] : f.evidence.items()) {
        out += fmt::format("    {} = {}\n", name, report_text::plain(value));
      }
    }
  }
  return out;
}

testcase case_testcase(const report_model::case_row& c, const json& assert_section,
                       const report_options& options) {
  testcase t;
  t.name = c.id;
  t.seconds = c.wall_ms / 1000.0;
  property(t, "procpool.repetition", fmt::format("{}", c.repetition));
  for (const auto& [key, value] : c.params.items()) {
    property(t, "procpool.param." + key, report_text::plain(value));
  }
  property(t, "procpool.requests", fmt::format("{}", c.requests));
  property(t, "procpool.timeouts", fmt::format("{}", c.timeouts));
  property(t, "procpool.failed", fmt::format("{}", c.failed));
  property(t, "procpool.timeout_rate", fmt::format("{}", c.timeout_rate));
  property(t, "procpool.throughput_rps", fmt::format("{}", c.throughput_rps));
  property(t, "procpool.latency_p50_us", fmt::format("{}", c.latency.p50));
  property(t, "procpool.latency_p99_us", fmt::format("{}", c.latency.p99));
  for (const auto& [outcome, n] : c.outcomes) property(t, "procpool.outcome." + outcome, fmt::format("{}", n));
  for (const auto& [verdict, n] : c.verdicts) property(t, "procpool.verdict." + verdict, fmt::format("{}", n));
  if (!c.top_verdict.empty()) property(t, "procpool.top_verdict", c.top_verdict);
  if (c.interrupted) property(t, "procpool.interrupted", "true");

  if (c.error) {
    t.result = testcase::state::error;
    t.type = "subject";
    t.message = *c.error;
    return t;
  }
  std::vector<std::string> failed;
  for (const auto& check : report_model::check_case(assert_section, c)) {
    if (!check.held) failed.push_back(fmt::format("{}: {}", check.assertion, check.detail));
  }
  if (c.failed > 0 || !failed.empty()) property(t, "procpool.failure_family", report_model::failure_family(c));
  if (failed.empty()) return t;

  const std::string family = report_model::failure_family(c);
  t.type = failed.size() == 1 ? failed.front().substr(0, failed.front().find(':')) : "assertions";
  t.message = fmt::format("{}", fmt::join(failed, "; "));
  t.result = options.environmental_as_skipped && family == "environmental" ? testcase::state::skipped
                                                                           : testcase::state::failed;
  if (t.result == testcase::state::skipped) t.message = "environmental only: " + t.message;
  t.body = fmt::format("{}\nfailure family: {}\n", fmt::join(failed, "\n"), family);
  if (!c.verdicts.empty()) {
    std::vector<std::string> counted;
    for (const auto& [verdict, n] : c.verdicts) counted.push_back(fmt::format("{} x{}", verdict, n));
    t.body += fmt::format("verdicts: {}\n", fmt::join(counted, ", "));
  }
  if (const std::string findings = findings_text(c.record); !findings.empty()) {
    t.body += "findings:\n" + findings;
  }
  return t;
}

// Present when the analyses fitted a sweep or named a sweep-level verdict.
std::optional<testcase> sweep_testcase(const json& results, const report_model::document& doc,
                                       const json& assert_section, const report_options& options) {
  const std::vector<usl_analysis> usl = analyses_of(results).usl;
  const bool fitted = !usl.empty();
  if (!fitted && doc.sweep_verdicts.empty()) return std::nullopt;

  testcase t;
  t.name = "sweep analysis";
  if (fitted) {
    std::size_t i = 0;
    for (const auto& fit : usl) {
      property(t, fmt::format("procpool.usl.{}", i++),
               fmt::format("axis={}; group={}; lambda={}; sigma={}; kappa={}; r_squared={}; "
                           "peak_n={}; verdict={}",
                           fit.axis, report_model::group_label(fit.group, doc.swept_keys), fit.lambda, fit.sigma,
                           fit.kappa, fit.r_squared,
                           fit.peak_n ? report_text::plain(write_value(*fit.peak_n)) : "unbounded",
                           fit.verdict.value_or("none")));
    }
  }
  std::vector<std::string> failed;
  std::set<std::string, std::less<>> families;
  for (const auto& v : doc.sweep_verdicts) {
    property(t, "procpool.verdict." + v.verdict, fmt::format("{}", v.count));
    const auto patterns = report_model::forbidding_patterns(assert_section, v.verdict);
    if (patterns.empty()) continue;
    families.emplace(report_model::family_of(v.verdict));
    failed.push_back(fmt::format("{} (forbidden by {}){}", v.verdict, fmt::join(patterns, ", "),
                                 v.evidence.empty() ? "" : ": " + v.evidence));
  }
  if (failed.empty()) return t;
  const std::string family = families.size() == 1 ? *families.begin() : "mixed";
  property(t, "procpool.failure_family", family);
  t.type = "forbid_verdicts";
  t.message = fmt::format("forbid_verdicts: {}", fmt::join(failed, "; "));
  t.body = fmt::format("{}\nfailure family: {}\n", fmt::join(failed, "\n"), family);
  t.result = options.environmental_as_skipped && family == "environmental" ? testcase::state::skipped
                                                                           : testcase::state::failed;
  return t;
}

// The case id without its repetition, "#rN": the runs of one case share it.
std::string rerun_key(const std::string& id) {
  const auto hash = id.rfind("#r");
  if (hash == std::string::npos || hash + 2 == id.size()) return id;
  const bool digits = id.find_first_not_of("0123456789", hash + 2) == std::string::npos;
  return digits ? id.substr(0, hash) : id;
}

// One testcase for the runs of one case. Failed runs beside a passing one make it flaky: it
// passes, as its last passing run, with a flakyFailure (flakyError) per failed run. When every
// run failed it fails, as its first run, with a rerunFailure (rerunError) per later run.
testcase fold_runs(const std::string& name, const std::vector<testcase>& runs) {
  const auto passing = std::find_if(runs.rbegin(), runs.rend(), [](const testcase& t) { return !t.failing(); });
  const bool flaky = passing != runs.rend();
  testcase folded = flaky ? *passing : runs.front();
  folded.name = name;
  folded.seconds = 0;
  std::size_t failed_runs = 0;
  for (const auto& run : runs) {
    folded.seconds += run.seconds;
    failed_runs += run.failing();
    if (!run.failing() || (!flaky && &run == &runs.front())) continue;
    const char* kind = run.result == testcase::state::error ? "Error" : "Failure";
    folded.reruns.push_back({fmt::format("{}{}", flaky ? "flaky" : "rerun", kind), run.type, run.message, run.body});
  }
  property(folded, "procpool.runs", fmt::format("{}", runs.size()));
  property(folded, "procpool.failed_runs", fmt::format("{}", failed_runs));
  return folded;
}

// Folds each repeated case's runs into one testcase, in the order of their first runs.
std::vector<testcase> fold_repeated_cases(std::vector<testcase> runs) {
  std::vector<std::string> order;
  std::map<std::string, std::vector<testcase>> by_key;
  for (auto& run : runs) {
    const std::string key = rerun_key(run.name);
    if (!by_key.contains(key)) order.push_back(key);
    by_key[key].push_back(std::move(run));
  }
  std::vector<testcase> out;
  for (const auto& key : order) {
    auto& group = by_key[key];
    out.push_back(group.size() == 1 ? std::move(group.front()) : fold_runs(key, group));
  }
  return out;
}

void write_reruns(std::string& out, const testcase& t) {
  for (const auto& r : t.reruns) {
    out += fmt::format("      <{0} type=\"{1}\" message=\"{2}\"><stackTrace>{3}</stackTrace></{0}>\n", r.element,
                       xml_escape(r.type), xml_escape(r.message), xml_escape(r.body));
  }
}

void write_testcase(std::string& out, const testcase& t, const std::string& classname) {
  out += fmt::format("    <testcase classname=\"{}\" name=\"{}\" time=\"{:.3f}\">\n",
                     xml_escape(classname), xml_escape(t.name), t.seconds);
  if (!t.properties.empty()) {
    out += "      <properties>\n";
    for (const auto& [name, value] : t.properties) {
      out += fmt::format("        <property name=\"{}\" value=\"{}\"/>\n", xml_escape(name), xml_escape(value));
    }
    out += "      </properties>\n";
  }
  switch (t.result) {
    case testcase::state::passed: break;
    case testcase::state::skipped:
      out += fmt::format("      <skipped message=\"{}\">{}</skipped>\n", xml_escape(t.message), xml_escape(t.body));
      break;
    case testcase::state::failed:
      out += fmt::format("      <failure type=\"{}\" message=\"{}\">{}</failure>\n", xml_escape(t.type),
                         xml_escape(t.message), xml_escape(t.body));
      break;
    case testcase::state::error:
      out += fmt::format("      <error type=\"{}\" message=\"{}\"/>\n", xml_escape(t.type), xml_escape(t.message));
      break;
  }
  write_reruns(out, t);
  out += "    </testcase>\n";
}

}  // namespace

std::string render_junit(const nlohmann::json& results, const report_options& options) {
  const auto doc = report_model::read_document(results);
  const json* scenario = report_model::find(results, "scenario");
  const json* found = scenario ? report_model::find(*scenario, "assert") : nullptr;
  const json assert_section = found ? *found : json::object();

  std::vector<testcase> cases;
  for (const auto& c : doc.cases) cases.push_back(case_testcase(c, assert_section, options));
  cases = fold_repeated_cases(std::move(cases));
  if (auto sweep = sweep_testcase(results, doc, assert_section, options)) cases.push_back(std::move(*sweep));

  std::size_t failures = 0, errors = 0, skipped = 0;
  double seconds = 0;
  for (const auto& t : cases) {
    failures += t.result == testcase::state::failed;
    errors += t.result == testcase::state::error;
    skipped += t.result == testcase::state::skipped;
    seconds += t.seconds;
  }
  const std::string counts = fmt::format("tests=\"{}\" failures=\"{}\" errors=\"{}\" skipped=\"{}\" time=\"{:.3f}\"",
                                         cases.size(), failures, errors, skipped, seconds);
  std::string out = "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n";
  out += fmt::format("<testsuites name=\"procpool\" {}>\n", counts);
  out += fmt::format("  <testsuite name=\"{}\" {}>\n", xml_escape(doc.name), counts);
  out += "    <properties>\n";
  const json* run = report_model::find(results, "run");
  const std::pair<std::string, std::string> suite_properties[] = {
      {"procpool.scenario", doc.name},
      {"procpool.command", run ? report_model::text(*run, "command") : ""},
      {"procpool.partial", doc.partial ? "true" : "false"},
      {"procpool.conclusion", doc.conclusion},
  };
  for (const auto& [name, value] : suite_properties) {
    out += fmt::format("      <property name=\"{}\" value=\"{}\"/>\n", name, xml_escape(value));
  }
  out += "    </properties>\n";
  const std::string classname = "procpool." + doc.name;
  for (const auto& t : cases) write_testcase(out, t, classname);
  out += "  </testsuite>\n</testsuites>\n";
  return out;
}

}  // namespace procpool::harness
