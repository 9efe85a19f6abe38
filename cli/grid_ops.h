// The grid commands' shared steps (plan, submit, status, resume, cancel, run, report): loading the experiment with
// the common options (validated: networks, resources), the request the control plane takes, and the lines a
// submission's outcome is told in.
#pragma once

#include <string>
#include <vector>

#include "cli/options.h"
#include "core/experiment.h"
#include "scheduler/plan.h"
#include "scheduler/submission.h"

namespace orch::cli {

// The options every command that loads an experiment takes: the file (positional), --workspace, --set, --only.
struct CommonOptions {
  std::string exp_path, workspace;
  std::vector<std::string> sets, only;
  bool json = false;  // --json, for the commands that add it
};
void add_common(po::options_description& d, CommonOptions& c, po::positional_options_description& pos);

struct GridContext {
  Experiment exp;
  std::string workspace;
  std::vector<scheduler::PlannedRun> grid;
  scheduler::Filter only;
  std::vector<SweepPoint> points;  // the sweep's (one empty point without a sweep)
  scheduler::GridRequest request(const std::string& command) const;
};

GridContext load_grid(const std::string& exp_path, const std::vector<std::string>& sets,
                      const std::vector<std::string>& only, const std::string& workspace);

// Prints what a submission did (and, when a signal interrupted it, which runs it stopped and how to continue);
// returns the command's exit status: 0, kExitFailure when a run failed, 128 + the signal when interrupted.
int tell_outcome(const scheduler::SubmitOutcome& outcome, const std::string& verb, const std::string& exp_path);

}  // namespace orch::cli
