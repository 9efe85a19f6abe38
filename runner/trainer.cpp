#include "runner/trainer.h"

#include <torch/cuda.h>
#include <torch/torch.h>
#include <torch/version.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <filesystem>
#include <random>

#include <unistd.h>

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

bool use_cuda(const TrainingSpec& ts) {
  if (ts.device == DeviceChoice::kCuda && !torch::cuda::is_available())
    throw Error("training.device is \"cuda\" but LibTorch sees no CUDA device (a CPU build, or no GPU here)");
  return ts.device == DeviceChoice::kCuda || (ts.device == DeviceChoice::kAuto && torch::cuda::is_available());
}

std::string torch_version() { return TORCH_VERSION; }

std::pair<int, double> lr_schedule(const std::string& model_id, const TrainingSpec& training) {
  const models::NetworkInfo& n = models::network_info(model_id);
  std::pair<int, double> s{n.lr_step_epochs, n.lr_gamma};
  if (training.lr_step_epochs > 0) s.first = training.lr_step_epochs;
  if (training.lr_gamma > 0) s.second = training.lr_gamma;
  return s;
}

namespace {

double seconds_since(Clock::time_point t0) { return std::chrono::duration<double>(Clock::now() - t0).count(); }

bool better(double candidate, double best, bool higher, bool have_best) {
  if (std::isnan(candidate)) return false;
  if (!have_best) return true;
  return higher ? candidate > best : candidate < best;
}

void sync_device(const torch::Device& d) {
  if (d.is_cuda()) torch::cuda::synchronize();
}

// Sum of squared gradient entries of `params` (one synchronisation), for the non-finite check.
double squared_gradient_norm(const std::vector<torch::Tensor>& params) {
  std::vector<torch::Tensor> parts;
  for (const auto& p : params)
    if (p.grad().defined()) parts.push_back(p.grad().to(torch::kFloat32).pow(2).sum());
  if (parts.empty()) return 0;
  return torch::stack(parts).sum().item<double>();
}

}  // namespace

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
    auto [step, gamma] = lr_schedule(entry->id, opt.settings.training);
    double lr = opt.settings.training.learning_rate * std::pow(gamma, static_cast<double>(epoch / step));
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
    series = std::make_unique<CheckpointSeries>(opt.checkpoints_dir, ts.keep_checkpoints, opt.publish_fence);
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

Trainer::Trainer(TrainerOptions options) : impl_(std::make_unique<Impl>()) {
  Impl& I = *impl_;
  I.opt = std::move(options);
  if (!I.opt.comm) throw Error("run " + I.opt.run_id + ": no communicator given");
  I.comm = I.opt.comm;
  const int threads = I.setup_device();
  I.build_network();
  I.build_loaders(threads);
  I.resume();
}

Trainer::~Trainer() = default;

int Trainer::rank() const { return impl_->comm->rank(); }
int Trainer::world() const { return impl_->comm->world(); }
const TrainStats& Trainer::stats() const { return impl_->stats; }
int64_t Trainer::start_epoch() const { return impl_->state.epoch; }
int64_t Trainer::start_batch() const { return impl_->state.batch; }
std::string Trainer::device() const { return impl_->device.str(); }
std::string Trainer::communicator() const { return impl_->comm->name(); }

std::string Trainer::describe() const {
  auto c = models::count_parameters(*impl_->net);
  return "trainable " + std::to_string(c.trainable) + ", frozen " + std::to_string(c.frozen) + ", init seed " +
         std::to_string(impl_->init_seed);
}

TrainOutcome Trainer::train() {
  Impl& I = *impl_;
  const TrainingSpec& ts = I.opt.settings.training;
  const int bpe = I.loader->batches_per_epoch();
  const int64_t n_train = static_cast<int64_t>(I.data->info().indices(Split::kTrain).size());
  TrainOutcome out;
  out.resumed_from_epoch = I.resumed_epoch;
  out.resumed_from_batch = I.resumed_batch;
  int64_t epoch = I.state.epoch, first_batch = I.state.batch;
  const int64_t total_steps = (ts.epochs - epoch) * bpe - first_batch;
  Progress bar("train " + I.opt.run_id, static_cast<size_t>(std::max<int64_t>(0, total_steps)),
               I.opt.progress_bar && I.comm->rank() == 0);
  int64_t steps_here = 0;
  I.net->train();
  for (; epoch < ts.epochs && !I.early.stopped; ++epoch) {  // a run resumed after its early stop trains no more
    auto t0 = Clock::now();
    I.set_lr(epoch);
    I.loader->start_epoch(static_cast<uint64_t>(epoch), static_cast<int>(first_batch));
    double loss_sum = I.partial_loss_sum, count = I.partial_count;
    I.partial_loss_sum = I.partial_count = 0;
    if (first_batch < bpe && !I.fetch()) throw Error("loader ended early");
    for (int64_t b = first_batch; b < bpe; ++b) {
      auto step_start = Clock::now();
      const DeviceBatch batch = I.transfer->take();
      const int64_t n_global = std::min<int64_t>(ts.batch_size, n_train - b * ts.batch_size);
      const int64_t n_local = batch.size;
      torch::manual_seed(I.step_seed(epoch, b));
      const bool inject = I.opt.hooks && I.opt.hooks->poison_loss(steps_here + 1);
      auto next_batch = [&] {  // the next batch's copy, while this step computes
        if (b + 1 < bpe && !I.fetch()) throw Error("loader ended early");
      };
      const Impl::StepOutcome r = I.forward_backward(batch, n_global, inject, next_batch);
      I.apply_step(r, epoch, b, bpe, static_cast<double>(n_local), loss_sum, count);
      ++steps_here;
      if (I.opt.abandoned && I.opt.abandoned()) throw AbandonedError("another worker took this run over");
      I.stats.steps++;
      I.stats.samples += n_local;
      I.stats.allreduce_wait_seconds += I.reducer->last_wait_seconds();
      I.stats.step_seconds += seconds_since(step_start);
      char note[96];
      std::snprintf(note, sizeof note, "epoch %lld/%d loss %.5f", static_cast<long long>(epoch + 1), ts.epochs,
                    count > 0 ? loss_sum / count : 0.0);
      bar.advance(1, note);
      if (I.opt.hooks && I.opt.hooks->stop_after(steps_here)) request_stop(15);
      if (I.stop_requested(epoch, b + 1, loss_sum, count, bar, out)) return out;
    }
    first_batch = 0;
    const bool last = epoch + 1 == ts.epochs;
    EpochRecord rec = I.end_epoch(epoch, loss_sum, count, last);
    // The epoch is recorded before its checkpoint is published, never after: killed between the two, the run
    // resumes from the previous checkpoint, trains this epoch again and its row is replaced (one row per epoch);
    // the other order would lose the row of an epoch the checkpoint says is done.
    rec.seconds = seconds_since(t0);
    if (I.comm->rank() == 0) I.report_epoch(rec);
    if (!I.early_note.empty()) I.log(I.early_note);
    if ((epoch + 1) % ts.checkpoint_every == 0 || last || I.early.stopped) I.save(epoch + 1, 0);
  }
  bar.finish();
  out.finished = true;
  out.stopped_early = I.early.stopped;
  out.epoch = epoch;
  out.best_epoch = I.state.best_epoch;
  out.best_criterion = I.state.best_criterion;
  return out;
}

StepTiming Trainer::time_steps(int warmup, int steps, int images) {
  Impl& I = *impl_;
  const int64_t n_train = static_cast<int64_t>(I.data->info().indices(Split::kTrain).size());
  const int bpe = I.loader->batches_per_epoch();
  StepTiming out;
  I.net->train();
  int64_t epoch = 0, b = 0;
  I.loader->start_epoch(0, 0);
  if (!I.fetch()) throw Error("loader ended early");
  sync_device(I.device);
  auto t0 = Clock::now();
  for (int k = 0; k < warmup + steps; ++k) {  // as train() steps: the next batch's copy during each step
    if (k == warmup) {
      sync_device(I.device);
      t0 = Clock::now();
    }
    const DeviceBatch batch = I.transfer->take();
    const int64_t n_global = std::min<int64_t>(I.opt.settings.training.batch_size, n_train - b * I.opt.settings.training.batch_size);
    torch::manual_seed(I.step_seed(epoch, b));
    auto next_batch = [&] {
      if (++b == bpe) {
        I.loader->start_epoch(static_cast<uint64_t>(++epoch), 0);
        b = 0;
      }
      if (k + 1 < warmup + steps && !I.fetch()) throw Error("loader ended early");
    };
    if (I.forward_backward(batch, n_global, false, next_batch).finite) I.adam->step();
  }
  sync_device(I.device);
  const double timed = seconds_since(t0);
  out.steps = steps;
  out.step_s = steps ? timed / steps : 0;
  // Validation and evaluation, as the real passes go.
  I.net->eval();
  torch::NoGradGuard ng;
  std::vector<int> val = I.data->info().indices(Split::kVal), test = I.data->info().indices(Split::kTest);
  const int n_val = std::min<int>(images, static_cast<int>(val.size())), n_test = std::min<int>(images, static_cast<int>(test.size()));
  double tv = 0, te = 0;
  for (int k = 0; k < n_val; ++k) {  // image by image, as validate()
    std::vector<TrainingSample> one{to_training_sample(I.data->read(val[static_cast<size_t>(k)]))};
    auto t0 = Clock::now();
    DeviceBatch vb = I.transfer->now(one);
    AutocastGuard ac(I.device, I.bf16_training());
    models::Prediction p = I.net->predict(vb.image);
    I.entry->criterion(p, vb.targets, models::LossContext{I.config, I.graph}).item<double>();
    tv += seconds_since(t0);
  }
  if (I.device.is_cuda()) set_tf32(I.opt.settings.evaluation.precision);  // as evaluate() does
  for (int k = 0; k < n_test; ++k) {
    TrainingSample s = to_training_sample(I.data->read(test[static_cast<size_t>(k)]));
    const int size = I.opt.settings.size;
    auto t0 = Clock::now();
    torch::Tensor image = torch::from_blob(s.image.data, {1, 1, size, size}, torch::kFloat32).clone().to(I.device);
    AutocastGuard ac(I.device, I.bf16_evaluation());
    models::Prediction p = I.net->predict(image);
    sync_device(I.device);
    te += seconds_since(t0);
  }
  I.net->train();
  out.images = std::max(n_val, n_test);
  out.validation_image_s = n_val ? tv / n_val : 0;
  out.evaluation_image_s = n_test ? te / n_test : 0;
  return out;
}

EvaluationOutcome Trainer::evaluate() {
  Impl& I = *impl_;
  I.ensure_best("found missing before evaluation");  // every rank: rebuilding it validates on all of them
  EvaluationOutcome out;
  out.device = I.device.str();
  out.predictions_path = I.opt.predictions_path;
  if (I.comm->rank() != 0) {
    I.comm->barrier();
    return out;
  }
  auto best = I.series->verified_best();
  if (!best) throw Error("run " + I.opt.run_id + ": no best checkpoint to evaluate in " +
                         fs::path(I.series->best_path()).parent_path().string());
  load_weights(*best, *I.net);
  I.net->eval();
  torch::NoGradGuard ng;
  if (I.device.is_cuda()) set_tf32(I.opt.settings.evaluation.precision);  // the test split's own precision
  const auto layout = OrganLayout::of(I.opt.settings.kind);
  const int size = I.opt.settings.size;
  MetricOptions mo;
  mo.spacing_mm = I.opt.settings.evaluation.spacing_mm;
  mo.empty_hausdorff = I.opt.settings.evaluation.empty_hausdorff;
  const std::vector<std::string> organ_names = layout.class_names();

  std::vector<int> test = I.data->info().indices(Split::kTest);
  std::sort(test.begin(), test.end(), [&](int a, int b) { return I.data->info().ids[a] < I.data->info().ids[b]; });
  Predictions preds;
  preds.run_id = I.opt.run_id;
  preds.model = I.entry->id;
  preds.dataset = I.opt.settings.dataset;
  preds.kind = kind_name(I.opt.settings.kind);
  preds.size = size;
  preds.evaluated = I.entry->info->evaluate_dense ? "dense" : "points";
  Progress bar("evaluate " + I.opt.run_id, test.size(), I.opt.progress_bar);
  bool cold = true;
  for (int idx : test) {
    Sample s = I.data->read(idx);
    TrainingSample ts = to_training_sample(s);
    torch::Tensor image = torch::from_blob(ts.image.data, {1, 1, size, size}, torch::kFloat32).clone().to(I.device);
    torch::manual_seed(I.step_seed(-2, idx));
    sync_device(I.device);
    auto t0 = Clock::now();
    models::Prediction p;
    {
      AutocastGuard ac(I.device, I.bf16_evaluation());
      p = I.net->predict(image);
    }
    const double launched = seconds_since(t0);  // the reference's timing: no synchronisation
    sync_device(I.device);
    out.times.push_back({s.id, seconds_since(t0), launched, cold});
    cold = false;

    std::vector<cv::Mat> pred_masks;
    cv::Mat labels;
    if (!p.points.empty()) {
      torch::Tensor pts = p.points[0][0].to(torch::kCPU).to(torch::kFloat32).contiguous();
      std::vector<float> v(pts.data_ptr<float>(), pts.data_ptr<float>() + pts.numel());
      preds.points.push_back(v);
    }
    if (I.entry->info->evaluate_dense) {
      torch::Tensor seg = p.segmentation.argmax(1)[0].to(torch::kCPU).to(torch::kUInt8).contiguous();
      labels = cv::Mat(size, size, CV_8UC1);
      std::memcpy(labels.data, seg.data_ptr(), static_cast<size_t>(size) * size);
      pred_masks = organ_masks_from_labels(layout, labels);
    } else {
      std::vector<Point2> px = denormalise_points(preds.points.back(), size);
      pred_masks = organ_masks_from_points(layout, px, size);
      labels = label_mask(layout, px, size);
    }
    preds.ids.push_back(s.id);
    preds.masks.push_back(labels);
    std::vector<cv::Mat> truth = organ_masks_from_labels(layout, s.mask);
    for (size_t o = 0; o < truth.size(); ++o) {
      OverlapMetrics m = compare_masks(pred_masks[o], truth[o], mo);
      out.metrics.push_back(TestMetric{I.opt.run_id, s.id, organ_names[o], m.dice, m.jaccard, m.hausdorff_mm});
    }
    bar.advance(1);
  }
  bar.finish();
  if (I.entry->info->evaluate_dense && preds.points.size() != preds.ids.size()) preds.points.clear();
  write_predictions(out.predictions_path, preds, I.opt.publish_fence);
  I.comm->barrier();
  return out;
}

}  // namespace orch::runner
