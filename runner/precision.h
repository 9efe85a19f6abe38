// Arithmetic on the training device (training.precision / evaluation.precision): "fp32", "tf32" (TF32 matmuls
// and convolutions on a CUDA GPU; the same as fp32 on the CPU) or "bf16" (autocast to bfloat16 on the GPU, and on
// the CPU where LibTorch supports it: matmuls and convolutions in bf16, weights, gradients and Adam's state in
// float32). AutocastGuard is scoped and per thread, as LibTorch's autocast state is; set_tf32 is process-wide.
#pragma once

#include <ATen/autocast_mode.h>
#include <ATen/Context.h>
#include <torch/version.h>

#include <string>

#include "core/choices.h"

namespace orch::runner {

// Autocast to bfloat16 on `device` for its lifetime; a no-op when not enabled.
class AutocastGuard {
 public:
  AutocastGuard(const c10::Device& d, bool enabled) : cuda_(d.is_cuda()), enabled_(enabled) {
    if (!enabled_) return;
#if TORCH_VERSION_MAJOR > 2 || (TORCH_VERSION_MAJOR == 2 && TORCH_VERSION_MINOR >= 4)
    const auto type = cuda_ ? at::kCUDA : at::kCPU;
    was_ = at::autocast::is_autocast_enabled(type);
    at::autocast::set_autocast_dtype(type, at::kBFloat16);
    at::autocast::set_autocast_enabled(type, true);
#else
    if (cuda_) {
      was_ = at::autocast::is_enabled();
      at::autocast::set_autocast_gpu_dtype(at::kBFloat16);
      at::autocast::set_enabled(true);
    } else {
      was_ = at::autocast::is_cpu_enabled();
      at::autocast::set_autocast_cpu_dtype(at::kBFloat16);
      at::autocast::set_cpu_enabled(true);
    }
#endif
    at::autocast::increment_nesting();
  }
  ~AutocastGuard() {
    if (!enabled_) return;
    if (at::autocast::decrement_nesting() == 0) at::autocast::clear_cache();
#if TORCH_VERSION_MAJOR > 2 || (TORCH_VERSION_MAJOR == 2 && TORCH_VERSION_MINOR >= 4)
    at::autocast::set_autocast_enabled(cuda_ ? at::kCUDA : at::kCPU, was_);
#else
    if (cuda_) at::autocast::set_enabled(was_);
    else at::autocast::set_cpu_enabled(was_);
#endif
  }
  AutocastGuard(const AutocastGuard&) = delete;
  AutocastGuard& operator=(const AutocastGuard&) = delete;

 private:
  bool cuda_, enabled_, was_ = false;
};

// TF32 for CUDA matmuls and convolutions as `precision` asks: off for fp32, on for tf32 and bf16 (what autocast
// leaves in float32 then runs in TF32).
inline void set_tf32(Precision precision) {
  const bool on = precision != Precision::kFp32;
  at::globalContext().setAllowTF32CuBLAS(on);
  at::globalContext().setAllowTF32CuDNN(on);
}

}  // namespace orch::runner
