#include "models/layers.h"

#include <c10/core/impl/LocalDispatchKeySet.h>

#include <optional>

#include <torch/torch.h>

#include <algorithm>
#include <cmath>
#include <vector>

namespace orch::models {

namespace F = torch::nn::functional;

torch::Tensor to_tensor(const DenseMatrix& m) {
  return torch::from_blob(const_cast<float*>(m.data.data()), {m.rows, m.cols}, torch::kFloat32).clone();
}

static torch::Tensor channel_index(const OrganLayout& layout, const std::vector<int>& counts) {
  std::vector<int64_t> idx;
  for (size_t o = 0; o < counts.size(); ++o)
    for (int i = 0; i < counts[o]; ++i) idx.push_back(layout.organs[o].label - 1);
  return torch::tensor(idx, torch::kInt64);
}

GraphOperator::GraphOperator(const torch::Tensor& dense) : dense_(dense.contiguous()) {
  const int64_t rows = dense_.size(0);
  torch::Tensor nz = dense_.ne(0);
  width_ = std::max<int64_t>(1, nz.sum(1).max().item<int64_t>());
  torch::Tensor cpu = dense_.to(torch::kCPU, torch::kFloat64);
  auto acc = cpu.accessor<double, 2>();
  std::vector<int64_t> idx(rows * width_, 0);
  std::vector<double> w(rows * width_, 0.0);
  for (int64_t r = 0; r < rows; ++r) {
    int64_t k = 0;
    for (int64_t c = 0; c < dense_.size(1); ++c)
      if (acc[r][c] != 0) {
        idx[r * width_ + k] = c;
        w[r * width_ + k] = acc[r][c];
        ++k;
      }
  }
  index_ = torch::tensor(idx, torch::kInt64).to(dense_.device());
  weight_ = torch::tensor(w, torch::kFloat64).reshape({rows, width_, 1}).to(dense_.device(), dense_.scalar_type());
}

torch::Tensor GraphOperator::apply(const torch::Tensor& x) const {
  torch::Tensor picked = x.index_select(x.dim() - 2, index_);  // (.., rows * width, F)
  std::vector<int64_t> shape(x.sizes().begin(), x.sizes().end() - 2);
  shape.insert(shape.end(), {rows(), width_, x.size(-1)});
  torch::Tensor terms = picked.view(shape) * weight_;
  return width_ == 1 ? terms.squeeze(-2) : terms.sum(-2);
}

GraphOperator GraphOperator::to(const torch::Device& device) const {
  GraphOperator o = *this;
  o.dense_ = dense_.to(device);
  o.index_ = index_.to(device);
  o.weight_ = weight_.to(device);
  return o;
}

GraphTensors GraphTensors::of(const OrganLayout& layout) {
  auto g = GraphOperators::of(layout);
  GraphTensors t;
  t.cheb = GraphOperator(to_tensor(g.cheb));
  t.cheb_coarse = GraphOperator(to_tensor(g.cheb_coarse));
  t.down = GraphOperator(to_tensor(g.down));
  t.up = GraphOperator(to_tensor(g.up));
  t.fine_counts = g.fine_counts;
  t.coarse_counts = g.coarse_counts;
  t.channel_fine = channel_index(layout, g.fine_counts);
  t.channel_coarse = channel_index(layout, g.coarse_counts);
  return t;
}

GraphTensors GraphTensors::to(const torch::Device& d) const {
  GraphTensors t = *this;
  for (auto* x : {&t.cheb, &t.cheb_coarse, &t.down, &t.up}) *x = x->to(d);
  for (auto* x : {&t.channel_fine, &t.channel_coarse}) *x = x->to(d);
  return t;
}

ChebConvImpl::ChebConvImpl(int in, int out, int k, bool with_bias) {
  // Each Θ_k is a bias-free Linear reset with glorot-uniform, bound sqrt(6 / (in + out)) (J/models/chebConv.py).
  double bound = std::sqrt(6.0 / (in + out));
  weight = register_parameter("weight", torch::empty({k, in, out}).uniform_(-bound, bound));
  if (with_bias) bias = register_parameter("bias", torch::empty({out}).normal_(0.0, 0.1));
}

torch::Tensor ChebConvImpl::forward(const torch::Tensor& x_in, const GraphOperator& lhat) {
  const int64_t k = weight.size(0);
  const bool coordinates = weight.size(2) == 2;
  // Position heads: autocast off and float32 inputs (see layers.h).
  std::optional<c10::impl::ExcludeDispatchKeyGuard> no_autocast;
  if (coordinates) no_autocast.emplace(c10::autocast_dispatch_keyset);
  const torch::Tensor x = coordinates ? x_in.to(torch::kFloat32) : x_in;
  // T_0 .. T_{K-1} side by side, then one product with the stacked Θ: fewer, larger operations than K
  // separate products (the sum over k happens inside the one matmul).
  std::vector<torch::Tensor> t{x};
  if (k > 1) t.push_back(lhat.apply(x));
  for (int64_t i = 2; i < k; ++i) t.push_back(2 * lhat.apply(t[i - 1]) - t[i - 2]);
  torch::Tensor stacked = k == 1 ? x : torch::cat(t, -1);
  torch::Tensor out = torch::matmul(stacked, weight.reshape({k * weight.size(1), weight.size(2)}));
  if (bias.defined()) out = out + bias;
  return out;
}

torch::Tensor node_norm(const torch::Tensor& x) {
  return torch::layer_norm(x, {x.size(-1)}, {}, {}, 1e-5);
}

torch::Tensor igsc_lookup(const torch::Tensor& positions, const torch::Tensor& features, bool position_gradients) {
  const int64_t B = features.size(0), h = features.size(2), w = features.size(3);
  const int64_t N = positions.size(1);
  torch::Tensor p = position_gradients ? positions : positions.detach();
  p = p * static_cast<double>(w);  // pixel-index coordinates: pixel i is centred at i
  auto offsets = torch::tensor({-1.0, 0.0, 1.0}, p.options());
  // (B, N, 3, 3) sample coordinates: x varies along the last axis, y along the one before.
  torch::Tensor sx = (p.select(2, 0).unsqueeze(-1) + offsets).unsqueeze(2).expand({B, N, 3, 3});
  torch::Tensor sy = (p.select(2, 1).unsqueeze(-1) + offsets).unsqueeze(3).expand({B, N, 3, 3});
  // roi_align's rules: a sample beyond [-1, size] contributes 0 (but counts in the mean of 9); any other is
  // clamped into [0, size - 1]. grid_sample with border padding clamps exactly so (its gradient is 0 where it
  // clamps, as roi_align's), and one fused kernel does what gathering four corners per sample took ~40
  // operations for.
  torch::Tensor valid = ((sy >= -1.0) & (sy <= static_cast<double>(h)) & (sx >= -1.0) & (sx <= static_cast<double>(w)))
                            .to(p.scalar_type())
                            .reshape({B, 1, N, 9});
  // align_corners = true maps -1 and 1 onto the centres of the first and last pixel.
  const double gx = w > 1 ? 2.0 / static_cast<double>(w - 1) : 0.0, gy = h > 1 ? 2.0 / static_cast<double>(h - 1) : 0.0;
  torch::Tensor grid = torch::stack({sx * gx - 1.0, sy * gy - 1.0}, -1).reshape({B, N, 9, 2});
  torch::Tensor v = torch::grid_sampler(features, grid.to(features.scalar_type()), /*bilinear*/ 0, /*border*/ 1,
                                        /*align_corners*/ true);  // (B, C, N, 9)
  return (v * valid).sum(-1).div(9.0).permute({0, 2, 1});  // (B, N, C)
}

ResidualBlockImpl::ResidualBlockImpl(int in, int out) {
  auto bn = [](int c) { return torch::nn::BatchNorm2d(torch::nn::BatchNorm2dOptions(c).track_running_stats(false)); };
  bn1 = register_module("bn1", bn(in));
  conv1 = register_module("conv1", torch::nn::Conv2d(torch::nn::Conv2dOptions(in, out, 3).padding(1)));
  bn2 = register_module("bn2", bn(out));
  conv2 = register_module("conv2", torch::nn::Conv2d(torch::nn::Conv2dOptions(out, out, 3).padding(1)));
  if (in != out) {
    skip_conv = register_module("skip_conv", torch::nn::Conv2d(torch::nn::Conv2dOptions(in, out, 1).bias(false)));
    skip_bn = register_module("skip_bn", bn(out));
  }
}

torch::Tensor ResidualBlockImpl::forward(const torch::Tensor& x) {
  torch::Tensor m = conv1(torch::relu(bn1(x)));
  m = conv2(torch::relu(bn2(m)));
  torch::Tensor s = skip_conv ? skip_bn(skip_conv(x)) : x;
  return torch::relu(m + s);
}

EncoderImpl::EncoderImpl(int in_channels, bool fuse) : fuse_(fuse) {
  int prev = 0;
  for (int k = 0; k < 6; ++k) {
    int in;
    if (k == 0) in = in_channels;
    else if (k == 1) in = prev + (fuse ? kLevelChannels[0] + kLevelChannels[1] : 0);  // pool(cat[conv1, u1]), u2
    else in = prev + (fuse ? kLevelChannels[k] : 0);
    blocks_.push_back(register_module("conv" + std::to_string(k + 1), ResidualBlock(in, kLevelChannels[k])));
    prev = kLevelChannels[k];
  }
}

std::vector<torch::Tensor> EncoderImpl::forward(const torch::Tensor& x, const std::vector<torch::Tensor>& u) {
  std::vector<torch::Tensor> out;
  torch::Tensor cur = blocks_[0](x);
  out.push_back(cur);
  for (int k = 1; k < 6; ++k) {
    torch::Tensor in = fuse_ && k == 1 ? torch::cat({cur, u[0]}, 1) : cur;
    in = F::max_pool2d(in, F::MaxPool2dFuncOptions(2));
    if (fuse_) in = torch::cat({in, u[k]}, 1);
    cur = blocks_[k](in);
    out.push_back(cur);
  }
  return out;
}

DenseDecoderImpl::DenseDecoderImpl(int n_classes, bool head) {
  // conv5up = RB(128 + 128 -> 128), conv4up = RB(128 + 64 -> 64), ..., conv1up = RB(16 + 8 -> 8)
  int prev = kLevelChannels[5];
  for (int k = 4; k >= 0; --k) {
    blocks_.push_back(register_module("conv" + std::to_string(k + 1) + "up", ResidualBlock(prev + kLevelChannels[k], kLevelChannels[k])));
    prev = kLevelChannels[k];
  }
  if (head) head_ = register_module("conv_last", torch::nn::Conv2d(torch::nn::Conv2dOptions(kLevelChannels[0], n_classes, 1)));
}

std::vector<torch::Tensor> DenseDecoderImpl::forward(const std::vector<torch::Tensor>& enc) {
  std::vector<torch::Tensor> out;
  torch::Tensor cur = enc[5];
  for (int i = 0; i < 5; ++i) {
    int k = 4 - i;
    torch::Tensor up = F::interpolate(cur, F::InterpolateFuncOptions()
                                               .size(std::vector<int64_t>{enc[k].size(2), enc[k].size(3)})
                                               .mode(torch::kBilinear)
                                               .align_corners(true));
    cur = blocks_[i](torch::cat({up, enc[k]}, 1));
    out.push_back(cur);
  }
  out.push_back(head_ ? head_(cur) : torch::Tensor());
  return out;
}

VaeHeadImpl::VaeHeadImpl(int64_t flat, int latents) {
  mu_ = register_module("fc_mu", torch::nn::Linear(flat, latents));
  logvar_ = register_module("fc_logvar", torch::nn::Linear(flat, latents));
}

std::array<torch::Tensor, 3> VaeHeadImpl::forward(const torch::Tensor& bottleneck) {
  torch::Tensor f = bottleneck.flatten(1);
  torch::Tensor mu = mu_(f), logvar = logvar_(f);
  torch::Tensor z = mu;
  if (is_training()) z = mu + torch::randn_like(mu) * torch::exp(0.5 * logvar);
  return {z, mu, logvar};
}

GraphEntryImpl::GraphEntryImpl(int latents, int nodes) : nodes_(nodes) {
  lin_ = register_module("dec_lin", torch::nn::Linear(latents, 16 * nodes));
  torch::NoGradGuard g;
  lin_->weight.normal_(0.0, 0.1);
}

torch::Tensor GraphEntryImpl::forward(const torch::Tensor& z) {
  return torch::relu(lin_(z)).reshape({z.size(0), nodes_, 16});
}

}  // namespace orch::models
