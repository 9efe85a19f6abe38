// The GPU benchmark of issue 15, one program for one short run on a GPU machine (bench/gpu/run_gpu_bench.sh builds
// and runs it; bench/RESULTS.md says what it found). Every part also runs on the CPU at a small size, which is how
// it is dry-run before GPU time is spent (`gpu_bench OUT --size 64 --quick`).
//   1. steps:   per network, batch 4 at --size: the training step in fp32, tf32 and bf16 (median of --steps after
//               --warmup), and the peak GPU memory of each;
//   2. epoch:   Ours (and the UNet) trained end to end through the Trainer on a synthetic data set at --size, bf16
//               and tf32, pipeline "overlap" and "plain": each epoch's time against steps x the step time of part
//               1, and where the rest went (validation, checkpoints, waiting for the loader);
//   3. loader:  batches per second of the augmenting loader at --size with 1, 2, 4, 8 ... threads (up to the cores);
//   4. packed:  1, 2 and 4 processes training on the one GPU at once (each its share of the cores): steps per
//               second together, Ours and HybridGNet;
//   5. bf16:    loss and gradient agreement of bf16 against fp32 per network (same weights and batch, 256², eval
//               mode), and Ours trained 256² for a few epochs in fp32 and in bf16 (each after its own UNet): the
//               two curves side by side.
// The PyTorch eager Ours step (bench/pytorch_ours.py) runs from the script in the same session.
// Writes OUT/gpu_bench.json (everything) and OUT/calibration_<precision>.json (for `orchestrator calibrate
// --import`: each network's step scaled by the end-to-end factor measured for Ours in part 2).
// Usage: gpu_bench OUT [--size PX] [--steps N] [--warmup N] [--quick] [--only steps,epoch,loader,packed,bf16]
//        gpu_bench --child DATASET.h5 MODEL PRECISION SIZE COUNT STEPS THREADS   (part 4's worker; one JSON line)
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <torch/cuda.h>
#include <torch/torch.h>

#include <fcntl.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <functional>
#include <set>
#include <sstream>

#if defined(ORCH_TORCH_CUDA)
#include <c10/cuda/CUDACachingAllocator.h>
#endif

#include "core/allocator.h"
#include "core/experiment.h"
#include "core/progress.h"
#include "models/registry.h"
#include "runner/environment.h"
#include "runner/communicator.h"
#include "runner/precision.h"
#include "runner/trainer.h"
#include "runner/worker.h"
#include "scheduler/backend.h"
#include "scheduler/grid.h"
#include "scheduler/plan.h"
#include "storage/dataset_file.h"
#include "storage/layout.h"
#include "storage/loader.h"
#include "storage/metrics_table.h"
#include "storage/store.h"
#include "storage/workspace.h"

extern char** environ;

using namespace orch;
namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;
using nlohmann::json;

namespace {

double secs(Clock::time_point t0) { return std::chrono::duration<double>(Clock::now() - t0).count(); }

struct Options {
  std::string out, self;
  int size = 1024, steps = 10, warmup = 3;
  bool quick = false;
  std::set<std::string> parts{"steps", "epoch", "loader", "packed", "bf16"};
  torch::Device device{torch::kCPU};
  bool cuda = false;
};

void sync(const Options& o) {
  if (o.cuda) torch::cuda::synchronize();
}

void reset_peak(const Options& o) {
#if defined(ORCH_TORCH_CUDA)
  if (o.cuda) c10::cuda::CUDACachingAllocator::resetPeakStats(0);
#endif
  (void)o;
}

double peak_mib(const Options& o) {
#if defined(ORCH_TORCH_CUDA)
  if (o.cuda) return static_cast<double>(c10::cuda::CUDACachingAllocator::getDeviceStats(0).allocated_bytes[0].peak) / (1 << 20);
#endif
  (void)o;
  return -1;  // not measured (CPU)
}

models::Targets random_targets(const OrganLayout& layout, int batch, int size, const torch::Device& d) {
  auto o = torch::TensorOptions().device(d);
  return {torch::randint(0, layout.num_classes(), {batch, size, size}, o.dtype(torch::kInt64)),
          torch::rand({batch, layout.num_classes() - 1, size, size}, o), torch::rand({batch, layout.total_points(), 2}, o)};
}

// Part 1: one network's training step at `precision`, median ms, and the peak memory.
json time_step(const Options& o, const models::ModelEntry& e, const std::string& precision) {
  models::ModelConfig cfg;
  cfg.kind = DatasetKind::kLungsHeart;
  cfg.size = o.size;
  cfg = models::resolve_config(e, cfg);
  if (o.cuda) runner::set_tf32(choice_from<Precision>(precision).value());
  torch::manual_seed(1);
  auto net = models::instantiate(e, cfg);
  net->to(o.device);
  net->train();
  std::vector<torch::Tensor> params;
  for (auto& p : net->parameters())
    if (p.requires_grad()) params.push_back(p);
  torch::optim::Adam adam(params, torch::optim::AdamOptions(1e-4).weight_decay(1e-5));
  const auto layout = OrganLayout::of(cfg.kind);
  torch::Tensor image = torch::rand({4, 1, o.size, o.size}, torch::TensorOptions().device(o.device));
  models::Targets t = random_targets(layout, 4, o.size, o.device);
  auto graph = models::GraphTensors::of(layout).to(o.device);
  std::vector<double> ms;
  sync(o);
  reset_peak(o);
  for (int k = 0; k < o.warmup + o.steps; ++k) {
    sync(o);
    auto t0 = Clock::now();
    adam.zero_grad();
    torch::Tensor loss;
    {
      runner::AutocastGuard ac(o.device, precision == "bf16");
      loss = e.loss(net->predict(image), t, {cfg, graph}).to(torch::kFloat32);
    }
    loss.backward();
    adam.step();
    sync(o);
    if (k >= o.warmup) ms.push_back(secs(t0) * 1000);
  }
  std::sort(ms.begin(), ms.end());
  return {{"model", e.id}, {"precision", precision}, {"step_ms", ms[ms.size() / 2]}, {"peak_mib", peak_mib(o)}};
}

Experiment bench_experiment(const Options& o, const std::string& ws, int size, int count, int epochs,
                            const std::string& precision, const std::string& pipeline, const std::string& model) {
  json training = {{"epochs", epochs}, {"device", o.cuda ? "cuda" : "cpu"}, {"precision", precision},
                   {"pipeline", pipeline}, {"threads", std::max(1, default_threads())}};
  json j = {{"name", "gpu_bench"},
            {"workspace", ws},
            {"datasets", {{"lh" + std::to_string(size), {{"kind", "lh"}, {"size", size},
                            {"synthetic", {{"count", count}, {"seed", 7}, {"size", size}}}}}}},
            {"networks", {model}},
            {"seeds", {1}},
            {"training", training}};
  return parse_experiment(j, "gpu_bench");
}

// A Trainer in timing mode (the dependency's part untrained, nothing resumed) on a prepared data set.
std::unique_ptr<runner::Trainer> timing_trainer(const Experiment& exp, const std::string& model, const std::string& scratch,
                                                runner::Communicator& comm, int threads,
                                                std::function<void(const runner::EpochRecord&)> on_epoch = {}) {
  auto run = scheduler::chain_for(exp, exp.datasets[0].name, model, 1).back();
  runner::TrainerOptions to;
  to.settings = run.settings;
  if (threads > 0) to.settings.training.threads = threads;
  to.run_id = run.id;
  to.checkpoints_dir = scratch + "/checkpoints";
  to.predictions_path = scratch + "/predictions.h5";
  to.dataset_path = dataset_path(exp.workspace, exp.datasets[0].name);
  to.comm = &comm;
  to.progress_bar = false;
  to.calibration = true;
  to.on_epoch = std::move(on_epoch);
  return std::make_unique<runner::Trainer>(to);
}

// Part 2: epochs end to end against steps x step.
json epoch_part(const Options& o, const std::map<std::string, double>& step_ms) {
  json out = json::array();
  const int count = o.quick ? 40 : 80, epochs = 3;
  for (const std::string model : {"ours", "unet"}) {
    for (const std::string precision : {"bf16", "tf32"}) {
      for (const std::string pipeline : {"overlap", "plain"}) {
        if (model == "unet" && pipeline == "plain") continue;
        const std::string ws = o.out + "/epoch";
        Experiment exp = bench_experiment(o, ws, o.size, count, epochs, precision, pipeline, model);
        ensure_dataset(exp, exp.datasets[0], ws, 0, true);
        const std::string scratch = o.out + "/epoch_run_" + model + "_" + precision + "_" + pipeline;
        fs::remove_all(scratch);
        auto comm = runner::make_communicator(CommunicatorKind::kSingle, o.cuda);
        std::vector<json> rows;
        runner::TrainStats before;
        const runner::Trainer* trp = nullptr;
        auto tr = timing_trainer(exp, model, scratch, *comm, 0, [&](const runner::EpochRecord& r) {
          const runner::TrainStats& s = trp->stats();
          rows.push_back({{"epoch", r.epoch}, {"seconds", r.seconds},
                          {"validation_s", s.validation_seconds - before.validation_seconds},
                          {"checkpoint_s", s.checkpoint_seconds - before.checkpoint_seconds},
                          {"loader_wait_s", s.loader_wait_seconds - before.loader_wait_seconds},
                          {"step_s", s.step_seconds - before.step_seconds}, {"steps", s.steps - before.steps}});
          before = s;
        });
        trp = tr.get();
        tr->train();
        const std::string key = model + "|" + precision;
        const double pure = step_ms.count(key) ? step_ms.at(key) / 1000 : 0;
        for (auto& r : rows) {
          const double steps = r["steps"].get<double>();
          r["steps_x_step_s"] = steps * pure;
          r["ratio_epoch"] = pure > 0 ? r["seconds"].get<double>() / (steps * pure) : 0;
          r["ratio_training"] = pure > 0 ? (r["seconds"].get<double>() - r["validation_s"].get<double>() -
                                            r["checkpoint_s"].get<double>()) / (steps * pure) : 0;
        }
        json one = {{"model", model}, {"precision", precision}, {"pipeline", pipeline}, {"epochs", rows},
                    {"pure_step_s", pure}};
        std::printf("  %-5s %-4s %-7s", model.c_str(), precision.c_str(), pipeline.c_str());
        for (auto& r : rows)
          std::printf("  e%lld %.2fs (val %.2f, ckpt %.2f, loader %.2f; x%.2f / train x%.2f)", r["epoch"].get<long long>(),
                      r["seconds"].get<double>(), r["validation_s"].get<double>(), r["checkpoint_s"].get<double>(),
                      r["loader_wait_s"].get<double>(), r["ratio_epoch"].get<double>(), r["ratio_training"].get<double>());
        std::printf("\n");
        std::fflush(stdout);
        out.push_back(one);
        fs::remove_all(scratch);
      }
    }
  }
  return out;
}

// Part 3: the augmenting loader's throughput per thread count, with the stepwise and the fused warps.
json loader_part(const Options& o) {
  const std::string ws = o.out + "/epoch";
  Experiment exp = bench_experiment(o, ws, o.size, o.quick ? 40 : 80, 1, "tf32", "overlap", "ours");
  ensure_dataset(exp, exp.datasets[0], ws, 0, true);
  auto data = std::make_shared<const DatasetReader>(dataset_path(ws, exp.datasets[0].name));
  json out = json::array();
  const int cores = default_threads();
  for (const AugmentWarps warps : {AugmentWarps::kStepwise, AugmentWarps::kFused})
  for (int t = 1; t <= std::max(1, cores); t *= 2) {
    LoaderOptions lo;
    lo.batch_size = 4;
    lo.threads = t;
    lo.prefetch = std::max(2, t);
    lo.augmentation.warps = warps;
    BatchLoader loader(data, data->info().indices(Split::kTrain), lo);
    const int want = std::min(loader.batches_per_epoch(), o.quick ? 6 : 14);
    loader.start_epoch(0, 0);
    auto first = loader.next();  // the pipeline fills
    auto t0 = Clock::now();
    int got = 0;
    while (got + 1 < want && loader.next()) ++got;
    const double s = secs(t0);
    out.push_back({{"warps", choice_name(warps)}, {"threads", t}, {"batches", got}, {"ms_per_batch", got ? 1000 * s / got : 0}});
    std::printf("  loader, %s warps, %2d thread(s): %.1f ms per batch of 4 at %d²\n", choice_name(warps), t,
                got ? 1000 * s / got : 0.0, o.size);
    std::fflush(stdout);
  }
  return out;
}

// Part 4's child: steps of `model` through the Trainer's timing mode on the shared data set.
int child(int argc, char** argv) {
  if (argc < 9) return 2;
  const std::string data = argv[2], model = argv[3], precision = argv[4];
  const int size = std::atoi(argv[5]), count = std::atoi(argv[6]), steps = std::atoi(argv[7]), threads = std::atoi(argv[8]);
  Options o;
  o.cuda = torch::cuda::is_available();
  o.device = o.cuda ? torch::Device(torch::kCUDA, 0) : torch::Device(torch::kCPU);
  const std::string ws = fs::path(data).parent_path().parent_path().string();
  Experiment exp = bench_experiment(o, ws, size, count, 1, precision, "overlap", model);
  const std::string scratch = ws + "/child_" + std::to_string(::getpid());
  auto comm = runner::make_communicator(CommunicatorKind::kSingle, o.cuda);
  auto tr = timing_trainer(exp, model, scratch, *comm, threads);
  auto t0 = Clock::now();
  runner::StepTiming t = tr->time_steps(3, steps, 1);
  std::printf("{\"step_s\": %.6f, \"wall_s\": %.3f}\n", t.step_s, secs(t0));
  fs::remove_all(scratch);
  return 0;
}

json packed_part(const Options& o) {
  const std::string ws = o.out + "/epoch";
  json out = json::array();
  const int cores = std::max(1, default_threads());
  for (const std::string model : {"ours", "hybridgnet"}) {
    const int count = o.quick ? 40 : 80;
    Experiment exp = bench_experiment(o, ws, o.size, count, 1, "bf16", "overlap", model);
    ensure_dataset(exp, exp.datasets[0], ws, 0, true);
    const std::string data = dataset_path(ws, exp.datasets[0].name);
    for (int n : {1, 2, 4}) {
      std::vector<pid_t> pids;
      std::vector<std::string> files;
      for (int k = 0; k < n; ++k) {
        const std::string f = o.out + "/packed_" + model + "_" + std::to_string(n) + "_" + std::to_string(k) + ".json";
        files.push_back(f);
        std::vector<std::string> args{o.self, "--child", data, model, "bf16", std::to_string(o.size), std::to_string(count),
                                      std::to_string(o.quick ? 4 : 20), std::to_string(std::max(1, cores / n))};
        std::vector<char*> argv;
        for (auto& a : args) argv.push_back(a.data());
        argv.push_back(nullptr);
        posix_spawn_file_actions_t fa;
        posix_spawn_file_actions_init(&fa);
        posix_spawn_file_actions_addopen(&fa, 1, f.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
        pid_t pid = 0;
        if (posix_spawn(&pid, o.self.c_str(), &fa, nullptr, argv.data(), environ) == 0) pids.push_back(pid);
        posix_spawn_file_actions_destroy(&fa);
      }
      double per_second = 0, worst = 0;
      int ok = 0;
      for (pid_t p : pids) {
        int st = 0;
        waitpid(p, &st, 0);
      }
      for (const auto& f : files) {
        std::ifstream in(f);
        std::string line, last;
        while (std::getline(in, line))
          if (!line.empty() && line[0] == '{') last = line;
        auto j = json::parse(last, nullptr, false);
        if (!j.is_object()) continue;
        ++ok;
        per_second += 1.0 / j["step_s"].get<double>();
        worst = std::max(worst, j["step_s"].get<double>());
      }
      out.push_back({{"model", model}, {"runs", n}, {"finished", ok}, {"steps_per_s", per_second}, {"slowest_step_s", worst}});
      std::printf("  packed %-10s %d run(s): %.2f steps/s together (slowest step %.1f ms; %d of %d finished)\n",
                  model.c_str(), n, per_second, worst * 1000, ok, n);
      std::fflush(stdout);
    }
  }
  return out;
}

// Part 5: bf16 against fp32.
json bf16_part(const Options& o) {
  json out;
  const int size = o.quick ? 64 : 256;
  std::printf("  agreement at %d² (loss rel. diff, gradient cosine, gradient rel. L2):\n", size);
  for (const auto& e : models::model_registry()) {
    models::ModelConfig cfg;
    cfg.kind = DatasetKind::kLungsHeart;
    cfg.size = size;
    cfg = models::resolve_config(e, cfg);
    torch::manual_seed(1);
    auto net = models::instantiate(e, cfg);
    net->to(o.device);
    net->eval();
    const auto layout = OrganLayout::of(cfg.kind);
    torch::manual_seed(2);
    torch::Tensor image = torch::rand({2, 1, size, size}).to(o.device);
    models::Targets t = random_targets(layout, 2, size, o.device);
    auto graph = models::GraphTensors::of(layout).to(o.device);
    auto grads = [&](bool bf16) {
      if (o.cuda) runner::set_tf32(Precision::kFp32);
      net->zero_grad();
      torch::Tensor loss;
      {
        runner::AutocastGuard ac(o.device, bf16);
        loss = e.loss(net->predict(image), t, {cfg, graph}).to(torch::kFloat32);
      }
      loss.backward();
      std::vector<torch::Tensor> g;
      for (auto& p : net->parameters())
        if (p.grad().defined()) g.push_back(p.grad().flatten().to(torch::kFloat64).cpu());
      return std::make_pair(loss.item<double>(), torch::cat(g));
    };
    auto [l32, g32] = grads(false);
    auto [l16, g16] = grads(true);
    const double rel = std::abs(l16 - l32) / std::max(1e-12, std::abs(l32));
    const double cos = (g32 * g16).sum().item<double>() / std::sqrt((g32 * g32).sum().item<double>() * (g16 * g16).sum().item<double>());
    const double grel = (g16 - g32).norm().item<double>() / std::max(1e-300, g32.norm().item<double>());
    std::printf("    %-18s %10.2e %10.6f %10.2e\n", e.id.c_str(), rel, cos, grel);
    out["agreement"].push_back({{"model", e.id}, {"loss_rel", rel}, {"grad_cosine", cos}, {"grad_rel_l2", grel}});
  }
  // Ours, each precision after its own UNet, through the worker.
  const int epochs = o.quick ? 2 : 10;
  std::map<std::string, std::vector<EpochMetrics>> curves;
  for (const std::string precision : {"fp32", "bf16"}) {
    const std::string ws = o.out + "/curve_" + precision;
    Experiment exp = bench_experiment(o, ws, size, o.quick ? 24 : 60, epochs, precision, "overlap", "ours");
    ensure_dataset(exp, exp.datasets[0], ws, 0, true);
    auto chain = scheduler::chain_for(exp, exp.datasets[0].name, "ours", 1);
    {
      Store st(WorkspaceLayout(ws).store());
      scheduler::record_runs(st, chain);
    }
    auto comm = runner::make_communicator(CommunicatorKind::kSingle, o.cuda);
    auto job = scheduler::detect_job_environment(false);
    for (const auto& r : chain) {
      runner::WorkerOptions wo;
      wo.workspace = ws;
      wo.run_id = r.id;
      wo.progress_bar = false;
      wo.job = job.get();
      runner::run_worker(wo, *comm);
    }
    Store st(WorkspaceLayout(ws).store());
    curves[precision] = MetricsTable(st).epoch_metrics(chain.back().id);
  }
  std::printf("  Ours at %d², %d epochs: %6s %12s %12s %12s %12s\n", size, epochs, "epoch", "loss fp32", "loss bf16",
              "val fp32", "val bf16");
  for (size_t i = 0; i < curves["fp32"].size() && i < curves["bf16"].size(); ++i) {
    const auto &a = curves["fp32"][i], &b = curves["bf16"][i];
    std::printf("  %30lld %12.6g %12.6g %12.6g %12.6g\n", static_cast<long long>(a.epoch), a.train_loss, b.train_loss,
                a.val_criterion, b.val_criterion);
    out["curve"].push_back({{"epoch", a.epoch}, {"loss_fp32", a.train_loss}, {"loss_bf16", b.train_loss},
                            {"val_fp32", a.val_criterion}, {"val_bf16", b.val_criterion},
                            {"seconds_fp32", a.seconds}, {"seconds_bf16", b.seconds}});
  }
  return out;
}

// Calibration rows for `orchestrator calibrate --import`: each network's pure step at `precision` times the
// end-to-end factor of Ours at that precision (its last epoch, overlap pipeline), validation folded in.
json calibration(const Options& o, const json& steps, const json& epochs, const std::string& precision) {
  double factor = 0;
  for (const auto& e : epochs)
    if (e["model"] == "ours" && e["precision"] == precision && e["pipeline"] == "overlap" && !e["epochs"].empty())
      factor = e["epochs"].back()["ratio_epoch"].get<double>();
  json rows = json::array();
  if (factor <= 0) return rows;
  for (const auto& s : steps) {
    if (s["precision"] != precision) continue;
    for (const std::string kind : {"lh", "l"})
      rows.push_back({{"model", s["model"]}, {"kind", kind}, {"size", o.size}, {"batch", 4},
                      {"threads", std::max(1, default_threads())}, {"device", o.cuda ? "cuda:0" : "cpu"},
                      {"step_s", s["step_ms"].get<double>() / 1000 * factor}, {"validation_image_s", 0.0},
                      {"evaluation_image_s", 0.12}, {"host", "gpu_bench " + precision + " (step x " + std::to_string(factor) + ")"},
                      {"precision", o.cuda ? precision : "fp32"}, {"device_model", runner::device_model(o.cuda ? "cuda:0" : "cpu")}});
  }
  return {{"note", "from bench/gpu_bench: the " + precision + " step of each network (LH, used for L too) x " +
                       std::to_string(factor) + ", Ours' end-to-end epoch over its steps x step; 0.12 s per test image"},
          {"calibration", rows}};
}

}  // namespace

int main(int argc, char** argv) {
  tune_allocator();
  if (argc > 1 && std::string(argv[1]) == "--child") return child(argc, argv);
  if (argc < 2) {
    std::fprintf(stderr, "usage: gpu_bench OUT [--size PX] [--steps N] [--warmup N] [--quick] [--only a,b]\n");
    return 2;
  }
  Options o;
  o.out = fs::absolute(argv[1]).string();
  o.self = fs::read_symlink("/proc/self/exe").string();
  for (int i = 2; i < argc; ++i) {
    const std::string a = argv[i];
    auto value = [&] { return i + 1 < argc ? std::string(argv[++i]) : std::string(); };
    if (a == "--size") o.size = std::atoi(value().c_str());
    else if (a == "--steps") o.steps = std::max(1, std::atoi(value().c_str()));
    else if (a == "--warmup") o.warmup = std::max(0, std::atoi(value().c_str()));
    else if (a == "--quick") o.quick = true;
    else if (a == "--only") {
      o.parts.clear();
      std::stringstream ss(value());
      std::string p;
      while (std::getline(ss, p, ',')) o.parts.insert(p);
    } else {
      std::fprintf(stderr, "gpu_bench: unknown option %s\n", a.c_str());
      return 2;
    }
  }
  if (o.size < 64) {
    std::fprintf(stderr, "gpu_bench: --size must be at least 64\n");
    return 2;
  }
  o.cuda = torch::cuda::is_available();
  o.device = o.cuda ? torch::Device(torch::kCUDA, 0) : torch::Device(torch::kCPU);
  fs::create_directories(o.out);
  json report = {{"device", o.cuda ? "cuda" : "cpu"}, {"size", o.size}, {"cores", default_threads()},
                 {"torch", runner::torch_version()}};
  std::printf("gpu_bench on %s, %d², %d core(s)\n", o.cuda ? "CUDA" : "the CPU (dry run)", o.size, default_threads());
  std::map<std::string, double> step_ms;
  if (o.parts.count("steps")) {
    std::printf("1. training step, batch 4 (median of %d after %d):\n  %-18s %10s %10s %10s %10s\n", o.steps, o.warmup,
                "network", "fp32 ms", "tf32 ms", "bf16 ms", "peak MiB");
    for (const auto& e : models::model_registry()) {
      std::printf("  %-18s", e.id.c_str());
      double peak = -1;
      for (const std::string p : {"fp32", "tf32", "bf16"}) {
        json r = time_step(o, e, p);
        step_ms[e.id + "|" + p] = r["step_ms"].get<double>();
        peak = std::max(peak, r["peak_mib"].get<double>());
        report["steps"].push_back(r);
        std::printf(" %10.1f", r["step_ms"].get<double>());
        std::fflush(stdout);
      }
      std::printf(" %10.0f\n", peak);
    }
  }
  if (o.parts.count("epoch")) {
    std::printf("2. epochs end to end (ratio: epoch / steps x step; train: without validation and checkpoints):\n");
    report["epoch"] = epoch_part(o, step_ms);
  }
  if (o.parts.count("loader")) {
    std::printf("3. the augmenting loader:\n");
    report["loader"] = loader_part(o);
  }
  if (o.parts.count("packed")) {
    std::printf("4. runs packed on one device (bf16):\n");
    report["packed"] = packed_part(o);
  }
  if (o.parts.count("bf16")) {
    std::printf("5. bf16 against fp32:\n");
    report["bf16"] = bf16_part(o);
  }
  std::ofstream(fs::path(o.out) / "gpu_bench.json") << report.dump(1);
  if (report.contains("steps") && report.contains("epoch"))
    for (const std::string p : {"bf16", "tf32"}) {
      json c = calibration(o, report["steps"], report["epoch"], p);
      if (!c.empty()) std::ofstream(fs::path(o.out) / ("calibration_" + p + ".json")) << c.dump(1);
    }
  std::printf("wrote %s/gpu_bench.json\n", o.out.c_str());
  return 0;
}
