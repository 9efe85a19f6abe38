// The run store's runs and their jobs (docs/control-plane.md, "Run states"): each run's record (its experiment,
// data set, network, seed, stage, state, settings and dependencies), the state changes that the control plane
// makes (dispatch, cancel, transitions, each a compare-and-set in one transaction), the jobs that backends
// submitted for runs, and the progress that status and plan read (attempts, claim, epochs, last job) in one
// query. A part of the store (storage/store.h): its SQL and its row mapper live here; the claims that workers take
// on runs are the other part (storage/claims_table.h). Shares the Store's connection: use it from the thread that
// uses that Store.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <unordered_map>
#include <utility>
#include <vector>

namespace orch {

class Store;

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

// A run's record (settings left out) and its progress, as plan and status read every run.
struct RunOverview {
  RunRecord record;
  RunProgress progress;
};

// A job recorded for a run by the backend that submitted it.
struct JobRecord {
  std::string run_id, backend, job_id;
};

class RunsTable {
 public:
  explicit RunsTable(Store& store) : store_(store) {}

  void upsert_runs(const std::vector<RunRecord>& runs);  // inserts, or updates settings and dependencies (not the state)
  void upsert_run(const RunRecord& run) { upsert_runs({run}); }
  void set_run_state(const std::string& run_id, const std::string& state);
  void set_runs_state(const std::vector<std::string>& ids, const std::string& state);  // one transaction
  std::optional<RunRecord> run(const std::string& run_id);
  std::vector<RunRecord> runs(const std::string& experiment = "");
  // Every run's record, its settings_json left empty (about half a kilobyte a run not copied: a plan of 100,000
  // runs needs the settings only of runs its grid no longer has), with its progress: one query, by run id.
  std::vector<RunOverview> overview(const std::string& experiment = "");
  // Every run's state, by run id (what a report needs of the runs table).
  std::unordered_map<std::string, std::string> states();
  // As overview(), keyed by run id and without the records.
  std::unordered_map<std::string, RunProgress> progress(const std::string& experiment = "");
  // The jobs a backend should be asked about: each queued or running run's latest submission and its claim's job,
  // as (backend, job id) pairs. Reads only those runs' rows (a finished grid of any size: nothing).
  std::vector<std::pair<std::string, std::string>> active_jobs();

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
  // Every job recorded for a run (a packed job holds several runs: one row each).
  std::vector<JobRecord> jobs();

  // Cancels: each run still queued or running becomes cancelled (one transaction). Returns those changed.
  std::vector<std::string> cancel_runs(const std::vector<std::string>& ids);
  // State changes that apply only while the run is in `from` (one transaction); returns those changed.
  std::vector<std::string> transition_runs(const std::vector<std::string>& ids, const std::vector<std::string>& from,
                                           const std::string& to);

 private:
  Store& store_;
};

}  // namespace orch
