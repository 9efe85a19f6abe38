// The grid commands' shared steps (plan, submit, status, resume, cancel, run): loading the experiment with the
// common options, preparing data sets, submitting to the local pool, printing plans and status.
#pragma once

#include <string>
#include <vector>

#include "core/experiment.h"
#include "scheduler/local_pool.h"
#include "scheduler/plan.h"

namespace orch::cli {

struct GridContext {
  Experiment exp;
  std::string workspace;
  std::vector<scheduler::PlannedRun> grid;
  scheduler::Filter only;
};

GridContext load_grid(const std::string& exp_path, const std::vector<std::string>& sets,
                      const std::vector<std::string>& only, const std::string& workspace);

// Submits what plan() says to submit, on the local pool (blocking until the pool is done). Returns the pool's
// result; prints one line per event unless quiet.
scheduler::PoolResult submit_local(GridContext& g, scheduler::PlanMode mode, int workers, bool quiet);

std::string store_file(const std::string& workspace);

}  // namespace orch::cli
