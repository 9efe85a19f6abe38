// Users' documentation: docs/control-plane.md.
// The Slurm backend: runs submitted as sbatch job arrays, one array per group of runs that share the exact same
// dependencies and resources, each depending only on the array tasks it needs (--dependency=afterok:<job>_<task>),
// so a joint network starts as soon as its own UNet is done and a failure stops only its own dependents. Arrays
// are throttled with %K, requeueable, warned before the time limit (--signal) and appended to
// WorkspaceLayout::slurm_output_pattern(). Array task i runs line i+1 of a manifest written before sbatch
// (several run ids on a line when runs share one GPU: resources.runs_per_gpu). Scripts come from the template
// slurm/job.sbatch.in (embedded at build time; resources.template names another file).
//
// No path is written into a script: the orchestrator, the workspace and the manifest are the script's arguments
// on sbatch's command line (no shell reads them); the log path is sbatch's --output argument, so a workspace
// whose path holds spaces, quotes, $(...) or backticks works. A path with '%' or '\' (Slurm's file-name patterns)
// or a newline is refused at submit. Every other value placed in a script is validated.
//
// Each array is recorded before sbatch under a placeholder job ("manifest:<name>"), then under its real task ids;
// a submission that died in between is reconciled by the array's job name. States come from one batched sacct
// call (squeue when accounting is off), which also yields the accounting rows. Not thread-safe.
#pragma once

#include <map>
#include <utility>
#include <string>
#include <vector>

#include "scheduler/backend.h"
#include "scheduler/resources.h"

namespace orch::scheduler {

struct ArrayGroup;     // scheduler/slurm_arrays.h
struct SubmitContext;  // slurm_backend.cpp

class SlurmBackend : public Backend {
 public:
  explicit SlurmBackend(DispatchOptions options);
  std::string name() const override { return "slurm"; }
  std::map<std::string, JobState> job_states(const std::vector<std::string>& jobs) override;
  DispatchResult dispatch(const std::vector<DispatchItem>& runs, Store& store, const Experiment& exp) override;
  void cancel(const std::vector<std::string>& jobs) override;
  int reconcile(Store& store) override;
  std::vector<JobAccount> accounts() override;
  bool accounting_open(const std::string& job, const JobAccount* newest) const override;

 private:
  // Slurm's MaxArraySize (`scontrol show config`; 1001, its default, when it cannot be read), asked once.
  int max_array_size();
  QueueLimit queue_limit(const Experiment& exp, const std::vector<std::string>& grid_jobs) override;
  // One array: its runs taken by compare-and-set, its manifest and script, sbatch, and the tasks recorded.
  void submit_array(const ArrayGroup& g, const std::string& base, const SubmitContext& c, Store& store,
                    std::map<std::string, std::string>& task_of, DispatchResult& out);
  DispatchOptions o_;
  std::vector<JobAccount> accounts_;
  int max_array_size_ = 0;
  int max_job_count_ = -1;  // -1: not read yet; 0: none found
  int submit_limit_ = 0;    // the user's MaxSubmitJobs/GrpSubmitJobs where Slurm enforces them; 0: none
  std::string user_;
  // `scontrol show config`, read once: MaxArraySize, MaxJobCount and whether limits are enforced (then sacctmgr).
  void read_config();
  void read_submit_limit();
  // The user's tasks in Slurm's queue (pending, running, completing, suspended; one squeue): {the grid's (those of
  // the arrays of `grid_jobs`), the others}. {0, 0} when squeue fails.
  std::pair<int, int> queued_tasks(const std::vector<std::string>& grid_jobs);
};

// The placeholder job id recorded for a manifest's runs before sbatch returns, and what it becomes when sbatch
// failed or, after the submitting command died, Slurm has no job of that name (both: gone, so resume resubmits).
constexpr const char* kPendingSubmission = "manifest:";
constexpr const char* kFailedSubmission = "sbatch-failed:";
constexpr const char* kNeverSubmitted = "sbatch-never-ran:";

// Maps a Slurm job state ("PENDING", "CANCELLED by 0", ...) to a JobPhase.
JobPhase job_phase_from_slurm(const std::string& slurm_state);
// NODE_FAIL, OUT_OF_MEMORY, BOOT_FAIL: ended by the cluster, not by the run (JobState::transient).
bool slurm_state_is_transient(const std::string& slurm_state);

// Refuses a workspace path Slurm's --output cannot take literally ('%', '\', newline); InputError names it.
void check_slurm_path(const std::string& path, const std::string& what);

// The worker's job environment inside a Slurm job: SLURM_* variables and `scontrol requeue`.
class SlurmJobEnvironment : public JobEnvironment {
 public:
  explicit SlurmJobEnvironment(bool self_requeue);
  std::string backend() const override { return "slurm"; }
  std::string job_id() const override { return job_; }
  std::string request_requeue(int signal) override;
  int cpus() const override { return cpus_; }
  int gpus() const override { return gpus_; }
  static bool present();  // running inside a Slurm job

 private:
  std::string job_;
  bool self_requeue_;
  int cpus_ = 0, gpus_ = 0;
};

}  // namespace orch::scheduler
