// The model tests' in-process runs: a run's chain recorded in its workspace's store and trained by calling the
// worker directly, as a scheduled job would run it (the worker claims each run). Not thread-safe.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "core/experiment.h"
#include "runner/communicator.h"
#include "runner/worker.h"
#include "scheduler/grid.h"
#include "scheduler/local_backend.h"
#include "scheduler/plan.h"
#include "storage/layout.h"
#include "storage/store.h"
#include "storage/workspace.h"

namespace orch::test {

// The chain of (data set `dataset`, `network`, `seed`) of `e` (its dependencies first), the data set built in
// e.workspace and the chain's runs recorded in its store.
inline std::vector<scheduler::PlannedRun> prepared_chain(const Experiment& e, const std::string& network = "hybridgnet",
                                                         int seed = 1, const std::string& dataset = "d") {
  auto chain = scheduler::chain_for(e, dataset, network, seed);
  ensure_dataset(e, e.dataset(dataset), e.workspace, 1, true);
  Store st(WorkspaceLayout(e.workspace).store());
  scheduler::record_runs(st, chain);
  return chain;
}

// One run's worker in this process on one rank; its exit code (core/exit_codes.h). The two testing options stand
// in for SIGTERM after that many steps and a non-finite loss at that step (-1: off).
inline int work(const std::string& ws, const std::string& id, int64_t stop_after = -1, int64_t nan_after = -1,
                Env* env = &Env::system()) {
  auto comm = runner::make_communicator(CommunicatorKind::kSingle, false);
  scheduler::LocalJobEnvironment job;
  runner::WorkerOptions wo;
  wo.workspace = ws;
  wo.run_id = id;
  wo.progress_bar = false;
  wo.job = &job;
  runner::StepFaults faults(stop_after, nan_after);
  wo.hooks = &faults;
  wo.env = env;
  return runner::run_worker(wo, *comm);
}

}  // namespace orch::test
