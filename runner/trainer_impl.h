// The trainer's state, shared by its three parts and by nothing else: runner/trainer.cpp (construction,
// resumption and the training loop), runner/evaluation.cpp (the test split: metrics, inference times,
// predictions) and runner/step_timing.cpp (the calibration's timed steps). Private to runner/: include it only
// from those files. Not thread-safe (one Trainer per run, driven from one thread).
#pragma once

#include "runner/trainer.h"

#include <torch/cuda.h>
#include <torch/torch.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <filesystem>
#include <random>

#include "core/errors.h"
#include "core/mask.h"
#include "core/metrics.h"
#include "core/progress.h"
#include "core/rng.h"
#include "models/registry.h"
#include "runner/checkpoint.h"
#include "runner/communicator.h"
#include "runner/device_batches.h"
#include "runner/precision.h"
#include "runner/grad_reducer.h"
#include "runner/signals.h"
#include "storage/dataset_file.h"
#include "storage/loader.h"
#include "storage/predictions.h"

namespace orch::runner {

namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;

// training.nonfinite "skip" gives up after this many skipped batches in one attempt: the run has diverged.
constexpr int64_t kMaxSkippedBatches = 20;

inline double seconds_since(Clock::time_point t0) { return std::chrono::duration<double>(Clock::now() - t0).count(); }

inline bool better(double candidate, double best, bool higher, bool have_best) {
  if (std::isnan(candidate)) return false;
  if (!have_best) return true;
  return higher ? candidate > best : candidate < best;
}

inline void sync_device(const torch::Device& d) {
  if (d.is_cuda()) torch::cuda::synchronize();
}

// Sum of squared gradient entries of `params` (one synchronisation), for the non-finite check.
inline double squared_gradient_norm(const std::vector<torch::Tensor>& params) {
  std::vector<torch::Tensor> parts;
  for (const auto& p : params)
    if (p.grad().defined()) parts.push_back(p.grad().to(torch::kFloat32).pow(2).sum());
  if (parts.empty()) return 0;
  return torch::stack(parts).sum().item<double>();
}

struct Trainer::Impl {
  TrainerOptions opt;
  const models::ModelEntry* entry = nullptr;
  models::ModelConfig config;
  Communicator* comm = nullptr;
  torch::Device device{torch::kCPU};
  std::shared_ptr<models::Network> net;
  std::unique_ptr<torch::optim::Adam> adam;
  std::unique_ptr<GradientReducer> reducer;
  std::shared_ptr<const DatasetReader> data;
  std::unique_ptr<BatchLoader> loader;
  std::vector<int> val_indices;
  models::GraphTensors graph;
  std::unique_ptr<CheckpointSeries> series;
  uint64_t data_seed = 1;  // data order, augmentation, step seeds
  uint64_t init_seed = 1;
  CheckpointState state;   // position, best
  double partial_loss_sum = 0, partial_count = 0;  // of a resumed, half-done epoch (rank 0 holds the global sums)
  int64_t resumed_epoch = -1, resumed_batch = -1;
  // Early stopping (TrainingSpec::early_stop): the last value that counted as an improvement, its epoch, and
  // whether training ended early; kept in the checkpoints so that a resumed run stops where it would have.
  struct EarlyStopState {
    int64_t epoch = -1;
    double value = 0;
    bool stopped = false;
  } early;
  std::string early_note;  // why training stopped early, logged after the epoch's line
  TrainStats stats;
  std::vector<torch::Tensor> trainable;
  int64_t skipped_batches = 0;
  std::unique_ptr<BatchTransfer> transfer, val_transfer;  // host batches to the device (runner/device_batches.h)

  // Starts moving the loader's next batch to the device; false at the end of the epoch.
  bool fetch() {
    auto t0 = Clock::now();
    auto host = loader->next();
    stats.loader_wait_seconds += seconds_since(t0);
    if (!host) return false;
    transfer->start(*host);
    return true;
  }

  bool bf16_training() const { return opt.settings.training.precision == Precision::kBf16; }
  bool bf16_evaluation() const { return opt.settings.evaluation.precision == Precision::kBf16; }

  // A verified best.h5: as it is, restored from its copy, or (when both are gone) rebuilt from the weights now in
  // the network (the newest good checkpoint) by validating them. Every rank calls it; rank 0 decides.
  void ensure_best(const char* when) {
    std::vector<std::string> warnings;
    int missing = 0;
    if (comm->rank() == 0) missing = series->verified_best(&warnings) ? 0 : 1;
    for (const auto& w : warnings) log(std::string("warning: ") + w);
    std::vector<double> flag{static_cast<double>(missing)};
    comm->allreduce_max(flag);
    if (flag[0] == 0) return;
    const double crit = validate();
    state.best_criterion = crit;
    state.best_epoch = state.epoch;
    if (comm->rank() == 0) series->save_best(*net, *adam, state);
    log(std::string("warning: the best checkpoint was lost (") + when + "); rebuilt from the newest good checkpoint " +
        "(epoch " + std::to_string(state.epoch) + ", batch " + std::to_string(state.batch) + ", " +
        entry->info->criterion_name + " " + std::to_string(crit) + "): results can differ from an undisturbed run");
  }

  // One step's forward and backward pass on this rank's share of a global batch of `n_global`, gradients averaged
  // over the ranks; the optimizer step is the caller's. `meanwhile` runs once the step's work is queued and before
  // its loss is read (a GPU computes while it runs: the next batch's copy starts there). `finite` is false when
  // the loss or any gradient is not finite on some rank. `poison` makes the loss NaN (fault injection).
  struct StepOutcome {
    double loss = 0;
    bool finite = true;
  };
  StepOutcome forward_backward(const DeviceBatch& batch, int64_t n_global, bool poison,
                               const std::function<void()>& meanwhile = {}) {
    const int64_t n_local = batch.size;
    adam->zero_grad();
    reducer->begin_step(static_cast<double>(n_local) / static_cast<double>(n_global));
    double step_loss = 0;
    if (n_local > 0) {
      torch::Tensor loss;
      {
        AutocastGuard ac(device, bf16_training());
        models::Prediction p = net->predict(batch.image);
        loss = entry->loss(p, batch.targets, models::LossContext{config, graph}).to(torch::kFloat32);
      }
      if (poison) loss = loss * std::numeric_limits<double>::quiet_NaN();
      loss.backward();
      if (meanwhile) meanwhile();
      step_loss = loss.item<double>();
    } else if (meanwhile) {
      meanwhile();
    }
    reducer->finish_step();
    const double grad2 = n_local > 0 ? squared_gradient_norm(trainable) : 0;
    std::vector<double> bad{std::isfinite(step_loss) && std::isfinite(grad2) ? 0.0 : 1.0};
    if (comm->world() > 1) comm->allreduce_max(bad);
    return {step_loss, bad[0] == 0};
  }

  std::string newest_checkpoint_text() const {
    auto n = series->newest_valid();
    return n ? *n : std::string("none yet (the run would start over)");
  }

  void log(const std::string& line) const {
    if (comm->rank() == 0 && opt.log) opt.log(line);
  }
  uint64_t step_seed(int64_t epoch, int64_t batch) const {
    return Rng::derive(data_seed, {static_cast<uint64_t>(epoch), static_cast<uint64_t>(batch),
                                   static_cast<uint64_t>(comm->rank()), 0x73746570ULL})
               .next() >> 1;
  }
  void set_lr(int64_t epoch) {
    const double lr = learning_rate_at(entry->id, opt.settings.training, epoch);
    for (auto& g : adam->param_groups()) static_cast<torch::optim::AdamOptions&>(g.options()).lr(lr);
  }
  double current_lr() { return static_cast<torch::optim::AdamOptions&>(adam->param_groups()[0].options()).lr(); }

  void save(int64_t epoch, int64_t batch) {
    state.epoch = epoch;
    state.batch = batch;
    nlohmann::json extra{{"world", comm->world()}, {"partial_loss_sum", partial_loss_sum},
                         {"partial_count", partial_count}, {"init_seed", init_seed}, {"data_seed", data_seed}};
    if (opt.settings.training.early_stop.enabled())
      extra["early_stop"] = {{"epoch", early.epoch}, {"value", early.value}, {"stopped", early.stopped}};
    state.extra = extra.dump();
    auto t0 = Clock::now();
    if (comm->rank() == 0) series->save(*net, *adam, state);
    comm->barrier();
    stats.checkpoint_seconds += seconds_since(t0);
  }

  // Mean validation criterion over the validation split (sharded over ranks, eval mode), image by image: batch
  // normalisation keeps no running statistics (spec §3.1), so each image is normalised with its own, as the
  // reference's batch-1 validation does, and a pass of several images would change every criterion (tested).
  // What is pipelined instead: a loader reads and converts the next image while the device computes, its copy
  // overlaps (BatchTransfer), and the criteria are summed on the device with one synchronisation at the end.
  // A step's outcome: Adam's step and the running loss, or (not finite on some rank) the run stopped there, or
  // with training.nonfinite "skip" the batch skipped.
  void apply_step(const StepOutcome& r, int64_t epoch, int64_t b, int bpe, double n_local, double& loss_sum, double& count) {
    const TrainingSpec& ts = opt.settings.training;
    if (r.finite) {
      adam->step();
      loss_sum += r.loss * n_local;
      count += n_local;
      return;
    }
    const std::string what = "a non-finite " + std::string(std::isfinite(r.loss) ? "gradient" : "loss (" + format_number(r.loss) + ")") +
                             " at epoch " + std::to_string(epoch + 1) + ", step " + std::to_string(b + 1) + " of " + std::to_string(bpe);
    if (ts.nonfinite != NonFinite::kSkip || ++skipped_batches > kMaxSkippedBatches)
      throw NonFiniteError(what + (ts.nonfinite == NonFinite::kSkip ? " (more than " + std::to_string(kMaxSkippedBatches) + " batches skipped)" : "") +
                           "; the run stopped there (training.nonfinite \"stop\"); newest good checkpoint: " +
                           newest_checkpoint_text() + ". Lower the learning rate, or set training.nonfinite to \"skip\"");
    log("warning: " + what + ": batch skipped (training.nonfinite \"skip\")");
    adam->zero_grad();
  }

  // After a step: when any rank saw a stop request, a mid-epoch checkpoint at (epoch, batch) with the epoch's
  // partial loss, and `out` says where. True when training is to stop.
  bool stop_requested(int64_t epoch, int64_t batch, double loss_sum, double count, Progress& bar, TrainOutcome& out) {
    std::vector<double> flag{static_cast<double>(stop_signal())};
    comm->allreduce_max(flag);
    if (flag[0] <= 0) return false;
    std::vector<double> partial{loss_sum, count};
    comm->allreduce_sum(partial);
    partial_loss_sum = partial[0];
    partial_count = partial[1];
    save(epoch, batch);
    bar.finish();
    out.signal = static_cast<int>(flag[0]);
    out.epoch = epoch;
    out.batch = batch;
    out.best_epoch = state.best_epoch;
    out.best_criterion = state.best_criterion;
    log(std::string("stop requested (") + signal_name(out.signal) + "): checkpointed at epoch " + std::to_string(epoch) +
        " batch " + std::to_string(batch));
    return true;
  }

  // The epoch's record: its mean loss over all ranks and, when it validates, the criterion and a new best.h5.
  EpochRecord end_epoch(int64_t epoch, double loss_sum, double count, bool last) {
    const TrainingSpec& ts = opt.settings.training;
    std::vector<double> sums{loss_sum, count};
    comm->allreduce_sum(sums);
    EpochRecord rec;
    rec.epoch = epoch + 1;
    rec.train_loss = sums[1] > 0 ? sums[0] / sums[1] : std::nan("");
    rec.learning_rate = current_lr();
    rec.val_criterion = std::nan("");
    if ((epoch + 1) % ts.validate_every != 0 && !last) return rec;
    const auto tv = Clock::now();
    rec.val_criterion = validate();
    stats.validation_seconds += seconds_since(tv);
    if (!std::isfinite(rec.val_criterion) && ts.nonfinite != NonFinite::kSkip)
      throw NonFiniteError("the validation " + entry->info->criterion_name + " is " + format_number(rec.val_criterion) +
                           " after epoch " + std::to_string(epoch + 1) + "; the run stopped there; newest good checkpoint: " +
                           newest_checkpoint_text());
    if (epoch + 1 > ts.best_after_epoch &&
        better(rec.val_criterion, state.best_criterion, entry->info->criterion_higher_is_better, state.best_epoch >= 0)) {
      state.best_criterion = rec.val_criterion;
      state.best_epoch = epoch + 1;
      state.epoch = epoch + 1;
      state.batch = 0;
      rec.best = true;
      if (comm->rank() == 0) series->save_best(*net, *adam, state);
    }
    note_for_early_stop(epoch + 1, rec.val_criterion);
    return rec;
  }

  // After a validation: whether the criterion improved by more than min_delta on the last improvement, and so
  // whether `patience` epochs have now passed without one (every rank sees the same criterion, so all agree).
  void note_for_early_stop(int64_t epoch, double criterion) {
    const TrainingSpec& ts = opt.settings.training;
    if (!ts.early_stop.enabled() || epoch <= ts.best_after_epoch || !std::isfinite(criterion)) return;
    const double margin = ts.early_stop.min_delta * std::abs(early.value);
    const bool higher = entry->info->criterion_higher_is_better;
    if (early.epoch < 0 || (higher ? criterion > early.value + margin : criterion < early.value - margin)) {
      early.epoch = epoch;
      early.value = criterion;
    } else if (epoch - early.epoch >= ts.early_stop.patience && epoch < ts.epochs) {  // the last epoch ends anyway
      early.stopped = true;
      early_note = ("early stop after epoch " + std::to_string(epoch) + ": the validation " + entry->info->criterion_name +
          " has not improved by more than " + format_number(100 * ts.early_stop.min_delta) + " % on " +
          format_number(early.value) + " (epoch " + std::to_string(early.epoch) + ") for " + std::to_string(epoch - early.epoch) +
          " epochs (training.early_stop.patience " + std::to_string(ts.early_stop.patience) + ")");
    }
  }

  // Rank 0: the epoch's line (the log, or over the progress bar at a terminal) and the caller's on_epoch.
  void report_epoch(const EpochRecord& rec) {
    const TrainingSpec& ts = opt.settings.training;
    char line[200];
    char val[64] = "-";
    if (!std::isnan(rec.val_criterion)) std::snprintf(val, sizeof val, "%.6g", rec.val_criterion);
    std::snprintf(line, sizeof line, "epoch %lld/%d loss %.6g val %s %s%s lr %.3g %.1fs", static_cast<long long>(rec.epoch),
                  ts.epochs, rec.train_loss, entry->info->criterion_name.c_str(), val, rec.best ? " (best)" : "",
                  rec.learning_rate, rec.seconds);
    if (!opt.progress_bar || !::isatty(2)) log(line);
    else if (opt.log) opt.log(std::string("\r") + line);
    if (opt.on_epoch) opt.on_epoch(rec);
  }

  // The device (a rank's GPU, or the CPU), torch's threads, TF32 and cuDNN autotuning. Returns the threads.
  int setup_device() {
    const TrainingSpec& ts = opt.settings.training;
    const bool cuda = use_cuda(ts);
    const int world = comm->world();
    device = cuda ? torch::Device(torch::kCUDA, static_cast<c10::DeviceIndex>(comm->local_rank() % std::max<int64_t>(1, torch::cuda::device_count())))
                    : torch::Device(torch::kCPU);
    int threads = ts.threads > 0 ? ts.threads : std::max(1, default_threads() / world);
    at::set_num_threads(threads);
    if (cuda) {
      set_tf32(ts.precision);
      at::globalContext().setBenchmarkCuDNN(ts.cudnn_benchmark);
    }
    return threads;
  }

  // The network from the run's settings, seeded as training.seed_mode says, its dependency's weights, Adam and the
  // gradient reducer; identical starting weights on every rank.
  void build_network() {
    const RunSettings& s = opt.settings;
    const TrainingSpec& ts = s.training;
    const std::string where = "run " + opt.run_id;
    const int world = comm->world();
    entry = &models::find_model(s.model);
    models::ModelConfig base;
    base.kind = s.kind;
    base.size = s.size;
    config = models::resolve_config(*entry, models::model_config_from_json(s.model_options, base, where, "model.options"));

    // Seeds. "full": the seed fixes everything. "reference": the network is built before seeding, from an
    // unseeded generator, and the data order, augmentation and noise use the reference's fixed 420.
    if (ts.seed_mode == SeedMode::kReference) {
      init_seed = (static_cast<uint64_t>(std::random_device{}()) << 32) ^ std::random_device{}();
      data_seed = 420;
    } else {
      init_seed = Rng::derive(static_cast<uint64_t>(s.seed), {0x696e6974ULL /* "init" */}).next() >> 1;
      data_seed = static_cast<uint64_t>(s.seed);
    }
    torch::manual_seed(init_seed);
    net = models::instantiate(*entry, config);
    if (!entry->info->dependency.empty() && !opt.calibration) {
      if (opt.dependency_checkpoint.empty())
        throw Error(where + ": " + s.model + " starts from a trained " + entry->info->dependency + " and none was given");
      auto dep = net->dependency_module();
      if (!dep) throw Error(where + ": " + s.model + " has no module for its dependency's weights");
      load_weights(opt.dependency_checkpoint, *dep, entry->info->weight_prefix);
    }
    net->to(device);
    graph = models::GraphTensors::of(OrganLayout::of(s.kind)).to(device);

    for (auto& p : net->parameters())
      if (p.requires_grad()) trainable.push_back(p);
    adam = std::make_unique<torch::optim::Adam>(
        trainable, torch::optim::AdamOptions(ts.learning_rate).weight_decay(ts.weight_decay));

    if (world > 1) {  // identical starting weights everywhere (matters for seed_mode "reference")
      torch::NoGradGuard ng;
      for (auto& p : net->parameters()) comm->broadcast(p.data(), 0);
      for (auto& b : net->buffers()) comm->broadcast(b, 0);
    }
    // Buckets of 25 MiB as DDP (ORCH_BUCKET_MB overrides). Smaller buckets start reducing during the backward
    // pass, but on 2 cores the reduction then competes with it: 1 and 4 MiB measured slower (bench/RESULTS.md).
    double bucket_mb = 25;
    if (const char* b = std::getenv("ORCH_BUCKET_MB")) bucket_mb = std::max(0.01, std::atof(b));
    reducer = std::make_unique<GradientReducer>(trainable, *comm, static_cast<size_t>(bucket_mb * (1 << 20)));
  }

  // The data set (checked against the run's kind and size), the training loader and the batch transfers.
  void build_loaders(int threads) {
    const RunSettings& s = opt.settings;
    const TrainingSpec& ts = s.training;
    const bool cuda = device.is_cuda();
    const int rank = comm->rank(), world = comm->world();
    data = std::make_shared<const DatasetReader>(opt.dataset_path);
    const DatasetInfo& info = data->info();
    if (info.kind != s.kind || info.size != s.size)
      throw InputError(opt.dataset_path, "kind/size", kind_name(info.kind) + "/" + std::to_string(info.size),
                       "the run expects " + kind_name(s.kind) + "/" + std::to_string(s.size));
    LoaderOptions lo;
    lo.batch_size = ts.batch_size;
    lo.seed = data_seed;
    // Loader threads: as set, else 2 on the CPU (the cores train), and on a GPU the job's cores less one (at least 2).
    lo.threads = ts.loader_threads > 0 ? ts.loader_threads : cuda ? std::max(2, threads - 1) : 2;
    lo.prefetch = std::max(2, lo.threads);  // a batch per thread in flight: each thread augments a whole batch
    lo.augment = ts.augment;
    lo.rank = rank;
    lo.world = world;
    lo.augmentation.mask_resampling = ts.mask_resampling;
    lo.augmentation.warps = ts.augment_warps;
    loader = std::make_unique<BatchLoader>(data, info.indices(Split::kTrain), lo);
    val_indices = info.indices(Split::kVal);
    const auto organs = OrganLayout::of(s.kind);
    transfer = std::make_unique<BatchTransfer>(device, organs.num_classes() - 1, organs.total_points(), ts.pipeline == Pipeline::kOverlap);
    val_transfer = std::make_unique<BatchTransfer>(device, organs.num_classes() - 1, organs.total_points(), ts.pipeline == Pipeline::kOverlap);
    if (info.indices(Split::kTrain).empty()) throw InputError(opt.dataset_path, "split", "train", "the training split is empty");
  }

  // Resumes from the newest valid checkpoint (none when calibrating), restoring a lost best.h5.
  void resume() {
    const TrainingSpec& ts = opt.settings.training;
    const int rank = comm->rank(), world = comm->world();
    series = std::make_unique<CheckpointSeries>(opt.checkpoints_dir, ts.keep_checkpoints, opt.publish_fence, *opt.env);
    state.config_hash = opt.run_id;
    std::vector<std::string> warnings;
    auto newest = opt.calibration ? std::nullopt : series->newest_valid(&warnings);
    for (const auto& w : warnings) log("warning: " + w);
    if (newest) {
      CheckpointState st = load_checkpoint(*newest, *net, *adam);
      if (st.config_hash != opt.run_id)
        throw Error(*newest + ": belongs to run " + st.config_hash + ", not " + opt.run_id +
                    " (settings changed: remove the run folder or plan again)");
      state = st;
      auto extra = nlohmann::json::parse(st.extra, nullptr, false);
      if (extra.is_object()) {
        if (rank == 0) {
          partial_loss_sum = extra.value("partial_loss_sum", 0.0);
          partial_count = extra.value("partial_count", 0.0);
        }
        if (extra.value("world", world) != world)
          log("warning: checkpoint written with " + std::to_string(extra.value("world", world)) + " ranks, resuming with " +
                std::to_string(world) + ": the result will not be bit-identical to an uninterrupted run");
        if (ts.seed_mode == SeedMode::kReference) init_seed = extra.value("init_seed", init_seed);
        if (const auto es = extra.find("early_stop"); es != extra.end() && es->is_object()) {
          early.epoch = es->value("epoch", int64_t{-1});
          early.value = es->value("value", 0.0);
          early.stopped = es->value("stopped", false);
        }
      }
      resumed_epoch = st.epoch;
      resumed_batch = st.batch;
      log("resuming from " + *newest + " (epoch " + std::to_string(st.epoch) + ", batch " + std::to_string(st.batch) + ")");
      if (state.best_epoch >= 0) ensure_best("found missing when resuming");
    }
  }

  // Evaluation (runner/evaluation.cpp).
  Predictions empty_predictions() const;
  models::Prediction timed_predict(const Sample& s, int idx, bool cold, std::vector<InferenceTime>& times);
  // Calibration timing (runner/step_timing.cpp).
  double time_training_steps(int warmup, int steps);
  double time_validation_images(const std::vector<int>& images);
  double time_evaluation_images(const std::vector<int>& images);
  // Training (runner/trainer.cpp).
  bool train_batches(int64_t epoch, int64_t first_batch, double& loss_sum, double& count, int64_t& steps_here,
                     Progress& bar, TrainOutcome& out);

  double validate() {
    net->eval();
    torch::NoGradGuard ng;
    LoaderOptions lo;  // global batches of `world` images, one per rank, in split order, not augmented
    lo.batch_size = comm->world();
    lo.shuffle = false;
    lo.augment = false;
    lo.threads = 1;
    lo.prefetch = 2;
    lo.rank = comm->rank();
    lo.world = comm->world();
    BatchLoader images(data, val_indices, lo);
    images.start_epoch(0, 0);
    torch::Tensor sum = torch::zeros({}, torch::TensorOptions().dtype(torch::kFloat64).device(device));
    double count = 0;
    auto next = [&] {
      auto b = images.next();
      if (!b || b->empty()) return false;
      val_transfer->start(*b);
      return true;
    };
    bool more = next();
    for (size_t k = static_cast<size_t>(comm->rank()); more; k += static_cast<size_t>(comm->world())) {
      DeviceBatch one = val_transfer->take();
      more = next();
      torch::manual_seed(step_seed(-1, static_cast<int64_t>(k)));
      AutocastGuard ac(device, bf16_training());
      models::Prediction p = net->predict(one.image);
      sum += entry->criterion(p, one.targets, models::LossContext{config, graph}).to(torch::kFloat64);
      count += 1;
    }
    std::vector<double> v{sum.item<double>(), count};
    comm->allreduce_sum(v);
    net->train();
    return v[1] > 0 ? v[0] / v[1] : std::nan("");
  }
};


}  // namespace orch::runner
