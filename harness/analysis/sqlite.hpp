// Small RAII wrappers over SQLite's C API for the run history (history_store.hpp): a database
// handle, a prepared statement and a transaction, each closed or rolled back by its
// destructor, and errors as values (errc::io_error naming the file and SQLite's reason).
//
//   auto db = sqlite_db::open("history.sqlite");
//   if (!db) return db.error();
//   auto tx = db->begin();                        // rolled back unless committed
//   auto insert = db->prepare("INSERT INTO t(x) VALUES (?1)");
//   insert->bind(1, 42.0);
//   if (auto done = insert->run(); !done) return done.error();
//   tx->commit();
#pragma once

#include <sqlite3.h>

#include <cstdint>
#include <filesystem>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>

#include "procpool/result.hpp"
#include "results/files.hpp"

namespace procpool::harness {

class sqlite_stmt {
 public:
  sqlite_stmt(sqlite3_stmt* stmt, std::shared_ptr<const std::filesystem::path> path)
      : stmt_(stmt, &sqlite3_finalize), path_(std::move(path)) {}

  sqlite_stmt& bind(int index, double value) { return check(sqlite3_bind_double(stmt_.get(), index, value)); }
  sqlite_stmt& bind(int index, std::int64_t value) { return check(sqlite3_bind_int64(stmt_.get(), index, value)); }
  sqlite_stmt& bind(int index, std::string_view value) {
    return check(sqlite3_bind_text(stmt_.get(), index, value.data(), int(value.size()), SQLITE_TRANSIENT));
  }
  sqlite_stmt& bind(int index, std::optional<double> value) {
    return value ? bind(index, *value) : check(sqlite3_bind_null(stmt_.get(), index));
  }

  // True while there is a row to read; false when done. A bind that failed earlier fails here.
  result<bool> step() {
    if (bind_error_ != SQLITE_OK) return failure(bind_error_);
    const int rc = sqlite3_step(stmt_.get());
    if (rc == SQLITE_ROW) return true;
    if (rc == SQLITE_DONE) return false;
    return failure(rc);
  }
  // Steps to the end (an INSERT or UPDATE), then resets for the next bindings.
  result<void> run() {
    auto stepped = step();
    sqlite3_reset(stmt_.get());
    if (!stepped) return stepped.error();
    return {};
  }

  double real(int column) const { return sqlite3_column_double(stmt_.get(), column); }
  std::int64_t integer(int column) const { return sqlite3_column_int64(stmt_.get(), column); }
  bool is_null(int column) const { return sqlite3_column_type(stmt_.get(), column) == SQLITE_NULL; }
  std::string text(int column) const {
    const auto* p = sqlite3_column_text(stmt_.get(), column);
    return p ? std::string(reinterpret_cast<const char*>(p)) : std::string();
  }

 private:
  sqlite_stmt& check(int rc) {
    if (rc != SQLITE_OK && bind_error_ == SQLITE_OK) bind_error_ = rc;
    return *this;
  }
  error failure(int rc) const {
    return io_failure("cannot query", *path_,
                      sqlite3_errmsg(sqlite3_db_handle(stmt_.get())) ? sqlite3_errmsg(sqlite3_db_handle(stmt_.get()))
                                                                     : sqlite3_errstr(rc));
  }
  std::unique_ptr<sqlite3_stmt, int (*)(sqlite3_stmt*)> stmt_;
  std::shared_ptr<const std::filesystem::path> path_;
  int bind_error_ = SQLITE_OK;
};

class sqlite_db {
 public:
  class transaction {
   public:
    explicit transaction(sqlite_db& db) : db_(&db) {}
    transaction(transaction&& other) noexcept : db_(std::exchange(other.db_, nullptr)) {}
    transaction& operator=(transaction&&) = delete;
    ~transaction() {
      if (db_) (void)db_->exec("ROLLBACK");
    }
    result<void> commit() { return std::exchange(db_, nullptr)->exec("COMMIT"); }

   private:
    sqlite_db* db_;
  };

  // Opens (creating when missing) the database at `path`.
  static result<sqlite_db> open(const std::filesystem::path& path) {
    sqlite3* raw = nullptr;
    const int rc = sqlite3_open_v2(path.c_str(), &raw, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE, nullptr);
    sqlite_db db(raw, path);  // owns the handle even when opening failed
    if (rc != SQLITE_OK) return io_failure("cannot open", path, raw ? sqlite3_errmsg(raw) : sqlite3_errstr(rc));
    sqlite3_busy_timeout(raw, 5000);  // another writer (a parallel CI job) holds the lock briefly
    return db;
  }

  result<void> exec(const std::string& sql) {
    char* message = nullptr;
    if (sqlite3_exec(db_.get(), sql.c_str(), nullptr, nullptr, &message) == SQLITE_OK) return {};
    std::string why = message ? message : "unknown error";
    sqlite3_free(message);
    return io_failure("cannot update", *path_, why);
  }
  result<sqlite_stmt> prepare(std::string_view sql) {
    sqlite3_stmt* stmt = nullptr;
    if (sqlite3_prepare_v2(db_.get(), sql.data(), int(sql.size()), &stmt, nullptr) != SQLITE_OK) {
      return io_failure("cannot query", *path_, sqlite3_errmsg(db_.get()));
    }
    return sqlite_stmt(stmt, path_);
  }
  result<transaction> begin() {
    if (auto b = exec("BEGIN IMMEDIATE"); !b) return b.error();
    return transaction(*this);
  }
  std::int64_t last_insert_rowid() const { return sqlite3_last_insert_rowid(db_.get()); }
  const std::filesystem::path& path() const { return *path_; }

 private:
  sqlite_db(sqlite3* db, const std::filesystem::path& path)
      : db_(db, &sqlite3_close), path_(std::make_shared<const std::filesystem::path>(path)) {}
  std::unique_ptr<sqlite3, int (*)(sqlite3*)> db_;
  std::shared_ptr<const std::filesystem::path> path_;
};

}  // namespace procpool::harness
