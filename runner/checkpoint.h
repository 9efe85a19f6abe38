// Users' documentation: docs/formats.md.
// Training checkpoints in HDF5 (readable by h5py), written atomically, verified by a checksum.
//
// Layout (format version 1):
//   /parameters/<name>           float32 (or the parameter's dtype), the module's parameters by their names
//   /buffers/<name>              the module's buffers
//   /optimizer/<index>/{exp_avg, exp_avg_sq, max_exp_avg_sq}, attribute step: Adam state per parameter, in
//                                the order of the optimizer's parameter list (index = position)
//   /rng                         uint8, torch's default CPU generator state
//   attributes: format_version, epoch, batch, best_epoch, best_criterion, config_hash, extra (JSON), checksum
// The checksum (FNV-1a 64) covers every dataset and attribute, walked in name order so that it can be recomputed
// from the file alone: a truncated or corrupted file is detected and CheckpointSeries falls back to the previous
// one.
// Not thread-safe: one writer per run (rank 0).
#pragma once

#include "core/atomic_file.h"

#include <torch/nn/module.h>
#include <torch/optim/adam.h>

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace orch::runner {

struct CheckpointState {
  int64_t epoch = 0;   // completed epochs
  int64_t batch = 0;   // batches completed in the current epoch (mid-epoch checkpoints)
  int64_t best_epoch = -1;
  double best_criterion = 0;
  std::string config_hash;
  std::string extra = "{}";  // JSON: scheduler state and anything else the trainer keeps
};

// Writes module parameters and buffers, the Adam state, torch's CPU RNG state and `state` to `path`
// (temporary file, fsync, rename).
void save_checkpoint(const std::string& path, torch::nn::Module& module, torch::optim::Adam& optimizer,
                     const CheckpointState& state, const PublishFence& fence = nullptr, Env& env = Env::system());

// Reads a checkpoint into `module` and `optimizer` (whose parameter list must match the one saved) and restores
// torch's CPU RNG. Throws orch::Error when the file is unreadable, its checksum does not match, or its shapes do
// not fit the module; nothing is modified then.
CheckpointState load_checkpoint(const std::string& path, torch::nn::Module& module, torch::optim::Adam& optimizer);

// Copies parameters and buffers named `prefix` + (the module's own names) from a verified checkpoint into
// `module` (a dependency's weights: prefix "unet." takes the UNet out of a UNet run's checkpoint). Throws
// orch::Error naming what is missing or mismatched; nothing is modified then.
void load_weights(const std::string& path, torch::nn::Module& module, const std::string& prefix = "");

// True when the file opens and its checksum matches.
bool verify_checkpoint(const std::string& path, std::string* why = nullptr);

// Numbered checkpoints in one folder (ckpt-<epoch>-<batch>.h5), the newest `keep` kept, plus the best one
// (best.h5) and a verified second copy of it (best.copy.h5, storage/layout.h names both), so that a lost or
// damaged best.h5 is restored from its copy.
class CheckpointSeries {
 public:
  // Every file it publishes (numbered, best, best's copy, a restored best) is published through `fence`
  // (core/atomic_file.h); a refused publication throws FencedError and removes nothing. Files are written,
  // renamed and removed through `env` (core/env.h).
  CheckpointSeries(std::string dir, int keep = 3, PublishFence fence = nullptr, Env& env = Env::system());
  std::string save(torch::nn::Module& module, torch::optim::Adam& optimizer, const CheckpointState& state);
  // Writes best.h5, then copies it to best.copy.h5 (each atomically).
  void save_best(torch::nn::Module& module, torch::optim::Adam& optimizer, const CheckpointState& state);
  // The newest checkpoint that verifies; warnings name the ones skipped. nullopt when none verifies.
  std::optional<std::string> newest_valid(std::vector<std::string>* warnings = nullptr) const;
  // best.h5 when it verifies; else, restored from best.copy.h5 when that verifies (with a warning); else nullopt
  // (warnings say why).
  std::optional<std::string> verified_best(std::vector<std::string>* warnings = nullptr) const;
  std::vector<std::string> list() const;  // oldest first
  std::string best_path() const;
  std::string best_copy_path() const;

 private:
  std::string dir_;
  int keep_;
  PublishFence fence_;
  Env* env_;
};

}  // namespace orch::runner
