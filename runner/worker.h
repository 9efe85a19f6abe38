// The worker: runs one run the store describes, from start or from its newest checkpoint, to its end or to a
// stop signal. What a scheduled job (Slurm array task, local pool process) executes, through
// `orchestrator worker --workspace DIR --run RUN_ID`; `orchestrator train` calls it too.
//
// Rank 0 records an attempt (host, pid, job id, exit status, reason), the per-epoch metrics, the test metrics
// and inference times, the provenance, and the run's state: running, then done, queued (stopped by a signal,
// checkpointed; exit kExitRequeue) or failed (exit 1, the error in the attempt's reason and the run log).
// The run's log is WORKSPACE/runs/<run-id>/log.txt (plain lines, appended by every attempt).
// One worker per run at a time; not thread-safe.
#pragma once

#include <cstdint>
#include <string>

#include "runner/communicator.h"

namespace orch::runner {

struct WorkerOptions {
  std::string workspace;
  std::string run_id;
  bool progress_bar = true;
  // Under Slurm, on SIGUSR1/SIGUSR2 (the warning sbatch --signal sends before the time limit), requeue the
  // job with `scontrol requeue` before exiting. SIGTERM (preemption, scancel) never self-requeues.
  bool slurm_self_requeue = true;
  int64_t stop_after_steps = -1;  // fault injection (tests)
  int threads = 0;                // > 0: overrides training.threads (the local pool shares the cores out)
};

// Whether the run's settings put it on a CUDA device here (training.device and what LibTorch sees).
bool run_uses_cuda(const std::string& workspace, const std::string& run_id);

// Returns the process exit status: 0 done (or already done), kExitRequeue, or 1 failed.
// Bad input (unknown run, missing data set, unfinished dependency) throws InputError before anything is recorded.
int run_worker(const WorkerOptions& options, Communicator& comm);

std::string run_dir(const std::string& workspace, const std::string& run_id);
std::string store_path(const std::string& workspace);

}  // namespace orch::runner
