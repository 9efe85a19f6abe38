// Trainer::time_steps: training steps, validation and evaluation images timed as the real passes run them
// (orchestrator calibrate; runner/trainer.h).
#include "core/errors.h"
#include "runner/trainer.h"
#include "runner/trainer_impl.h"

namespace orch::runner {

// `warmup` untimed steps, then `steps` timed ones, as train() steps them: the next batch's copy during each step.
// Returns the timed seconds.
double Trainer::Impl::time_training_steps(int warmup, int steps) {
  const int64_t n_train = static_cast<int64_t>(data->info().indices(Split::kTrain).size());
  const int bpe = loader->batches_per_epoch();
  const int64_t batch_size = opt.settings.training.batch_size;
  net->train();
  int64_t epoch = 0, b = 0;
  loader->start_epoch(0, 0);
  if (!fetch()) throw Error("loader ended early");
  sync_device(device);
  auto t0 = Clock::now();
  for (int k = 0; k < warmup + steps; ++k) {
    if (k == warmup) {
      sync_device(device);
      t0 = Clock::now();
    }
    const DeviceBatch batch = transfer->take();
    const int64_t n_global = std::min<int64_t>(batch_size, n_train - b * batch_size);
    torch::manual_seed(step_seed(epoch, b));
    auto next_batch = [&] {
      if (++b == bpe) {
        loader->start_epoch(static_cast<uint64_t>(++epoch), 0);
        b = 0;
      }
      if (k + 1 < warmup + steps && !fetch()) throw Error("loader ended early");
    };
    if (forward_backward(batch, n_global, false, next_batch).finite) adam->step();
  }
  sync_device(device);
  return seconds_since(t0);
}

// Validation images one by one, as validate() runs them (the criterion included). Returns the seconds.
double Trainer::Impl::time_validation_images(const std::vector<int>& images) {
  double t = 0;
  for (int idx : images) {
    std::vector<TrainingSample> one{to_training_sample(data->read(idx))};
    auto t0 = Clock::now();
    DeviceBatch vb = val_transfer->now(one);
    AutocastGuard ac(device, bf16_training());
    models::Prediction p = net->predict(vb.image);
    entry->criterion(p, vb.targets, models::LossContext{config, graph}).item<double>();
    t += seconds_since(t0);
  }
  return t;
}

// Test images one by one, as evaluate() runs them (its precision). Returns the seconds.
double Trainer::Impl::time_evaluation_images(const std::vector<int>& images) {
  if (device.is_cuda()) set_tf32(opt.settings.evaluation.precision);
  const int size = opt.settings.size;
  double t = 0;
  for (int idx : images) {
    TrainingSample s = to_training_sample(data->read(idx));
    auto t0 = Clock::now();
    torch::Tensor image = torch::from_blob(s.image.data, {1, 1, size, size}, torch::kFloat32).clone().to(device);
    AutocastGuard ac(device, bf16_evaluation());
    models::Prediction p = net->predict(image);
    sync_device(device);
    t += seconds_since(t0);
  }
  return t;
}

StepTiming Trainer::time_steps(int warmup, int steps, int images) {
  Impl& I = *impl_;
  StepTiming out;
  const double timed = I.time_training_steps(warmup, steps);
  out.steps = steps;
  out.step_s = steps ? timed / steps : 0;
  I.net->eval();
  {
    torch::NoGradGuard ng;
    auto first = [&](Split split) {
      std::vector<int> all = I.data->info().indices(split);
      all.resize(std::min<size_t>(all.size(), static_cast<size_t>(std::max(0, images))));
      return all;
    };
    const std::vector<int> val = first(Split::kVal), test = first(Split::kTest);
    const double tv = I.time_validation_images(val), te = I.time_evaluation_images(test);
    out.images = static_cast<int>(std::max(val.size(), test.size()));
    out.validation_image_s = val.empty() ? 0 : tv / static_cast<double>(val.size());
    out.evaluation_image_s = test.empty() ? 0 : te / static_cast<double>(test.size());
  }
  I.net->train();
  return out;
}

}  // namespace orch::runner
