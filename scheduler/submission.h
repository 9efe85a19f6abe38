// Users' documentation: docs/control-plane.md.
// The control plane's one sequence for the commands that plan and dispatch (run, submit, resume, cancel, and train,
// which dispatches to itself: SubmitOptions::in_this_process), whatever the backend:
//   1. plan, without the lock, to learn which data sets the runs to submit need; build those (each under its
//      own lock, storage/workspace.h);
//   2. take the workspace lock (storage/workspace_lock.h; another command waits up to ORCH_LOCK_WAIT_S, then is
//      told who holds it);
//   3. reconcile submissions an interrupted command left half done; plan again with the backends' live job
//      states; record the runs; dispatch them (a compare-and-set per run: a run whose state changed meanwhile is
//      left alone);
//   4. release the lock, then let the backend run what it trains in this process (the local pool).
// `status` and `plan` read the same view without the lock (view_grid); `status` then tops a limited queue up
// through this sequence (SubmitOptions::top_up_only). Not thread-safe.
#pragma once

#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "core/experiment.h"
#include "scheduler/backend.h"
#include "scheduler/plan.h"

namespace orch::scheduler {

// What a grid command works on: the experiment and its expanded grid (neither copied: both outlive the request),
// the --only filter and the workspace.
struct GridRequest {
  const Experiment* exp = nullptr;
  const std::vector<PlannedRun>* grid = nullptr;
  Filter only;
  std::string workspace;
  std::string command = "orchestrator";  // what holds the lock, as shown to a waiting command
};

struct SubmitOptions {
  PlanMode mode = PlanMode::kSubmit;
  std::optional<BackendKind> backend;  // none: the experiment's "backend"
  int workers = 0;       // local pool: 0 = resources.local_workers, else this machine's cores
  std::string binary;    // the orchestrator executable ("" = this process's)
  bool quiet = false;
  // Resume: rebuild damaged done runs (scheduler/plan.h PlanOptions), and retrain their dependents from scratch
  // when a best checkpoint is lost.
  bool rebuild_damaged = false;
  // The rounds of `--follow` after the first: runs that ended are dispatched again only as the retry policy
  // allows (PlanOptions::unattended).
  bool unattended = false;
  std::function<void(const std::string&)> on_event;  // progress lines (waits, starts, finishes)
  // `train`: the runs are dispatched to this process (the local backend, its identity as their job) and trained by
  // the caller once submit_grid() returns, on every rank; nothing is held back and no pool starts. A run of the
  // request that is queued or running elsewhere is a BusyError, raised under the lock before anything is dispatched.
  bool in_this_process = false;
  // `status` topping the queue up: of the runs a resume would submit, only those held back (is_held_back) are;
  // nothing is retried, no hung worker is stopped and no run is newly recorded. Step 1 is skipped: the held-back
  // runs' data sets were built when they were first submitted (step 3 still checks them, quickly when up to date).
  bool top_up_only = false;
  std::optional<double> lock_wait_s;  // none: control_timeouts().lock_wait_s
};

struct SubmitOutcome {
  BackendKind backend = BackendKind::kLocal;
  int workers = 0;
  std::vector<RunStatus> plan;  // as planned under the lock
  int to_submit = 0;
  // Runs planned for submission but left "new" because the backend's queue limit (Backend::queue_limit) was
  // reached: `submit --follow`, or a later submit or resume, submits them as jobs end.
  int held_back = 0;
  int queue_limit = 0;  // QueueLimit::most (0 also when none)
  DispatchResult result;
  PoolOutcome trained;  // what this process trained after the lock was released (the local pool)
};

SubmitOutcome submit_grid(const GridRequest& request, const SubmitOptions& options);

// `backend`'s queue limit for the grid `plan` lists (Backend::queue_limit, given the jobs of the plan's runs).
QueueLimit queue_limit_of(Backend& backend, const Experiment& exp, const std::vector<RunStatus>& plan);

// Cancels the listed runs that are queued or running: marks them cancelled (their workers stop at a checkpoint
// and do not requeue) and asks each backend to stop their jobs. Returns the runs cancelled.
std::vector<std::string> cancel_grid(const GridRequest& request);

// The grid with live states, read-only (works on a read-only or full workspace); empty store when none exists.
std::vector<RunStatus> view_grid(const GridRequest& request, PlanMode mode);

// The backend `flag` (--backend) names, or the experiment's when it is empty; InputError for an unknown one.
BackendKind backend_for(const Experiment& exp, const std::string& flag);
// The local pool's worker count: `flag` when > 0, else resources.local_workers, else runs_per_gpu per GPU of
// resources.local_gpus, else the machine's cores.
int local_workers_for(const Experiment& exp, int flag);

}  // namespace orch::scheduler
