// Training batches on their way to the device. A host batch (the loader's samples) becomes one set of tensors on
// the training device: image [n,1,h,w] float, mask [n,h,w] int64, distance maps [n,c,h,w] float, landmarks
// [n,p,2] float.
//
// With overlap on a CUDA device (training.pipeline "overlap", the default) the host tensors are staged in pinned
// memory and copied on a side stream, so the copy of batch k+1 runs while step k computes; the compute stream
// waits on an event before it touches them, and the caching allocator is told they are used there. On the CPU,
// or with "plain", the tensors are built and copied where they are used (pageable memory, the compute stream).
// The values are the same either way. Not thread-safe: one per trainer.
#pragma once

#include <memory>
#include <vector>

#include "core/augment.h"
#include "models/network.h"

namespace orch::runner {

struct DeviceBatch {
  torch::Tensor image;
  models::Targets targets;
  int64_t size = 0;  // images
};

class BatchTransfer {
 public:
  BatchTransfer(const torch::Device& device, int classes_fg, int points, bool overlap);
  ~BatchTransfer();
  BatchTransfer(const BatchTransfer&) = delete;
  BatchTransfer& operator=(const BatchTransfer&) = delete;

  // Starts moving `samples` to the device (returns at once when overlapping); one batch at a time.
  void start(const std::vector<TrainingSample>& samples);
  bool pending() const;
  // The batch start() began, usable on the current (compute) stream.
  DeviceBatch take();
  // A batch needed now (validation), copied on the compute stream; independent of start()/take().
  DeviceBatch now(const std::vector<TrainingSample>& samples);
  // Whether copies go through pinned memory and a side stream (a CUDA device with overlap asked for).
  bool overlapping() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace orch::runner
