// The retry policy: which ends of a worker's attempt a backend dispatches again without a person, and which never.
//
// Retried (up to resources.max_attempts attempts of a run, default 3): a worker killed by SIGKILL (the kernel's
// OOM killer, a lost node, kill -9) and a worker found hung (no heartbeat for ORCH_LOST_AFTER_S: the local pool
// kills it). Never retried: bad input (exit 2), a failure the worker reported (exit 1: a non-finite loss, a code
// error, a damaged file), a crash by any other signal (SIGSEGV, SIGABRT: a code error). A requeue (exit 75) and a
// run taken over (exit 3) are not failures and do not count here. Pure functions; thread-safe.
#pragma once

#include <string>

namespace orch::scheduler {

struct AttemptEnd {
  bool retryable = false;
  std::string cause;  // "killed by SIGKILL (out of memory, a lost node, or kill -9)", "exit 1", ...
};

// From a waitpid() status; `hung`: the pool killed the worker because its heartbeat stopped.
AttemptEnd classify_worker_end(int wait_status, bool hung, double heartbeat_age_s = 0);

// "retried (attempt 2 of 3)" or "not retried: <why>"; `attempts` counts the attempts made so far.
bool should_retry(const AttemptEnd& end, int attempts, int max_attempts, std::string* note);

// The memory to ask for after `oom_ends` ends by OUT_OF_MEMORY: `mem` (a Slurm size: 4G, 4000M, 16000K; a number
// alone is MiB) times factor^oom_ends, rounded up to a MiB ("6144M"). `mem` itself when empty or when there was
// none; InputError on a size it cannot read.
std::string raised_mem(const std::string& mem, double factor, int oom_ends);

}  // namespace orch::scheduler
