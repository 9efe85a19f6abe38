// train: one run of an experiment in the foreground (its data set prepared and its dependencies trained first).
// worker: the run the store describes, as a scheduled job executes it. Both run under mpirun/srun as well:
// every rank runs the same command, rank 0 alone prepares data and writes the store.
#include <unistd.h>

#include <cstdio>

#include "cli/options.h"
#include "core/errors.h"
#include "core/experiment.h"
#include "core/run_settings.h"
#include "models/model_config.h"
#include "runner/communicator.h"
#include "runner/signals.h"
#include "runner/trainer.h"
#include "runner/worker.h"
#include "scheduler/backend.h"
#include "scheduler/grid.h"
#include "scheduler/submission.h"
#include "storage/layout.h"

namespace orch::cli {

namespace {

// The control plane's one sequence (scheduler/submission.h), dispatching the chain's runs that are not done to
// this process. A run another job has is an error naming that job.
void dispatch_to_self(const Experiment& exp, const std::vector<scheduler::PlannedRun>& chain, const std::string& workspace) {
  scheduler::GridRequest g;
  g.exp = &exp;
  g.grid = &chain;
  g.workspace = workspace;
  g.command = "orchestrator train " + exp.path;
  scheduler::SubmitOptions o;
  o.in_this_process = true;
  o.on_event = [](const std::string& line) { std::fprintf(stderr, "train: %s\n", line.c_str()); };
  const scheduler::SubmitOutcome out = scheduler::submit_grid(g, o);
  if (!out.result.skipped.empty())
    throw BusyError("a run of the chain changed state while it was being dispatched; try again");
}

}  // namespace

int cmd_train(const Args& args) {
  po::options_description desc("orchestrator train");
  std::string exp_path, workspace, dataset, model, stage = "train", comm_kind = "auto";
  std::vector<std::string> sets;
  int64_t seed = 1;
  desc.add_options()
      ("experiment", po::value(&exp_path)->required(), "experiment file (experiments/*.json)")
      ("dataset", po::value(&dataset)->required(), "data set name of the experiment")
      ("model", po::value(&model)->required(), "network id (orchestrator models)")
      ("seed", po::value(&seed)->default_value(1), "seed")
      ("stage", po::value(&stage)->default_value("train"), "train, or pretrain (the UNet the joint networks freeze)")
      ("workspace", po::value(&workspace), "workspace folder (default: the experiment's)")
      ("set", po::value(&sets)->composing(), "override a setting: key.path=value (repeatable)")
      ("communicator", po::value(&comm_kind)->default_value("auto"), "auto, single, mpi or nccl");
  po::positional_options_description pos;
  pos.add("experiment", 1);
  po::variables_map vm;
  if (!parse_options(args, desc, vm,
                     "orchestrator train EXP --dataset D --model M [--seed S] [--workspace DIR] [--set key=value]...", &pos))
    return 0;
  Experiment exp = load_experiment(exp_path, sets);
  models::validate_experiment_networks(exp);
  if (!exp.sweep.empty())
    throw InputError(exp_path, "sweep", exp.sweep.front().key,
                     "train runs one run of one point: choose it with --set sweep=null --set KEY=VALUE for each swept "
                     "key, or run the sweep's runs with `orchestrator submit " + exp_path + " --only KEY=VALUE`");
  if (workspace.empty()) workspace = exp.workspace;
  auto chain = scheduler::chain_for(exp, dataset, model, seed, choice_flag<Stage>("--stage", stage));
  auto comm = runner::make_communicator(choice_flag<CommunicatorKind>("--communicator", comm_kind), runner::use_cuda(exp.training));
  auto job = scheduler::detect_job_environment(true);
  if (comm->rank() == 0) {
    dispatch_to_self(exp, chain, workspace);
  }
  comm->barrier();
  for (const auto& r : chain) {
    if (comm->rank() == 0 && &r != &chain.back()) std::fprintf(stderr, "train: dependency %s first\n", r.id.c_str());
    runner::WorkerOptions wo;
    wo.workspace = workspace;
    wo.run_id = r.id;
    wo.progress_bar = ::isatty(2);
    wo.job = job.get();
    int rc = runner::run_worker(wo, *comm);
    if (rc != 0) return rc;
  }
  if (comm->rank() == 0) std::printf("%s\n", WorkspaceLayout(workspace).run_dir(chain.back().id).c_str());
  return 0;
}

int cmd_worker(const Args& args) {
  po::options_description desc("orchestrator worker");
  std::string workspace, run_id, comm_kind = "auto";
  int threads = 0;
  bool no_requeue = false;
  desc.add_options()
      ("workspace", po::value(&workspace)->required(), "workspace folder")
      ("run", po::value(&run_id)->required(), "run id (orchestrator plan lists them)")
      ("communicator", po::value(&comm_kind)->default_value("auto"), "auto, single, mpi or nccl")
      ("threads", po::value(&threads)->default_value(0), "torch threads (0: training.threads of the run)")
      ("no-self-requeue", po::bool_switch(&no_requeue), "under Slurm, do not scontrol-requeue on SIGUSR1/SIGUSR2");
  po::variables_map vm;
  if (!parse_options(args, desc, vm, "orchestrator worker --workspace DIR --run RUN_ID", nullptr)) return 0;
  if (!is_safe_run_id(run_id)) throw InputError("--run", "", run_id, "not a run id ([A-Za-z0-9_.-])");
  if (threads < 0 || threads > 1024) throw InputError("--threads", "", std::to_string(threads), "expected 0 to 1024");
  auto comm = runner::make_communicator(choice_flag<CommunicatorKind>("--communicator", comm_kind), runner::run_uses_cuda(workspace, run_id));
  auto job = scheduler::detect_job_environment(!no_requeue);
  runner::WorkerOptions wo;
  wo.workspace = workspace;
  wo.run_id = run_id;
  wo.progress_bar = ::isatty(2);
  wo.job = job.get();
  wo.threads = threads;
  return runner::run_worker(wo, *comm);
}

}  // namespace orch::cli
