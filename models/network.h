// The common interface of the eleven networks: one forward pass from a batch of images to a Prediction.
//
// A Prediction holds what the network outputs in the reference's order: node predictions (final first;
// coarse-graph ones flagged), dense outputs (logits or soft masks), the one dense output evaluation uses, and
// the VAE's mu and log-variance. Losses and validation criteria are in models/losses.h and the registry.
// Modules are not thread-safe; use one per thread (LibTorch's rule).
#pragma once

#include <torch/nn/module.h>

#include <memory>
#include <string>
#include <vector>

#include "models/model_config.h"

namespace orch::models {

struct Prediction {
  std::vector<torch::Tensor> points;  // (B, N, 2) in [0, 1] image units; points[0] is the final prediction
  std::vector<bool> coarse;           // per entry of points: on the coarse graph (N2 nodes)
  std::vector<torch::Tensor> dense;   // dense outputs the loss uses (B, C, H, W)
  torch::Tensor segmentation;         // the dense output evaluation argmaxes (undefined for point models)
  torch::Tensor mu, logvar;           // VAE head (undefined for UNets)
};

// What a batch supervises with: labels (B, H, W) int64, distance maps (B, C, H, W), landmarks (B, N1, 2).
struct Targets {
  torch::Tensor mask, dmaps, landmarks;
};

class Network : public torch::nn::Module {
 public:
  explicit Network(const ModelConfig& config) : config_(config) {}
  // image (B, 1, H, W) in [0, 1]; converted to the network's memory format first.
  Prediction predict(const torch::Tensor& image) {
    return run(config_.channels_last ? image.contiguous(at::MemoryFormat::ChannelsLast) : image);
  }
  // The module whose weights a dependency provides (the frozen UNet, or the whole network for Rasterize);
  // nullptr when there is none.
  virtual std::shared_ptr<torch::nn::Module> dependency_module() { return nullptr; }
  const ModelConfig& config() const { return config_; }

 protected:
  virtual Prediction run(const torch::Tensor& image) = 0;
  ModelConfig config_;
};

}  // namespace orch::models
