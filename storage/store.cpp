#include "storage/store.h"

#include <unistd.h>

#include <chrono>
#include <cmath>
#include <thread>

#include "core/errors.h"

namespace orch {

namespace {

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
  updated_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now'))
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
  reason TEXT NOT NULL DEFAULT ''
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
  device TEXT NOT NULL DEFAULT 'cpu'
);
CREATE INDEX IF NOT EXISTS inference_by_run ON inference_times(run_id);
CREATE TABLE IF NOT EXISTS jobs (
  run_id TEXT NOT NULL REFERENCES runs(run_id),
  backend TEXT NOT NULL,
  job_id TEXT NOT NULL,
  submitted_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')),
  PRIMARY KEY (run_id, job_id)
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

struct Stmt {
  sqlite3_stmt* s = nullptr;
  Stmt(sqlite3* db, const char* sql) {
    if (sqlite3_prepare_v2(db, sql, -1, &s, nullptr) != SQLITE_OK)
      throw Error(std::string("SQLite: cannot prepare: ") + sqlite3_errmsg(db));
  }
  ~Stmt() { sqlite3_finalize(s); }
  Stmt& bind(int i, const std::string& v) { sqlite3_bind_text(s, i, v.c_str(), -1, SQLITE_TRANSIENT); return *this; }
  Stmt& bind(int i, int64_t v) { sqlite3_bind_int64(s, i, v); return *this; }
  Stmt& bind(int i, double v) {
    if (std::isnan(v)) sqlite3_bind_null(s, i); else sqlite3_bind_double(s, i, v);
    return *this;
  }
  int step() { return sqlite3_step(s); }
  std::string text(int i) { auto p = sqlite3_column_text(s, i); return p ? reinterpret_cast<const char*>(p) : ""; }
  int64_t integer(int i) { return sqlite3_column_int64(s, i); }
  double real(int i) {
    return sqlite3_column_type(s, i) == SQLITE_NULL ? std::nan("") : sqlite3_column_double(s, i);
  }
};

struct BusyError {};

void done(sqlite3* db, int rc) {
  if (rc == SQLITE_BUSY || rc == SQLITE_LOCKED) throw BusyError{};
  if (rc != SQLITE_DONE && rc != SQLITE_ROW) throw Error(std::string("SQLite: ") + sqlite3_errmsg(db));
}

}  // namespace

Store::Store(const std::string& path, int busy_timeout_ms) : path_(path) {
  if (sqlite3_open_v2(path.c_str(), &db_, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_FULLMUTEX, nullptr) !=
      SQLITE_OK) {
    std::string m = db_ ? sqlite3_errmsg(db_) : "out of memory";
    sqlite3_close(db_);
    throw InputError(path, "", "", "cannot open the run store: " + m);
  }
  sqlite3_busy_timeout(db_, busy_timeout_ms);
  exec("PRAGMA journal_mode=WAL");
  exec("PRAGMA synchronous=NORMAL");
  exec("PRAGMA foreign_keys=ON");
  int64_t version = 0;
  {
    Stmt s(db_, "PRAGMA user_version");
    if (s.step() == SQLITE_ROW) version = s.integer(0);
  }
  if (version > kStoreSchemaVersion)
    throw InputError(path, "schema version", std::to_string(version),
                     "written by a newer orchestrator (this one knows version " + std::to_string(kStoreSchemaVersion) + ")");
  if (version < kStoreSchemaVersion) {
    write([&] {
      exec(kSchema);
      exec(("PRAGMA user_version=" + std::to_string(kStoreSchemaVersion)).c_str());
    });
  }
}

Store::~Store() { sqlite3_close(db_); }

void Store::exec(const char* sql) {
  for (;;) {
    char* err = nullptr;
    int rc = sqlite3_exec(db_, sql, nullptr, nullptr, &err);
    if (rc == SQLITE_OK) return;
    std::string m = err ? err : sqlite3_errstr(rc);
    sqlite3_free(err);
    if (rc == SQLITE_BUSY || rc == SQLITE_LOCKED) throw BusyError{};
    throw Error(path_ + ": SQLite: " + m);
  }
}

void Store::write(const std::function<void()>& body) {
  for (int attempt = 0;; ++attempt) {
    try {
      exec("BEGIN IMMEDIATE");
    } catch (const BusyError&) {
      if (attempt > 1000) throw Error(path_ + ": the run store stayed locked");
      std::this_thread::sleep_for(std::chrono::milliseconds(5 + attempt % 50));
      continue;
    }
    try {
      body();
      exec("COMMIT");
      return;
    } catch (const BusyError&) {
      sqlite3_exec(db_, "ROLLBACK", nullptr, nullptr, nullptr);
      if (attempt > 1000) throw Error(path_ + ": the run store stayed locked");
      std::this_thread::sleep_for(std::chrono::milliseconds(5 + attempt % 50));
    } catch (...) {
      sqlite3_exec(db_, "ROLLBACK", nullptr, nullptr, nullptr);
      throw;
    }
  }
}

void Store::upsert_run(const RunRecord& r) {
  write([&] {
    Stmt s(db_, "INSERT INTO runs(run_id, experiment, dataset, model, seed, stage, state, settings_json, depends_on) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT(run_id) DO UPDATE SET experiment = excluded.experiment, "
                "dataset = excluded.dataset, model = excluded.model, seed = excluded.seed, stage = excluded.stage, "
                "settings_json = excluded.settings_json, depends_on = excluded.depends_on, "
                "updated_at = strftime('%Y-%m-%dT%H:%M:%fZ', 'now')");
    s.bind(1, r.run_id).bind(2, r.experiment).bind(3, r.dataset).bind(4, r.model).bind(5, r.seed).bind(6, r.stage)
        .bind(7, r.state).bind(8, r.settings_json.empty() ? std::string("{}") : r.settings_json).bind(9, r.depends_on);
    done(db_, s.step());
  });
}

void Store::set_run_state(const std::string& run_id, const std::string& state) {
  write([&] {
    Stmt s(db_, "UPDATE runs SET state = ?, updated_at = strftime('%Y-%m-%dT%H:%M:%fZ', 'now') WHERE run_id = ?");
    s.bind(1, state).bind(2, run_id);
    done(db_, s.step());
    if (sqlite3_changes(db_) == 0) throw InputError(path_, "run", run_id, "no such run in the store");
  });
}

static RunRecord read_run(Stmt& s) {
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

std::optional<RunRecord> Store::run(const std::string& run_id) {
  Stmt s(db_, "SELECT run_id, experiment, dataset, model, seed, stage, state, settings_json, depends_on FROM runs "
              "WHERE run_id = ?");
  s.bind(1, run_id);
  if (s.step() == SQLITE_ROW) return read_run(s);
  return std::nullopt;
}

std::vector<RunRecord> Store::runs(const std::string& experiment) {
  Stmt s(db_, "SELECT run_id, experiment, dataset, model, seed, stage, state, settings_json, depends_on FROM runs "
              "WHERE ? = '' OR experiment = ? ORDER BY run_id");
  s.bind(1, experiment).bind(2, experiment);
  std::vector<RunRecord> out;
  while (s.step() == SQLITE_ROW) out.push_back(read_run(s));
  return out;
}

int64_t Store::begin_attempt(const std::string& run_id, const std::string& host, int64_t pid, const std::string& job_id) {
  int64_t id = 0;
  write([&] {
    Stmt s(db_, "INSERT INTO attempts(run_id, host, pid, job_id) VALUES (?, ?, ?, ?)");
    s.bind(1, run_id).bind(2, host).bind(3, pid).bind(4, job_id);
    done(db_, s.step());
    id = sqlite3_last_insert_rowid(db_);
  });
  return id;
}

void Store::end_attempt(int64_t attempt_id, int exit_status, const std::string& reason) {
  write([&] {
    Stmt s(db_, "UPDATE attempts SET ended_at = strftime('%Y-%m-%dT%H:%M:%fZ', 'now'), exit_status = ?, reason = ? "
                "WHERE attempt_id = ?");
    s.bind(1, static_cast<int64_t>(exit_status)).bind(2, reason).bind(3, attempt_id);
    done(db_, s.step());
  });
}

void Store::add_epoch_metrics(const EpochMetrics& m) {
  write([&] {
    Stmt s(db_, "INSERT OR REPLACE INTO epoch_metrics(run_id, attempt_id, epoch, train_loss, val_criterion, "
                "learning_rate, seconds) VALUES (?, ?, ?, ?, ?, ?, ?)");
    s.bind(1, m.run_id).bind(2, m.attempt_id).bind(3, m.epoch).bind(4, m.train_loss).bind(5, m.val_criterion)
        .bind(6, m.learning_rate).bind(7, m.seconds);
    done(db_, s.step());
  });
}

std::vector<EpochMetrics> Store::epoch_metrics(const std::string& run_id) {
  Stmt s(db_, "SELECT run_id, attempt_id, epoch, train_loss, val_criterion, learning_rate, seconds FROM epoch_metrics "
              "WHERE run_id = ? ORDER BY epoch");
  s.bind(1, run_id);
  std::vector<EpochMetrics> out;
  while (s.step() == SQLITE_ROW)
    out.push_back({s.text(0), s.integer(1), s.integer(2), s.real(3), s.real(4), s.real(5), s.real(6)});
  return out;
}

void Store::replace_test_metrics(const std::string& run_id, const std::vector<TestMetric>& rows) {
  write([&] {
    {
      Stmt del(db_, "DELETE FROM test_metrics WHERE run_id = ?");
      del.bind(1, run_id);
      done(db_, del.step());
    }
    Stmt s(db_, "INSERT INTO test_metrics(run_id, image_id, organ, dice, jaccard, hausdorff_mm) VALUES (?, ?, ?, ?, ?, ?)");
    for (const auto& r : rows) {
      sqlite3_reset(s.s);
      s.bind(1, run_id).bind(2, r.image_id).bind(3, r.organ).bind(4, r.dice).bind(5, r.jaccard).bind(6, r.hausdorff_mm);
      int rc = s.step();
      if (rc == SQLITE_CONSTRAINT)
        throw InputError(path_, "organ", r.organ, "test metrics take organ 'lungs' or 'heart' (image " + r.image_id + ")");
      done(db_, rc);
    }
  });
}

std::vector<TestMetric> Store::test_metrics(const std::string& run_id) {
  Stmt s(db_, "SELECT run_id, image_id, organ, dice, jaccard, hausdorff_mm FROM test_metrics WHERE run_id = ? "
              "ORDER BY image_id, organ");
  s.bind(1, run_id);
  std::vector<TestMetric> out;
  while (s.step() == SQLITE_ROW) out.push_back({s.text(0), s.text(1), s.text(2), s.real(3), s.real(4), s.real(5)});
  return out;
}

void Store::add_inference_time(const std::string& run_id, const std::string& image_id, double seconds, bool cold,
                               const std::string& device) {
  write([&] {
    Stmt s(db_, "INSERT INTO inference_times(run_id, image_id, seconds, cold, device) VALUES (?, ?, ?, ?, ?)");
    s.bind(1, run_id).bind(2, image_id).bind(3, seconds).bind(4, static_cast<int64_t>(cold)).bind(5, device);
    done(db_, s.step());
  });
}

void Store::replace_inference_times(const std::string& run_id, const std::vector<InferenceRow>& rows) {
  write([&] {
    {
      Stmt del(db_, "DELETE FROM inference_times WHERE run_id = ?");
      del.bind(1, run_id);
      done(db_, del.step());
    }
    Stmt s(db_, "INSERT INTO inference_times(run_id, image_id, seconds, cold, device) VALUES (?, ?, ?, ?, ?)");
    for (const auto& r : rows) {
      sqlite3_reset(s.s);
      s.bind(1, run_id).bind(2, r.image_id).bind(3, r.seconds).bind(4, static_cast<int64_t>(r.cold)).bind(5, r.device);
      done(db_, s.step());
    }
  });
}

void Store::set_runs_state(const std::vector<std::string>& ids, const std::string& state) {
  write([&] {
    Stmt s(db_, "UPDATE runs SET state = ?, updated_at = strftime('%Y-%m-%dT%H:%M:%fZ', 'now') WHERE run_id = ?");
    for (const auto& id : ids) {
      sqlite3_reset(s.s);
      s.bind(1, state).bind(2, id);
      done(db_, s.step());
    }
  });
}

void Store::upsert_runs(const std::vector<RunRecord>& runs) {
  for (const auto& r : runs) upsert_run(r);
}

void Store::add_jobs(const std::vector<std::pair<std::string, std::string>>& run_and_job, const std::string& backend) {
  write([&] {
    Stmt s(db_, "INSERT OR REPLACE INTO jobs(run_id, backend, job_id) VALUES (?, ?, ?)");
    for (const auto& [run, job] : run_and_job) {
      sqlite3_reset(s.s);
      s.bind(1, run).bind(2, backend).bind(3, job);
      done(db_, s.step());
    }
  });
}

std::map<std::string, RunProgress> Store::progress(const std::string& experiment) {
  // One pass per table (a refresh over 10,000 runs must stay fast): attempts, epochs and jobs aggregated by run.
  std::map<std::string, RunProgress> out;
  {
    Stmt s(db_, "SELECT run_id FROM runs WHERE ? = '' OR experiment = ?");
    s.bind(1, experiment).bind(2, experiment);
    while (s.step() == SQLITE_ROW) out[s.text(0)];
  }
  {
    Stmt s(db_, "SELECT a.run_id, c.n, a.exit_status, a.reason, a.host, a.pid, a.job_id, a.ended_at IS NULL, a.started_at "
                "FROM attempts a JOIN (SELECT run_id, COUNT(*) AS n, MAX(attempt_id) AS last FROM attempts GROUP BY run_id) c "
                "ON a.attempt_id = c.last");
    while (s.step() == SQLITE_ROW) {
      auto it = out.find(s.text(0));
      if (it == out.end()) continue;
      RunProgress& p = it->second;
      p.attempts = s.integer(1);
      p.last_exit = sqlite3_column_type(s.s, 2) == SQLITE_NULL ? -1 : s.integer(2);
      p.last_reason = s.text(3);
      p.last_host = s.text(4);
      p.last_pid = s.integer(5);
      p.last_job = s.text(6);
      p.last_open = s.integer(7) != 0;
      p.last_started = s.text(8);
    }
  }
  {
    Stmt s(db_, "SELECT run_id, MAX(epoch) FROM epoch_metrics GROUP BY run_id");
    while (s.step() == SQLITE_ROW) {
      auto it = out.find(s.text(0));
      if (it != out.end()) it->second.epochs_done = s.integer(1);
    }
  }
  {
    Stmt s(db_, "SELECT j.run_id, j.backend, j.job_id FROM jobs j JOIN (SELECT run_id, MAX(rowid) AS last FROM jobs "
                "GROUP BY run_id) l ON j.rowid = l.last");
    while (s.step() == SQLITE_ROW) {
      auto it = out.find(s.text(0));
      if (it != out.end()) {
        it->second.backend = s.text(1);
        it->second.job = s.text(2);
      }
    }
  }
  return out;
}

std::vector<MetricAggregate> Store::metric_aggregates(const std::vector<std::string>& run_ids) {
  std::vector<MetricAggregate> out;
  write([&] {  // a temporary table of the ids keeps the query one indexed join however many runs there are
    exec("CREATE TEMP TABLE IF NOT EXISTS wanted(run_id TEXT PRIMARY KEY)");
    exec("DELETE FROM temp.wanted");
    Stmt ins(db_, "INSERT OR IGNORE INTO temp.wanted(run_id) VALUES (?)");
    for (const auto& id : run_ids) {
      sqlite3_reset(ins.s);
      ins.bind(1, id);
      done(db_, ins.step());
    }
  });
  Stmt s(db_, "SELECT t.run_id, t.organ, AVG(t.dice), AVG(t.jaccard), AVG(t.hausdorff_mm), COUNT(*), COUNT(t.hausdorff_mm) "
              "FROM temp.wanted w JOIN test_metrics t ON t.run_id = w.run_id GROUP BY t.run_id, t.organ");
  while (s.step() == SQLITE_ROW) {
    MetricAggregate a;
    a.run_id = s.text(0);
    a.organ = s.text(1);
    a.dice = s.real(2);
    a.jaccard = s.real(3);
    a.hausdorff_mm = sqlite3_column_type(s.s, 4) == SQLITE_NULL ? std::nan("") : s.real(4);
    a.images = s.integer(5);
    a.hausdorff_defined = s.integer(6);
    out.push_back(a);
  }
  Stmt t(db_, "SELECT i.run_id, AVG(CASE WHEN i.cold = 0 THEN i.seconds END), MAX(CASE WHEN i.cold = 1 THEN i.seconds END), "
              "MAX(i.device) FROM temp.wanted w JOIN inference_times i ON i.run_id = w.run_id GROUP BY i.run_id");
  while (t.step() == SQLITE_ROW) {
    MetricAggregate a;
    a.run_id = t.text(0);
    a.organ = "";
    a.inference_s = sqlite3_column_type(t.s, 1) == SQLITE_NULL ? std::nan("") : t.real(1);
    a.inference_cold_s = sqlite3_column_type(t.s, 2) == SQLITE_NULL ? std::nan("") : t.real(2);
    a.device = t.text(3);
    out.push_back(a);
  }
  return out;
}

void Store::set_median_models(const std::string& experiment, const std::vector<MedianModel>& rows) {
  write([&] {
    Stmt s(db_, "INSERT OR REPLACE INTO median_models(experiment, dataset, model, run_id, metric, score, n_seeds) "
                "VALUES (?, ?, ?, ?, ?, ?, ?)");
    for (const auto& r : rows) {
      sqlite3_reset(s.s);
      s.bind(1, experiment).bind(2, r.dataset).bind(3, r.model).bind(4, r.run_id).bind(5, r.metric).bind(6, r.score)
          .bind(7, static_cast<int64_t>(r.n_seeds));
      done(db_, s.step());
    }
  });
}

void Store::set_provenance(const std::string& run_id, const std::map<std::string, std::string>& values) {
  write([&] {
    Stmt s(db_, "INSERT OR REPLACE INTO provenance(run_id, key, value) VALUES (?, ?, ?)");
    for (const auto& [k, v] : values) {
      sqlite3_reset(s.s);
      s.bind(1, run_id).bind(2, k).bind(3, v);
      done(db_, s.step());
    }
  });
}

std::map<std::string, std::string> Store::provenance(const std::string& run_id) {
  Stmt s(db_, "SELECT key, value FROM provenance WHERE run_id = ?");
  s.bind(1, run_id);
  std::map<std::string, std::string> out;
  while (s.step() == SQLITE_ROW) out[s.text(0)] = s.text(1);
  return out;
}

int64_t Store::count(const std::string& table) {
  static const char* known[] = {"runs", "attempts", "epoch_metrics", "test_metrics", "inference_times", "provenance"};
  bool ok = false;
  for (const char* k : known) ok |= table == k;
  if (!ok) throw Error("Store::count: unknown table " + table);
  Stmt s(db_, ("SELECT COUNT(*) FROM " + table).c_str());
  s.step();
  return s.integer(0);
}

}  // namespace orch
