// The local backend: a pool of worker processes (`orchestrator worker`) on this machine.
//
// dispatch() (under the workspace lock) marks the runs queued with this pool's process identity as their job,
// so that another command sees them as taken while the pool lives and as lost once it is gone. run() then
// trains them: a run starts once every run it depends on is done (a dependency queued or running elsewhere is
// waited for); before starting a run the pool checks that it is still queued (a cancelled run is skipped), and the
// worker claims it (storage/store.h), so a run is never trained twice. Exit 75 (checkpointed) restarts it unless
// it was cancelled; exit 3 means cancelled or held elsewhere; a worker that dies without its final word has its
// claim closed as failed. The pool heartbeats its job rows every ORCH_HEARTBEAT_S.
//
// Workers get SIGTERM when the pool dies (PR_SET_PDEATHSIG), so killing the pool, even with kill -9, stops its
// workers at a checkpoint; `resume` continues them. SIGINT/SIGTERM to the pool make every worker checkpoint and
// stop; their runs become `interrupted`, runs not started go back to their state before the dispatch.
// Each worker's output is appended to WorkspaceLayout::local_log(run). With GPUs (resources.local_gpus) each
// worker gets one (CUDA_VISIBLE_DEVICES), runs_per_gpu workers per GPU. Not thread-safe.
#pragma once

#include <map>
#include <string>
#include <vector>

#include "scheduler/backend.h"

namespace orch::scheduler {

struct LocalPoolSettings {
  std::vector<int> gpus;  // GPU indices to share out (empty: none)
  int runs_per_gpu = 1;
  int max_requeues = 5;   // restarts of a run after exit 75 before the pool gives up on it
  int max_attempts = 3;   // resources.max_attempts: attempts of a run the retry policy allows (scheduler/retry.h)
};

class LocalBackend : public Backend {
 public:
  explicit LocalBackend(DispatchOptions options, LocalPoolSettings settings = {});
  std::string name() const override { return "local"; }
  std::map<std::string, JobState> job_states(const std::vector<std::string>& jobs) override;
  DispatchResult dispatch(const std::vector<DispatchItem>& runs, Store& store, const Experiment& exp) override;
  PoolOutcome run(Store& store) override;
  // Sends SIGTERM to each job that is a live process of this host (verified by identity, never a reused pid).
  void cancel(const std::vector<std::string>& jobs) override;
  std::vector<JobAccount> accounts() override;

 private:
  DispatchOptions o_;
  LocalPoolSettings settings_;
  std::string identity_;                        // this pool's job id (its process identity)
  std::vector<PlannedRun> runs_;                // dispatched, in dispatch order
  std::map<std::string, std::string> prior_;    // run -> its state before the dispatch
  std::vector<JobAccount> accounts_;
};

// The worker's job environment under the local pool (ORCH_POOL_JOB names the pool) or in the foreground.
class LocalJobEnvironment : public JobEnvironment {
 public:
  LocalJobEnvironment();
  std::string backend() const override { return "local"; }
  std::string job_id() const override { return job_; }
  std::string request_requeue(int) override { return ""; }  // the pool restarts a worker that exits 75
  int cpus() const override { return cpus_; }
  int gpus() const override { return gpus_; }

 private:
  std::string job_;
  int cpus_ = 0, gpus_ = 0;
};

}  // namespace orch::scheduler
