// The local backend: a pool of N worker processes (`orchestrator worker`) on this machine, honouring the
// dependencies between runs. A run starts once every run it depends on is done; exit 75 (checkpointed, requeue)
// starts it again from its checkpoint; a failure leaves the runs that need it unstarted (their state goes back
// to what it was before the submission). Each worker's output is appended to WORKSPACE/logs/local/<run-id>.log;
// the job ids recorded are "local:<pid>@<host>", so a later plan or status sees a job that died as lost.
// SIGINT/SIGTERM to the pool are forwarded to its workers, which checkpoint and stop. One pool per workspace at
// a time; not thread-safe.
#pragma once

#include <functional>
#include <string>
#include <vector>

#include "scheduler/grid.h"
#include "storage/store.h"

namespace orch::scheduler {

struct LocalPoolOptions {
  std::string workspace;
  std::string binary;           // the orchestrator executable (default: this process's)
  int workers = 1;
  int threads_per_worker = 0;   // 0: cores / workers
  int max_requeues = 5;
  bool quiet = false;
  std::function<void(const std::string&)> on_event;  // one line per start, finish, failure
};

struct PoolResult {
  int done = 0, failed = 0, not_started = 0;
  std::vector<std::string> failed_ids;
};

PoolResult run_local_pool(const std::vector<PlannedRun>& runs, Store& store, const LocalPoolOptions& options);

}  // namespace orch::scheduler
