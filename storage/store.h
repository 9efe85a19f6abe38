// The run store: one SQLite database per workspace (WorkspaceLayout::store()) holding runs, their attempts and
// claims, the jobs that were submitted for them, per-epoch training metrics, per-image test metrics, inference
// times, provenance and calibration. Schema in docs/formats.md ("The run store"); `PRAGMA user_version` holds its version,
// and an older store is upgraded in place when opened for writing.
//
// Many worker processes write at once: the database is in WAL mode, every write is one BEGIN IMMEDIATE
// transaction, and a lock held by another process is waited for up to ORCH_STORE_WAIT_S (core/control.h), then
// reported as a BusyError naming the store. Every statement's result code is checked: a damaged file is an Error
// that names it and says how to check it, never an empty view; a full disk or a read-only file likewise.
//
// The store is in parts, each a small class over this connection with its SQL and row mappers:
// storage/runs_table.h (runs, dispatch, jobs, progress), storage/claims_table.h (claims and attempts),
// storage/metrics_table.h, storage/provenance_table.h, storage/accounting_table.h, storage/calibration_table.h.
// The Store itself owns the file: opening it, the schema and its migrations, and write transactions.
//
// A Store is one connection: use one per thread.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>

#include "core/env.h"
#include "storage/sqlite.h"

namespace orch {

// 3 added claims, heartbeats, attempt positions, job accounting, calibration, launch times (opening a version-1
// or -2 store for writing adds them). 4 keyed calibration rows by precision, device model and runs per GPU too
// (older rows keep precision and device model empty: "not recorded", and runs per GPU 1). 5 added
// metric_aggregates, each run's means over its test images and inference times, written with them (an older store's
// are computed from its rows when it is upgraded), so a grid's table is read without grouping millions of rows.
// 6 added runs.epochs_done, the run's last epoch recorded, kept by a trigger on epoch_metrics (an older store's is
// computed from its rows when it is upgraded), so status reads every run's progress in one pass over runs.
constexpr int kStoreSchemaVersion = 6;

class Store {
 public:
  enum class Mode { kReadWrite, kRead };  // kRead: never writes (status on a read-only or full workspace)
  // `wait_s` < 0: ORCH_STORE_WAIT_S (core/control.h). `env`: the clock of heartbeats, claims and jobs (core/env.h).
  explicit Store(const std::string& path, Mode mode = Mode::kReadWrite, double wait_s = -1, Env& env = Env::system());
  ~Store();
  Store(const Store&) = delete;
  Store& operator=(const Store&) = delete;

  const std::string& path() const { return path_; }
  Env& env() const { return *env_; }

  int64_t count(const std::string& table);  // rows in a table of this schema (for checks and tests)

  // For the store's parts: the connection, and a write transaction on it (BEGIN IMMEDIATE ... COMMIT; a lock
  // is waited for up to the store wait, then BusyError).
  sqlite::Database& database() { return *db_; }
  void write(const std::function<void()>& body);

 private:
  void open_and_check();
  void open(sqlite::Database::Access access);
  void migrate(int64_t from_version);
  void add_column_if_missing(const std::string& table, const std::string& column, const std::string& type);
  void rekey_calibration();
  void exec(const char* sql);
  std::string path_;
  Mode mode_;
  double wait_s_;
  Env* env_;
  std::unique_ptr<sqlite::Database> db_;
};

}  // namespace orch
