// Small RAII helpers over the SQLite C API, private to the catalog module.
#pragma once

#include <sqlite3.h>

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "common/status.h"

namespace scisearch::catalog::internal {

// A Status naming the failed operation and SQLite's message for `db`.
inline Status SqliteError(sqlite3* db, std::string_view what) {
  const int code = sqlite3_extended_errcode(db);
  std::string message = std::string("catalog: ") + std::string(what) + ": " + sqlite3_errmsg(db);
  if ((code & 0xff) == SQLITE_IOERR || (code & 0xff) == SQLITE_FULL ||
      (code & 0xff) == SQLITE_CANTOPEN || (code & 0xff) == SQLITE_READONLY) {
    return Status::IoError(std::move(message));
  }
  if ((code & 0xff) == SQLITE_CORRUPT || (code & 0xff) == SQLITE_NOTADB) {
    return Status::Corrupt(std::move(message));
  }
  return Status::Internal(std::move(message));
}

// A prepared statement; finalized on destruction.
class Statement {
 public:
  Statement() = default;
  ~Statement() { sqlite3_finalize(stmt_); }
  Statement(Statement&& other) noexcept : db_(other.db_), stmt_(other.stmt_) {
    other.stmt_ = nullptr;
  }
  Statement& operator=(Statement&& other) noexcept {
    if (this != &other) {
      sqlite3_finalize(stmt_);
      db_ = other.db_;
      stmt_ = other.stmt_;
      other.stmt_ = nullptr;
    }
    return *this;
  }
  Statement(const Statement&) = delete;
  Statement& operator=(const Statement&) = delete;

  static Result<Statement> Prepare(sqlite3* db, std::string_view sql) {
    Statement s;
    s.db_ = db;
    if (sqlite3_prepare_v2(db, sql.data(), static_cast<int>(sql.size()), &s.stmt_, nullptr) !=
        SQLITE_OK) {
      return SqliteError(db, "prepare '" + std::string(sql.substr(0, 60)) + "'");
    }
    return s;
  }

  // Binds by 1-based index. Text and blobs are copied (SQLITE_TRANSIENT).
  Statement& Bind(int i, int64_t v) {
    sqlite3_bind_int64(stmt_, i, v);
    return *this;
  }
  Statement& Bind(int i, int v) { return Bind(i, int64_t{v}); }
  Statement& Bind(int i, double v) {
    sqlite3_bind_double(stmt_, i, v);
    return *this;
  }
  Statement& Bind(int i, std::string_view v) {
    sqlite3_bind_text(stmt_, i, v.data(), static_cast<int>(v.size()), SQLITE_TRANSIENT);
    return *this;
  }
  Statement& Bind(int i, const std::string& v) { return Bind(i, std::string_view(v)); }
  Statement& Bind(int i, const char* v) { return Bind(i, std::string_view(v)); }
  Statement& BindBlob(int i, const std::vector<uint8_t>& v) {
    sqlite3_bind_blob(stmt_, i, v.data(), static_cast<int>(v.size()), SQLITE_TRANSIENT);
    return *this;
  }
  Statement& BindNull(int i) {
    sqlite3_bind_null(stmt_, i);
    return *this;
  }
  template <typename T>
  Statement& Bind(int i, const std::optional<T>& v) {
    if (!v) return BindNull(i);
    return Bind(i, *v);
  }

  // Steps once: true when a row is available, false when done.
  Result<bool> Step() {
    const int rc = sqlite3_step(stmt_);
    if (rc == SQLITE_ROW) return true;
    if (rc == SQLITE_DONE) return false;
    return SqliteError(db_, std::string("step '") + Sql().substr(0, 60) + "'");
  }
  // Steps to completion, ignoring rows; then resets for reuse.
  Status Run() {
    while (true) {
      auto r = Step();
      if (!r.ok()) {
        Reset();
        return r.status();
      }
      if (!*r) break;
    }
    Reset();
    return Status::Ok();
  }
  void Reset() {
    sqlite3_reset(stmt_);
    sqlite3_clear_bindings(stmt_);
  }

  int64_t Int(int col) const { return sqlite3_column_int64(stmt_, col); }
  double Real(int col) const { return sqlite3_column_double(stmt_, col); }
  bool IsNull(int col) const { return sqlite3_column_type(stmt_, col) == SQLITE_NULL; }
  std::string Text(int col) const {
    const unsigned char* p = sqlite3_column_text(stmt_, col);
    if (p == nullptr) return {};
    return std::string(reinterpret_cast<const char*>(p),
                       static_cast<size_t>(sqlite3_column_bytes(stmt_, col)));
  }
  std::optional<std::string> OptText(int col) const {
    if (IsNull(col)) return std::nullopt;
    return Text(col);
  }
  std::optional<double> OptReal(int col) const {
    if (IsNull(col)) return std::nullopt;
    return Real(col);
  }
  std::vector<uint8_t> Blob(int col) const {
    const auto* p = static_cast<const uint8_t*>(sqlite3_column_blob(stmt_, col));
    const int n = sqlite3_column_bytes(stmt_, col);
    if (p == nullptr || n <= 0) return {};
    return std::vector<uint8_t>(p, p + n);
  }

 private:
  std::string Sql() const {
    const char* s = sqlite3_sql(stmt_);
    return s ? s : "";
  }

  sqlite3* db_ = nullptr;
  sqlite3_stmt* stmt_ = nullptr;
};

// Runs `sql` (one or more statements without parameters).
inline Status ExecSql(sqlite3* db, const char* sql) {
  char* err = nullptr;
  if (sqlite3_exec(db, sql, nullptr, nullptr, &err) != SQLITE_OK) {
    std::string message = err ? err : "unknown error";
    sqlite3_free(err);
    Status s = SqliteError(db, std::string("exec '") + std::string(sql).substr(0, 60) + "'");
    return Status::Error(s.code(),
                         "catalog: " + message + " (in '" + std::string(sql).substr(0, 60) + "')");
  }
  return Status::Ok();
}

// Applies the migrations of schema.cc: brings the database at `db` from its
// PRAGMA user_version to SchemaVersion(), one transaction per migration.
// kUnsupported when the database is newer than this code.
Status Migrate(sqlite3* db, const std::string& where);

}  // namespace scisearch::catalog::internal
