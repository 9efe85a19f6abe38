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
// Claims: a run starts only through claim_run(), a compare-and-set that, in one transaction, checks the run's
// state and its current claim, closes a dead holder's attempt, opens a new attempt and makes it the run's claim.
// Writes a worker makes afterwards are fenced by that attempt (storage/run_ledger.h): once another attempt has
// taken the claim, they change nothing.
//
// A Store is one connection: use one per thread.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "core/process_identity.h"
#include "storage/metrics_table.h"
#include "storage/sqlite.h"

namespace orch {

// 3 added claims, heartbeats, attempt positions, job accounting, calibration, launch times (opening a version-1
// or -2 store for writing adds them). 4 keyed calibration rows by precision, device model and runs per GPU too
// (older rows keep precision and device model empty: "not recorded", and runs per GPU 1).
constexpr int kStoreSchemaVersion = 4;

struct RunRecord {
  std::string run_id, experiment, dataset, model, stage;
  int64_t seed = 0;
  std::string state = "new";    // storage/run_state.h
  std::string settings_json;    // normalised settings the id was made from
  std::string depends_on;       // space-separated run ids
};




// What status and plan need of a run beyond its record: attempts, the claim, epochs done, the last job.
struct RunProgress {
  int64_t attempts = 0;
  int64_t last_exit = -1;       // -1: none yet or still open
  std::string last_reason, last_host, last_job, last_started;
  int64_t last_pid = 0;
  bool last_open = false;       // started and not ended (running, or died without a word)
  int64_t epochs_done = 0;
  std::string backend, job;     // the latest submission (jobs table)
  double job_heartbeat = 0;     // unix seconds of the submitting process's last heartbeat (local pool), 0 none
  // The claim: the attempt that holds the run (0: none), its holder's process identity, its job and heartbeat.
  int64_t claim_attempt = 0;
  std::string claim_holder, claim_job, claim_backend;
  double claim_heartbeat = 0;   // unix seconds
  bool claim_open = false;
};

// Per run and organ: the means over test images (Hausdorff over the images where it is defined); organ "" rows
// carry the run's inference times (warm mean, the cold first call, and the same without synchronisation).

struct AttemptRow {
  int64_t attempt_id = 0;
  std::string run_id, started_at, ended_at, host, holder, job_id, backend, reason;
  int64_t pid = 0, exit_status = -1;  // -1: open
  double started_unix = 0, ended_unix = 0, heartbeat_unix = 0;
  int64_t start_epoch = -1, start_batch = -1, end_epoch = -1, end_batch = -1;
  double gpus = 0;  // the attempt's GPUs; a share when several runs use one GPU (0.25 for 4)
};

// A job recorded for a run by the backend that submitted it.
struct JobRecord {
  std::string run_id, backend, job_id;
};

// What claim_run() is asked and what it answers.
struct ClaimRequest {
  std::string run_id;
  ProcessIdentity holder;
  std::string job_id, backend;
  double gpus = 0;  // a share when several runs use one GPU
  double lost_after_s = 600;  // a holder on another host whose heartbeat is older than this is dead
};
struct ClaimResult {
  enum Outcome { kClaimed, kAlreadyDone, kCancelled, kHeld, kMissing } outcome = kMissing;
  int64_t attempt_id = 0;   // kClaimed: the new attempt
  std::string detail;       // kHeld: who holds it; kClaimed: the dead holder it took over from, if any
};

// What a fenced heartbeat learns: the attempt still holds the run, the run was cancelled meanwhile, or another
// attempt took the claim (this worker must stop without writing anything more).
enum class ClaimStanding { kHeld, kCancelled, kLost };

class Store {
 public:
  enum class Mode { kReadWrite, kRead };  // kRead: never writes (status on a read-only or full workspace)
  // `wait_s` < 0: ORCH_STORE_WAIT_S (core/control.h).
  explicit Store(const std::string& path, Mode mode = Mode::kReadWrite, double wait_s = -1);
  ~Store();
  Store(const Store&) = delete;
  Store& operator=(const Store&) = delete;

  const std::string& path() const { return path_; }

  // Runs.
  void upsert_runs(const std::vector<RunRecord>& runs);  // inserts, or updates settings and dependencies (not the state)
  void upsert_run(const RunRecord& run) { upsert_runs({run}); }
  void set_run_state(const std::string& run_id, const std::string& state);
  void set_runs_state(const std::vector<std::string>& ids, const std::string& state);  // one transaction
  std::optional<RunRecord> run(const std::string& run_id);
  std::vector<RunRecord> runs(const std::string& experiment = "");
  std::map<std::string, RunProgress> progress(const std::string& experiment = "");

  // Dispatch, a compare-and-set per run: each run whose state is still `expected` becomes queued with `job`
  // recorded as its latest submission (and any stale claim cleared), all in one transaction. Returns the ids
  // that were dispatched; a run whose state changed meanwhile is left alone.
  struct Dispatch {
    std::string run_id, expected_state, job_id;
  };
  std::vector<std::string> dispatch_runs(const std::vector<Dispatch>& runs, const std::string& backend);
  // Replaces a placeholder job id (recorded before the backend knew the real one) for these runs.
  void replace_jobs(const std::vector<std::pair<std::string, std::string>>& run_and_job, const std::string& old_job,
                    const std::string& backend);
  void add_jobs(const std::vector<std::pair<std::string, std::string>>& run_and_job, const std::string& backend);
  // The submitting process's heartbeat on every job row it recorded (a local pool's pending runs).
  void touch_job(const std::string& job_id);
  // Cancels: each run still queued or running becomes cancelled (one transaction). Returns those changed.
  std::vector<std::string> cancel_runs(const std::vector<std::string>& ids);
  // State changes that apply only while the run is in `from` (one transaction); returns those changed.
  std::vector<std::string> transition_runs(const std::vector<std::string>& ids, const std::vector<std::string>& from,
                                           const std::string& to);

  // Claims (see the header comment) and what the holding attempt may do.
  ClaimResult claim_run(const ClaimRequest& request);
  ClaimStanding heartbeat(const std::string& run_id, int64_t attempt_id);
  // Runs `publish` (a file's rename into place) only while `attempt_id` holds the run's claim, inside the write
  // transaction that checked it, so no takeover can come between the check and the rename. False (and `publish`
  // not run) when the claim is gone.
  bool publish_if_claim_held(const std::string& run_id, int64_t attempt_id, const std::function<void()>& publish);
  void set_attempt_start(int64_t attempt_id, int64_t epoch, int64_t batch);
  // The run's final word, fenced: only while `attempt_id` holds the claim. `state` is the run's new state and the
  // attempt is closed with `exit_status` and `reason`, except that a run cancelled meanwhile stays cancelled (its
  // attempt then ends with kExitNotClaimed). Returns the run's state afterwards, or "" (nothing changed) when the
  // attempt no longer holds the claim.
  std::string finish_attempt(const std::string& run_id, int64_t attempt_id, const std::string& state, int exit_status,
                      const std::string& reason, int64_t end_epoch, int64_t end_batch);
  // Test metrics, inference times and the done state in one transaction, fenced likewise.
  bool finish_done(const std::string& run_id, int64_t attempt_id, const std::vector<TestMetric>& metrics,
                   const std::vector<InferenceRow>& times, int64_t end_epoch);
  // For a worker that died without its final word (killed, crashed): when the run's claim is still held by an open
  // attempt of `holder` (a process identity), ends it as `state` with `reason`. Returns whether it did.
  bool abandon_claim(const std::string& run_id, const std::string& holder, const std::string& state, int exit_status,
                     const std::string& reason);
  // Closes an attempt that has no claim (a worker that failed before or without claiming).
  void end_attempt(int64_t attempt_id, int exit_status, const std::string& reason);
  std::vector<AttemptRow> attempts(const std::string& run_id = "");

  // Every job recorded for a run (a packed job holds several runs: one row each).
  std::vector<JobRecord> jobs();

  int64_t count(const std::string& table);  // rows in a table of this schema (for checks and tests)

  // For the store's parts (storage/calibration_table.h, storage/accounting_table.h, storage/provenance_table.h,
  // storage/metrics_table.h):
  // the connection, and a write
  // transaction on it (BEGIN IMMEDIATE ... COMMIT; a lock is waited for up to the store wait, then BusyError).
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
  std::unique_ptr<sqlite::Database> db_;
};

// Unix time now, in seconds (the store's heartbeat and accounting clock).
double unix_now();

}  // namespace orch
