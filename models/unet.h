// The UNet (spec §3.5), used alone, as UNet Joint's two halves, and frozen inside the joint networks.
// Not thread-safe (a torch module).
#pragma once

#include "models/layers.h"

namespace orch::models {

class UNetImpl : public torch::nn::Module {
 public:
  // in_channels 1 and fuse false: the plain UNet; fuse true: UNet Joint's UNet2 (encoder fusing u1..u6).
  UNetImpl(int in_channels, int n_classes, bool fuse);
  // Returns u1..u6 (conv1up, conv2up, conv3up, conv4up, conv5up, conv6up = the bottleneck) at index 0..5 and
  // the logits at index 6: the reference's rtn_all order reversed into pyramid order.
  std::vector<torch::Tensor> forward_all(const torch::Tensor& x, const std::vector<torch::Tensor>& fused = {});
  torch::Tensor forward(const torch::Tensor& x) { return forward_all(x).back(); }

 private:
  Encoder encoder_{nullptr};
  DenseDecoder decoder_{nullptr};
};
TORCH_MODULE(UNet);

}  // namespace orch::models
