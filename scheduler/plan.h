// Users' documentation: docs/control-plane.md.
// What each run of an experiment is and what a submission would do with it: the control plane's view.
//
// plan() joins the grid (scheduler/grid.h) with the store and with what the backends say of their jobs
// (live_job_states()). A run the store calls queued or running is shown as what it really is (judge()): lost
// when its job or worker process is gone or its heartbeat is older than ORCH_LOST_AFTER_S, or failed, cancelled
// or timeout when its Slurm job ended so. The action says what `submit` (or `resume`) would do and why: submit
// (new / failed / cancelled / timeout / lost / interrupted / settings changed, replacing the old id) or skip
// (already done / already queued or running / waiting for a dependency that will not run). Values only;
// thread-safe.
#pragma once

#include <map>
#include <optional>
#include <string>
#include <vector>

#include "core/process_identity.h"
#include "scheduler/backend.h"
#include "scheduler/grid.h"
#include "storage/run_state.h"
#include "storage/runs_table.h"
#include "storage/store.h"

namespace orch::scheduler {

struct RunStatus {
  PlannedRun run;
  // Set by a plan that rebuilds damaged runs: this done run is retrained because a run it depends on loses its
  // best checkpoint; its own checkpoints are set aside first (so it starts afresh).
  bool retrain_from_scratch = false;
  std::string state;           // shown: the store's state, "new" when absent, or what judge() inferred
  std::string recorded_state;  // the store's ("new" when absent)
  bool recorded = false;       // the store has a row for it
  RunProgress progress;
  bool submit = false;         // the action
  std::string why;
};

enum class PlanMode { kSubmit, kResume };

// A run a submit recorded but did not dispatch: held back by a queue limit (or waiting for a dependency that will
// not run). `submit --follow`, `resume` and `status` submit it when the queue has room.
inline bool is_held_back(const RunStatus& st) {
  return st.recorded && st.recorded_state == run_state::kNew && st.state == run_state::kNew;
}

// What a plan also looks at beyond the store and the jobs.
struct PlanOptions {
  // When set, done runs are checked for their artefacts (best checkpoint, predictions) in this workspace and
  // shown as damaged when one is missing.
  std::string workspace;
  // Resume only: damaged runs are submitted again, and done runs that depend on one whose best checkpoint is lost
  // are retrained (their inputs change).
  bool rebuild_damaged = false;
  // Resume only: runs the store holds as "new" (recorded by a submit that the queue limit held them back from) are
  // submitted too, so that a resume tops the queue up.
  bool submit_recorded_new = false;
  // Unattended (the rounds of `submit --follow` after the first): of the runs that ended, only those the retry
  // policy allows are submitted again (scheduler/retry.h): lost, or ended by the cluster (a failed node, an
  // out-of-memory kill), with fewer than `max_attempts` attempts made. Failed, cancelled, timed-out and
  // interrupted runs wait for a person's submit or resume.
  bool unattended = false;
  int max_attempts = 3;
};

// What is missing of a done run's artefacts ("" when nothing): "best checkpoint (<path> and its copy)",
// "predictions (<path>)".
std::string missing_artefacts(const std::string& workspace, const std::string& run_id);

// A run's shown state from its recorded one, its progress and its jobs' states; `why` explains an inferred one.
struct Judgement {
  std::string state, why;
  bool transient = false;  // lost, or its job ended by the cluster (JobState::transient): the retry policy's kind
};
// "" when a claim's heartbeat is recent enough, else why its run is lost: "no heartbeat for N s (pid P alive but
// not progressing) (ORCH_LOST_AFTER_S M s)".
std::string stale_heartbeat(double heartbeat, double now, double lost_after_s, const std::optional<ProcessIdentity>& holder,
                            Liveness l);
Judgement judge(const std::string& recorded_state, const RunProgress& progress,
                const std::map<std::string, JobState>& jobs, double now, double lost_after_s);

// What the backends say of the jobs on the store's active runs (one query per backend). Accounting rows the
// backends learnt on the way (Slurm's sacct) are recorded in the store when it can be written.
std::map<std::string, JobState> live_job_states(Store& store, const std::string& workspace);

// `only` narrows the runs listed; dependencies of listed runs that are not done are included as well (they must
// run first). Resume submits only what failed, was cancelled, timed out, was lost or interrupted.
std::vector<RunStatus> plan(const std::vector<PlannedRun>& grid, Store& store, const Filter& only, PlanMode mode,
                            const std::map<std::string, JobState>& jobs, const PlanOptions& options = {});

// Records the grid's runs (settings, dependencies) in the store; states of recorded runs are kept.
void record_runs(Store& store, const std::vector<PlannedRun>& runs);

}  // namespace orch::scheduler
