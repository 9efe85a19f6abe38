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

constexpr int kStoreSchemaVersion = 2;  // 2 added `jobs` (opening a version-1 store adds it)

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

// What status and plan need of a run beyond its record: attempts, the last attempt, epochs done, the last job.
struct RunProgress {
  int64_t attempts = 0;
  int64_t last_exit = -1;       // -1: none yet or still open
  std::string last_reason, last_host, last_job, last_started;
  int64_t last_pid = 0;
  bool last_open = false;       // started and not ended (running, or died without a word)
  int64_t epochs_done = 0;
  std::string backend, job;     // the latest submission (jobs table)
};

// Per run and organ: the means over test images (Hausdorff over the images where it is defined); organ "" rows
// carry the run's inference times (warm mean, the cold first call) instead.
struct MetricAggregate {
  std::string run_id, organ;
  double dice = 0, jaccard = 0, hausdorff_mm = 0;
  int64_t images = 0, hausdorff_defined = 0;
  double inference_s = 0, inference_cold_s = 0;
  std::string device;
};

struct MedianModel {
  std::string dataset, model, run_id, metric;
  double score = 0;
  int n_seeds = 0;
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

  void set_runs_state(const std::vector<std::string>& ids, const std::string& state);  // one transaction
  void upsert_runs(const std::vector<RunRecord>& runs);
  // Submissions: the backend's job id per run ("local:<pid>@<host>", Slurm "<array job>_<index>").
  void add_jobs(const std::vector<std::pair<std::string, std::string>>& run_and_job, const std::string& backend);
  std::map<std::string, RunProgress> progress(const std::string& experiment = "");

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
  std::vector<MetricAggregate> metric_aggregates(const std::vector<std::string>& run_ids);
  void set_median_models(const std::string& experiment, const std::vector<MedianModel>& rows);
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
