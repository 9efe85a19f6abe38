// What each run of an experiment is and what a submission would do with it: the control plane's view.
//
// plan() joins the grid (scheduler/grid.h) with the store: each run's state (new when not recorded), its
// progress, and, for runs the store thinks are queued or running, whether their job is still alive (a local
// job whose process is gone, on this host, is "lost"; Slurm jobs are checked by the Slurm backend). The action
// says what `submit` (or `resume`) would do and why: submit (new / failed / cancelled / timeout / lost /
// settings changed, replacing the old id) or skip (already done / already queued or running / waiting for a
// dependency that will not run). Values only; thread-safe.
#pragma once

#include <map>
#include <string>
#include <vector>

#include "scheduler/grid.h"
#include "storage/store.h"

namespace orch::scheduler {

struct RunStatus {
  PlannedRun run;
  std::string state;    // the store's state, "new" when absent, "lost" when its job is gone
  RunProgress progress;
  bool submit = false;  // the action
  std::string why;
};

enum class PlanMode { kSubmit, kResume };

// `only` narrows the runs listed; dependencies of listed runs that are not done are included as well (they must
// run first). Resume submits only runs that failed, were cancelled, timed out or were lost.
// `slurm_states`: Slurm's state per job ("<array>_<index>", scheduler/slurm_backend.h) for runs the store thinks
// are queued or running; a final one (FAILED, CANCELLED, TIMEOUT, NODE_FAIL, OUT_OF_MEMORY) is shown as such.
std::vector<RunStatus> plan(const std::vector<PlannedRun>& grid, Store& store, const Filter& only, PlanMode mode,
                            const std::map<std::string, std::string>* slurm_states = nullptr);

// Records the grid's runs (settings, dependencies) in the store; states of recorded runs are kept.
void record_runs(Store& store, const std::vector<PlannedRun>& runs);

// True when a local job id ("local:<pid>@<host>") names a process that is gone from this host.
bool local_job_gone(const std::string& job);

}  // namespace orch::scheduler
