#include "runner/grad_reducer.h"

#include <ATen/ATen.h>
#include <c10/core/GradMode.h>

#include <chrono>

#include "core/errors.h"

namespace orch::runner {

GradientReducer::GradientReducer(std::vector<at::Tensor> params, Communicator& comm, size_t bucket_bytes)
    : comm_(comm) {
  if (comm_.world() == 1) return;
  int64_t bucket_elems = std::max<int64_t>(1, static_cast<int64_t>(bucket_bytes / sizeof(float)));
  for (auto it = params.rbegin(); it != params.rend(); ++it) {
    if (!it->requires_grad()) continue;
    if (it->scalar_type() != at::kFloat) throw Error("gradient reducer: only float32 parameters are supported");
    if (buckets_.empty() || buckets_.back().size >= bucket_elems) buckets_.push_back({});
    Slot s;
    s.param = *it;
    s.bucket = buckets_.size() - 1;
    s.offset = buckets_.back().size;
    s.numel = it->numel();
    buckets_.back().size += static_cast<int>(s.numel);
    ++buckets_.back().pending;
    slots_.push_back(s);
  }
  for (auto& b : buckets_) b.flat = at::zeros({b.size}, slots_.front().param.options().requires_grad(false));
  for (size_t i = 0; i < slots_.size(); ++i)
    slots_[i].hook = slots_[i].param.register_hook([this, i](const at::Tensor& g) { on_grad(i, g); });
}

GradientReducer::~GradientReducer() {
  for (auto& s : slots_) s.param.remove_hook(s.hook);
}

void GradientReducer::begin_step(double scale) {
  if (slots_.empty()) return;
  scale_ = scale;
  active_ = true;
  next_launch_ = 0;
  for (auto& s : slots_) s.ready = false;
  for (auto& b : buckets_) {
    b.pending = 0;
    b.wait = nullptr;
  }
  for (auto& s : slots_) ++buckets_[s.bucket].pending;
}

void GradientReducer::on_grad(size_t i, const at::Tensor& g) {
  if (!active_) return;
  Slot& s = slots_[i];
  if (s.ready) return;  // a parameter used twice gets one accumulated gradient; ignore any repeat
  at::Tensor dst = buckets_[s.bucket].flat.narrow(0, s.offset, s.numel);
  c10::NoGradGuard ng;
  dst.copy_(g.reshape({-1}));
  if (scale_ != 1.0) dst.mul_(scale_);
  s.ready = true;
  if (--buckets_[s.bucket].pending == 0) launch_ready();
}

void GradientReducer::launch_ready() {
  while (next_launch_ < buckets_.size() && buckets_[next_launch_].pending == 0) {
    buckets_[next_launch_].wait = comm_.allreduce_async(buckets_[next_launch_].flat);
    ++next_launch_;
  }
}

void GradientReducer::finish_step() {
  if (slots_.empty()) return;
  c10::NoGradGuard ng;
  for (auto& s : slots_)
    if (!s.ready) {  // no gradient this step (no sample on this rank, or an unused parameter): contribute zeros
      buckets_[s.bucket].flat.narrow(0, s.offset, s.numel).zero_();
      s.ready = true;
      --buckets_[s.bucket].pending;
    }
  launch_ready();
  auto t0 = std::chrono::steady_clock::now();
  for (auto& b : buckets_) {
    std::function<void()> wait = std::move(b.wait);  // each handle waited on once, even when one throws
    b.wait = nullptr;
    if (wait) wait();
  }
  wait_seconds_ = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  for (auto& s : slots_) {
    at::Tensor src = buckets_[s.bucket].flat.narrow(0, s.offset, s.numel).view(s.param.sizes());
    at::Tensor& grad = s.param.mutable_grad();
    if (grad.defined()) grad.copy_(src);
    else grad = src.clone();
  }
  active_ = false;
}

}  // namespace orch::runner
