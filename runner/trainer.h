// Users' documentation: docs/training.md.
// Training and evaluation of one run (spec §5-§6), on one or several ranks.
//
// The Trainer builds the network from the run's settings, loads its dependency's weights (the frozen UNet, or
// HybridGNet+IGSC for Rasterize), and resumes from the newest valid checkpoint in RUN_DIR/checkpoints if there
// is one. train() runs the remaining epochs: Adam with coupled L2, the network's StepLR (set per epoch from
// the epoch number, so resuming needs no scheduler state), validation every `validate_every` epochs with the
// network's criterion, best.h5 on improvement (only after training.best_after_epoch), numbered checkpoints every
// `checkpoint_every` epochs. A non-finite loss or gradient stops the run at that step with a NonFiniteError
// (training.nonfinite "stop", the default) or skips the batch ("skip"). A lost or damaged best.h5 is restored
// from its copy, or rebuilt by validating the newest good checkpoint (with a warning).
//
// Determinism: the seed fixes the initial weights, the data order and augmentation (storage/loader.h) and,
// because torch's generators are re-seeded from (seed, epoch, batch, rank) before every step, the VAE noise.
// A run stopped anywhere and resumed from a checkpoint therefore takes exactly the same steps as one never
// stopped: with the same ranks and threads on a CPU the weights are bit-identical.
//
// Several ranks: each takes a disjoint shard of every global batch, gradients are averaged by GradientReducer
// (weighted by each rank's share of the batch, so an uneven last batch gives the global mean), rank 0 alone
// writes checkpoints, predictions and the store. Batch-norm statistics are per rank (not synchronised): with a
// global batch of 4 on 2 ranks each normalises over its own 2 images, as DDP without SyncBatchNorm does.
//
// Signals: a stop request (runner/signals.h) seen by any rank stops all of them after the current step, with a
// mid-epoch checkpoint. One Trainer per process; not thread-safe.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "core/errors.h"
#include "core/atomic_file.h"
#include "core/env.h"
#include "core/run_settings.h"
#include "runner/communicator.h"
#include "runner/training_hooks.h"
#include "storage/metrics_table.h"

namespace orch::runner {

struct EpochRecord {
  int64_t epoch = 0;        // 1-based: the epoch just finished
  double train_loss = 0;    // mean over the epoch's samples (all ranks)
  double val_criterion = 0; // NaN when not validated this epoch
  double learning_rate = 0;
  double seconds = 0;       // training and validation of the epoch (its checkpoint is written after the record)
  bool best = false;
};

struct TrainerOptions {
  RunSettings settings;
  std::string run_id;
  std::string checkpoints_dir;         // WorkspaceLayout::checkpoints(run)
  std::string predictions_path;        // WorkspaceLayout::predictions(run)
  std::string dataset_path;
  std::string dependency_checkpoint;   // best.h5 of the dependency run ("" when the network has none)
  Communicator* comm = nullptr;        // required; outlives the Trainer (runner/communicator.h)
  bool progress_bar = true;            // at a terminal, rank 0
  std::function<void(const std::string&)> log;        // plain lines (rank 0)
  std::function<void(const EpochRecord&)> on_epoch;   // rank 0, after each epoch, before its checkpoint
  TrainingHooks* hooks = nullptr;      // tests only (runner/training_hooks.h); outlives the Trainer
  // Polled after every step: true stops training at once, without a checkpoint (another worker took the run).
  std::function<bool()> abandoned;
  // Every checkpoint and predictions file is published through it (rank 0; core/atomic_file.h): the worker's claim
  // check. A refused publication throws FencedError out of train() or evaluate().
  PublishFence publish_fence;
  // What checkpoints and predictions are written, renamed and removed through (core/env.h): the system's unless
  // a test gives its own (a full disk, a failed rename). Outlives the Trainer.
  Env* env = &Env::system();
  // Timing only (orchestrator calibrate): the dependency's part stays random (no trained weights needed) and no
  // checkpoint is read; use time_steps(), not train().
  bool calibration = false;
};

// What one training step, one validation image and one test image cost on this device (Trainer::time_steps).
struct StepTiming {
  double step_s = 0, validation_image_s = 0, evaluation_image_s = 0;
  int steps = 0, images = 0;
};

// Thrown when the loss or the gradients stop being finite and training.nonfinite is "stop": what, where, and the
// newest good checkpoint to go back to.
class NonFiniteError : public Error {
 public:
  using Error::Error;
};

// Thrown when TrainerOptions::abandoned() said so.
class AbandonedError : public Error {
 public:
  using Error::Error;
};

struct TrainOutcome {
  bool finished = false;   // all epochs done, or stopped early (else stopped by a signal, checkpointed)
  bool stopped_early = false;  // by training.early_stop, at `epoch`
  int signal = 0;
  int64_t epoch = 0, batch = 0;  // position reached
  int64_t best_epoch = -1;
  double best_criterion = 0;
  int64_t resumed_from_epoch = -1, resumed_from_batch = -1;  // -1: fresh start
};

struct InferenceTime {
  std::string image_id;
  double seconds = 0;         // the forward pass, synchronised (the default timing)
  double launch_seconds = 0;  // until the call returned, not synchronised (the reference's timing)
  bool cold = false;
};

struct EvaluationOutcome {
  std::vector<TestMetric> metrics;  // rank 0 only
  std::vector<InferenceTime> times;
  std::string device;
  std::string predictions_path;
};

// Where the time of train() went (this process; benchmarks).
struct TrainStats {
  int64_t steps = 0;
  int64_t samples = 0;             // this rank's
  double step_seconds = 0;         // loader wait + forward + backward + reduction + optimizer, all steps
  double allreduce_wait_seconds = 0;  // waiting for gradient buckets after the backward pass
  double checkpoint_seconds = 0;   // writing checkpoints (rank 0) and the barrier after
  double validation_seconds = 0;   // the validation passes
  double loader_wait_seconds = 0;  // waiting for the loader's next batch (part of step_seconds)
};

class Trainer {
 public:
  explicit Trainer(TrainerOptions options);
  ~Trainer();
  TrainOutcome train();
  // Evaluates best.h5 on the test split (rank 0 writes predictions.h5; other ranks wait).
  EvaluationOutcome evaluate();
  // Times `steps` training steps after `warmup` (the weights change, nothing is saved), then the validation
  // criterion and the test-time forward pass on `images` images each, synchronised on a GPU.
  StepTiming time_steps(int warmup, int steps, int images);
  int rank() const;
  int world() const;
  const TrainStats& stats() const;
  // Where train() starts: the resumed checkpoint's position, or 0/0.
  int64_t start_epoch() const;
  int64_t start_batch() const;
  std::string device() const;
  std::string communicator() const;
  // The number of trainable parameters and the resolved model config (for provenance).
  std::string describe() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

// Whether training.device puts a run on CUDA here ("auto": when LibTorch sees a GPU). Throws for "cuda"
// without one.
bool use_cuda(const TrainingSpec& training);
std::string torch_version();

// StepLR of the network (spec §5), or training.lr_step_epochs / lr_gamma where set: (step in epochs, gamma).
std::pair<int, double> lr_schedule(const std::string& model_id, const TrainingSpec& training);
// The learning rate of `epoch` (0-based): training.learning_rate under the step schedule above, or its cosine
// (training.lr_decay).
double learning_rate_at(const std::string& model_id, const TrainingSpec& training, int64_t epoch);

}  // namespace orch::runner
