// One training step (forward, backward, Adam) and inference of a network, on random data.
// Usage: bench_models MODEL SIZE BATCH THREADS STEPS [lh|l]
// Prints the median step time, the median inference time per image (batch 1, eval, no grad; first call
// reported apart) and the process's peak resident memory. Run one configuration per process (bench/run_models.sh)
// so that the peak memory belongs to that configuration. ORCH_BENCH_SPLIT=1 adds the step's split into forward,
// backward and optimizer, and which BLAS was loaded; ORCH_PROFILE=FILE writes a Chrome trace of the timed steps.
#include <sys/resource.h>
#include <torch/torch.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <string>

#include <torch/csrc/autograd/profiler_legacy.h>

#include <memory>

#include "core/allocator.h"
#include "core/blas.h"
#include "models/registry.h"

using namespace orch;
using namespace orch::models;

static double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v[v.size() / 2];
}

int main(int argc, char** argv) {
  tune_allocator();
  if (argc < 6) {
    std::fprintf(stderr, "usage: bench_models MODEL SIZE BATCH THREADS STEPS [lh|l]\n");
    return 2;
  }
  std::string id = argv[1];
  int size = std::atoi(argv[2]), batch = std::atoi(argv[3]), threads = std::atoi(argv[4]), steps = std::atoi(argv[5]);
  DatasetKind kind = argc > 6 ? parse_kind(argv[6], "kind") : DatasetKind::kLungsHeart;
  at::set_num_threads(threads);
  torch::manual_seed(0);
  const ModelEntry& e = find_model(id);
  ModelConfig cfg = resolve_config(e, ModelConfig().with_kind(kind).with_size(size));
  if (std::getenv("ORCH_CONTIGUOUS")) cfg.channels_last = false;  // the reference's NCHW layout, for comparison
  auto net = instantiate(e, cfg);
  auto layout = OrganLayout::of(kind);
  GraphTensors graph = GraphTensors::of(layout);
  LossContext ctx{cfg, graph};
  torch::Tensor image = torch::rand({batch, 1, size, size});

  Targets t{torch::randint(0, layout.num_classes(), {batch, size, size}, torch::kInt64),
            torch::rand({batch, layout.num_classes() - 1, size, size}),
            torch::rand({batch, layout.total_points(), 2}) * 0.6 + 0.2};
  std::vector<torch::Tensor> params;
  for (auto& p : net->parameters())
    if (p.requires_grad()) params.push_back(p);
  torch::optim::Adam opt(params, torch::optim::AdamOptions(1e-4).weight_decay(1e-5));
  std::vector<double> ms, fwd, bwd, upd;  // whole step; forward + loss, backward, optimizer
  // ORCH_PROFILE=FILE: a Chrome trace of the timed steps (the autograd profiler), for finding hot operators.
  std::unique_ptr<torch::autograd::profiler::RecordProfile> profile;
  for (int s = 0; s < steps + 1; ++s) {  // the first step is a warm-up
    if (s == 1 && std::getenv("ORCH_PROFILE"))
      profile = std::make_unique<torch::autograd::profiler::RecordProfile>(std::string(std::getenv("ORCH_PROFILE")));
    auto t0 = std::chrono::steady_clock::now();
    opt.zero_grad();
    torch::Tensor loss = e.loss(net->predict(image), t, ctx);
    auto t1 = std::chrono::steady_clock::now();
    loss.backward();
    auto t2 = std::chrono::steady_clock::now();
    opt.step();
    auto t3 = std::chrono::steady_clock::now();
    auto msec = [](auto a, auto b) { return std::chrono::duration<double, std::milli>(b - a).count(); };
    if (s > 0) {
      ms.push_back(msec(t0, t3));
      fwd.push_back(msec(t0, t1));
      bwd.push_back(msec(t1, t2));
      upd.push_back(msec(t2, t3));
    }
  }
  profile.reset();
  net->eval();
  torch::NoGradGuard g;
  torch::Tensor one = image.narrow(0, 0, 1);
  std::vector<double> inf;
  double cold = 0;
  for (int s = 0; s < std::max(3, steps) + 1; ++s) {
    auto t0 = std::chrono::steady_clock::now();
    net->predict(one);
    double d = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
    if (s == 0) cold = d; else inf.push_back(d);
  }
  rusage ru{};
  getrusage(RUSAGE_SELF, &ru);
  std::printf("%-17s size %4d batch %d threads %d  step %9.1f ms  inference %8.1f ms/image (cold %8.1f)  peak RSS %6.0f MiB\n",
              id.c_str(), size, batch, threads, median(ms), median(inf), cold, ru.ru_maxrss / 1024.0);
  if (std::getenv("ORCH_BENCH_SPLIT"))
    std::printf("  split: forward + loss %.1f ms, backward %.1f ms, optimizer %.1f ms; BLAS %s\n", median(fwd),
                median(bwd), median(upd), loaded_blas().c_str());
  return 0;
}
