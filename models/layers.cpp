#include "models/layers.h"

#include <torch/torch.h>

#include <cmath>

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

GraphTensors GraphTensors::of(const OrganLayout& layout) {
  auto g = GraphOperators::of(layout);
  GraphTensors t;
  t.cheb = to_tensor(g.cheb);
  t.cheb_coarse = to_tensor(g.cheb_coarse);
  t.down = to_tensor(g.down);
  t.up = to_tensor(g.up);
  t.fine_counts = g.fine_counts;
  t.coarse_counts = g.coarse_counts;
  t.channel_fine = channel_index(layout, g.fine_counts);
  t.channel_coarse = channel_index(layout, g.coarse_counts);
  return t;
}

GraphTensors GraphTensors::to(const torch::Device& d) const {
  GraphTensors t = *this;
  for (auto* x : {&t.cheb, &t.cheb_coarse, &t.down, &t.up, &t.channel_fine, &t.channel_coarse}) *x = x->to(d);
  return t;
}

ChebConvImpl::ChebConvImpl(int in, int out, int k, bool with_bias) {
  // Each Θ_k is a bias-free Linear reset with glorot-uniform, bound sqrt(6 / (in + out)) (J/models/chebConv.py).
  double bound = std::sqrt(6.0 / (in + out));
  weight = register_parameter("weight", torch::empty({k, in, out}).uniform_(-bound, bound));
  if (with_bias) bias = register_parameter("bias", torch::empty({out}).normal_(0.0, 0.1));
}

torch::Tensor ChebConvImpl::forward(const torch::Tensor& x, const torch::Tensor& lhat) {
  const int64_t k = weight.size(0);
  torch::Tensor t0 = x;
  torch::Tensor out = torch::matmul(t0, weight[0]);
  if (k > 1) {
    torch::Tensor t1 = torch::matmul(lhat, x);
    out = out + torch::matmul(t1, weight[1]);
    for (int64_t i = 2; i < k; ++i) {
      torch::Tensor t2 = 2 * torch::matmul(lhat, t1) - t0;
      out = out + torch::matmul(t2, weight[i]);
      t0 = t1;
      t1 = t2;
    }
  }
  if (bias.defined()) out = out + bias;
  return out;
}

torch::Tensor node_norm(const torch::Tensor& x) {
  return torch::layer_norm(x, {x.size(-1)}, {}, {}, 1e-5);
}

torch::Tensor igsc_lookup(const torch::Tensor& positions, const torch::Tensor& features, bool position_gradients) {
  const int64_t B = features.size(0), C = features.size(1), h = features.size(2), w = features.size(3);
  const int64_t N = positions.size(1);
  torch::Tensor p = position_gradients ? positions : positions.detach();
  p = p * static_cast<double>(w);  // pixel-index coordinates: pixel i is centred at i
  auto offsets = torch::tensor({-1.0, 0.0, 1.0}, p.options());
  // (B, N, 3, 3) sample coordinates: x varies along the last axis, y along the one before.
  torch::Tensor sx = (p.select(2, 0).unsqueeze(-1) + offsets).unsqueeze(2).expand({B, N, 3, 3});
  torch::Tensor sy = (p.select(2, 1).unsqueeze(-1) + offsets).unsqueeze(3).expand({B, N, 3, 3});
  // torchvision's bilinear_interpolate: zero beyond [-1, size]; else clamp at 0 and at size - 1.
  torch::Tensor valid = (sy >= -1.0) & (sy <= static_cast<double>(h)) & (sx >= -1.0) & (sx <= static_cast<double>(w));
  torch::Tensor y = sy.clamp_min(0.0), x = sx.clamp_min(0.0);
  torch::Tensor y_low = y.floor().clamp_max(static_cast<double>(h - 1)).detach();
  torch::Tensor x_low = x.floor().clamp_max(static_cast<double>(w - 1)).detach();
  y = torch::where(y_low >= h - 1, y_low, y);  // at the last row the sample snaps onto it
  x = torch::where(x_low >= w - 1, x_low, x);
  torch::Tensor y_high = (y_low + 1).clamp_max(static_cast<double>(h - 1));
  torch::Tensor x_high = (x_low + 1).clamp_max(static_cast<double>(w - 1));
  torch::Tensor ly = y - y_low, lx = x - x_low, hy = 1 - ly, hx = 1 - lx;
  torch::Tensor flat = features.reshape({B, C, h * w});
  auto gather = [&](const torch::Tensor& yy, const torch::Tensor& xx) {
    torch::Tensor idx = (yy * w + xx).to(torch::kInt64).reshape({B, 1, N * 9}).expand({B, C, N * 9});
    return flat.gather(2, idx).reshape({B, C, N, 3, 3});
  };
  auto wgt = [&](const torch::Tensor& a, const torch::Tensor& b) { return (a * b * valid).unsqueeze(1); };
  torch::Tensor v = gather(y_low, x_low) * wgt(hy, hx) + gather(y_low, x_high) * wgt(hy, lx) +
                    gather(y_high, x_low) * wgt(ly, hx) + gather(y_high, x_high) * wgt(ly, lx);
  return v.sum({3, 4}).div(9.0).permute({0, 2, 1});  // (B, N, C)
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
