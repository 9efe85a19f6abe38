// One interface for every place runs execute, chosen at run time by name (as the worker chooses a communicator):
// the local pool (scheduler/local_backend.h) and Slurm (scheduler/slurm_backend.h) implement it. A backend
//   - dispatches runs the store has just recorded: under the workspace lock it marks them queued with the job
//     that will start them (a compare-and-set per run) and hands them over; the local pool then trains them in
//     this process (run()) after the lock is released, Slurm has already queued job arrays;
//   - tells what became of the jobs it recorded (job_states(), one query per refresh);
//   - cancels jobs, and reconciles jobs an interrupted dispatch left without a recorded id.
// The control plane's sequence around it (plan, ensure data sets, lock, record, dispatch) is in
// scheduler/submission.h. Adding a backend: implement this interface in scheduler/, and add one line to
// make_backend() and backend_names() (scheduler/backends.cpp), plus its JobEnvironment for the worker.
// A backend object is used by one thread.
#pragma once

#include <algorithm>
#include <climits>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "core/experiment.h"
#include "core/job_environment.h"
#include "scheduler/grid.h"
#include "storage/accounting_table.h"
#include "storage/store.h"

namespace orch::scheduler {

// What a backend knows of a job it recorded.
enum class JobPhase {
  kPending,    // waiting to start (Slurm PENDING / REQUEUED; a local pool's pending run)
  kRunning,    // started
  kGone,       // no such job any more, without a final state (a pool or worker process that vanished)
  kUnknown,    // cannot tell (another host's process; Slurm has no record yet)
  kCompleted,  // ended with exit 0
  kFailed,     // ended badly (Slurm FAILED, NODE_FAIL, OUT_OF_MEMORY, ...)
  kCancelled,
  kTimeout,
};
const char* job_phase_name(JobPhase p);

struct JobState {
  JobPhase phase = JobPhase::kUnknown;
  std::string detail;  // the scheduler's own word ("Slurm: PENDING"), for messages
  // Ended by the cluster rather than by the run (a failed node, an out-of-memory kill, a node that did not boot):
  // the retry policy dispatches it again (scheduler/retry.h).
  bool transient = false;
};

// A backend's bound on a grid's queued or running runs, now. Slurm: `most` is the lowest of the experiment's
// resources.max_queued, the cluster's MaxJobCount and, where Slurm enforces limits, the user's MaxSubmitJobs/
// GrpSubmitJobs (association or QOS) less the user's other tasks in the queue; `listed` counts the grid's tasks
// squeue lists (pending, running, completing): a task takes room until it leaves the queue, as Slurm counts it,
// even after its run is done.
struct QueueLimit {
  std::optional<int> most;  // none: no limit; 0 when the user's other jobs fill the submission limit
  int listed = 0;
  // How many more runs may be submitted when `active` of the grid's runs are queued or running by the store's
  // account (the larger of that and `listed` takes room); INT_MAX without a limit.
  int room(int active) const { return most ? std::max(0, *most - std::max(active, listed)) : INT_MAX; }
};

struct DispatchItem {
  PlannedRun run;
  std::string recorded_state;  // the store's state plan() saw (the compare-and-set's expectation)
};

struct DispatchOptions {
  std::string workspace;
  std::string binary;        // the orchestrator executable the jobs run
  int workers = 1;           // local pool
  int threads_per_worker = 0;
  bool quiet = false;
  std::function<void(const std::string&)> on_event;  // one line per start, finish, failure
  // The time limit for a run whose resources say time "auto" (scheduler/estimate.h); "" when it has no estimate.
  std::function<std::string(const PlannedRun&)> estimated_time_limit;
};

// What dispatch() handed over, whatever the backend.
struct DispatchResult {
  int dispatched = 0;                  // runs handed over
  std::vector<std::string> skipped;    // runs whose state changed between plan and dispatch
  std::vector<std::string> jobs;       // jobs submitted to a scheduler (Slurm: array jobs; the local pool: none)
};

// What run() trained in this process (the local pool); empty for a backend whose jobs run elsewhere.
struct PoolOutcome {
  int done = 0, failed = 0, cancelled = 0, elsewhere = 0;  // elsewhere: held or taken over by another process
  std::vector<std::string> failed_ids, stopped_ids, not_started_ids;
  int interrupted_by = 0;              // SIGINT/SIGTERM that stopped it, 0 if none
};

class Backend {
 public:
  virtual ~Backend() = default;
  virtual std::string name() const = 0;
  virtual std::map<std::string, JobState> job_states(const std::vector<std::string>& jobs) = 0;
  // Called with the workspace lock held.
  virtual DispatchResult dispatch(const std::vector<DispatchItem>& runs, Store& store, const Experiment& exp) = 0;
  // Called after the lock is released; returns when what dispatch() started here is over (at once if nothing).
  virtual PoolOutcome run(Store& store) { return {}; }
  virtual void cancel(const std::vector<std::string>& jobs) = 0;
  // Jobs an interrupted dispatch left with a placeholder id: finds and records them. Returns the runs fixed.
  virtual int reconcile(Store& store) { return 0; }
  // Accounting rows learnt from the scheduler since the last call (Slurm: sacct's rows of its jobs).
  virtual std::vector<JobAccount> accounts() { return {}; }
  // How many of the grid's runs may be queued or running on this backend now (QueueLimit). `grid_jobs`: the jobs
  // the store records for the grid's runs, which tell the grid's tasks in the queue from the user's others.
  virtual QueueLimit queue_limit(const Experiment& exp, const std::vector<std::string>& grid_jobs) { return {}; }
  // Whether `job` (as recorded in the store) still needs asking for accounting: a real job whose newest row
  // (`newest`, null when none) is missing or not final. The local pool accounts for its workers itself.
  virtual bool accounting_open(const std::string& job, const JobAccount* newest) const { return false; }
};

std::unique_ptr<Backend> make_backend(BackendKind kind, const DispatchOptions& options);
// Every backend this build has, for the steps that visit each (reconcile, live states).
const std::vector<BackendKind>& all_backends();

// The job environment of the process the CLI runs as a worker: Slurm's when Slurm started it, else the local
// one (a pool's worker, or `train` in the foreground).
std::unique_ptr<JobEnvironment> detect_job_environment(bool slurm_self_requeue);

}  // namespace orch::scheduler
