#include "storage/sqlite.h"

#include <sqlite3.h>

#include <cctype>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <thread>

#include "core/errors.h"

namespace orch::sqlite {

namespace {

std::string wait_text(double wait) {
  char b[32];
  std::snprintf(b, sizeof b, "%.0f", wait);
  return b;
}

std::string uri_escape(const std::string& path) {
  std::string out;
  for (unsigned char c : path) {
    if (std::isalnum(c) || c == '/' || c == '.' || c == '_' || c == '-') {
      out += static_cast<char>(c);
    } else {
      char b[4];
      std::snprintf(b, sizeof b, "%%%02X", c);
      out += b;
    }
  }
  return out;
}

}  // namespace

Database::Database(const std::string& path, Access access, double wait_s) : path_(path), wait_s_(wait_s) {
  const std::string uri = access == Access::kReadWrite ? path
                          : access == Access::kReadOnly ? "file:" + uri_escape(path) + "?mode=ro"
                                                        : "file:" + uri_escape(path) + "?immutable=1";
  // NOMUTEX: a connection is used from one thread at a time (sqlite.h), so SQLite's lock around every call (a
  // fifth of the time spent reading 9.6 million test-metric rows for a report) guards nothing.
  const int flags = access == Access::kReadWrite ? SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX
                                                 : SQLITE_OPEN_READONLY | SQLITE_OPEN_URI | SQLITE_OPEN_NOMUTEX;
  int rc = sqlite3_open_v2(uri.c_str(), &db_, flags, nullptr);
  if (rc != SQLITE_OK) {
    std::string m = db_ ? sqlite3_errmsg(db_) : "out of memory";
    sqlite3_close(db_);
    db_ = nullptr;
    throw InputError(path_, "", "", "cannot open the run store: " + m);
  }
  sqlite3_extended_result_codes(db_, 1);
  sqlite3_busy_timeout(db_, static_cast<int>(wait_s_ * 1000));
}

Database::~Database() { sqlite3_close(db_); }

void Database::fail(int rc, const std::string& doing) const {
  const int primary = rc & 0xff;
  const std::string lib = db_ ? sqlite3_errmsg(db_) : sqlite3_errstr(rc);
  const std::string& path = path_;
  switch (primary) {
    case SQLITE_BUSY:
    case SQLITE_LOCKED:
      throw BusyError(path + ": the run store is locked by another process (" + doing + "); waited " + wait_text(wait_s_) +
                      " s (ORCH_STORE_WAIT_S sets the wait; `fuser " + path + "*` shows who has it open)");
    case SQLITE_CORRUPT:
    case SQLITE_NOTADB:
      throw Error(path + ": the run store is damaged (SQLite: " + lib + ", " + doing + "). Check it with: sqlite3 '" +
                  path + "' 'PRAGMA integrity_check' (keep a copy first; sqlite3's .recover can salvage rows)");
    case SQLITE_FULL:
      throw Error(path + ": the disk is full (SQLite: " + lib + ", " + doing + ")");
    case SQLITE_READONLY:
      throw Error(path + ": the run store is read-only (SQLite: " + lib + ", " + doing + ")");
    case SQLITE_CANTOPEN:
    case SQLITE_PERM:
    case SQLITE_AUTH:
      throw Error(path + ": cannot open the run store (SQLite: " + lib + ", " + doing + ")");
    case SQLITE_IOERR:
      throw Error(path + ": I/O error on the run store (SQLite: " + lib + ", " + doing + ")");
    default:
      throw Error(path + ": SQLite: " + lib + " (" + doing + ")");
  }
}

void Database::exec(const std::string& sql) {
  char* err = nullptr;
  int rc = sqlite3_exec(db_, sql.c_str(), nullptr, nullptr, &err);
  sqlite3_free(err);
  if (rc != SQLITE_OK) fail(rc, "running " + sql.substr(0, 40));
}

void Database::transaction(const std::function<void()>& body) {
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::duration<double>(wait_s_);
  for (;;) {
    char* err = nullptr;
    int rc = sqlite3_exec(db_, "BEGIN IMMEDIATE", nullptr, nullptr, &err);  // waits (busy handler) for the lock
    sqlite3_free(err);
    if (rc == SQLITE_OK) break;
    if ((rc & 0xff) == SQLITE_BUSY && std::chrono::steady_clock::now() < deadline) {
      std::this_thread::sleep_for(std::chrono::milliseconds(20));  // e.g. BUSY_RECOVERY: no handler was called
      continue;
    }
    fail(rc, "starting a write");
  }
  try {
    body();
    exec("COMMIT");
  } catch (...) {
    sqlite3_exec(db_, "ROLLBACK", nullptr, nullptr, nullptr);
    throw;
  }
}

int64_t Database::changes() const { return sqlite3_changes(db_); }
int64_t Database::last_insert_rowid() const { return sqlite3_last_insert_rowid(db_); }

Statement::Statement(Database& db, const std::string& sql) : db_(db) {
  int rc = sqlite3_prepare_v2(db_.db_, sql.c_str(), -1, &s_, nullptr);
  if (rc != SQLITE_OK) db_.fail(rc, "preparing a statement");
}

Statement::~Statement() { sqlite3_finalize(s_); }

Statement& Statement::check(int rc) {
  if (rc != SQLITE_OK) db_.fail(rc, "binding a value");
  return *this;
}

Statement& Statement::bind(int i, const std::string& v) { return check(sqlite3_bind_text(s_, i, v.c_str(), -1, SQLITE_TRANSIENT)); }
Statement& Statement::bind(int i, int64_t v) { return check(sqlite3_bind_int64(s_, i, v)); }
Statement& Statement::bind(int i, double v) {
  return check(std::isnan(v) ? sqlite3_bind_null(s_, i) : sqlite3_bind_double(s_, i, v));
}
Statement& Statement::bind_null(int i) { return check(sqlite3_bind_null(s_, i)); }

bool Statement::row() {
  int rc = sqlite3_step(s_);
  if (rc == SQLITE_ROW) return true;
  if (rc == SQLITE_DONE) return false;
  db_.fail(rc, "reading");
}

void Statement::run() {
  int rc = sqlite3_step(s_);
  if (rc != SQLITE_DONE && rc != SQLITE_ROW) db_.fail(rc, "writing");
}

void Statement::reset() {
  sqlite3_reset(s_);
  sqlite3_clear_bindings(s_);
}

bool Statement::null(int i) { return sqlite3_column_type(s_, i) == SQLITE_NULL; }
std::string Statement::text(int i) {
  auto p = sqlite3_column_text(s_, i);
  return p ? reinterpret_cast<const char*>(p) : "";
}
std::string_view Statement::text_view(int i) {
  auto p = reinterpret_cast<const char*>(sqlite3_column_text(s_, i));
  return p ? std::string_view(p, static_cast<size_t>(sqlite3_column_bytes(s_, i))) : std::string_view();
}
int64_t Statement::integer(int i) { return sqlite3_column_int64(s_, i); }
double Statement::real(int i) { return null(i) ? std::nan("") : sqlite3_column_double(s_, i); }

std::string library_version() { return sqlite3_libversion(); }

}  // namespace orch::sqlite
