#include "storage/store.h"

#include "core/control.h"
#include "core/errors.h"
#include "storage/metrics_table.h"

namespace orch {

namespace {

// The latest schema, for a new store. An older store gets the missing tables from here and the missing columns
// from Store::migrate().
const char* kSchema = R"SQL(
CREATE TABLE IF NOT EXISTS runs (
  run_id TEXT PRIMARY KEY,
  experiment TEXT NOT NULL,
  dataset TEXT NOT NULL,
  model TEXT NOT NULL,
  seed INTEGER NOT NULL,
  stage TEXT NOT NULL DEFAULT '',
  state TEXT NOT NULL DEFAULT 'new',
  settings_json TEXT NOT NULL DEFAULT '{}',
  depends_on TEXT NOT NULL DEFAULT '',
  created_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')),
  updated_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')),
  claim_attempt INTEGER,
  epochs_done INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX IF NOT EXISTS runs_by_experiment ON runs(experiment);
CREATE TABLE IF NOT EXISTS attempts (
  attempt_id INTEGER PRIMARY KEY AUTOINCREMENT,
  run_id TEXT NOT NULL REFERENCES runs(run_id),
  started_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')),
  ended_at TEXT,
  host TEXT NOT NULL DEFAULT '',
  pid INTEGER,
  job_id TEXT NOT NULL DEFAULT '',
  exit_status INTEGER,
  reason TEXT NOT NULL DEFAULT '',
  holder TEXT NOT NULL DEFAULT '',
  backend TEXT NOT NULL DEFAULT '',
  heartbeat_at REAL,
  started_unix REAL,
  ended_unix REAL,
  start_epoch INTEGER,
  start_batch INTEGER,
  end_epoch INTEGER,
  end_batch INTEGER,
  gpus INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX IF NOT EXISTS attempts_by_run ON attempts(run_id);
CREATE TABLE IF NOT EXISTS epoch_metrics (
  run_id TEXT NOT NULL REFERENCES runs(run_id),
  attempt_id INTEGER,
  epoch INTEGER NOT NULL,
  train_loss REAL,
  val_criterion REAL,
  learning_rate REAL,
  seconds REAL,
  PRIMARY KEY (run_id, epoch)
);
CREATE TABLE IF NOT EXISTS test_metrics (
  run_id TEXT NOT NULL REFERENCES runs(run_id),
  image_id TEXT NOT NULL,
  organ TEXT NOT NULL CHECK (organ IN ('lungs', 'heart')),
  dice REAL NOT NULL,
  jaccard REAL NOT NULL,
  hausdorff_mm REAL,
  PRIMARY KEY (run_id, image_id, organ)
);
CREATE TABLE IF NOT EXISTS inference_times (
  run_id TEXT NOT NULL REFERENCES runs(run_id),
  image_id TEXT NOT NULL,
  seconds REAL NOT NULL,
  cold INTEGER NOT NULL DEFAULT 0,
  device TEXT NOT NULL DEFAULT 'cpu',
  launch_seconds REAL
);
CREATE INDEX IF NOT EXISTS inference_by_run ON inference_times(run_id);
CREATE TABLE IF NOT EXISTS metric_aggregates (
  run_id TEXT NOT NULL REFERENCES runs(run_id),
  organ TEXT NOT NULL,
  dice REAL,
  jaccard REAL,
  hausdorff_mm REAL,
  images INTEGER NOT NULL DEFAULT 0,
  hausdorff_defined INTEGER NOT NULL DEFAULT 0,
  inference_s REAL,
  inference_cold_s REAL,
  inference_launch_all_s REAL,
  device TEXT NOT NULL DEFAULT '',
  epoch_seconds REAL,
  epochs_timed INTEGER NOT NULL DEFAULT 0,
  PRIMARY KEY (run_id, organ)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS jobs (
  run_id TEXT NOT NULL REFERENCES runs(run_id),
  backend TEXT NOT NULL,
  job_id TEXT NOT NULL,
  submitted_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')),
  heartbeat_at REAL,
  PRIMARY KEY (run_id, job_id)
);
CREATE INDEX IF NOT EXISTS jobs_by_job ON jobs(job_id);
CREATE TABLE IF NOT EXISTS job_accounts (
  job_id TEXT NOT NULL,
  run_id TEXT NOT NULL,
  backend TEXT NOT NULL,
  state TEXT NOT NULL DEFAULT '',
  elapsed_s REAL NOT NULL DEFAULT 0,
  gpus INTEGER NOT NULL DEFAULT 0,
  started TEXT NOT NULL DEFAULT '',
  ended TEXT NOT NULL DEFAULT '',
  PRIMARY KEY (job_id, run_id, started)
);
CREATE TABLE IF NOT EXISTS calibration (
  model TEXT NOT NULL,
  kind TEXT NOT NULL,
  size INTEGER NOT NULL,
  device TEXT NOT NULL,
  batch INTEGER NOT NULL,
  threads INTEGER NOT NULL,
  step_s REAL NOT NULL,
  validation_image_s REAL NOT NULL,
  evaluation_image_s REAL NOT NULL,
  host TEXT NOT NULL DEFAULT '',
  measured_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')),
  precision TEXT NOT NULL DEFAULT '',
  device_model TEXT NOT NULL DEFAULT '',
  runs_per_gpu INTEGER NOT NULL DEFAULT 1,
  PRIMARY KEY (model, kind, size, device, batch, threads, precision, device_model, runs_per_gpu)
);
CREATE TABLE IF NOT EXISTS median_models (
  experiment TEXT NOT NULL,
  dataset TEXT NOT NULL,
  model TEXT NOT NULL,
  run_id TEXT NOT NULL,
  metric TEXT NOT NULL,
  score REAL,
  n_seeds INTEGER NOT NULL,
  PRIMARY KEY (experiment, dataset, model)
);
CREATE TABLE IF NOT EXISTS provenance (
  run_id TEXT NOT NULL REFERENCES runs(run_id),
  key TEXT NOT NULL,
  value TEXT NOT NULL,
  PRIMARY KEY (run_id, key)
);
)SQL";

// What the database keeps up to date itself, whoever writes (after the columns they use exist): each run's
// epochs_done is the largest epoch of its rows in epoch_metrics (epoch rows are only ever added or replaced), so
// status reads it with the run instead of seeking each run's last epoch (100,000 seeks at 100k runs).
const char* kTriggers = R"SQL(
CREATE TRIGGER IF NOT EXISTS runs_epochs_done AFTER INSERT ON epoch_metrics BEGIN
  UPDATE runs SET epochs_done = NEW.epoch WHERE run_id = NEW.run_id AND epochs_done < NEW.epoch;
END;
)SQL";

using Stmt = sqlite::Statement;

}  // namespace

Store::Store(const std::string& path, Mode mode, double wait_s, Env& env)
    : path_(path), mode_(mode), wait_s_(wait_s >= 0 ? wait_s : control_timeouts().store_wait_s), env_(&env) {
  open_and_check();
}

Store::~Store() = default;

void Store::open_and_check() {
  using Access = sqlite::Database::Access;
  open(mode_ == Mode::kReadWrite ? Access::kReadWrite : Access::kReadOnly);
  int64_t version = 0;
  try {
    Stmt s(*db_, "PRAGMA user_version");
    if (s.row()) version = s.integer(0);
  } catch (const Error&) {
    if (mode_ != Mode::kRead) throw;
    // A WAL store on a read-only file system cannot get its shared-memory file: read it as immutable.
    db_.reset();
    open(Access::kImmutable);
    Stmt s(*db_, "PRAGMA user_version");
    if (s.row()) version = s.integer(0);
  }
  if (version > kStoreSchemaVersion)
    throw InputError(path_, "schema version", std::to_string(version),
                     "written by a newer orchestrator (this one knows version " + std::to_string(kStoreSchemaVersion) + ")");
  if (version < kStoreSchemaVersion) {
    if (mode_ == Mode::kRead)
      throw InputError(path_, "schema version", std::to_string(version),
                       "written by an older orchestrator and opened read-only; a command that writes (submit, resume) "
                       "upgrades it");
    migrate(version);
  }
}

void Store::open(sqlite::Database::Access access) {
  db_ = std::make_unique<sqlite::Database>(path_, access, wait_s_);
  if (mode_ == Mode::kReadWrite) {
    exec("PRAGMA journal_mode=WAL");
    exec("PRAGMA synchronous=NORMAL");
  }
  exec("PRAGMA foreign_keys=ON");
}

void Store::exec(const char* sql) { db_->exec(sql); }

void Store::add_column_if_missing(const std::string& table, const std::string& column, const std::string& type) {
  Stmt s(*db_, "SELECT 1 FROM pragma_table_info('" + table + "') WHERE name = ?");
  s.bind(1, column);
  if (s.row()) return;
  exec(("ALTER TABLE " + table + " ADD COLUMN " + column + " " + type).c_str());
}

void Store::migrate(int64_t from) {
  write([&] {
    exec(kSchema);  // tables that an older store lacks
    if (from > 0 && from < 3) {
      add_column_if_missing("runs", "claim_attempt", "INTEGER");
      for (const auto& [c, t] : std::vector<std::pair<std::string, std::string>>{
               {"holder", "TEXT NOT NULL DEFAULT ''"}, {"backend", "TEXT NOT NULL DEFAULT ''"}, {"heartbeat_at", "REAL"},
               {"started_unix", "REAL"}, {"ended_unix", "REAL"}, {"start_epoch", "INTEGER"}, {"start_batch", "INTEGER"},
               {"end_epoch", "INTEGER"}, {"end_batch", "INTEGER"}, {"gpus", "INTEGER NOT NULL DEFAULT 0"}})
        add_column_if_missing("attempts", c, t);
      add_column_if_missing("inference_times", "launch_seconds", "REAL");
      add_column_if_missing("jobs", "heartbeat_at", "REAL");
      exec("CREATE INDEX IF NOT EXISTS jobs_by_job ON jobs(job_id)");
    }
    if (from == 3) rekey_calibration();
    if (from > 0 && from < 5) MetricsTable(*this).aggregate_all();
    if (from > 0 && from < 6) {
      add_column_if_missing("runs", "epochs_done", "INTEGER NOT NULL DEFAULT 0");
      exec("UPDATE runs SET epochs_done = COALESCE((SELECT MAX(e.epoch) FROM epoch_metrics e WHERE e.run_id = runs.run_id), 0)");
    }
    exec(kTriggers);
    exec(("PRAGMA user_version=" + std::to_string(kStoreSchemaVersion)).c_str());
  });
}

// Version 3's calibration table lacked precision, device model and runs per GPU in its key: a new table with its
// rows ("not recorded", 1 run per GPU) replaces it.
void Store::rekey_calibration() {
  exec("ALTER TABLE calibration RENAME TO calibration_v3");
  exec(kSchema);
  exec("INSERT INTO calibration(model, kind, size, device, batch, threads, step_s, validation_image_s, "
       "evaluation_image_s, host, measured_at) SELECT model, kind, size, device, batch, threads, step_s, "
       "validation_image_s, evaluation_image_s, host, measured_at FROM calibration_v3");
  exec("DROP TABLE calibration_v3");
}

void Store::write(const std::function<void()>& body) {
  if (mode_ == Mode::kRead) throw Error(path_ + ": the run store was opened read-only");
  db_->transaction(body);
}

int64_t Store::count(const std::string& table) {
  static const char* known[] = {"runs", "attempts", "epoch_metrics", "test_metrics", "inference_times", "provenance",
                                "metric_aggregates", "jobs", "job_accounts", "calibration"};
  bool ok = false;
  for (const char* k : known) ok |= table == k;
  if (!ok) throw Error("Store::count: unknown table " + table);
  Stmt s(*db_, "SELECT COUNT(*) FROM " + table);
  if (!s.row()) return 0;
  return s.integer(0);
}

}  // namespace orch
