#include "storage/store.h"

#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <chrono>
#include <cmath>
#include <ctime>
#include <set>
#include <thread>

#include "core/control.h"
#include "core/errors.h"
#include "storage/run_state.h"

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
  claim_attempt INTEGER
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

const char* kNow = "strftime('%Y-%m-%dT%H:%M:%fZ', 'now')";

using Stmt = sqlite::Statement;

RunRecord read_run(Stmt& s) {
  RunRecord r;
  r.run_id = s.text(0);
  r.experiment = s.text(1);
  r.dataset = s.text(2);
  r.model = s.text(3);
  r.seed = s.integer(4);
  r.stage = s.text(5);
  r.state = s.text(6);
  r.settings_json = s.text(7);
  r.depends_on = s.text(8);
  return r;
}

const char* kRunColumns = "run_id, experiment, dataset, model, seed, stage, state, settings_json, depends_on";

}  // namespace

double unix_now() {
  return std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch()).count();
}

Store::Store(const std::string& path, Mode mode, double wait_s)
    : path_(path), mode_(mode), wait_s_(wait_s >= 0 ? wait_s : control_timeouts().store_wait_s) {
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

void Store::upsert_runs(const std::vector<RunRecord>& runs) {
  write([&] {
    Stmt s(*db_, "INSERT INTO runs(run_id, experiment, dataset, model, seed, stage, state, settings_json, depends_on) "
           "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT(run_id) DO UPDATE SET experiment = excluded.experiment, "
           "dataset = excluded.dataset, model = excluded.model, seed = excluded.seed, stage = excluded.stage, "
           "settings_json = excluded.settings_json, depends_on = excluded.depends_on, updated_at = " +
               std::string(kNow));
    for (const auto& r : runs) {
      s.reset();
      s.bind(1, r.run_id).bind(2, r.experiment).bind(3, r.dataset).bind(4, r.model).bind(5, r.seed).bind(6, r.stage)
          .bind(7, r.state).bind(8, r.settings_json.empty() ? std::string("{}") : r.settings_json).bind(9, r.depends_on);
      s.run();
    }
  });
}

void Store::set_run_state(const std::string& run_id, const std::string& state) {
  write([&] {
    Stmt s(*db_, "UPDATE runs SET state = ?, updated_at = " + std::string(kNow) + " WHERE run_id = ?");
    s.bind(1, state).bind(2, run_id);
    s.run();
    if (db_->changes() == 0) throw InputError(path_, "run", run_id, "no such run in the store");
  });
}

void Store::set_runs_state(const std::vector<std::string>& ids, const std::string& state) {
  write([&] {
    Stmt s(*db_, "UPDATE runs SET state = ?, updated_at = " + std::string(kNow) + " WHERE run_id = ?");
    for (const auto& id : ids) {
      s.reset();
      s.bind(1, state).bind(2, id);
      s.run();
    }
  });
}

std::vector<std::string> Store::transition_runs(const std::vector<std::string>& ids,
                                                const std::vector<std::string>& from, const std::string& to) {
  std::vector<std::string> changed;
  write([&] {
    Stmt get(*db_, "SELECT state FROM runs WHERE run_id = ?");
    Stmt set(*db_, "UPDATE runs SET state = ?, updated_at = " + std::string(kNow) + " WHERE run_id = ?");
    for (const auto& id : ids) {
      get.reset();
      get.bind(1, id);
      if (!get.row()) continue;
      std::string now = get.text(0);
      if (std::find(from.begin(), from.end(), now) == from.end()) continue;
      set.reset();
      set.bind(1, to).bind(2, id);
      set.run();
      changed.push_back(id);
    }
  });
  return changed;
}

std::vector<std::string> Store::cancel_runs(const std::vector<std::string>& ids) {
  return transition_runs(ids, {run_state::kQueued, run_state::kRunning}, run_state::kCancelled);
}

std::optional<RunRecord> Store::run(const std::string& run_id) {
  Stmt s(*db_, std::string("SELECT ") + kRunColumns + " FROM runs WHERE run_id = ?");
  s.bind(1, run_id);
  if (s.row()) return read_run(s);
  return std::nullopt;
}

std::vector<RunRecord> Store::runs(const std::string& experiment) {
  Stmt s(*db_, std::string("SELECT ") + kRunColumns + " FROM runs WHERE ? = '' OR experiment = ? ORDER BY run_id");
  s.bind(1, experiment).bind(2, experiment);
  std::vector<RunRecord> out;
  while (s.row()) out.push_back(read_run(s));
  return out;
}

std::vector<std::string> Store::dispatch_runs(const std::vector<Dispatch>& runs, const std::string& backend) {
  std::vector<std::string> done;
  const double now = unix_now();
  write([&] {
    Stmt get(*db_, "SELECT state, claim_attempt FROM runs WHERE run_id = ?");
    Stmt close(*db_, "UPDATE attempts SET ended_at = " + std::string(kNow) +
                               ", ended_unix = ?, reason = CASE WHEN reason = '' THEN 'lost: its holder was gone when the "
                               "run was dispatched again' ELSE reason END WHERE attempt_id = ? AND ended_at IS NULL");
    Stmt set(*db_, "UPDATE runs SET state = 'queued', claim_attempt = NULL, updated_at = " + std::string(kNow) +
                             " WHERE run_id = ?");
    Stmt job(*db_, "INSERT OR REPLACE INTO jobs(run_id, backend, job_id, heartbeat_at) VALUES (?, ?, ?, ?)");
    for (const auto& d : runs) {
      get.reset();
      get.bind(1, d.run_id);
      if (!get.row() || get.text(0) != d.expected_state) continue;
      if (!get.null(1)) {
        close.reset();
        close.bind(1, now).bind(2, get.integer(1));
        close.run();
      }
      set.reset();
      set.bind(1, d.run_id);
      set.run();
      job.reset();
      job.bind(1, d.run_id).bind(2, backend).bind(3, d.job_id).bind(4, now);
      job.run();
      done.push_back(d.run_id);
    }
  });
  return done;
}

void Store::add_jobs(const std::vector<std::pair<std::string, std::string>>& run_and_job, const std::string& backend) {
  write([&] {
    Stmt s(*db_, "INSERT OR REPLACE INTO jobs(run_id, backend, job_id, heartbeat_at) VALUES (?, ?, ?, ?)");
    for (const auto& [run, job] : run_and_job) {
      s.reset();
      s.bind(1, run).bind(2, backend).bind(3, job).bind(4, unix_now());
      s.run();
    }
  });
}

void Store::replace_jobs(const std::vector<std::pair<std::string, std::string>>& run_and_job, const std::string& old_job,
                         const std::string& backend) {
  write([&] {
    Stmt del(*db_, "DELETE FROM jobs WHERE run_id = ? AND job_id = ?");
    Stmt ins(*db_, "INSERT OR REPLACE INTO jobs(run_id, backend, job_id, heartbeat_at) VALUES (?, ?, ?, ?)");
    for (const auto& [run, job] : run_and_job) {
      del.reset();
      del.bind(1, run).bind(2, old_job);
      del.run();
      ins.reset();
      ins.bind(1, run).bind(2, backend).bind(3, job).bind(4, unix_now());
      ins.run();
    }
  });
}

void Store::touch_job(const std::string& job_id) {
  write([&] {
    Stmt s(*db_, "UPDATE jobs SET heartbeat_at = ? WHERE job_id = ?");
    s.bind(1, unix_now()).bind(2, job_id);
    s.run();
  });
}

std::map<std::string, RunProgress> Store::progress(const std::string& experiment) {
  // One pass per table (a refresh over 10,000 runs must stay fast): attempts, claims, epochs and jobs by run.
  std::map<std::string, RunProgress> out;
  {
    Stmt s(*db_, "SELECT r.run_id, r.claim_attempt, a.holder, a.job_id, a.backend, a.heartbeat_at, a.ended_at IS NULL "
           "FROM runs r LEFT JOIN attempts a ON a.attempt_id = r.claim_attempt WHERE ? = '' OR r.experiment = ?");
    s.bind(1, experiment).bind(2, experiment);
    while (s.row()) {
      RunProgress& p = out[s.text(0)];
      p.claim_attempt = s.integer_or(1, 0);
      if (p.claim_attempt) {
        p.claim_holder = s.text(2);
        p.claim_job = s.text(3);
        p.claim_backend = s.text(4);
        p.claim_heartbeat = s.real_or(5, 0);
        p.claim_open = s.integer(6) != 0;
      }
    }
  }
  {
    Stmt s(*db_, "SELECT a.run_id, c.n, a.exit_status, a.reason, a.host, a.pid, a.job_id, a.ended_at IS NULL, a.started_at "
           "FROM attempts a JOIN (SELECT run_id, COUNT(*) AS n, MAX(attempt_id) AS last FROM attempts GROUP BY run_id) c "
           "ON a.attempt_id = c.last");
    while (s.row()) {
      auto it = out.find(s.text(0));
      if (it == out.end()) continue;
      RunProgress& p = it->second;
      p.attempts = s.integer(1);
      p.last_exit = s.integer_or(2, -1);
      p.last_reason = s.text(3);
      p.last_host = s.text(4);
      p.last_pid = s.integer_or(5, 0);
      p.last_job = s.text(6);
      p.last_open = s.integer(7) != 0;
      p.last_started = s.text(8);
    }
  }
  {
    Stmt s(*db_, "SELECT run_id, MAX(epoch) FROM epoch_metrics GROUP BY run_id");
    while (s.row()) {
      auto it = out.find(s.text(0));
      if (it != out.end()) it->second.epochs_done = s.integer(1);
    }
  }
  {
    Stmt s(*db_, "SELECT j.run_id, j.backend, j.job_id, j.heartbeat_at FROM jobs j JOIN (SELECT run_id, MAX(rowid) AS last "
           "FROM jobs GROUP BY run_id) l ON j.rowid = l.last");
    while (s.row()) {
      auto it = out.find(s.text(0));
      if (it != out.end()) {
        it->second.backend = s.text(1);
        it->second.job = s.text(2);
        it->second.job_heartbeat = s.real_or(3, 0);
      }
    }
  }
  return out;
}

namespace {

// Whether a claim's holder still lives: its process on this host, or a recent heartbeat from another.
bool holder_alive(const std::string& holder, double heartbeat, double lost_after_s, std::string* why) {
  auto id = ProcessIdentity::parse(holder);
  Liveness l = id ? liveness(*id) : Liveness::kUnknown;
  if (l == Liveness::kGone) {
    *why = "its process " + holder + " is gone";
    return false;
  }
  // The heartbeat decides whatever the pid says: a live process that stopped beating is hung (SIGSTOP, a dead
  // file system), and holding the run forever would stall the grid.
  const double age = heartbeat > 0 ? unix_now() - heartbeat : 1e18;
  if (age <= lost_after_s) return true;
  char b[160];
  std::snprintf(b, sizeof b, "no heartbeat for %.0f s (bound %.0f s)", age, lost_after_s);
  *why = b;
  if (l == Liveness::kAlive) *why += " (pid " + std::to_string(id->pid) + " alive but not progressing)";
  return false;
}

}  // namespace

ClaimResult Store::claim_run(const ClaimRequest& q) {
  ClaimResult r;
  const double now = unix_now();
  write([&] {
    Stmt get(*db_, "SELECT state, claim_attempt FROM runs WHERE run_id = ?");
    get.bind(1, q.run_id);
    if (!get.row()) {
      r.outcome = ClaimResult::kMissing;
      return;
    }
    const std::string state = get.text(0);
    const int64_t claim = get.integer_or(1, 0);
    if (state == run_state::kDone) {
      r.outcome = ClaimResult::kAlreadyDone;
      return;
    }
    if (state == run_state::kCancelled) {
      r.outcome = ClaimResult::kCancelled;
      r.detail = "the run was cancelled (orchestrator resume restarts it)";
      return;
    }
    if (claim) {
      Stmt a(*db_, "SELECT holder, heartbeat_at, ended_at IS NULL, job_id FROM attempts WHERE attempt_id = ?");
      a.bind(1, claim);
      if (a.row() && a.integer(2) != 0) {
        std::string why;
        const std::string holder = a.text(0), job = a.text(3);
        const double hb = a.real_or(1, 0);
        if (holder_alive(holder, hb, q.lost_after_s, &why)) {
          char b[64];
          std::snprintf(b, sizeof b, "%.0f s ago", hb > 0 ? now - hb : 0.0);
          r.outcome = ClaimResult::kHeld;
          r.detail = "attempt " + std::to_string(claim) + " holds it: process " + holder +
                     (job.empty() ? "" : ", job " + job) + ", last heartbeat " + b;
          return;
        }
        Stmt close(*db_, "UPDATE attempts SET ended_at = " + std::string(kNow) +
                                   ", ended_unix = ?, reason = ? WHERE attempt_id = ?");
        close.bind(1, now).bind(2, "lost: " + why + "; taken over by a new claim").bind(3, claim);
        close.run();
        r.detail = "took over from attempt " + std::to_string(claim) + " (" + why + ")";
      }
    }
    Stmt ins(*db_, "INSERT INTO attempts(run_id, host, pid, job_id, holder, backend, heartbeat_at, started_unix, gpus) "
             "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)");
    ins.bind(1, q.run_id).bind(2, q.holder.host).bind(3, q.holder.pid).bind(4, q.job_id).bind(5, q.holder.str())
        .bind(6, q.backend).bind(7, now).bind(8, now).bind(9, q.gpus);
    ins.run();
    r.attempt_id = db_->last_insert_rowid();
    Stmt set(*db_, "UPDATE runs SET state = 'running', claim_attempt = ?, updated_at = " + std::string(kNow) +
                             " WHERE run_id = ?");
    set.bind(1, r.attempt_id).bind(2, q.run_id);
    set.run();
    r.outcome = ClaimResult::kClaimed;
  });
  return r;
}

ClaimStanding Store::heartbeat(const std::string& run_id, int64_t attempt_id) {
  ClaimStanding standing = ClaimStanding::kLost;
  write([&] {
    Stmt get(*db_, "SELECT state, claim_attempt FROM runs WHERE run_id = ?");
    get.bind(1, run_id);
    if (!get.row() || get.integer_or(1, 0) != attempt_id) return;
    standing = get.text(0) == run_state::kCancelled ? ClaimStanding::kCancelled : ClaimStanding::kHeld;
    Stmt set(*db_, "UPDATE attempts SET heartbeat_at = ? WHERE attempt_id = ?");
    set.bind(1, unix_now()).bind(2, attempt_id);
    set.run();
  });
  return standing;
}

bool Store::publish_if_claim_held(const std::string& run_id, int64_t attempt_id, const std::function<void()>& publish) {
  bool held = false;
  write([&] {
    Stmt get(*db_, "SELECT claim_attempt FROM runs WHERE run_id = ?");
    get.bind(1, run_id);
    held = get.row() && get.integer_or(0, 0) == attempt_id;
    if (held) publish();
  });
  return held;
}

void Store::set_attempt_start(int64_t attempt_id, int64_t epoch, int64_t batch) {
  write([&] {
    Stmt s(*db_, "UPDATE attempts SET start_epoch = ?, start_batch = ? WHERE attempt_id = ?");
    s.bind(1, epoch).bind(2, batch).bind(3, attempt_id);
    s.run();
  });
}

namespace {

void close_attempt(sqlite::Database& db, int64_t attempt, int exit_status, const std::string& reason,
                   int64_t end_epoch, int64_t end_batch) {
  Stmt s(db, "UPDATE attempts SET ended_at = " + std::string(kNow) +
                       ", ended_unix = ?, exit_status = ?, reason = ?, end_epoch = ?, end_batch = ? WHERE attempt_id = ?");
  s.bind(1, unix_now()).bind(2, static_cast<int64_t>(exit_status)).bind(3, reason);
  if (end_epoch >= 0) s.bind(4, end_epoch); else s.bind_null(4);
  if (end_batch >= 0) s.bind(5, end_batch); else s.bind_null(5);
  s.bind(6, attempt);
  s.run();
}

}  // namespace

std::string Store::finish_attempt(const std::string& run_id, int64_t attempt_id, const std::string& state,
                                  int exit_status, const std::string& reason, int64_t end_epoch, int64_t end_batch) {
  std::string final_state;
  write([&] {
    Stmt get(*db_, "SELECT state, claim_attempt FROM runs WHERE run_id = ?");
    get.bind(1, run_id);
    if (!get.row() || get.integer_or(1, 0) != attempt_id) return;
    // A cancel that came while the worker ran wins over its requeue or failure (but not over a finished run).
    const bool cancelled = get.text(0) == run_state::kCancelled && state != run_state::kDone;
    final_state = cancelled ? run_state::kCancelled : state;
    Stmt set(*db_, "UPDATE runs SET state = ?, claim_attempt = NULL, updated_at = " + std::string(kNow) +
                             " WHERE run_id = ?");
    set.bind(1, final_state).bind(2, run_id);
    set.run();
    close_attempt(*db_, attempt_id, cancelled ? kExitNotClaimed : exit_status,
                  cancelled ? reason + "; the run was cancelled" : reason, end_epoch, end_batch);
  });
  return final_state;
}

bool Store::finish_done(const std::string& run_id, int64_t attempt_id, const std::vector<TestMetric>& metrics_rows,
                        const std::vector<InferenceRow>& times, int64_t end_epoch) {
  bool held = false;
  write([&] {
    Stmt get(*db_, "SELECT claim_attempt FROM runs WHERE run_id = ?");
    get.bind(1, run_id);
    if (!get.row() || get.integer_or(0, 0) != attempt_id) return;
    held = true;
    MetricsTable metrics(*this);
    metrics.put_test_metrics(run_id, metrics_rows);
    metrics.put_inference_times(run_id, times);
    Stmt set(*db_, "UPDATE runs SET state = 'done', claim_attempt = NULL, updated_at = " + std::string(kNow) +
                             " WHERE run_id = ?");
    set.bind(1, run_id);
    set.run();
    close_attempt(*db_, attempt_id, 0, "done", end_epoch, 0);
  });
  return held;
}

bool Store::abandon_claim(const std::string& run_id, const std::string& holder, const std::string& state,
                          int exit_status, const std::string& reason) {
  bool done = false;
  write([&] {
    Stmt get(*db_, "SELECT r.claim_attempt, r.state FROM runs r JOIN attempts a ON a.attempt_id = r.claim_attempt "
             "WHERE r.run_id = ? AND a.holder = ? AND a.ended_at IS NULL");
    get.bind(1, run_id).bind(2, holder);
    if (!get.row()) return;
    const int64_t attempt = get.integer(0);
    const std::string final_state = get.text(1) == run_state::kCancelled ? run_state::kCancelled : state;
    Stmt set(*db_, "UPDATE runs SET state = ?, claim_attempt = NULL, updated_at = " + std::string(kNow) +
                             " WHERE run_id = ?");
    set.bind(1, final_state).bind(2, run_id);
    set.run();
    close_attempt(*db_, attempt, exit_status, reason, -1, -1);
    done = true;
  });
  return done;
}

void Store::end_attempt(int64_t attempt_id, int exit_status, const std::string& reason) {
  write([&] { close_attempt(*db_, attempt_id, exit_status, reason, -1, -1); });
}

std::vector<AttemptRow> Store::attempts(const std::string& run_id) {
  Stmt s(*db_, "SELECT attempt_id, run_id, started_at, ended_at, host, holder, job_id, backend, reason, pid, exit_status, "
         "started_unix, ended_unix, heartbeat_at, start_epoch, start_batch, end_epoch, end_batch, gpus FROM attempts "
         "WHERE ? = '' OR run_id = ? ORDER BY attempt_id");
  s.bind(1, run_id).bind(2, run_id);
  std::vector<AttemptRow> out;
  while (s.row()) {
    AttemptRow a;
    a.attempt_id = s.integer(0);
    a.run_id = s.text(1);
    a.started_at = s.text(2);
    a.ended_at = s.text(3);
    a.host = s.text(4);
    a.holder = s.text(5);
    a.job_id = s.text(6);
    a.backend = s.text(7);
    a.reason = s.text(8);
    a.pid = s.integer_or(9, 0);
    a.exit_status = s.integer_or(10, -1);
    a.started_unix = s.real_or(11, 0);
    a.ended_unix = s.real_or(12, 0);
    a.heartbeat_unix = s.real_or(13, 0);
    a.start_epoch = s.integer_or(14, -1);
    a.start_batch = s.integer_or(15, -1);
    a.end_epoch = s.integer_or(16, -1);
    a.end_batch = s.integer_or(17, -1);
    a.gpus = s.real_or(18, 0);
    out.push_back(a);
  }
  return out;
}

std::vector<JobRecord> Store::jobs() {
  Stmt s(*db_, "SELECT run_id, backend, job_id FROM jobs ORDER BY submitted_at, job_id");
  std::vector<JobRecord> out;
  while (s.row()) out.push_back({s.text(0), s.text(1), s.text(2)});
  return out;
}

int64_t Store::count(const std::string& table) {
  static const char* known[] = {"runs", "attempts", "epoch_metrics", "test_metrics", "inference_times", "provenance",
                                "jobs", "job_accounts", "calibration"};
  bool ok = false;
  for (const char* k : known) ok |= table == k;
  if (!ok) throw Error("Store::count: unknown table " + table);
  Stmt s(*db_, "SELECT COUNT(*) FROM " + table);
  if (!s.row()) return 0;
  return s.integer(0);
}

}  // namespace orch
