// The run store: one SQLite database per workspace (WORKSPACE/orchestrator.db) holding runs, their attempts,
// per-epoch training metrics, per-image test metrics, inference times and provenance. Schema in README
// ("The run store"); `PRAGMA user_version` holds the schema version.
//
// Many worker processes write at once: the database is in WAL mode, every connection waits up to
// `busy_timeout_ms` on a lock, and every write is one BEGIN IMMEDIATE transaction retried on SQLITE_BUSY, so no
// writer fails on a lock and no row is lost. A Store is one connection: use one per thread (SQLite's
// serialized mode makes sharing safe, but transactions would interleave).
#pragma once

#include <sqlite3.h>

#include <cstdint>
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <vector>

namespace orch {

constexpr int kStoreSchemaVersion = 1;

struct RunRecord {
  std::string run_id, experiment, dataset, model, stage;
  int64_t seed = 0;
  std::string state = "new";    // new, queued, running, done, failed, cancelled, timeout, lost
  std::string settings_json;    // normalised settings the id was made from
  std::string depends_on;       // space-separated run ids
};

struct EpochMetrics {
  std::string run_id;
  int64_t attempt_id = 0;
  int64_t epoch = 0;
  double train_loss = 0, val_criterion = 0, learning_rate = 0, seconds = 0;
};

struct TestMetric {
  std::string run_id, image_id, organ;  // organ: "lungs" or "heart"
  double dice = 0, jaccard = 0, hausdorff_mm = 0;  // hausdorff NaN is stored as NULL
};

struct InferenceRow {
  std::string image_id;
  double seconds = 0;
  bool cold = false;
  std::string device = "cpu";
};

class Store {
 public:
  explicit Store(const std::string& path, int busy_timeout_ms = 120000);
  ~Store();
  Store(const Store&) = delete;
  Store& operator=(const Store&) = delete;

  const std::string& path() const { return path_; }

  // Runs.
  void upsert_run(const RunRecord& run);  // inserts, or updates settings and dependencies (not the state)
  void set_run_state(const std::string& run_id, const std::string& state);
  std::optional<RunRecord> run(const std::string& run_id);
  std::vector<RunRecord> runs(const std::string& experiment = "");

  // Attempts: one per start of a worker on a run.
  int64_t begin_attempt(const std::string& run_id, const std::string& host, int64_t pid, const std::string& job_id);
  void end_attempt(int64_t attempt_id, int exit_status, const std::string& reason);

  // Metrics.
  void add_epoch_metrics(const EpochMetrics& m);
  std::vector<EpochMetrics> epoch_metrics(const std::string& run_id);
  // Replaces the run's test metrics with `rows`, in one transaction.
  void replace_test_metrics(const std::string& run_id, const std::vector<TestMetric>& rows);
  std::vector<TestMetric> test_metrics(const std::string& run_id);
  void add_inference_time(const std::string& run_id, const std::string& image_id, double seconds, bool cold,
                          const std::string& device);
  // Replaces the run's inference times with `rows`, in one transaction (a re-evaluation leaves no duplicates).
  void replace_inference_times(const std::string& run_id, const std::vector<InferenceRow>& rows);
  void set_provenance(const std::string& run_id, const std::map<std::string, std::string>& values);
  std::map<std::string, std::string> provenance(const std::string& run_id);

  int64_t count(const std::string& table);  // rows in a table of this schema (for checks and tests)

 private:
  // Runs `body` inside BEGIN IMMEDIATE ... COMMIT, retrying the whole transaction on SQLITE_BUSY.
  void write(const std::function<void()>& body);
  void exec(const char* sql);
  std::string path_;
  sqlite3* db_ = nullptr;
};

}  // namespace orch
