// Every exit status an orchestrator process ends with: the command, the worker a job runs, and what the local
// pool and the Slurm job script read from a worker. Written once, here; docs/control-plane.md, "Exit codes", lists them.
// Plain constants; thread-safe.
#pragma once

namespace orch {

constexpr int kExitOk = 0;          // done (a worker: its run is done, now or before)
constexpr int kExitFailure = 1;     // failed: a run failed, or an unexpected error (I/O, a damaged store, a library)
constexpr int kExitInputError = 2;  // bad input: a file, field or value rejected; nothing was changed
// Worker: the run is not this worker's to train: it was cancelled, or another live worker holds its claim.
// Nothing was trained (or, after a cancel, the worker checkpointed and stopped). Not a failure, not a requeue.
constexpr int kExitNotClaimed = 3;
// A lock was not obtained within its bounded wait: the workspace lock (another command plans or dispatches) or
// the run store (another process holds it). Nothing was changed; try again.
constexpr int kExitBusy = 4;
// Worker: checkpointed, not finished: run me again (EX_TEMPFAIL). The pool restarts it; under Slurm the job is
// requeued.
constexpr int kExitRequeue = 75;
// A grid command (run, submit, resume) interrupted by SIGINT / SIGTERM: 128 + the signal, as a shell reports
// it. The runs it stopped are checkpointed and `resume` continues them.
constexpr int kExitInterrupted = 128;
inline int exit_for_signal(int sig) { return kExitInterrupted + sig; }

}  // namespace orch
