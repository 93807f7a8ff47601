// The report writers (report.md, report.html, junit.xml, cases.csv) and `procpool report`, on
// synthetic results documents: content and order, escaping of odd names (quotes, commas,
// newlines, markup, non-ASCII, invalid UTF-8), the charts and their notes, the per-case
// assertion checks, and the caps that keep a page small.
#include "reports.hpp"
#include "cli/report_command.hpp"

#include <unistd.h>

#include <gtest/gtest.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <map>
#include <regex>
#include <sstream>
#include <string>
#include <vector>

#include <fmt/format.h>

#include "report_text.hpp"
#include "support/scratch_dir.hpp"

namespace procpool::harness {
namespace {

using nlohmann::json;

// Every troublesome character class at once; "\xff" is not UTF-8.
const std::string odd_id = "weird \"id\", with <tags> & ünïcode\nsecond line; a|b `tick`";
const std::string odd_value = "x,\"y\"\r\n<z>&\xff";

// ---- Synthetic documents ----

json latency(double p50, double p99) {
  return {{"p50", p50}, {"p90", p50 * 2}, {"p99", p99}, {"p999", p99 * 1.5}, {"max", p99 * 2},
          {"mean", p50 * 1.2}, {"count", 100}};
}

json worker_event(std::uint64_t t_ns, int worker, const char* from, const char* to) {
  json e = {{"t_ns", t_ns}, {"worker", worker}, {"slot", worker - 1}, {"from", from}, {"to", to},
            {"cause", "test"}, {"pid", 1000 + worker}};
  if (std::string(to) == "idle" && std::string(from) == "starting") {
    e["t_spawn_ns"] = 1'000'000'000ull;
    e["t_main_ns"] = 1'050'000'000ull;
    e["t_init_done_ns"] = 1'080'000'000ull;
  }
  return e;
}

json request(std::uint64_t id, int worker, std::uint64_t submit, std::uint64_t reply, const char* outcome) {
  json r = {{"request_id", id},      {"worker", worker},   {"t_submit", submit},
            {"t_checkout", worker ? submit + 1000 : 0},  {"t_sent", worker ? submit + 2000 : 0},
            {"t_worker_recv", worker ? submit + 3000 : 0}, {"t_worker_done", worker ? reply - 1000 : 0},
            {"t_reply", reply},      {"outcome", outcome}};
  if (std::string(outcome) != "ok") {
    r["verdict"] = "architectural.startup_serialization";
    r["evidence"] = {{"starts_overlapping", 0}};
  }
  return r;
}

// Two workers started one after the other, some requests, a checkout timeout and a request
// timeout.
json timelines() {
  const std::uint64_t base = 1'000'000'000;
  json workers = json::array({worker_event(base, 1, "pending", "starting"),
                              worker_event(base + 80'000'000, 1, "starting", "idle"),
                              worker_event(base + 80'000'000, 2, "pending", "starting"),
                              worker_event(base + 90'000'000, 1, "idle", "busy"),
                              worker_event(base + 95'000'000, 1, "busy", "idle"),
                              worker_event(base + 160'000'000, 2, "starting", "idle"),
                              worker_event(base + 170'000'000, 2, "idle", "busy"),
                              worker_event(base + 270'000'000, 2, "busy", "stopping"),
                              worker_event(base + 275'000'000, 2, "stopping", "exited")});
  json failed = json::array({request(7, 0, base + 10'000'000, base + 70'000'000, "checkout_timeout"),
                             request(8, 2, base + 170'000'000, base + 270'000'000, "request_timeout")});
  json cancelled = request(10, 0, base + 20'000'000, base + 30'000'000, "cancelled");
  cancelled.erase("verdict");
  cancelled.erase("evidence");
  json sampled = json::array({request(9, 1, base + 90'000'000, base + 95'000'000, "ok"), cancelled});
  return {{"requests_failed", failed}, {"requests_failed_dropped", 0}, {"requests_sampled", sampled},
          {"workers", workers}, {"worker_events_dropped", 0}};
}

json make_case(std::size_t index, int concurrency, int startup_ms, std::uint64_t timeouts,
               const json& verdicts) {
  const std::uint64_t requests = 100;
  json outcomes = {{"ok", requests - timeouts}};
  if (timeouts) outcomes["checkout_timeout"] = timeouts;
  json findings = json::array();
  for (const auto& [verdict, n] : verdicts.items()) {
    findings.push_back({{"verdict", verdict},
                        {"count", n},
                        {"rule", "starts did not overlap"},
                        {"summary", "workers started one at a time, <one> & \"two\""},
                        {"evidence", {{"starts_overlapping", 0}, {"note", odd_value}}}});
  }
  return {{"id", fmt::format("load.concurrency={},worker.startup_ms={}#r0", concurrency, startup_ms)},
          {"index", index},
          {"params", {{"load.concurrency", concurrency}, {"worker.startup_ms", startup_ms}}},
          {"repetition", 0},
          {"outcomes", outcomes},
          {"latency_us", latency(1000.0 * concurrency, 20'000.0 * concurrency + startup_ms * 1000.0)},
          {"throughput_rps", 1000.0 * concurrency / (1 + 0.1 * (concurrency - 1))},
          {"wall_ms", 250.5},
          {"load_wall_ms", 200.0},
          {"late_starts", 0},
          {"environment", {{"cores", 2}, {"load_average_1m", 0.5}, {"psi", {{"cpu_some_pct", 3.5}}}}},
          {"timelines", timelines()},
          {"verdicts", verdicts},
          {"findings", findings}};
}

// A 4 x 2 sweep with timeouts that grow with start-up latency, one odd case, USL and axis
// analyses and a sweep-level verdict.
json sweep_results() {
  json cases = json::array();
  std::size_t index = 0;
  for (const int concurrency : {1, 2, 4, 8}) {
    for (const int startup_ms : {0, 400}) {
      const std::uint64_t timeouts = startup_ms ? static_cast<std::uint64_t>(concurrency) : 0;
      json verdicts = json::object();
      if (timeouts) {
        verdicts = concurrency == 8 ? json{{"architectural.startup_serialization", timeouts}}
                                    : json{{"environmental.startup", timeouts}};
      }
      cases.push_back(make_case(index++, concurrency, startup_ms, timeouts, verdicts));
    }
  }
  cases[0]["id"] = odd_id;
  cases[0]["params"]["worker.startup_ms"] = odd_value;  // an odd param value too
  json points = json::array();
  for (const int n : {1, 2, 4, 8}) points.push_back({{"n", n}, {"throughput", 1000.0 * n / (1 + 0.1 * (n - 1))}});
  return {
      {"schema", "procpool.results/1"},
      {"scenario",
       {{"name", "odd \"scenario\", <b>&"},
        {"description", "Concurrency x start-up, with ünïcode"},
        {"pool", {{"size", 4}, {"prewarm", "parallel"}}},
        {"load", {{"model", "closed"}, {"concurrency", 4}}},
        {"sweep", json::array({{{"key", "load.concurrency"}, {"values", {1, 2, 4, 8}}},
                               {{"key", "worker.startup_ms"}, {"values", {0, 400}}}})},
        {"assert", {{"max_timeout_rate", 0.03}, {"p99_ms", nullptr}, {"forbid_verdicts", {"architectural.*"}}}}}},
      {"environment", {{"cores", 2}, {"kernel", "6.1.0"}, {"machine", "x86_64"}}},
      {"run", {{"command", "procpool run scenarios/x.toml --set 'load.model=open'"},
               {"shard", {{"index", 0}, {"count", 1}}},
               {"total_cases", 8}}},
      {"cases", cases},
      {"verdicts", {{"environmental.startup", 7}, {"architectural.startup_serialization", 8},
                    {"architectural.scaling", 1}}},
      {"assertions", json::array({{{"assertion", "max_timeout_rate"}, {"limit", 0.03}, {"value", 0.01875},
                                   {"held", true}, {"detail", "15 timeouts in 800 requests"}},
                                  {{"assertion", "forbid_verdicts"}, {"limit", {"architectural.*"}},
                                   {"value", {"architectural.startup_serialization x8"}}, {"held", false},
                                   {"detail", "architectural.startup_serialization x8 in load.concurrency=8"}}})},
      {"analyses",
       {{"usl", json::array({{{"axis", "load.concurrency"}, {"group", {{"worker.startup_ms", 0}}},
                              {"points", points}, {"lambda", 1000}, {"sigma", 0.1}, {"kappa", 0.0},
                              {"r_squared", 0.99}, {"peak_n", nullptr}, {"peak_throughput", 10000},
                              {"verdict", "architectural.scaling"}, {"evidence", "sigma 0.1 above 0.05"}}})},
        {"axes", json::array({{{"key", "worker.startup_ms"}, {"kind", "environmental"},
                               {"rows", json::array({{{"value", 0}, {"requests", 400}, {"timeouts", 0}, {"rate", 0}},
                                                     {{"value", 400}, {"requests", 400}, {"timeouts", 15}, {"rate", 0.0375}}})},
                               {"p_value", 1e-5}, {"depends", true}}})}}},
      {"summary", {{"cases", 8}, {"requests", 800}, {"failed", 15}, {"timeouts", 15},
                   {"families", {{"environmental", 7}, {"architectural", 9}}}}},
      {"conclusion", "Workers started one at a time: an architectural cause, not the machine."},
      {"partial", false}};
}

// One case, no sweep, nothing failed, no diagnosis fields at all (an older document).
json plain_results() {
  json c = make_case(0, 2, 0, 0, json::object());
  c["id"] = "r0";
  c["params"] = json::object();
  c.erase("verdicts");
  c.erase("findings");
  return {{"schema", "procpool.results/1"},
          {"scenario", {{"name", "plain"}, {"sweep", json::array()}, {"assert", json::object()}}},
          {"environment", {{"cores", 2}}},
          {"run", {{"command", "procpool run scenarios/plain.toml"}}},
          {"cases", json::array({c})},
          {"assertions", json::array()},
          {"partial", false}};
}

// ---- Parsers used to check the output ----

// RFC 4180: rows of fields; records end in CRLF.
std::vector<std::vector<std::string>> parse_csv(const std::string& text) {
  std::vector<std::vector<std::string>> rows;
  std::vector<std::string> row;
  std::string field;
  bool quoted = false, was_quoted = false;
  for (std::size_t i = 0; i < text.size(); ++i) {
    const char ch = text[i];
    if (quoted) {
      if (ch == '"' && i + 1 < text.size() && text[i + 1] == '"') {
        field += '"';
        ++i;
      } else if (ch == '"') {
        quoted = false;
      } else {
        field += ch;
      }
    } else if (ch == '"') {
      EXPECT_TRUE(field.empty() && !was_quoted) << "a quote inside an unquoted field at " << i;
      quoted = was_quoted = true;
    } else if (ch == ',') {
      row.push_back(std::move(field));
      field.clear();
      was_quoted = false;
    } else if (ch == '\r') {
      EXPECT_TRUE(i + 1 < text.size() && text[i + 1] == '\n') << "a bare CR at " << i;
      row.push_back(std::move(field));
      field.clear();
      was_quoted = false;
      rows.push_back(std::move(row));
      row.clear();
      ++i;
    } else {
      EXPECT_NE(ch, '\n') << "a bare LF outside quotes at " << i;
      field += ch;
    }
  }
  EXPECT_FALSE(quoted) << "an unterminated quoted field";
  EXPECT_TRUE(row.empty() && field.empty()) << "the last record lacks its CRLF";
  return rows;
}

struct xml_element {
  std::string name;
  std::map<std::string, std::string> attributes;
  std::string text;
  std::vector<xml_element> children;
};

// A strict little XML reader: well-formedness (nesting, quoting, entities, no raw < or &,
// no forbidden control characters) fails the test; the tree comes back decoded.
class xml_reader {
 public:
  explicit xml_reader(std::string text) : s_(std::move(text)) {}

  xml_element document() {
    skip_space();
    if (s_.compare(pos_, 5, "<?xml") == 0) pos_ = s_.find("?>", pos_) + 2;
    skip_space();
    xml_element root = element();
    skip_space();
    EXPECT_EQ(pos_, s_.size()) << "content after the root element";
    return root;
  }

 private:
  void skip_space() {
    while (pos_ < s_.size() && std::isspace(static_cast<unsigned char>(s_[pos_]))) ++pos_;
  }
  std::string name() {
    const std::size_t from = pos_;
    while (pos_ < s_.size() && (std::isalnum(static_cast<unsigned char>(s_[pos_])) || s_[pos_] == '-' ||
                                s_[pos_] == '_' || s_[pos_] == '.' || s_[pos_] == ':')) {
      ++pos_;
    }
    EXPECT_GT(pos_, from) << "a name expected at " << from;
    return s_.substr(from, pos_ - from);
  }
  std::string decode(std::size_t from, std::size_t to) {
    std::string out;
    for (std::size_t i = from; i < to; ++i) {
      const auto ch = static_cast<unsigned char>(s_[i]);
      EXPECT_NE(s_[i], '<') << "a raw < at " << i;
      EXPECT_FALSE(ch < 0x20 && ch != '\n' && ch != '\t' && ch != '\r') << "a control character at " << i;
      if (s_[i] != '&') {
        out += s_[i];
        continue;
      }
      const std::size_t end = s_.find(';', i);
      EXPECT_NE(end, std::string::npos);
      const std::string entity = s_.substr(i + 1, end - i - 1);
      static const std::map<std::string, std::string> named = {
          {"amp", "&"}, {"lt", "<"}, {"gt", ">"}, {"quot", "\""}, {"apos", "'"}};
      if (named.count(entity)) {
        out += named.at(entity);
      } else {
        EXPECT_TRUE(entity.size() > 1 && entity[0] == '#') << "unknown entity &" << entity << ";";
        const unsigned long code = std::stoul(entity.substr(1));
        EXPECT_LT(code, 128u) << "only ASCII character references are expected";
        out += static_cast<char>(code);
      }
      i = end;
    }
    return out;
  }
  xml_element element() {
    EXPECT_EQ(s_[pos_], '<');
    ++pos_;
    xml_element e;
    e.name = name();
    for (;;) {
      skip_space();
      if (s_.compare(pos_, 2, "/>") == 0) {
        pos_ += 2;
        return e;
      }
      if (s_[pos_] == '>') {
        ++pos_;
        break;
      }
      const std::string attribute = name();
      EXPECT_EQ(s_[pos_], '=') << "attribute " << attribute;
      const char quote = s_[++pos_];
      EXPECT_EQ(quote, '"') << "attribute " << attribute << " is not quoted";
      const std::size_t end = s_.find(quote, ++pos_);
      EXPECT_FALSE(e.attributes.count(attribute)) << "attribute " << attribute << " twice";
      e.attributes[attribute] = decode(pos_, end);
      pos_ = end + 1;
    }
    for (;;) {
      const std::size_t lt = s_.find('<', pos_);
      EXPECT_NE(lt, std::string::npos) << "element " << e.name << " is not closed";
      if (lt == std::string::npos) return e;
      e.text += decode(pos_, lt);
      pos_ = lt;
      if (s_.compare(pos_, 2, "</") == 0) {
        pos_ += 2;
        EXPECT_EQ(name(), e.name) << "mismatched closing tag";
        EXPECT_EQ(s_[pos_], '>');
        ++pos_;
        return e;
      }
      e.children.push_back(element());
    }
  }

  std::string s_;
  std::size_t pos_ = 0;
};

std::vector<const xml_element*> children_named(const xml_element& e, const std::string& name) {
  std::vector<const xml_element*> out;
  for (const auto& c : e.children) {
    if (c.name == name) out.push_back(&c);
  }
  return out;
}

std::map<std::string, std::string> properties_of(const xml_element& testcase) {
  std::map<std::string, std::string> out;
  for (const auto* list : children_named(testcase, "properties")) {
    for (const auto* p : children_named(*list, "property")) out[p->attributes.at("name")] = p->attributes.at("value");
  }
  return out;
}

std::size_t count(const std::string& text, const std::string& what) {
  std::size_t n = 0;
  for (auto at = text.find(what); at != std::string::npos; at = text.find(what, at + 1)) ++n;
  return n;
}

// The <svg ...>...</svg> of one chart.
std::string chart_svg(const std::string& html, const std::string& name) {
  const auto at = html.find(fmt::format("data-chart=\"{}\"", name));
  if (at == std::string::npos) return {};
  const auto from = html.rfind("<svg", at);
  return html.substr(from, html.find("</svg>", at) + 6 - from);
}

std::size_t data_marks(const std::string& svg) {
  std::smatch m;
  static const std::regex marks("data-marks=\"([0-9]+)\"");
  return std::regex_search(svg, m, marks) ? std::stoul(m[1]) : 0;
}

// ---- Text helpers ----

TEST(ReportText, EscapesForXml) {
  EXPECT_EQ(report_text::xml_escape("a<b>&\"c\"'d'"), "a&lt;b&gt;&amp;&quot;c&quot;&#39;d&#39;");
  EXPECT_EQ(report_text::xml_escape("x\ny\tz\r"), "x&#10;y&#9;z&#13;");
  EXPECT_EQ(report_text::xml_escape(std::string("nul\0bell\a", 9)), "nul\xEF\xBF\xBD" "bell\xEF\xBF\xBD");
  EXPECT_EQ(report_text::xml_escape("ünïcode"), "ünïcode");
}

TEST(ReportText, ReplacesInvalidUtf8) {
  EXPECT_EQ(report_text::valid_utf8("ok é"), "ok é");
  EXPECT_EQ(report_text::valid_utf8("a\xff" "b"), "a\xEF\xBF\xBD" "b");
  EXPECT_EQ(report_text::valid_utf8("\xC0\xAF"), "\xEF\xBF\xBD\xEF\xBF\xBD");  // overlong '/'
  EXPECT_EQ(report_text::valid_utf8("\xED\xA0\x80"), "\xEF\xBF\xBD\xEF\xBF\xBD\xEF\xBF\xBD");  // a surrogate
  EXPECT_EQ(report_text::valid_utf8("cut \xE2\x82"), "cut \xEF\xBF\xBD\xEF\xBF\xBD");
}

TEST(ReportText, QuotesCsvFieldsOnlyWhenNeeded) {
  EXPECT_EQ(report_text::csv_field("plain"), "plain");
  EXPECT_EQ(report_text::csv_field("a,b"), "\"a,b\"");
  EXPECT_EQ(report_text::csv_field("say \"hi\""), "\"say \"\"hi\"\"\"");
  EXPECT_EQ(report_text::csv_field("two\nlines"), "\"two\nlines\"");
  EXPECT_EQ(report_text::csv_field("ünï"), "ünï");
}

TEST(ReportText, KeepsMarkdownTableCellsOnOneLine) {
  EXPECT_EQ(report_text::markdown_text("a|b\nc <d> *e* worker.startup_ms _x_"),
            "a\\|b c &lt;d&gt; \\*e\\* worker.startup_ms \\_x\\_");
  EXPECT_EQ(report_text::markdown_code("id|x"), "`id\\|x`");
  EXPECT_EQ(report_text::markdown_code("a`b"), "``a`b``");
  EXPECT_EQ(report_text::markdown_code("`x"), "`` `x ``");
}

TEST(ReportText, FormatsThreeSignificantDigits) {
  EXPECT_EQ(report_text::significant(0), "0");
  EXPECT_EQ(report_text::significant(1.0), "1");
  EXPECT_EQ(report_text::significant(1.23456), "1.23");
  EXPECT_EQ(report_text::significant(0.012345), "0.0123");
  EXPECT_EQ(report_text::significant(12345.6), "12346");
  EXPECT_EQ(report_text::ms_from_us(1042), "1.04");
  EXPECT_EQ(report_text::percent(0.125), "12.5%");
  EXPECT_EQ(report_text::percent(0), "0%");
}

// ---- cases.csv ----

TEST(CasesCsv, ParsesBackWithOneRowPerCaseAndOddNamesIntact) {
  const json results = sweep_results();
  const auto rows = parse_csv(render_csv(results));
  ASSERT_EQ(rows.size(), 1 + results["cases"].size());
  const auto& header = rows[0];
  const std::vector<std::string> expected = {
      "id", "repetition", "load.concurrency", "worker.startup_ms", "throughput_rps", "latency_p50_us",
      "latency_p90_us", "latency_p99_us", "latency_p999_us", "latency_max_us", "latency_mean_us", "requests",
      "ready_ms", "uss_kib_mean", "pss_kib_mean", "outcome.ok", "outcome.checkout_timeout", "timeout_rate", "top_verdict",
      "verdict.architectural.startup_serialization", "verdict.environmental.startup", "error"};
  EXPECT_EQ(header, expected);
  for (const auto& row : rows) EXPECT_EQ(row.size(), header.size());
  const auto column = [&](const std::string& name) {
    return static_cast<std::size_t>(std::find(header.begin(), header.end(), name) - header.begin());
  };
  // The odd id and value come back byte for byte, save the invalid byte, which is replaced.
  EXPECT_EQ(rows[1][column("id")], odd_id);
  EXPECT_EQ(rows[1][column("worker.startup_ms")], "x,\"y\"\r\n<z>&\xEF\xBF\xBD");
  const auto& last = rows.back();  // concurrency 8, start-up 400
  EXPECT_EQ(last[column("load.concurrency")], "8");
  EXPECT_EQ(last[column("outcome.checkout_timeout")], "8");
  EXPECT_EQ(last[column("timeout_rate")], "0.08");
  EXPECT_EQ(last[column("top_verdict")], "architectural.startup_serialization");
  EXPECT_EQ(last[column("verdict.architectural.startup_serialization")], "8");
  EXPECT_EQ(last[column("verdict.environmental.startup")], "0");
  EXPECT_EQ(rows[1][column("top_verdict")], "");
  EXPECT_EQ(std::stod(rows[1][column("latency_p99_us")]), 20000);
}

// ready_ms and the workers' memory: figures when the case has them, empty fields when not.
TEST(CasesCsv, HoldsReadyMsAndWorkerMemoryBlankWhenAbsent) {
  json results = sweep_results();
  results["cases"][1]["ready_ms"] = 412.5;
  results["cases"][1]["memory"] = {{"workers", 4},
                                   {"uss_kib", {{"mean", 2048}, {"max", 4096}}},
                                   {"pss_kib", {{"mean", 3000.5}, {"max", 5000}}}};
  results["cases"][2]["ready_ms"] = nullptr;  // never all ready
  const auto rows = parse_csv(render_csv(results));
  const auto& header = rows[0];
  const auto column = [&](const std::string& name) {
    return static_cast<std::size_t>(std::find(header.begin(), header.end(), name) - header.begin());
  };
  ASSERT_LT(column("pss_kib_mean"), header.size());
  EXPECT_EQ(rows[2][column("ready_ms")], "412.5");
  EXPECT_EQ(rows[2][column("uss_kib_mean")], "2048");
  EXPECT_EQ(rows[2][column("pss_kib_mean")], "3000.5");
  EXPECT_EQ(rows[3][column("ready_ms")], "");
  EXPECT_EQ(rows[3][column("uss_kib_mean")], "");
}

TEST(CasesCsv, ToleratesADocumentWithoutDiagnosis) {
  const auto rows = parse_csv(render_csv(plain_results()));
  ASSERT_EQ(rows.size(), 2u);
  EXPECT_EQ(rows[0].front(), "id");
  EXPECT_EQ(rows[1].front(), "r0");
  EXPECT_EQ(std::count_if(rows[0].begin(), rows[0].end(),
                          [](const std::string& h) { return h.rfind("verdict.", 0) == 0; }), 0);
}

// ---- junit.xml ----

TEST(JunitXml, IsWellFormedWithOneTestcasePerCaseAndTheSweepAnalysis) {
  const json results = sweep_results();
  const auto root = xml_reader(render_junit(results, {})).document();
  ASSERT_EQ(root.name, "testsuites");
  const auto suites = children_named(root, "testsuite");
  ASSERT_EQ(suites.size(), 1u);
  EXPECT_EQ(suites[0]->attributes.at("name"), "odd \"scenario\", <b>&");
  const auto testcases = children_named(*suites[0], "testcase");
  ASSERT_EQ(testcases.size(), results["cases"].size() + 1);
  EXPECT_EQ(testcases[0]->attributes.at("name"), odd_id);  // the newline survives as &#10;
  EXPECT_EQ(testcases.back()->attributes.at("name"), "sweep analysis");
  EXPECT_EQ(suites[0]->attributes.at("tests"), std::to_string(testcases.size()));
}

TEST(JunitXml, FailsCasesOnTheirOwnAssertionsWithVerdictsAndEvidence) {
  const auto root = xml_reader(render_junit(sweep_results(), {})).document();
  const auto testcases = children_named(*children_named(root, "testsuite")[0], "testcase");
  std::map<std::string, const xml_element*> by_name;
  for (const auto* t : testcases) by_name[t->attributes.at("name")] = t;

  // 1 timeout in 100 (1%) is within the 3% limit: a pass that still carries its verdicts.
  const auto* passing = by_name.at("load.concurrency=1,worker.startup_ms=400#r0");
  EXPECT_TRUE(children_named(*passing, "failure").empty());
  auto props = properties_of(*passing);
  EXPECT_EQ(props.at("procpool.verdict.environmental.startup"), "1");
  EXPECT_EQ(props.at("procpool.failure_family"), "environmental");
  EXPECT_EQ(props.at("procpool.param.load.concurrency"), "1");

  // 4% timed out, all environmental: a failure marked environmental.
  const auto* environmental = by_name.at("load.concurrency=4,worker.startup_ms=400#r0");
  const auto failures = children_named(*environmental, "failure");
  ASSERT_EQ(failures.size(), 1u);
  EXPECT_NE(failures[0]->attributes.at("message").find("max_timeout_rate"), std::string::npos);
  EXPECT_NE(failures[0]->text.find("environmental.startup x4"), std::string::npos);
  EXPECT_NE(failures[0]->text.find("starts_overlapping = 0"), std::string::npos);  // evidence
  EXPECT_EQ(properties_of(*environmental).at("procpool.failure_family"), "environmental");

  // A forbidden architectural verdict fails the case as architectural.
  const auto* architectural = by_name.at("load.concurrency=8,worker.startup_ms=400#r0");
  const auto arch_failures = children_named(*architectural, "failure");
  ASSERT_EQ(arch_failures.size(), 1u);
  EXPECT_NE(arch_failures[0]->attributes.at("message").find("forbid_verdicts"), std::string::npos);
  EXPECT_NE(arch_failures[0]->attributes.at("message").find("architectural.startup_serialization"), std::string::npos);
  EXPECT_EQ(properties_of(*architectural).at("procpool.failure_family"), "architectural");

  // architectural.scaling is found by the sweep analysis alone, and is forbidden too.
  const auto* sweep = by_name.at("sweep analysis");
  const auto sweep_failures = children_named(*sweep, "failure");
  ASSERT_EQ(sweep_failures.size(), 1u);
  EXPECT_NE(sweep_failures[0]->attributes.at("message").find("architectural.scaling"), std::string::npos);
  EXPECT_NE(sweep_failures[0]->attributes.at("message").find("worker.startup_ms=0: sigma 0.1 above 0.05"), std::string::npos);
  EXPECT_EQ(properties_of(*sweep).at("procpool.verdict.architectural.scaling"), "1");

  // Clean cases pass without a failure family.
  const auto* clean = by_name.at("load.concurrency=2,worker.startup_ms=0#r0");
  EXPECT_TRUE(children_named(*clean, "failure").empty());
  EXPECT_FALSE(properties_of(*clean).count("procpool.failure_family"));

  const auto* suite = children_named(root, "testsuite")[0];
  EXPECT_EQ(suite->attributes.at("failures"), "3");  // concurrency 4 and 8 at 400 ms, the sweep
  EXPECT_EQ(suite->attributes.at("skipped"), "0");
}

TEST(JunitXml, ReportsEnvironmentalOnlyFailuresAsSkippedWhenAsked) {
  const auto root = xml_reader(render_junit(sweep_results(), {.environmental_as_skipped = true, .timeline_case = ""}))
                        .document();
  const auto* suite = children_named(root, "testsuite")[0];
  for (const auto* t : children_named(*suite, "testcase")) {
    const auto family = properties_of(*t).count("procpool.failure_family") ? properties_of(*t).at("procpool.failure_family") : "";
    if (t->attributes.at("name") == "load.concurrency=4,worker.startup_ms=400#r0") {
      EXPECT_EQ(children_named(*t, "skipped").size(), 1u);
      EXPECT_TRUE(children_named(*t, "failure").empty());
    }
    if (family == "architectural") {
      EXPECT_EQ(children_named(*t, "failure").size(), 1u);
    }
  }
  EXPECT_EQ(suite->attributes.at("skipped"), "1");
  EXPECT_EQ(suite->attributes.at("failures"), "2");
}

// Runs of one case, as `procpool triage` or repetitions leave them: "<case>#rN".
json run_of(std::size_t index, int concurrency, std::uint64_t timeouts, int repetition) {
  json c = make_case(index, concurrency, 400, timeouts,
                     timeouts ? json{{"environmental.startup", timeouts}} : json::object());
  c["id"] = fmt::format("load.concurrency={},worker.startup_ms=400#r{}", concurrency, repetition);
  c["repetition"] = repetition;
  return c;
}

TEST(JunitXml, ShowsTheRunsOfARepeatedCaseAsSurefireShowsReruns) {
  json results = plain_results();
  // Concurrency 4 fails (4% timed out, above 3%), then passes, then fails: flaky. Concurrency
  // 2 fails all three times.
  results["scenario"]["assert"] = {{"max_timeout_rate", 0.03}};
  results["cases"] = json::array({run_of(0, 4, 4, 0), run_of(1, 2, 5, 0), run_of(2, 4, 0, 1), run_of(3, 2, 6, 1),
                                  run_of(4, 4, 5, 2), run_of(5, 2, 7, 2)});
  const auto root = xml_reader(render_junit(results, {})).document();
  const auto* suite = children_named(root, "testsuite")[0];
  const auto testcases = children_named(*suite, "testcase");
  ASSERT_EQ(testcases.size(), 2u);
  EXPECT_EQ(suite->attributes.at("tests"), "2");
  EXPECT_EQ(suite->attributes.at("failures"), "1");

  const auto* flaky = testcases[0];
  EXPECT_EQ(flaky->attributes.at("name"), "load.concurrency=4,worker.startup_ms=400");
  EXPECT_TRUE(children_named(*flaky, "failure").empty());
  const auto flaky_failures = children_named(*flaky, "flakyFailure");
  ASSERT_EQ(flaky_failures.size(), 2u);
  EXPECT_NE(flaky_failures[0]->attributes.at("message").find("max_timeout_rate"), std::string::npos);
  EXPECT_EQ(children_named(*flaky_failures[0], "stackTrace").size(), 1u);
  EXPECT_EQ(properties_of(*flaky).at("procpool.runs"), "3");
  EXPECT_EQ(properties_of(*flaky).at("procpool.failed_runs"), "2");
  EXPECT_NEAR(std::stod(flaky->attributes.at("time")), 3 * 0.2505, 0.002);  // every run's time

  const auto* broken = testcases[1];
  EXPECT_EQ(broken->attributes.at("name"), "load.concurrency=2,worker.startup_ms=400");
  ASSERT_EQ(children_named(*broken, "failure").size(), 1u);
  EXPECT_NE(children_named(*broken, "failure")[0]->attributes.at("message").find("max_timeout_rate"), std::string::npos);
  EXPECT_EQ(children_named(*broken, "rerunFailure").size(), 2u);
  EXPECT_TRUE(children_named(*broken, "flakyFailure").empty());
  EXPECT_EQ(properties_of(*broken).at("procpool.failed_runs"), "3");
}

TEST(JunitXml, ReportsASubjectThatCouldNotStartAsAnError) {
  json results = plain_results();
  results["cases"][0]["error"] = {{"type", "start_failed"}, {"message", "no such file: <\"worker\">"}};
  const auto root = xml_reader(render_junit(results, {})).document();
  const auto* suite = children_named(root, "testsuite")[0];
  const auto testcases = children_named(*suite, "testcase");
  ASSERT_EQ(testcases.size(), 1u);  // no sweep analysis without a fit
  const auto errors = children_named(*testcases[0], "error");
  ASSERT_EQ(errors.size(), 1u);
  EXPECT_EQ(errors[0]->attributes.at("message"), "start_failed: no such file: <\"worker\">");
  EXPECT_EQ(suite->attributes.at("errors"), "1");
}

// ---- report.md ----

TEST(MarkdownReport, PutsTheConclusionFirstThenAssertionsThenTheRest) {
  const std::string md = render_markdown(sweep_results());
  const auto conclusion = md.find("## Conclusion");
  const auto text = md.find("Workers started one at a time: an architectural cause, not the machine.");
  const auto assertions = md.find("## Assertions");
  const auto cases = md.find("## Cases");
  const auto environment = md.find("## Environment");
  const auto reproduce = md.find("## Reproduce");
  ASSERT_NE(conclusion, std::string::npos);
  EXPECT_LT(conclusion, text);
  EXPECT_LT(text, assertions);
  EXPECT_LT(assertions, cases);
  EXPECT_LT(cases, environment);
  EXPECT_LT(environment, reproduce);
  EXPECT_EQ(md.find("## "), conclusion) << "nothing comes before the conclusion";
  EXPECT_NE(md.find("**1 of 2 assertions failed.**"), std::string::npos);
  EXPECT_NE(md.find("| `forbid_verdicts` |"), std::string::npos);
  EXPECT_NE(md.find("```sh\nprocpool run scenarios/x.toml --set 'load.model=open'\n```"), std::string::npos);
  EXPECT_NE(md.find("`architectural.scaling`: 1 sweep finding"), std::string::npos);
}

TEST(MarkdownReport, KeepsEveryTableRowOnOneLine) {
  const std::string md = render_markdown(sweep_results());
  std::istringstream lines(md);
  std::string line;
  std::size_t rows = 0;
  bool in_table = false;
  while (std::getline(lines, line)) {
    if (!line.empty() && line.front() == '|') {
      ++rows;
      EXPECT_EQ(line.back(), '|') << line;
      in_table = true;
    } else {
      in_table = false;
    }
    EXPECT_EQ(line.find('\r'), std::string::npos);
    EXPECT_EQ(line.find("<tags>"), std::string::npos) << "raw markup: " << line;
  }
  (void)in_table;
  EXPECT_GT(rows, 10u);
  // The cases table has one row per case.
  const auto cases = md.find("## Cases");
  const auto table = md.substr(cases, md.find("## Environment") - cases);
  EXPECT_EQ(count(table, "\n| ") - count(table, "\n| ---"), 1u + 8u);  // the header and 8 cases
}

// The cases table gains ready ms and worker memory columns only when some case has them.
TEST(MarkdownReport, CasesTableShowsReadyMsAndWorkerMemoryWhenRecorded) {
  json results = sweep_results();
  const auto cases_table = [](const std::string& md) {
    const auto at = md.find("## Cases");
    return md.substr(at, md.find("## Environment") - at);
  };
  const std::string before = cases_table(render_markdown(results));
  EXPECT_EQ(before.find("ready ms"), std::string::npos);
  EXPECT_EQ(before.find("worker USS MiB"), std::string::npos);

  results["cases"][1]["ready_ms"] = 412.5;
  results["cases"][1]["memory"] = {{"workers", 4},
                                   {"uss_kib", {{"mean", 2048}, {"max", 4096}}},
                                   {"pss_kib", {{"mean", 3072}, {"max", 5000}}}};
  const std::string table = cases_table(render_markdown(results));
  EXPECT_NE(table.find("| ready ms | worker USS MiB | worker PSS MiB |"), std::string::npos) << table;
  EXPECT_NE(table.find("| 412 | 2 | 3 |"), std::string::npos) << table;  // 3 significant digits
  EXPECT_NE(table.find("| - | - | - |"), std::string::npos) << table;    // cases without them
  EXPECT_NE(table.find("Ready ms: from the subject's creation"), std::string::npos) << table;
}

TEST(MarkdownReport, ComposesAConclusionWhenTheDocumentHasNone) {
  json results = sweep_results();
  results.erase("conclusion");
  const std::string md = render_markdown(results);
  EXPECT_NE(md.find("15 of 800 requests timed out"), std::string::npos) << md.substr(0, 600);
  EXPECT_LT(md.find("timed out"), md.find("## Assertions"));
  EXPECT_NE(render_markdown(plain_results()).find("No request failed or timed out: 100 requests in 1 case."),
            std::string::npos);

  results["partial"] = true;
  const std::string partial = render_markdown(results);
  EXPECT_LT(partial.find("**A partial run:**"), partial.find("## Assertions"));
}

// ---- report.html ----

TEST(HtmlReport, IsSelfContainedWithoutScripts) {
  const std::string html = render_html(sweep_results(), {});
  EXPECT_EQ(html.rfind("<!DOCTYPE html>", 0), 0u);
  for (const char* forbidden : {"<script", "http://", "https://", "<link", "<img", "@import", "url(", " src=",
                                "<iframe", " on"}) {
    if (std::string(forbidden) == " on") {
      EXPECT_FALSE(std::regex_search(html, std::regex(" on[a-z]+=\""))) << "an event handler attribute";
      continue;
    }
    EXPECT_EQ(html.find(forbidden), std::string::npos) << forbidden;
  }
  EXPECT_EQ(html.find("<b>&"), std::string::npos) << "an unescaped scenario name";
  EXPECT_NE(html.find("<h1>procpool report: odd &quot;scenario&quot;, &lt;b&gt;&amp;</h1>"), std::string::npos);
  EXPECT_EQ(html.find("<z>"), std::string::npos) << "an unescaped param value";
  EXPECT_NE(html.find("x,&quot;y&quot;&#13;&#10;&lt;z&gt;&amp;\xEF\xBF\xBD"), std::string::npos);
  const std::string odd = render_html(sweep_results(), {.environmental_as_skipped = false, .timeline_case = odd_id});
  EXPECT_EQ(odd.find("<tags>"), std::string::npos) << "an unescaped case id";
  EXPECT_NE(odd.find("Worker lifecycle of case weird &quot;id&quot;, with &lt;tags&gt; &amp; ünïcode&#10;second line"),
            std::string::npos);
}

TEST(HtmlReport, DrawsOneSvgPerChartWithMarks) {
  const std::string html = render_html(sweep_results(), {});
  for (const char* chart : {"throughput", "latency", "timeouts", "lifecycle", "verdicts"}) {
    SCOPED_TRACE(chart);
    EXPECT_EQ(count(html, fmt::format("data-chart=\"{}\"", chart)), 1u);
    const std::string svg = chart_svg(html, chart);
    EXPECT_GT(data_marks(svg), 2u);
    EXPECT_NE(svg.find("<text"), std::string::npos) << "axis labels or a legend";
    EXPECT_EQ(count(svg, "<svg"), 1u);
  }
  EXPECT_EQ(count(html, "<svg"), 5u);
  EXPECT_EQ(html.find("data-chart-note"), std::string::npos);
  // Axes say their units.
  EXPECT_NE(chart_svg(html, "throughput").find("throughput (requests/s)"), std::string::npos);
  EXPECT_NE(chart_svg(html, "throughput").find("concurrency (callers)"), std::string::npos);
  EXPECT_NE(chart_svg(html, "latency").find("latency (ms"), std::string::npos);
  EXPECT_NE(chart_svg(html, "lifecycle").find("(ms)"), std::string::npos);
}

TEST(HtmlReport, DrawsTheFittedUslCurveAndTheVerdictColours) {
  const std::string html = render_html(sweep_results(), {});
  const std::string throughput = chart_svg(html, "throughput");
  EXPECT_NE(throughput.find("stroke-dasharray=\"6 4\""), std::string::npos) << "the fitted curve";
  EXPECT_NE(throughput.find("fitted USL curve"), std::string::npos);
  EXPECT_NE(throughput.find("architectural.scaling"), std::string::npos);
  const std::string heatmap = chart_svg(html, "timeouts");
  EXPECT_NE(heatmap.find("environmental.startup"), std::string::npos);
  EXPECT_NE(heatmap.find("architectural.startup_serialization"), std::string::npos);
  const std::string verdicts = chart_svg(html, "verdicts");
  EXPECT_NE(verdicts.find("architectural.scaling (sweep)"), std::string::npos);
}

TEST(HtmlReport, DrawsTheChosenCasesWorkersRequestsAndTimeouts) {
  const json results = sweep_results();
  const std::string chosen = "load.concurrency=2,worker.startup_ms=400#r0";
  const std::string html = render_html(results, {.environmental_as_skipped = false, .timeline_case = chosen});
  const std::string gantt = chart_svg(html, "lifecycle");
  EXPECT_NE(gantt.find(fmt::format("aria-label=\"Worker lifecycle of case {}\"", chosen)), std::string::npos);
  EXPECT_NE(gantt.find(">w1 slot 0<"), std::string::npos);
  EXPECT_NE(gantt.find(">w2 slot 1<"), std::string::npos);
  EXPECT_NE(gantt.find(">waiting<"), std::string::npos) << "the checkout timeout's row";
  EXPECT_NE(gantt.find("request 7 waiting for a worker: checkout_timeout"), std::string::npos);
  EXPECT_NE(gantt.find("request 8 on worker 2: request_timeout"), std::string::npos);
  // A cancelled request is drawn on the waiting row in its own colour, not as a failure.
  EXPECT_NE(gantt.find("request cancelled before a worker had it"), std::string::npos);
  EXPECT_EQ(gantt.find("request 10 "), std::string::npos) << "drawn with a failure's tooltip";
  EXPECT_NE(html.find("recorded requests drawn (2 failed"), std::string::npos) << "a cancelled request counted as failed";
  EXPECT_NE(gantt.find("verdict architectural.startup_serialization"), std::string::npos);
  EXPECT_NE(gantt.find("start-up (spawn to main) 50 ms"), std::string::npos);
  EXPECT_NE(gantt.find("init (main to init done) 30 ms"), std::string::npos);

  // Without a choice: the case with the most timeouts.
  const std::string by_default = chart_svg(render_html(results, {}), "lifecycle");
  EXPECT_NE(by_default.find("Worker lifecycle of case load.concurrency=8,worker.startup_ms=400#r0"), std::string::npos);
}

TEST(HtmlReport, SaysWhyAChartDoesNotApply) {
  const std::string html = render_html(plain_results(), {});
  for (const char* chart : {"throughput", "latency", "timeouts", "verdicts"}) {
    SCOPED_TRACE(chart);
    EXPECT_EQ(html.find(fmt::format("data-chart=\"{}\"", chart)), std::string::npos);
    EXPECT_EQ(count(html, fmt::format("data-chart-note=\"{}\"", chart)), 1u);
  }
  EXPECT_EQ(count(html, "data-chart=\"lifecycle\""), 1u);

  // One swept key: no heatmap, but throughput and latency against it.
  json one_axis = sweep_results();
  one_axis["scenario"]["sweep"].erase(1);
  for (auto& c : one_axis["cases"]) c["params"].erase("worker.startup_ms");
  const std::string single = render_html(one_axis, {});
  EXPECT_NE(single.find("data-chart-note=\"timeouts\""), std::string::npos);
  EXPECT_NE(single.find("only one key (load.concurrency) is swept"), std::string::npos);
  EXPECT_NE(single.find("data-chart=\"latency\""), std::string::npos);
}

TEST(HtmlReport, CapsTheLifecycleOfAHugeCase) {
  json results = plain_results();
  json& c = results["cases"][0];
  json workers = json::array();
  json sampled = json::array();
  const std::uint64_t base = 5'000'000'000;
  // 200 workers with 100 busy/idle flips each, and 6,000 failed requests.
  for (int w = 1; w <= 200; ++w) {
    workers.push_back(worker_event(base, w, "pending", "starting"));
    workers.push_back(worker_event(base + 1'000'000, w, "starting", "idle"));
    for (int k = 0; k < 100; ++k) {
      workers.push_back(worker_event(base + 2'000'000 + k * 100'000ull, w, "idle", "busy"));
      workers.push_back(worker_event(base + 2'050'000 + k * 100'000ull, w, "busy", "idle"));
    }
  }
  json failed = json::array();
  for (int i = 0; i < 6000; ++i) {
    failed.push_back(request(i, 1 + i % 200, base + 2'000'000 + i * 1000ull, base + 3'000'000 + i * 1000ull,
                             "request_timeout"));
  }
  c["timelines"] = {{"requests_failed", failed}, {"requests_sampled", sampled}, {"workers", workers},
                    {"worker_events_dropped", 0}, {"requests_failed_dropped", 0}};
  const std::string html = render_html(results, {});
  const std::string gantt = chart_svg(html, "lifecycle");
  EXPECT_NE(gantt.find(">w64 slot 63<"), std::string::npos);
  EXPECT_EQ(gantt.find(">w65 slot 64<"), std::string::npos);
  EXPECT_NE(html.find("Only the first 64 workers are drawn; 136 more are left out"), std::string::npos);
  EXPECT_NE(html.find("Requests are capped at 3000 marks of 6000 recorded"), std::string::npos);
  EXPECT_LT(data_marks(gantt), 4000u + 2 * 3000u + 2 * 64u + 1);
  EXPECT_LT(html.size(), 2'500'000u) << "the page stays small";
}

// A zygote template's row is labelled as the template, its init phase named its preload, and
// the caption counts it apart from the pool's worker processes.
TEST(HtmlReport, TheLifecycleLabelsTheZygoteTemplatesRow) {
  json results = plain_results();
  json& c = results["cases"][0];
  c["timelines"] = timelines();
  json& workers = c["timelines"]["workers"];
  for (const auto& [from, to] : {std::pair{"pending", "starting"}, std::pair{"starting", "idle"}}) {
    json e = worker_event(1'000'000'000ull, 9, from, to);
    e["role"] = "zygote_template";
    e["slot"] = 2;
    workers.push_back(e);
  }
  const std::string html = render_html(results, {});
  const std::string gantt = chart_svg(html, "lifecycle");
  EXPECT_NE(gantt.find(">zygote template<"), std::string::npos);
  EXPECT_EQ(gantt.find(">w9 slot 2<"), std::string::npos);
  EXPECT_NE(gantt.find("zygote template 9 (pid 1009): preload (main to preload done)"), std::string::npos);
  EXPECT_NE(gantt.find(">w1 slot 0<"), std::string::npos);
  EXPECT_NE(html.find("2 worker processes and a zygote template"), std::string::npos);
}

TEST(HtmlReport, HasTheSameSectionsAsTheMarkdown) {
  const json results = sweep_results();
  const std::string html = render_html(results, {});
  const std::string md = render_markdown(results);
  std::vector<std::string> md_titles, html_titles;
  static const std::regex md_heading("\n## ([^\n]+)");
  static const std::regex html_heading("<h2>([^<]+)</h2>");
  for (std::sregex_iterator it(md.begin(), md.end(), md_heading), end; it != end; ++it) md_titles.push_back((*it)[1]);
  for (std::sregex_iterator it(html.begin(), html.end(), html_heading), end; it != end; ++it) {
    if ((*it)[1] != "Charts") html_titles.push_back((*it)[1]);
  }
  EXPECT_EQ(md_titles, html_titles);
  EXPECT_LT(html.find("class=\"conclusion\""), html.find("id=\"assertions\""));
  EXPECT_LT(html.find("id=\"assertions\""), html.find("id=\"charts\""));
}

TEST(AllReports, TolerateFieldsOfTheWrongType) {
  const json broken = {
      {"schema", "procpool.results/1"},
      {"scenario", {{"name", 5}, {"sweep", "load.concurrency"}, {"assert", {{"max_timeout_rate", "low"},
                                                                            {"forbid_verdicts", {1, "fault.*"}}}}}},
      {"run", "yesterday"},
      {"cases", json::array({1, json::object(),
                             {{"id", 5}, {"params", {{"load.concurrency", "many"}}}, {"outcomes", "x"},
                              {"latency_us", json::array()}, {"verdicts", {{"fault.crash", -3}, {"fault.hang", "2"}}},
                              {"findings", {1, {{"evidence", 3}}}},
                              {"timelines", {{"workers", {1, {{"t_ns", "x"}, {"worker", "w"}}}},
                                             {"requests_failed", {{{"worker", 7}, {"t_submit", -1}}}}}}}})},
      {"verdicts", {{"architectural.scaling", "one"}}},
      {"analyses", {{"usl", {1, {{"points", 3}, {"verdict", 4}}}}, {"axes", {{{"rows", "none"}}}}}},
      {"summary", {{"families", 3}}},
      {"assertions", {1, {{"held", "yes"}}}},
      {"conclusion", 7}};
  EXPECT_NO_THROW({
    render_markdown(broken);
    render_html(broken, {});
    xml_reader(render_junit(broken, {})).document();
    parse_csv(render_csv(broken));
  });
}

// ---- Writing, and `procpool report` ----

class ReportFiles : public procpool::testing::with_scratch_dir<> {
 protected:
  // The odd value's invalid byte becomes U+FFFD, as it would in a results.json.
  static std::string dumped(const json& results) {
    return results.dump(1, ' ', false, json::error_handler_t::replace);
  }

  static std::string read(const std::filesystem::path& path) {
    std::ifstream in(path, std::ios::binary);
    return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
  }

  int report_command(std::vector<std::string> args) {
    CLI::App app;
    int exit_code = -1;
    add_report_command(app, exit_code);
    args.insert(args.begin(), {"procpool", "report"});
    std::vector<char*> argv;
    for (auto& a : args) argv.push_back(a.data());
    try {
      app.parse(static_cast<int>(argv.size()), argv.data());
    } catch (const CLI::ParseError& e) {
      return app.exit(e) == 0 ? 0 : 2;
    }
    return exit_code;
  }
};

// ---- summary.md and the benchmark files ----

// sweep_results() with its cases copied under new ids until there are `n`.
json many_cases(std::size_t n) {
  json results = sweep_results();
  const json first = results["cases"];
  results["cases"] = json::array();
  for (std::size_t i = 0; i < n; ++i) {
    json c = first[i % first.size()];
    c["id"] = fmt::format("case-{}|{}", i, odd_id);
    results["cases"].push_back(c);
  }
  return results;
}

TEST(Summary, StaysShortWhateverTheRunsSizeAndNamesTheWorstCasesFirst) {
  const std::string small = render_summary(many_cases(3));
  const std::string large = render_summary(many_cases(500));
  EXPECT_LT(large.size(), 8000u);
  const auto rows = [](const std::string& md) { return std::count(md.begin(), md.end(), '\n'); };
  EXPECT_LE(rows(large), rows(small) + 10);
  EXPECT_NE(large.find("every case is in report.md"), std::string::npos);
  EXPECT_NE(large.find("### procpool:"), std::string::npos);
  // Case ids keep the table's shape: each row has the table's six bars.
  for (std::size_t at = large.find("| `"); at != std::string::npos; at = large.find("\n| `", at + 1)) {
    const std::string row = large.substr(at, large.find('\n', at + 1) - at);
    std::size_t bars = 0;
    for (std::size_t i = 0; i < row.size(); ++i) bars += row[i] == '|' && (i == 0 || row[i - 1] != '\\');
    EXPECT_EQ(bars, 6u) << row;
  }
}

TEST(BenchmarkFiles, OnePointPerCaseAndFigureInTheActionsFormat) {
  const json results = many_cases(4);
  const json bigger = json::parse(render_benchmark_bigger(results));
  const json smaller = json::parse(render_benchmark_smaller(results));
  ASSERT_EQ(bigger.size(), 4u);
  ASSERT_EQ(smaller.size(), 12u);
  for (const auto& p : bigger) {
    EXPECT_EQ(p["unit"], "req/s");
    EXPECT_TRUE(p["value"].is_number());
    EXPECT_TRUE(p["name"].get<std::string>().ends_with(" throughput"));
  }
  EXPECT_EQ(smaller[1]["unit"], "us");
  EXPECT_TRUE(smaller[1]["name"].get<std::string>().ends_with(" p99"));
  EXPECT_EQ(smaller[1]["value"], results["cases"][0]["latency_us"]["p99"]);
  EXPECT_EQ(smaller[2]["unit"], "%");
}

TEST_F(ReportFiles, WritesEveryReportFile) {
  const json results = sweep_results();
  auto written = write_reports(dir_ / "out", results, {});
  ASSERT_TRUE(written) << written.error().message;
  ASSERT_EQ(written->size(), 7u);
  std::vector<std::string> names;
  for (const auto& p : *written) names.push_back(p.filename().string());
  EXPECT_EQ(names, (std::vector<std::string>{"report.md", "report.html", "junit.xml", "cases.csv", "summary.md",
                                             "benchmark-bigger.json", "benchmark-smaller.json"}));
  EXPECT_EQ(read(dir_ / "out" / "cases.csv"), render_csv(results));
  EXPECT_EQ(read(dir_ / "out" / "report.html"), render_html(results, {}));
  for (const auto& entry : std::filesystem::directory_iterator(dir_ / "out")) {
    EXPECT_NE(entry.path().extension(), ".tmp") << "a temporary file left behind";
  }
}

TEST_F(ReportFiles, FailsWithAMessageWhenTheDirectoryCannotBeMade) {
  std::ofstream(dir_ / "a-file") << "x";
  auto written = write_reports(dir_ / "a-file" / "out", sweep_results(), {});
  ASSERT_FALSE(written);
  EXPECT_NE(written.error().message.find("cannot create"), std::string::npos) << written.error().message;
}

TEST_F(ReportFiles, ReportCommandRerendersNextToTheResults) {
  const json results = sweep_results();
  std::ofstream(dir_ / "results.json") << dumped(results);
  EXPECT_EQ(report_command({(dir_ / "results.json").string()}), 0);
  EXPECT_EQ(read(dir_ / "report.md"), render_markdown(results));
  EXPECT_EQ(read(dir_ / "junit.xml"), render_junit(results, {}));

  EXPECT_EQ(report_command({(dir_ / "results.json").string(), "--out", (dir_ / "elsewhere").string(),
                            "--environmental-as-skipped", "--timeline-case",
                            "load.concurrency=2,worker.startup_ms=400#r0"}),
            0);
  EXPECT_EQ(read(dir_ / "elsewhere" / "junit.xml"),
            render_junit(results, {.environmental_as_skipped = true, .timeline_case = ""}));
  EXPECT_NE(read(dir_ / "elsewhere" / "report.html").find("Worker lifecycle of case load.concurrency=2,worker.startup_ms=400#r0"),
            std::string::npos);
}

TEST_F(ReportFiles, ReportCommandRejectsWhatIsNotAResultsDocument) {
  ::testing::internal::CaptureStderr();
  EXPECT_EQ(report_command({(dir_ / "missing.json").string()}), 2);
  std::ofstream(dir_ / "other.json") << R"({"schema": "something/1"})";
  EXPECT_EQ(report_command({(dir_ / "other.json").string()}), 2);
  std::ofstream(dir_ / "broken.json") << "{not json";
  EXPECT_EQ(report_command({(dir_ / "broken.json").string()}), 2);
  std::ofstream(dir_ / "results.json") << dumped(sweep_results());
  EXPECT_EQ(report_command({(dir_ / "results.json").string(), "--timeline-case", "no-such-case"}), 2);
  const std::string messages = ::testing::internal::GetCapturedStderr();
  EXPECT_NE(messages.find("cannot read"), std::string::npos) << messages;
  EXPECT_NE(messages.find("is not a procpool.results/1 document"), std::string::npos) << messages;
  EXPECT_NE(messages.find("is not JSON"), std::string::npos) << messages;
  EXPECT_NE(messages.find("no case no-such-case"), std::string::npos) << messages;
  EXPECT_FALSE(std::filesystem::exists(dir_ / "report.md")) << "nothing written on a usage error";
}

}  // namespace
}  // namespace procpool::harness
