#include "runner/trainer.h"

#include <torch/cuda.h>
#include <torch/torch.h>
#include <torch/version.h>

#include <algorithm>
#include <cmath>
#include <cstdio>

#include "core/errors.h"
#include "core/progress.h"
#include "models/registry.h"
#include "runner/signals.h"
#include "runner/trainer_impl.h"

namespace orch::runner {

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

double learning_rate_at(const std::string& model_id, const TrainingSpec& training, int64_t epoch) {
  if (training.lr_decay == LrDecay::kCosine)
    return training.learning_rate * 0.5 * (1 + std::cos(M_PI * static_cast<double>(epoch) / training.epochs));
  auto [step, gamma] = lr_schedule(model_id, training);
  return training.learning_rate * std::pow(gamma, static_cast<double>(epoch / step));
}

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

// The batches of one epoch from `first_batch` on, each a step; false when a stop was requested (a signal, a
// cancel, a test hook), after the checkpoint that stop_requested() writes.
bool Trainer::Impl::train_batches(int64_t epoch, int64_t first_batch, double& loss_sum, double& count,
                                  int64_t& steps_here, Progress& bar, TrainOutcome& out) {
  const TrainingSpec& ts = opt.settings.training;
  const int bpe = loader->batches_per_epoch();
  const int64_t n_train = static_cast<int64_t>(data->info().indices(Split::kTrain).size());
  for (int64_t b = first_batch; b < bpe; ++b) {
    auto step_start = Clock::now();
    const DeviceBatch batch = transfer->take();
    const int64_t n_global = std::min<int64_t>(ts.batch_size, n_train - b * ts.batch_size);
    const int64_t n_local = batch.size;
    torch::manual_seed(step_seed(epoch, b));
    const bool inject = opt.hooks && opt.hooks->poison_loss(steps_here + 1);
    auto next_batch = [&] {  // the next batch's copy, while this step computes
      if (b + 1 < bpe && !fetch()) throw Error("loader ended early");
    };
    const StepOutcome r = forward_backward(batch, n_global, inject, next_batch);
    apply_step(r, epoch, b, bpe, static_cast<double>(n_local), loss_sum, count);
    ++steps_here;
    if (opt.abandoned && opt.abandoned()) throw AbandonedError("another worker took this run over");
    stats.steps++;
    stats.samples += n_local;
    stats.allreduce_wait_seconds += reducer->last_wait_seconds();
    stats.step_seconds += seconds_since(step_start);
    char note[96];
    std::snprintf(note, sizeof note, "epoch %lld/%d loss %.5f", static_cast<long long>(epoch + 1), ts.epochs,
                  count > 0 ? loss_sum / count : 0.0);
    bar.advance(1, note);
    if (opt.hooks && opt.hooks->stop_after(steps_here)) request_stop(15);
    if (stop_requested(epoch, b + 1, loss_sum, count, bar, out)) return false;
  }
  return true;
}

TrainOutcome Trainer::train() {
  Impl& I = *impl_;
  const TrainingSpec& ts = I.opt.settings.training;
  const int bpe = I.loader->batches_per_epoch();
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
    if (!I.train_batches(epoch, first_batch, loss_sum, count, steps_here, bar, out)) return out;
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

}  // namespace orch::runner
