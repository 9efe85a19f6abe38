// Checkpoint-and-requeue signals. SIGTERM (Slurm's kill at preemption or the end of the time limit), SIGUSR1
// and SIGUSR2 (what sbatch --signal sends ahead of the limit) only set a flag; the training loop reads it after
// each step, checkpoints and exits with kExitRequeue (core/exit_codes.h). SIGINT at a terminal does the same.
// The handler is async-signal-safe (one atomic store); the flag may be read from any thread.
#pragma once

namespace orch::runner {


void install_stop_signals();
// The signal that asked to stop, or 0.
int stop_signal();
// For tests and fault injection: behave as if `sig` had arrived.
void request_stop(int sig);
// Forgets a stop request (a worker starting on a new run in the same process).
void clear_stop();
const char* signal_name(int sig);

}  // namespace orch::runner
