#include "analysis/history_store.hpp"

#include <array>
#include <ctime>

#include <fmt/format.h>

#include "results/results.hpp"

namespace procpool::harness {
namespace {

using json = nlohmann::json;

// migrations[v] takes a database from version v to v + 1. Never edit one that shipped: add
// the next.
const std::array<const char*, history_schema_version> migrations = {
    // 0 -> 1
    "CREATE TABLE runs(id INTEGER PRIMARY KEY, added_at TEXT NOT NULL, scenario_name TEXT NOT NULL,"
    " scenario TEXT NOT NULL, cores INTEGER NOT NULL, kernel TEXT NOT NULL, cpu_model TEXT NOT NULL,"
    " cpu_limit REAL);"
    "CREATE TABLE cases(run_id INTEGER NOT NULL REFERENCES runs(id), case_id TEXT NOT NULL,"
    " case_name TEXT NOT NULL, throughput_rps REAL NOT NULL, p50_us REAL NOT NULL, p99_us REAL NOT NULL,"
    " requests INTEGER NOT NULL, timeouts INTEGER NOT NULL, timeout_rate REAL NOT NULL,"
    " PRIMARY KEY(run_id, case_id));"
    "CREATE TABLE verdicts(run_id INTEGER NOT NULL, case_id TEXT NOT NULL, verdict TEXT NOT NULL,"
    " count INTEGER NOT NULL, PRIMARY KEY(run_id, case_id, verdict));",
    // 1 -> 2: a run's label (a commit, a build number), shown instead of its id.
    "ALTER TABLE runs ADD COLUMN label TEXT NOT NULL DEFAULT '';",
};

result<int> read_version(sqlite_db& db) {
  if (auto made = db.exec("CREATE TABLE IF NOT EXISTS schema_version(version INTEGER NOT NULL)"); !made) {
    return made.error();
  }
  auto query = db.prepare("SELECT version FROM schema_version");
  if (!query) return query.error();
  auto row = query->step();
  if (!row) return row.error();
  return *row ? int(query->integer(0)) : 0;
}

std::string now_utc() {
  const std::time_t now = std::time(nullptr);
  std::tm utc{};
  gmtime_r(&now, &utc);
  char text[32];
  std::strftime(text, sizeof text, "%Y-%m-%dT%H:%M:%SZ", &utc);
  return text;
}

std::string case_name_of(const case_record& c) {
  if (c.params.empty()) return "(no sweep)";
  const auto hash = c.id.rfind('#');
  return hash == std::string::npos ? c.id : c.id.substr(0, hash);
}

result<void> insert_case(sqlite_db& db, std::int64_t run_id, const case_record& c) {
  auto insert = db.prepare(
      "INSERT INTO cases(run_id, case_id, case_name, throughput_rps, p50_us, p99_us, requests, timeouts,"
      " timeout_rate) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)");
  if (!insert) return insert.error();
  const auto requests = c.requests();
  const auto timeouts = c.timeouts();
  insert->bind(1, run_id).bind(2, c.id).bind(3, case_name_of(c)).bind(4, c.throughput_rps);
  insert->bind(5, c.latency_us.p50).bind(6, c.latency_us.p99).bind(7, std::int64_t(requests));
  insert->bind(8, std::int64_t(timeouts)).bind(9, requests ? double(timeouts) / double(requests) : 0.0);
  if (auto done = insert->run(); !done) return done;
  auto verdict = db.prepare("INSERT INTO verdicts(run_id, case_id, verdict, count) VALUES (?1, ?2, ?3, ?4)");
  if (!verdict) return verdict.error();
  for (const auto& [name, count] : c.verdicts) {
    verdict->bind(1, run_id).bind(2, c.id).bind(3, name).bind(4, std::int64_t(count));
    if (auto done = verdict->run(); !done) return done;
  }
  return {};
}

result<std::int64_t> insert_run(sqlite_db& db, const json& doc, std::string_view label, const std::string& added_at) {
  const json env = doc.value("environment", json::object());
  const json scenario = doc.value("scenario", json::object());
  auto insert = db.prepare(
      "INSERT INTO runs(added_at, label, scenario_name, scenario, cores, kernel, cpu_model, cpu_limit)"
      " VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)");
  if (!insert) return insert.error();
  const json limit = env.value("cpu_limit", json());
  insert->bind(1, added_at).bind(2, label).bind(3, scenario.value("name", std::string()));
  insert->bind(4, scenario.dump()).bind(5, env.value("cores", std::int64_t(0)));
  insert->bind(6, env.value("kernel", std::string())).bind(7, env.value("cpu_model", std::string()));
  insert->bind(8, limit.is_number() ? std::optional<double>(limit.get<double>()) : std::nullopt);
  if (auto done = insert->run(); !done) return done.error();
  return db.last_insert_rowid();
}

}  // namespace

result<history_store> history_store::open(const std::filesystem::path& path, int version) {
  auto db = sqlite_db::open(path);
  if (!db) return db.error();
  auto current = read_version(*db);
  if (!current) return current.error();
  if (*current > history_schema_version) {
    return io_failure("cannot read", path,
                      fmt::format("its schema version {} is newer than this program's {}", *current,
                                  history_schema_version));
  }
  history_store store(std::move(*db), *current);
  if (auto migrated = store.migrate(version); !migrated) return migrated.error();
  return store;
}

result<void> history_store::migrate(int to) {
  while (version_ < to) {
    auto tx = db_.begin();
    if (!tx) return tx.error();
    if (auto step = db_.exec(migrations[std::size_t(version_)]); !step) return step;
    if (auto bump = db_.exec(fmt::format("DELETE FROM schema_version; INSERT INTO schema_version VALUES ({});",
                                         version_ + 1));
        !bump) {
      return bump;
    }
    if (auto done = tx->commit(); !done) return done;
    ++version_;
  }
  return {};
}

result<std::int64_t> history_store::add_run(const json& results, std::string_view label, std::string added_at) {
  if (!results.is_object() || results.value("schema", "") != results_schema || !results.contains("cases") ||
      !results.at("cases").is_array()) {
    return error{errc::invalid_options, fmt::format("not a {} document", results_schema)};
  }
  auto tx = db_.begin();
  if (!tx) return tx.error();
  auto run_id = insert_run(db_, results, label, added_at.empty() ? now_utc() : added_at);
  if (!run_id) return run_id.error();
  for (const auto& element : results.at("cases")) {
    if (!element.is_object()) return error{errc::invalid_options, "a case is not an object"};
    const auto c = element.get<case_record>();
    if (c.error || c.interrupted) continue;  // its figures describe no full run of the case
    if (auto stored = insert_case(db_, *run_id, c); !stored) return stored.error();
  }
  if (auto done = tx->commit(); !done) return done.error();
  return *run_id;
}

result<std::vector<history_run>> history_store::runs() {
  auto query = db_.prepare(
      "SELECT id, added_at, label, scenario_name, scenario, cores, kernel, cpu_model, cpu_limit FROM runs"
      " ORDER BY id");
  if (!query) return query.error();
  std::vector<history_run> out;
  auto row = query->step();
  for (; row && *row; row = query->step()) {
    out.push_back({.id = query->integer(0), .added_at = query->text(1), .label = query->text(2),
                   .scenario_name = query->text(3), .scenario = query->text(4), .cores = query->integer(5),
                   .kernel = query->text(6), .cpu_model = query->text(7),
                   .cpu_limit = query->is_null(8) ? std::nullopt : std::optional<double>(query->real(8))});
  }
  if (!row) return row.error();  // a read that failed half way is an error, not a shorter history
  return out;
}

result<std::vector<history_case>> history_store::cases() {
  auto query = db_.prepare(
      "SELECT c.run_id, c.case_id, c.case_name, c.throughput_rps, c.p50_us, c.p99_us, c.requests, c.timeouts,"
      " c.timeout_rate, (SELECT json_group_object(v.verdict, v.count) FROM verdicts v"
      " WHERE v.run_id = c.run_id AND v.case_id = c.case_id) FROM cases c ORDER BY c.run_id, c.rowid");
  if (!query) return query.error();
  std::vector<history_case> out;
  auto row = query->step();
  for (; row && *row; row = query->step()) {
    history_case c{.run_id = query->integer(0), .case_id = query->text(1), .case_name = query->text(2),
                   .throughput_rps = query->real(3), .p50_us = query->real(4), .p99_us = query->real(5),
                   .requests = std::uint64_t(query->integer(6)), .timeouts = std::uint64_t(query->integer(7)),
                   .timeout_rate = query->real(8)};
    const json verdicts = json::parse(query->text(9), nullptr, false);
    if (verdicts.is_object()) {
      for (const auto& [name, count] : verdicts.items()) c.verdicts[name] = count.get<std::uint64_t>();
    }
    out.push_back(std::move(c));
  }
  if (!row) return row.error();
  return out;
}

result<history_contents> read_history(const std::filesystem::path& path) {
  if (!std::filesystem::exists(path)) return io_failure("cannot open", path, "no such file");
  auto store = history_store::open(path);
  if (!store) return store.error();
  auto runs = store->runs();
  if (!runs) return runs.error();
  auto cases = store->cases();
  if (!cases) return cases.error();
  return history_contents{std::move(*runs), std::move(*cases)};
}

}  // namespace procpool::harness
