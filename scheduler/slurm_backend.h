// The Slurm backend: runs submitted as sbatch job arrays, one per dependency level of the runs to submit
// (the pretrained UNets and HybridGNet+IGSC first, then what needs them), chained with --dependency=afterok,
// throttled with %K, with --requeue, a warning signal before the time limit and --open-mode=append; logs at
// WORKSPACE/logs/%A_%a.out. Array index i runs line i+1 of a manifest written before sbatch. Scripts come from
// the template slurm/job.sbatch.in (embedded at build time; `resources.template` names another file).
// Every value placed in a script is validated or quoted. States come from one batched sacct call (squeue when
// accounting is off). Not thread-safe.
#pragma once

#include <map>
#include <string>
#include <vector>

#include "core/experiment.h"
#include "scheduler/grid.h"
#include "storage/store.h"

namespace orch::scheduler {

struct SlurmResources {
  std::string partition, mem, time, template_path;
  int gpus = 0, cpus = 1, ranks = 1, throttle = 4, signal_seconds = 120;
};

// From the experiment's "resources" block; InputError names the field and value.
SlurmResources slurm_resources(const Experiment& exp);

struct SlurmSubmission {
  std::vector<std::string> array_jobs;  // job ids, in submission order
  int runs = 0;
};

SlurmSubmission submit_slurm(const std::vector<PlannedRun>& runs, Store& store, const Experiment& exp,
                             const std::string& workspace, const std::string& orchestrator_binary);

// Slurm's state of each "<array>_<index>" job (one sacct call; squeue if sacct is unavailable).
std::map<std::string, std::string> slurm_job_states(const std::vector<std::string>& jobs);

// Maps a Slurm state to the run state to show while the store still says queued/running; "" = leave as is.
std::string run_state_from_slurm(const std::string& slurm_state);

void cancel_slurm(const std::vector<std::string>& jobs);

// Records jobs of manifests whose sbatch went through but whose ids were never recorded (the orchestrator died
// in between): found by job name. Returns how many runs were reconciled.
int reconcile_slurm(Store& store, const std::string& workspace);

}  // namespace orch::scheduler
