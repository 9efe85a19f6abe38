// Data-parallel training throughput and checkpoint cost (issue 4). Run as one process or under mpirun:
//   bench_worker MODEL SIZE STEPS THREADS [WORKDIR]
//   mpirun -np 2 --bind-to none bench_worker ours 256 40 1
// Trains MODEL on a synthetic LH data set (64 images at SIZE², batch 4) for STEPS steps and prints samples per
// second over all ranks (the first 3 steps excluded as warm-up), the allreduce wait per step, then the size and
// write/read time of a checkpoint of the network.
#include <torch/torch.h>

#include <chrono>
#include <cstdio>
#include <filesystem>

#include "core/allocator.h"
#include "core/experiment.h"
#include "runner/checkpoint.h"
#include "models/registry.h"
#include "runner/communicator.h"
#include "runner/signals.h"
#include "runner/trainer.h"
#include "scheduler/grid.h"
#include "storage/workspace.h"

using namespace orch;
namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;

int main(int argc, char** argv) {
  tune_allocator();
  if (argc < 5) {
    std::fprintf(stderr, "usage: bench_worker MODEL SIZE STEPS THREADS [WORKDIR]\n");
    return 2;
  }
  const std::string model = argv[1];
  const int size = std::atoi(argv[2]), steps = std::atoi(argv[3]), threads = std::atoi(argv[4]);
  const std::string dir = argc > 5 ? argv[5] : "/tmp/orch-bench-worker";
  nlohmann::json j = {{"name", "bench"},
                      {"workspace", dir},
                      {"datasets", {{"d", {{"kind", "lh"}, {"size", size}, {"synthetic", {{"count", 64}, {"seed", 9}, {"size", size}}}}}}},
                      {"seeds", {1}},
                      {"training", {{"epochs", 1000}, {"threads", threads}, {"loader_threads", 1}, {"device", "cpu"},
                                    {"validate_every", 1000}}}};
  Experiment exp = parse_experiment(j, "bench");
  auto comm = runner::make_communicator(CommunicatorKind::kAuto, false);
  if (comm->rank() == 0) ensure_dataset(exp, exp.datasets[0], dir, 2, true);
  comm->barrier();
  auto run = scheduler::chain_for(exp, "d", model, 1).back();
  const std::string run_dir = dir + "/bench-run-" + std::to_string(comm->world());
  if (comm->rank() == 0) fs::remove_all(run_dir);
  comm->barrier();

  // A network that starts from a trained one gets a freshly initialised stand-in (same shapes, same cost).
  std::string dep_ckpt;
  if (!run.settings.dependency.empty()) {
    dep_ckpt = dir + "/bench-dependency.h5";
    if (comm->rank() == 0) {
      models::ModelConfig c;
      c.size = size;
      auto dep = models::create_model(models::network_info(model).dependency, c);
      torch::optim::Adam a(dep->parameters(), torch::optim::AdamOptions(1e-4));
      runner::save_checkpoint(dep_ckpt, *dep, a, {});
    }
    comm->barrier();
  }
  // Warm-up (3 steps), then the measured steps; each Trainer stops itself after its steps (a StepFaults hook),
  // the second resuming from the first's checkpoint.
  auto run_steps = [&](int n) {
    runner::TrainerOptions to;
    to.settings = run.settings;
    to.run_id = run.id;
    to.checkpoints_dir = run_dir + "/checkpoints";
    to.predictions_path = run_dir + "/predictions.h5";
    to.dataset_path = dataset_path(dir, "d");
    to.comm = comm.get();
    to.progress_bar = false;
    runner::StepFaults stop(n, -1);
    to.hooks = &stop;
    to.dependency_checkpoint = dep_ckpt;
    runner::clear_stop();
    runner::Trainer t(to);
    t.train();
    return t.stats();
  };
  run_steps(3);
  runner::TrainStats s = run_steps(steps);
  std::vector<double> v{static_cast<double>(s.samples), s.step_seconds, s.allreduce_wait_seconds};
  comm->allreduce_sum(v);
  if (comm->rank() == 0) {
    double secs = v[1] / comm->world();
    std::printf("%s %d² ranks %d threads %d: %d steps, %.0f samples in %.2f s = %.2f samples/s; allreduce wait %.1f ms/step\n",
                model.c_str(), size, comm->world(), threads, static_cast<int>(s.steps), v[0], secs, v[0] / secs,
                v[2] / comm->world() / std::max<int64_t>(1, s.steps) * 1000);
  }
  if (comm->rank() == 0) {
    models::ModelConfig c;
    c.size = size;
    auto net = models::create_model(model, c);
    std::vector<torch::Tensor> params;
    for (auto& p : net->parameters())
      if (p.requires_grad()) params.push_back(p);
    torch::optim::Adam adam(params, torch::optim::AdamOptions(1e-4));
    // One step so that the Adam state exists (the checkpoint then holds parameters plus two moments).
    for (auto& p : params) p.mutable_grad() = torch::zeros_like(p);
    adam.step();
    const std::string path = dir + "/bench-ckpt.h5";
    auto t0 = Clock::now();
    runner::save_checkpoint(path, *net, adam, {});
    double w = std::chrono::duration<double>(Clock::now() - t0).count();
    t0 = Clock::now();
    runner::load_checkpoint(path, *net, adam);
    double r = std::chrono::duration<double>(Clock::now() - t0).count();
    std::printf("checkpoint of %s at %d²: %.1f MB, write %.3f s (incl. fsync), read+verify %.3f s\n", model.c_str(), size,
                fs::file_size(path) / 1e6, w, r);
  }
  return 0;
}
