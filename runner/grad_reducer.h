// Data-parallel gradient averaging in buckets, overlapping the backward pass.
//
// The trainable parameters are grouped, in reverse order of registration (roughly the order autograd produces
// their gradients), into buckets of about `bucket_bytes`. A hook on each parameter copies its gradient, scaled
// by this rank's share of the global batch, into its bucket; when a bucket is complete it is summed across
// ranks in the background (Communicator::allreduce_async). Buckets are launched strictly in index order, so
// every rank issues the same collectives in the same order even if its gradients arrive in another order, a
// parameter gets no gradient, or the rank had no sample in this step (finish_step fills what is missing with
// zeros). finish_step waits and writes the sums into the parameters' .grad.
// With one rank it does nothing: the gradients are already the global ones.
// Not thread-safe: one per training loop.
#pragma once

#include <ATen/core/Tensor.h>

#include <functional>
#include <vector>

#include "runner/communicator.h"

namespace orch::runner {

class GradientReducer {
 public:
  GradientReducer(std::vector<at::Tensor> params, Communicator& comm, size_t bucket_bytes = 25u << 20);
  ~GradientReducer();
  GradientReducer(const GradientReducer&) = delete;
  GradientReducer& operator=(const GradientReducer&) = delete;

  // scale: this rank's samples / the global batch's samples (0 when this rank has none).
  void begin_step(double scale);
  void finish_step();
  size_t buckets() const { return buckets_.size(); }
  double last_wait_seconds() const { return wait_seconds_; }

 private:
  struct Slot {
    at::Tensor param;
    size_t bucket = 0;
    int64_t offset = 0, numel = 0;
    unsigned hook = 0;
    bool ready = false;
  };
  struct Bucket {
    at::Tensor flat;
    int pending = 0, size = 0;
    std::function<void()> wait;
  };
  void on_grad(size_t slot, const at::Tensor& grad);
  void launch_ready();

  Communicator& comm_;
  std::vector<Slot> slots_;
  std::vector<Bucket> buckets_;
  size_t next_launch_ = 0;
  double scale_ = 1;
  bool active_ = false;
  double wait_seconds_ = 0;
};

}  // namespace orch::runner
