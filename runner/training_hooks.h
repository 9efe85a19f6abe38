// What a test may do to a training run at an exact step, without a flag in the product: the trainer asks its
// TrainingHooks (TrainerOptions::hooks, WorkerOptions::hooks) before and after each step. In-process tests install
// StepFaults directly; process tests preload tests/faults/training_faults.cpp (LD_PRELOAD), which defines
// `orch_test_training_hooks`, found by preloaded_training_hooks(). Production never installs hooks: with none, the
// trainer behaves as if every hook said no. (A diverged loss and a signal at an exact step are the two faults no
// outside injector can time; file writes, renames, locks and the clock go through core/env.h, and kills at a
// chosen rename come from tests/faults/.)
// A hook is called on every rank from the training thread.
#pragma once

#include <cstdint>

namespace orch::runner {

class TrainingHooks {
 public:
  virtual ~TrainingHooks() = default;
  // Before step `step` (counted from 1 within this attempt): true makes its loss NaN (on this rank).
  virtual bool poison_loss(int64_t step) { return false; }
  // After step `step` of this attempt: true acts as if SIGTERM had arrived (checkpoint, exit 75).
  virtual bool stop_after(int64_t step) { return false; }
};

// Stop after a number of steps, a NaN loss at one step (-1: never).
class StepFaults : public TrainingHooks {
 public:
  StepFaults(int64_t stop_after_steps, int64_t nan_at_step) : stop_(stop_after_steps), nan_(nan_at_step) {}
  bool poison_loss(int64_t step) override { return nan_ >= 0 && step == nan_; }
  bool stop_after(int64_t step) override { return stop_ >= 0 && step >= stop_; }

 private:
  int64_t stop_, nan_;
};

// The hooks a preloaded test library provides (the C symbol `orch_test_training_hooks`); null when none is loaded.
TrainingHooks* preloaded_training_hooks();

}  // namespace orch::runner
