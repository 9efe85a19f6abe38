// SQLite as the run store uses it, and the only file that includes <sqlite3.h> (with sqlite.cpp): a connection
// (Database) that opens a file read-write, read-only or immutable, runs write transactions that wait for another
// process's lock up to a bound, and maps every failure to an Error that says what it means for the user (busy,
// damaged, full, read-only, cannot open, I/O) and names the file; a prepared Statement whose every step is checked.
// Schema and migrations belong to storage/store.cpp, each table's queries to its part (storage/*_table.h). A Database is one connection: use it from one thread at a time.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <string_view>

struct sqlite3;
struct sqlite3_stmt;

namespace orch::sqlite {

// The store's timestamps in SQL: UTC, ISO 8601 with milliseconds ("2026-12-03T20:29:39.123Z").
constexpr const char* kNowUtc = "strftime('%Y-%m-%dT%H:%M:%fZ', 'now')";

class Database {
 public:
  enum class Access { kReadWrite, kReadOnly, kImmutable };  // kImmutable: a WAL file on a read-only file system
  // Opens `path`; InputError ("cannot open the run store: ...") when SQLite cannot. `wait_s`: how long a write
  // waits for another process's lock before BusyError.
  Database(const std::string& path, Access access, double wait_s);
  ~Database();
  Database(const Database&) = delete;
  Database& operator=(const Database&) = delete;

  const std::string& path() const { return path_; }
  double wait_s() const { return wait_s_; }
  void exec(const std::string& sql);
  // Runs `body` inside BEGIN IMMEDIATE ... COMMIT, rolled back when it throws; a lock is waited for up to wait_s.
  void transaction(const std::function<void()>& body);
  int64_t changes() const;          // rows the last statement changed
  int64_t last_insert_rowid() const;
  // Throws the Error that SQLite's result code `rc` means, while `doing` something (never returns).
  [[noreturn]] void fail(int rc, const std::string& doing) const;

 private:
  friend class Statement;
  std::string path_;
  double wait_s_;
  sqlite3* db_ = nullptr;
};

// A prepared statement: bind() by 1-based index, row() true for a row and false at the end (anything else throws),
// run() for a statement without rows, reset() to bind again; columns by 0-based index (NULL: "" / fallback / NaN).
class Statement {
 public:
  Statement(Database& db, const std::string& sql);
  ~Statement();
  Statement(const Statement&) = delete;
  Statement& operator=(const Statement&) = delete;

  Statement& bind(int i, const std::string& v);
  Statement& bind(int i, int64_t v);
  Statement& bind(int i, double v);  // NaN binds NULL
  Statement& bind_null(int i);
  bool row();
  void run();
  void reset();
  bool null(int i);
  std::string text(int i);
  // The column's text without a copy: valid until the next row(), reset() or column call of another type (a scan of
  // millions of rows allocates nothing per row with it).
  std::string_view text_view(int i);
  int64_t integer(int i);
  int64_t integer_or(int i, int64_t fallback) { return null(i) ? fallback : integer(i); }
  double real(int i);  // NaN for NULL
  double real_or(int i, double fallback) { return null(i) ? fallback : real(i); }

 private:
  Statement& check(int rc);
  Database& db_;
  sqlite3_stmt* s_ = nullptr;
};

// The SQLite library's version ("3.40.1"), for provenance.
std::string library_version();

}  // namespace orch::sqlite
