// The pure half of Slurm dispatch: which runs go into which job array, and the job script each array gets.
// SlurmBackend::dispatch (scheduler/slurm_backend.h) does the rest: the store's compare-and-set, manifests, sbatch
// and its rollback. Nothing here runs a command or touches a file, so tests check grouping, dependencies, Slurm's
// array limit and the script's text without Slurm. Values only; thread-safe.
#pragma once

#include <functional>
#include <map>
#include <string>
#include <vector>

#include "scheduler/backend.h"
#include "scheduler/resources.h"

namespace orch::scheduler {

// One array to submit: runs with the same dependencies (inside this dispatch and outside it) and resources.
struct ArrayGroup {
  std::vector<const DispatchItem*> items;
  std::vector<std::string> deps_inside;   // run ids dispatched earlier in this dispatch (sorted)
  std::vector<std::string> deps_outside;  // Slurm tasks ("<array>_<task>") of active runs outside it (sorted)
  RunResources res;
};

struct GroupingInput {
  std::map<std::string, std::string> outside_tasks;  // dependency run id -> its queued or running Slurm task
  std::map<std::string, int> oom_ends;               // run id -> times it ended OUT_OF_MEMORY
  double oom_mem_factor = 1.5;                       // resources.oom_mem_factor (scheduler/retry.h raised_mem)
  int max_array_size = 1001;                         // Slurm's MaxArraySize: task indices 0 .. max - 1
};

// Groups `items` by dependency depth, resources and exact dependencies, in an order where every group comes after
// the groups holding what it depends on; a group whose tasks (runs / runs_per_gpu) exceed max_array_size is cut
// into arrays of at most that many tasks.
std::vector<ArrayGroup> group_into_arrays(const std::vector<DispatchItem>& items, const GroupingInput& input);

// The time limit of an array: its resources' time, or for "auto" the longest of its runs' estimates (`estimate`
// of a run; "" when it has none, an InputError naming the run and `exp_path`).
std::string array_time_limit(const ArrayGroup& group, const std::function<std::string(const PlannedRun&)>& estimate,
                             const std::string& exp_path);

// What one array's job script says.
struct JobScriptSpec {
  std::string job_name, comment, time;
  int tasks = 1, runs_per_task = 1;
  RunResources res;
  int array_throttle = 4, signal_seconds = 120, max_attempts = 3;
};

// The lines of a Slurm command's parsable output (sacct -P, sacctmgr -P), each split at '|' into fields; a line that
// ends with '|' has an empty last field.
std::vector<std::vector<std::string>> pipe_rows(const std::string& text);

// Slurm's submission limits on a user, from `sacctmgr -nP show assoc where user=U format=MaxSubmit,GrpSubmit,QOS,DefaultQOS`
// (`assoc_rows`: the user's associations) and `sacctmgr -nP show qos format=Name,MaxSubmitPU,GrpSubmit` (`qos_rows`):
// the smallest MaxSubmitJobs or GrpSubmitJobs of the user's associations and of the QOS their jobs run under (the
// default QOS where one is set, else every QOS the association allows); 0 when none is set. The QOS names to ask
// about come from submit_qos_names().
std::vector<std::string> submit_qos_names(const std::string& assoc_rows);
int submit_limit_from_sacctmgr(const std::string& assoc_rows, const std::string& qos_rows);

// `tmpl` (slurm/job.sbatch.in or a user's template) with its @PLACEHOLDERS@ filled in from `spec`. Every value
// put into it is a safe word or a number (run ids, paths and the experiment name reach the job as arguments).
std::string render_job_script(const std::string& tmpl, const JobScriptSpec& spec);

}  // namespace orch::scheduler
