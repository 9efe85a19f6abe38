#include "models/losses.h"

#include <torch/torch.h>

namespace orch::models {

namespace F = torch::nn::functional;

at::Tensor point_mse(const at::Tensor& pred, const at::Tensor& target) { return F::mse_loss(pred, target); }

at::Tensor kl_divergence(const at::Tensor& mu, const at::Tensor& logvar) {
  return -0.5 * torch::mean(torch::mean(1 + logvar - mu.pow(2) - logvar.exp(), 1));
}

at::Tensor distance_term(const at::Tensor& pred, const at::Tensor& dmaps, const at::Tensor& channel) {
  const int64_t B = pred.size(0);
  torch::Tensor grid = (2 * pred - 1).clamp(-1, 1);
  std::vector<torch::Tensor> parts;
  auto ch = channel.to(torch::kCPU);
  for (int64_t c = 0; c < dmaps.size(1); ++c) {
    torch::Tensor nodes = torch::nonzero(ch == c).flatten().to(pred.device());
    if (nodes.numel() == 0) continue;
    torch::Tensor g = grid.index_select(1, nodes).unsqueeze(1);  // (B, 1, Nc, 2)
    torch::Tensor s = F::grid_sample(dmaps.narrow(1, c, 1), g,
                                     F::GridSampleFuncOptions().mode(torch::kBilinear).padding_mode(torch::kZeros).align_corners(true));
    parts.push_back(s.reshape({B, -1}));
  }
  return torch::cat(parts, 1).mean();
}

at::Tensor hcd(const at::Tensor& pred, const at::Tensor& target, const at::Tensor& dmaps, const at::Tensor& channel,
               double beta) {
  return point_mse(pred, target) + beta * distance_term(pred, dmaps, channel);
}

at::Tensor dice_loss(const at::Tensor& logits, const at::Tensor& labels, bool softmax) {
  torch::Tensor p = softmax ? torch::softmax(logits, 1) : logits;
  torch::Tensor t = F::one_hot(labels, logits.size(1)).permute({0, 3, 1, 2}).to(p.scalar_type()) + 1e-6;
  torch::Tensor inter = (p * t).sum({1, 2, 3});
  torch::Tensor card = (p + t).sum({1, 2, 3});
  return (1 - 2 * inter / (card + 1e-6)).mean();
}

at::Tensor dense_loss(const at::Tensor& logits, const at::Tensor& labels, bool probabilities) {
  if (probabilities)
    return dice_loss(logits, labels, false) + F::nll_loss(torch::log(logits.clamp_min(1e-12)), labels);
  return dice_loss(logits, labels, true) + F::cross_entropy(logits, labels);
}

at::Tensor mean_dice(const at::Tensor& logits, const at::Tensor& labels, int num_classes) {
  torch::Tensor seg = logits.argmax(1);
  std::vector<torch::Tensor> per_class;
  for (int c = 1; c < num_classes; ++c) {
    torch::Tensor a = (seg == c), b = (labels == c);
    torch::Tensor inter = (a & b).sum({1, 2}).to(torch::kFloat64);
    torch::Tensor size = (a.sum({1, 2}) + b.sum({1, 2})).to(torch::kFloat64);
    // medpy returns 0 when both are empty (ZeroDivisionError caught)
    per_class.push_back(torch::where(size > 0, 2 * inter / size.clamp_min(1), torch::zeros_like(size)));
  }
  return torch::stack(per_class, 1).mean(1).mean();
}

}  // namespace orch::models
