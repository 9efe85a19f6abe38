// The worker: runs one run the store describes, from start or from its newest checkpoint, to its end or to a
// stop signal. What a scheduled job (a Slurm array task, a local pool process) executes, through
// `orchestrator worker --workspace DIR --run RUN_ID`; `orchestrator train` calls it too.
//
// Rank 0 talks to the store through a RunLedger (storage/run_ledger.h): it claims the run first (a second worker
// sees the claim and exits kExitNotClaimed without training), heartbeats while it trains, records the attempt's
// start position, the per-epoch metrics and, at the end, its final word: done (with test metrics and inference
// times), stopped for a requeue (exit kExitRequeue, or kExitNotClaimed when the run was cancelled meanwhile), or
// failed (exit 1; a one- or two-line reason in the store, the whole error in the run's log). A run whose claim
// another worker took over (this one was judged dead) stops without writing anything more.
// The run's log is WorkspaceLayout::run_log() (plain lines, appended by every attempt). What the job is (its id,
// asking to be requeued) comes from a JobEnvironment (core/job_environment.h). One worker per run at a time;
// not thread-safe.
#pragma once

#include <cstdint>
#include <string>

#include "core/env.h"
#include "core/job_environment.h"
#include "runner/communicator.h"
#include "runner/training_hooks.h"

namespace orch::runner {

struct WorkerOptions {
  std::string workspace;
  std::string run_id;
  bool progress_bar = true;
  JobEnvironment* job = nullptr;  // the job it runs in (required)
  TrainingHooks* hooks = nullptr; // tests only (runner/training_hooks.h); none: a preloaded test library's, if any
  Env* env = &Env::system();      // file writes, renames, removals (core/env.h); tests give their own
  int threads = 0;                // > 0: overrides training.threads (the local pool shares the cores out)
};

// Whether the run's settings put it on a CUDA device here (training.device and what LibTorch sees).
bool run_uses_cuda(const std::string& workspace, const std::string& run_id);

// Returns the process exit status (core/exit_codes.h): kExitOk (done, now or before), kExitRequeue,
// kExitNotClaimed (cancelled, or held by another worker), or throws (bad input: InputError; failures: Error), the
// failure recorded first.
int run_worker(const WorkerOptions& options, Communicator& comm);

}  // namespace orch::runner
