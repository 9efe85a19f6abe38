// What a run asks of the machine that runs it, per network and per data set: the experiment's `resources` block,
// then the run's data set's `resources`, its network's, and its network's block for that data set
// (networks.<id>.datasets.<dataset>.resources); a later level wins field by field. Validated when the experiment
// is loaded (every combination), shown by `plan`, written into the generated job scripts. Both backends read
// it: the local pool its GPUs and runs per GPU, Slurm everything. Values only; thread-safe.
#pragma once

#include <map>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "core/experiment.h"

namespace orch::scheduler {

struct RunResources {
  std::string partition, mem, constraint;
  std::string time;          // Slurm time limit ("2-00:00:00", "90"), "auto" (from the estimate), or "" (none)
  bool time_from_estimate() const { return time == "auto"; }
  int gpus = 0;              // per task
  int cpus = 1;              // per task; also the worker's torch threads
  int ranks = 1;             // tasks per run (several: the worker runs through srun)
  int runs_per_gpu = 1;      // runs packed onto one GPU (a job then runs that many workers on its one GPU)
  // Equal resources give equal keys (Slurm groups runs into one array only when their resources agree).
  std::string key() const;
  std::string describe() const;  // "gpus 1, cpus 8, mem 32G, time 12:00:00" for plan
};

// Settings of the whole experiment (not per run).
struct ExperimentResources {
  int array_throttle = 4;    // Slurm: tasks of one array running at once
  int signal_seconds = 120;  // Slurm: the warning signal this long before the time limit
  std::string template_path; // Slurm: a job script template of the user's (default slurm/job.sbatch.in)
  int local_workers = 0;     // local pool: worker processes (0: the command's --workers, else cores)
  std::vector<int> local_gpus;  // local pool: GPU indices to share out (empty: none)
  double time_margin = 1.3;  // time "auto": the estimate times this
  int max_attempts = 3;      // the retry policy's bound on a run's attempts (scheduler/retry.h)
  double oom_mem_factor = 1.5;  // Slurm: a run dispatched again after ending OUT_OF_MEMORY asks mem x this per such end
  // Slurm: this grid's runs queued or running at once (0: no limit but the cluster's MaxJobCount). The rest wait
  // in the store as "new" until `submit --follow` or a later `submit`/`resume` finds room (scheduler/submission.h).
  int max_queued = 0;
  // Estimates: the GPU model the runs will get (matched, case-insensitively, as part of a calibration row's device
  // model: "A100" takes "NVIDIA A100-SXM4-80GB"); rows of other models are not used. Empty: any model's rows, the
  // basis naming the one used.
  std::string device_model;
};

RunResources resources_for(const Experiment& exp, const std::string& dataset, const std::string& model);

// resources_for() resolved once per (data set, network) pair: what code that asks for every run of a large grid
// holds (a grid of 100k runs has a few dozen pairs). Not thread-safe; the experiment must outlive it.
class ResourceCache {
 public:
  explicit ResourceCache(const Experiment& exp) : exp_(exp) {}
  const RunResources& of(const std::string& dataset, const std::string& model) { return *shared(dataset, model); }
  std::shared_ptr<const RunResources> shared(const std::string& dataset, const std::string& model);

 private:
  const Experiment& exp_;
  std::map<std::pair<std::string, std::string>, std::shared_ptr<const RunResources>> cache_;
};
ExperimentResources experiment_resources(const Experiment& exp);
// Validates every level and every combination of the grid's data sets and networks; InputError names the file,
// the field path and the value.
void validate_resources(const Experiment& exp);

}  // namespace orch::scheduler
