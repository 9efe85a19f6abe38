// GPU checks (issues 3 and 4), run on a machine with an NVIDIA GPU and a CUDA LibTorch:
//   A. every network: loss and gradients on CPU and on CUDA from the same weights and batch (eval mode, so no
//      VAE noise), and the time of a 1024² training step (batch 4) on the GPU;
//   B. Ours trained through the worker and the NCCL communicator on the GPU, and the same run on the CPU from
//      the same frozen UNet: the two loss curves per epoch;
//   C. one epoch of a 1024² LH data set on the GPU (synthetic, so its size is scaled to the paper's 267
//      training images from the measured time per step).
// Usage: gpu_check OUTDIR [--quick]. Prints a report and writes OUTDIR/gpu_check.json.
#include <torch/cuda.h>
#include <torch/torch.h>

#include <chrono>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>

#include "core/allocator.h"
#include "core/experiment.h"
#include "models/registry.h"
#include "runner/communicator.h"
#include "runner/trainer.h"
#include "runner/worker.h"
#include "scheduler/grid.h"
#include "scheduler/backend.h"
#include "scheduler/plan.h"
#include "storage/layout.h"
#include "storage/metrics_table.h"
#include "storage/store.h"
#include "storage/workspace.h"

using namespace orch;
namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;

static double secs(Clock::time_point t0) { return std::chrono::duration<double>(Clock::now() - t0).count(); }

static Experiment make_exp(const std::string& ws, int size, int count, int epochs, const std::string& device) {
  nlohmann::json j = {{"name", "gpu_check_" + std::to_string(size)},
                      {"workspace", ws},
                      {"datasets", {{"lh" + std::to_string(size), {{"kind", "lh"}, {"size", size},
                                      {"synthetic", {{"count", count}, {"seed", 7}, {"size", size}}}}}}},
                      {"networks", {"ours"}},
                      {"seeds", {1}},
                      {"training", {{"epochs", epochs}, {"loader_threads", 8}, {"device", device}, {"threads", 16}}}};
  return parse_experiment(j, "gpu_check");
}


int main(int argc, char** argv) {
  tune_allocator();
  if (argc < 2) {
    std::fprintf(stderr, "usage: gpu_check OUTDIR [--quick]\n");
    return 2;
  }
  const std::string out = argv[1];
  const bool quick = argc > 2 && std::string(argv[2]) == "--quick";
  const bool agreement_only = argc > 2 && std::string(argv[2]) == "--agreement-fp32";
  if (agreement_only) {  // full float32 on the GPU: separates TF32 rounding from real differences
    at::globalContext().setAllowTF32CuDNN(false);
    at::globalContext().setAllowTF32CuBLAS(false);
    std::printf("TF32 off (cuDNN and cuBLAS)\n");
  }
  fs::create_directories(out);
  nlohmann::json report;
  if (!torch::cuda::is_available()) {
    std::fprintf(stderr, "gpu_check: LibTorch sees no CUDA device\n");
    return 1;
  }
  at::set_num_threads(16);
  const torch::Device cuda(torch::kCUDA, 0);

  // A. CPU/GPU agreement and GPU step time per network.
  std::printf("A. loss and gradients, CPU vs CUDA (256², LH and L, batch 2, eval mode); GPU step time at 1024² (batch 4)\n");
  std::printf("%-18s %-3s %12s %12s %10s %12s %10s %12s\n", "network", "ds", "loss cpu", "loss cuda", "rel diff",
              "grad rel L2", "grad cos", "step 1024 ms");
  for (const auto& e : models::model_registry()) {
    for (DatasetKind kind : {DatasetKind::kLungsHeart, DatasetKind::kLungs}) {
      models::ModelConfig cfg;
      cfg.kind = kind;
      cfg.size = 256;
      cfg = models::resolve_config(e, cfg);
      torch::manual_seed(1);
      auto cpu_net = models::instantiate(e, cfg);
      torch::manual_seed(1);
      auto gpu_net = models::instantiate(e, cfg);
      gpu_net->to(cuda);
      const auto layout = OrganLayout::of(kind);
      torch::manual_seed(2);
      torch::Tensor image = torch::rand({2, 1, 256, 256});
      models::Targets t{torch::randint(0, layout.num_classes(), {2, 256, 256}, torch::kInt64),
                        torch::rand({2, layout.num_classes() - 1, 256, 256}), torch::rand({2, layout.total_points(), 2})};
      models::Targets tg{t.mask.to(cuda), t.dmaps.to(cuda), t.landmarks.to(cuda)};
      auto g = models::GraphTensors::of(layout);
      auto gg = g.to(cuda);
      cpu_net->eval();
      gpu_net->eval();
      torch::Tensor lc = e.loss(cpu_net->predict(image), t, {cfg, g});
      torch::Tensor lg = e.loss(gpu_net->predict(image.to(cuda)), tg, {cfg, gg});
      lc.backward();
      lg.backward();
      // All gradients as one vector: |g_cpu - g_cuda| / |g_cpu| (L2), and the cosine of the two. (A per-tensor
      // maximum is dominated by tensors whose gradient is ~0, such as biases before a normalisation.)
      double diff2 = 0, norm2 = 0, dot = 0, normg2 = 0;
      auto pc = cpu_net->parameters(), pg = gpu_net->parameters();
      for (size_t i = 0; i < pc.size(); ++i) {
        if (!pc[i].grad().defined() || !pg[i].grad().defined()) continue;
        torch::Tensor a = pc[i].grad().to(torch::kFloat64), b = pg[i].grad().cpu().to(torch::kFloat64);
        diff2 += (a - b).pow(2).sum().item<double>();
        norm2 += a.pow(2).sum().item<double>();
        normg2 += b.pow(2).sum().item<double>();
        dot += (a * b).sum().item<double>();
      }
      double worst = std::sqrt(diff2 / std::max(1e-300, norm2));
      double cosine = dot / std::sqrt(std::max(1e-300, norm2 * normg2));
      double a = lc.item<double>(), b = lg.item<double>();
      double step_ms = 0;
      if (kind == DatasetKind::kLungsHeart && !quick && !agreement_only) {
        models::ModelConfig big = cfg;
        big.size = 1024;
        big = models::resolve_config(e, big);
        auto net = models::instantiate(e, big);
        net->to(cuda);
        net->train();
        std::vector<torch::Tensor> params;
        for (auto& p : net->parameters())
          if (p.requires_grad()) params.push_back(p);
        torch::optim::Adam adam(params, torch::optim::AdamOptions(1e-4).weight_decay(1e-5));
        torch::Tensor im = torch::rand({4, 1, 1024, 1024}, torch::TensorOptions().device(cuda));
        models::Targets tb{torch::randint(0, 3, {4, 1024, 1024}, torch::TensorOptions().dtype(torch::kInt64).device(cuda)),
                           torch::rand({4, 2, 1024, 1024}, torch::TensorOptions().device(cuda)),
                           torch::rand({4, layout.total_points(), 2}, torch::TensorOptions().device(cuda))};
        auto g1024 = models::GraphTensors::of(layout).to(cuda);
        Clock::time_point t0;
        for (int it = 0; it < 8; ++it) {
          if (it == 3) {
            torch::cuda::synchronize();
            t0 = Clock::now();
          }
          adam.zero_grad();
          torch::Tensor l = e.loss(net->predict(im), tb, {big, g1024});
          l.backward();
          adam.step();
        }
        torch::cuda::synchronize();
        step_ms = secs(t0) / 5 * 1000;
      }
      std::printf("%-18s %-3s %12.6g %12.6g %10.2e %12.2e %10.6f %12.1f\n", e.id.c_str(), kind_name(kind).c_str(), a, b,
                  std::abs(a - b) / std::max(1e-12, std::abs(a)), worst, cosine, step_ms);
      report["agreement"].push_back({{"model", e.id}, {"kind", kind_name(kind)}, {"loss_cpu", a}, {"loss_cuda", b},
                                     {"grad_rel_l2", worst}, {"grad_cosine", cosine}, {"step_ms_1024_b4", step_ms}});
      std::fflush(stdout);
    }
  }

  if (agreement_only) {
    std::ofstream(fs::path(out) / "gpu_check.json") << report.dump(1);
    return 0;
  }
  // B. Ours on the GPU through the worker (NCCL) and on the CPU from the same frozen UNet.
  const int epochs_b = quick ? 3 : 18;
  const std::string ws = (fs::path(out) / "ws256").string();
  Experiment exp = make_exp(ws, 256, 60, epochs_b, "cuda");
  auto chain = scheduler::chain_for(exp, "lh256", "ours", 1);
  ensure_dataset(exp, exp.datasets[0], ws, 16, true);
  {
    Store store(WorkspaceLayout(ws).store());
    scheduler::record_runs(store, chain);
  }
  auto comm = runner::make_communicator(CommunicatorKind::kNccl, true);
  auto job = scheduler::detect_job_environment(false);
  std::printf("\nB. communicator %s, rank %d of %d\n", comm->name().c_str(), comm->rank(), comm->world());
  for (const auto& r : chain) {
    runner::WorkerOptions wo;
    wo.workspace = ws;
    wo.run_id = r.id;
    wo.progress_bar = false;
    wo.job = job.get();
    auto t0 = Clock::now();
    int rc = runner::run_worker(wo, *comm);
    std::printf("worker %s: exit %d in %.1f s\n", r.id.c_str(), rc, secs(t0));
  }
  std::vector<EpochMetrics> gpu_curve;
  {
    Store store(WorkspaceLayout(ws).store());
    gpu_curve = MetricsTable(store).epoch_metrics(chain.back().id);
    auto tm = MetricsTable(store).test_metrics(chain.back().id);
    double d = 0;
    int n = 0;
    for (auto& m : tm)
      if (m.organ == "lungs") d += m.dice, ++n;
    report["ours_gpu_lung_dice"] = n ? d / n : 0;
  }
  std::vector<runner::EpochRecord> cpu_curve;
  {
    auto single = runner::make_communicator(CommunicatorKind::kSingle, false);
    runner::TrainerOptions to;
    to.settings = chain.back().settings;
    to.settings.training.device = DeviceChoice::kCpu;
    to.run_id = chain.back().id;
    to.checkpoints_dir = (fs::path(out) / "cpu_ours" / "checkpoints").string();
    to.predictions_path = (fs::path(out) / "cpu_ours" / "predictions.h5").string();
    to.dataset_path = dataset_path(ws, "lh256");
    to.dependency_checkpoint = (fs::path(WorkspaceLayout(ws).checkpoints(chain.front().id)) / kBestCheckpoint).string();
    to.comm = single.get();
    to.progress_bar = false;
    to.on_epoch = [&](const runner::EpochRecord& r) { cpu_curve.push_back(r); };
    auto t0 = Clock::now();
    runner::Trainer tr(to);
    tr.train();
    std::printf("CPU run (16 threads): %.1f s\n", secs(t0));
  }
  std::printf("%6s %14s %14s %10s   %12s %12s\n", "epoch", "loss gpu", "loss cpu", "rel diff", "val gpu", "val cpu");
  for (size_t i = 0; i < gpu_curve.size() && i < cpu_curve.size(); ++i) {
    double a = gpu_curve[i].train_loss, b = cpu_curve[i].train_loss;
    std::printf("%6lld %14.6g %14.6g %10.2e   %12.6g %12.6g\n", static_cast<long long>(gpu_curve[i].epoch), a, b,
                std::abs(a - b) / std::abs(b), gpu_curve[i].val_criterion, cpu_curve[i].val_criterion);
    report["curve"].push_back({{"epoch", gpu_curve[i].epoch}, {"loss_gpu", a}, {"loss_cpu", b},
                               {"val_gpu", gpu_curve[i].val_criterion}, {"val_cpu", cpu_curve[i].val_criterion},
                               {"seconds_gpu", gpu_curve[i].seconds}, {"seconds_cpu", cpu_curve[i].seconds}});
  }

  // C. A 1024² LH epoch on the GPU.
  if (!quick) {
    const std::string ws2 = (fs::path(out) / "ws1024").string();
    Experiment e2 = make_exp(ws2, 1024, 40, 2, "cuda");
    auto t0 = Clock::now();
    ensure_dataset(e2, e2.datasets[0], ws2, 16, true);
    std::printf("\nC. 1024² data set (40 synthetic images) prepared in %.1f s\n", secs(t0));
    auto c2 = scheduler::chain_for(e2, "lh1024", "ours", 1);
    {
      Store store(WorkspaceLayout(ws2).store());
      scheduler::record_runs(store, c2);
    }
    for (const auto& r : c2) {
      runner::WorkerOptions wo;
      wo.workspace = ws2;
      wo.run_id = r.id;
      wo.progress_bar = false;
      wo.job = job.get();
      runner::run_worker(wo, *comm);
      Store store(WorkspaceLayout(ws2).store());
      auto em = MetricsTable(store).epoch_metrics(r.id);
      for (auto& m : em) {
        // 28 training images = 7 steps of 4; the paper's LH split has 267 = 67 steps.
        std::printf("%-10s epoch %lld: %.2f s for 7 steps (incl. validation of 6) -> %.1f s per 67-step epoch\n",
                    r.settings.model.c_str(), static_cast<long long>(m.epoch), m.seconds, m.seconds / 7 * 67);
        report["epoch_1024"].push_back({{"model", r.settings.model}, {"epoch", m.epoch}, {"seconds_7_steps", m.seconds}});
      }
      auto it = MetricsTable(store).test_metrics(r.id);
    }
  }
  std::ofstream(fs::path(out) / "gpu_check.json") << report.dump(1);
  return 0;
}
