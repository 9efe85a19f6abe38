// Building blocks of the networks (spec §2-§3): ChebConv, the per-node instance norm, the graph operators as
// tensors, the IGSC lookup, pre-activation residual blocks with batch-statistics batch norm, the DG encoder
// (optionally fusing a frozen UNet's decoder maps), the UNet-style dense decoder and the VAE head.
// Modules are not thread-safe (LibTorch's rule); the free functions are.
#pragma once

#include <torch/nn/module.h>
#include <torch/nn/modules/batchnorm.h>
#include <torch/nn/modules/container/sequential.h>
#include <torch/nn/modules/conv.h>
#include <torch/nn/modules/linear.h>
#include <torch/nn/pimpl.h>

#include <array>
#include <vector>

#include "core/graph.h"

namespace orch::models {

// A node operator M (rows x cols) applied along the node axis: out = M·x for x (B, cols, F). Every operator
// here is very sparse (L̂ has 2 non-zeros per row, U 1-2, D 2), so it is stored as each row's non-zero columns
// and weights, padded to the widest row, and applied as one index_select and a weighted sum: O(N·F) instead of
// a dense O(N²·F) matmul, which with this CPU's BLAS was most of a 64-px step of the seven-prediction networks.
// The result equals the dense product bit for bit (at most two products per row, both exact power-of-two
// scalings). Immutable after construction; safe to share between threads.
class GraphOperator {
 public:
  GraphOperator() = default;
  explicit GraphOperator(const torch::Tensor& dense);  // (rows, cols), any floating type
  torch::Tensor apply(const torch::Tensor& x) const;  // (B, cols, F) -> (B, rows, F)
  GraphOperator to(const torch::Device& device) const;
  int64_t rows() const { return dense_.size(0); }
  int64_t cols() const { return dense_.size(1); }
  const torch::Tensor& dense() const { return dense_; }

 private:
  torch::Tensor dense_;   // (rows, cols), kept for tests and inspection
  torch::Tensor index_;   // int64 (rows * width): the columns of each row's non-zeros, padded with column 0
  torch::Tensor weight_;  // (rows, width, 1): their values, 0 where padded
  int64_t width_ = 0;
};

// The graph operators of a data set kind, plus which distance-map channel each node reads.
struct GraphTensors {
  GraphOperator cheb, cheb_coarse;  // L̂ on A (N1 x N1) and on AD (N2 x N2)
  GraphOperator down, up;           // D (N2 x N1), U (N1 x N2)
  torch::Tensor channel_fine, channel_coarse;  // int64 (N1), (N2): 0 lungs, 1 heart
  std::vector<int> fine_counts, coarse_counts;

  static GraphTensors of(const OrganLayout& layout);
  GraphTensors to(const torch::Device& device) const;
};

torch::Tensor to_tensor(const DenseMatrix& m);

// X' = sum_k T_k(L̂) X Θ_k + b (PyG ChebConv, normalization sym, lambda_max 2). Θ_k glorot-uniform, b N(0, 0.1).
// Chebyshev graph convolution. One producing two features per node (x, y: the position heads) computes in
// float32 even under bf16 autocast (runner/precision.h): bfloat16's 8-bit mantissa would put a node on a grid of
// 1/256 of the image, 4 pixels at 1024 px, and everything downstream (lookups, rasterization, losses) reads it.
class ChebConvImpl : public torch::nn::Module {
 public:
  ChebConvImpl(int in, int out, int k, bool bias = true);
  torch::Tensor forward(const torch::Tensor& x, const GraphOperator& lhat);  // x (B, N, in), lhat (N, N)
  torch::Tensor weight;  // (K, in, out)
  torch::Tensor bias;    // (out) or undefined
};
TORCH_MODULE(ChebConv);

// InstanceNorm1d on (B, N, F) as the reference applies it: each node's F features normalised (no affine).
torch::Tensor node_norm(const torch::Tensor& x);

// Mean of 3 x 3 bilinear samples at (x + {-1, 0, 1}, y + {-1, 0, 1}) pixels around each node (torchvision
// roi_align, aligned, sampling_ratio -1, output 1 x 1, window 3), with roi_align's boundary rules: a sample
// beyond [-1, size] contributes 0 but counts; others are clamped into the map. positions (B, N, 2) in [0, 1]
// units of the square map (scaled by its width); features (B, C, h, w). Returns (B, N, C). The reference's
// roi_align passes no gradient to the positions; position_gradients = true lets it flow through the weights.
torch::Tensor igsc_lookup(const torch::Tensor& positions, const torch::Tensor& features, bool position_gradients);

// Pre-activation residual block: BN ReLU Conv3 BN ReLU Conv3 (+ Conv1 BN skip when channels change), ReLU.
// Batch norm keeps no running statistics, so it normalises with the batch's statistics in eval mode too.
class ResidualBlockImpl : public torch::nn::Module {
 public:
  ResidualBlockImpl(int in, int out);
  torch::Tensor forward(const torch::Tensor& x);

 private:
  torch::nn::BatchNorm2d bn1{nullptr}, bn2{nullptr}, skip_bn{nullptr};
  torch::nn::Conv2d conv1{nullptr}, conv2{nullptr}, skip_conv{nullptr};
};
TORCH_MODULE(ResidualBlock);

// Channels of the six encoder levels (8, 16, 32, 64, 128, 128), sizes S, S/2, ..., S/32.
constexpr std::array<int, 6> kLevelChannels{8, 16, 32, 64, 128, 128};

// The DG encoder ("EncoderConv"). With fuse = true it concatenates a frozen UNet's maps u1..u6 (conv1up ...
// conv6up) at matching resolutions: conv1 on the input, then maxpool(cat[conv1, u1]) and cat[., u2] into
// conv2, and cat[maxpool(conv_k-1), u_k] into conv_k for k = 3..6 (spec §3.6, §3.7).
class EncoderImpl : public torch::nn::Module {
 public:
  EncoderImpl(int in_channels, bool fuse);
  // Returns conv1..conv6 (index 0..5). `unet_maps` are u1..u6 when fusing (index 0..5), else empty.
  std::vector<torch::Tensor> forward(const torch::Tensor& x, const std::vector<torch::Tensor>& unet_maps = {});

 private:
  bool fuse_;
  std::vector<ResidualBlock> blocks_;
};
TORCH_MODULE(Encoder);

// The UNet decoder: Upsample x2 (bilinear, align_corners) -> cat[up, skip] -> residual block, five times,
// from conv6 back to full resolution; optional 1x1 head to n_classes logits. Returns conv5up ... conv1up
// (index 0..4) and the logits (index 5, undefined without a head).
class DenseDecoderImpl : public torch::nn::Module {
 public:
  DenseDecoderImpl(int n_classes, bool head);
  std::vector<torch::Tensor> forward(const std::vector<torch::Tensor>& encoder);  // encoder conv1..conv6

 private:
  std::vector<ResidualBlock> blocks_;
  torch::nn::Conv2d head_{nullptr};
};
TORCH_MODULE(DenseDecoder);

// The VAE head: fc_mu and fc_logvar from the flattened bottleneck; z = mu + eps * exp(logvar / 2) in training
// and mu in evaluation.
class VaeHeadImpl : public torch::nn::Module {
 public:
  VaeHeadImpl(int64_t flat, int latents);
  std::array<torch::Tensor, 3> forward(const torch::Tensor& bottleneck);  // z, mu, logvar

 private:
  torch::nn::Linear mu_{nullptr}, logvar_{nullptr};
};
TORCH_MODULE(VaeHead);

// dec_lin: Linear(z -> 16 * N2), weight N(0, 0.1), default bias; ReLU; reshape (B, N2, 16).
class GraphEntryImpl : public torch::nn::Module {
 public:
  GraphEntryImpl(int latents, int nodes);
  torch::Tensor forward(const torch::Tensor& z);

 private:
  int nodes_;
  torch::nn::Linear lin_{nullptr};
};
TORCH_MODULE(GraphEntry);

}  // namespace orch::models
