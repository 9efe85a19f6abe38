// HybridGNet (spec §3.3), HybridGNet 2-IGSC (§3.4; also No Joint, §3.10) and Rasterize (§3.11).
#include <torch/torch.h>

#include "models/layers.h"
#include "models/networks.h"
#include "models/rasterizer.h"

namespace orch::models {

namespace {

int bottleneck_flat(const ModelConfig& c) { return 128 * (c.size / 32) * (c.size / 32); }

class HybridGNetNet : public Network {
 public:
  explicit HybridGNetNet(const ModelConfig& c) : Network(c), g_(GraphTensors::of(OrganLayout::of(c.kind))) {
    const int n2 = static_cast<int>(g_.down.rows()), z = c.latents;
    encoder_ = register_module("encoder", Encoder(1, false));
    vae_ = register_module("vae", VaeHead(bottleneck_flat(c), z));
    entry_ = register_module("entry", GraphEntry(z, n2));
    const int K = c.cheb_k;
    convs_ = {register_module("graph_conv1", ChebConv(16, 16, K)), register_module("graph_conv2", ChebConv(16, 16, K)),
              register_module("graph_conv3", ChebConv(16, 32, K)), register_module("graph_conv4", ChebConv(32, 32, K)),
              register_module("graph_conv5", ChebConv(32, 32, K))};
    out_ = register_module("graph_conv6", ChebConv(32, 2, 1, false));
  }
  Prediction run(const torch::Tensor& image) override {
    GraphTensors g = g_.to(image.device());
    auto enc = encoder_->forward(image);
    auto [z, mu, logvar] = vae_(enc[5]);
    torch::Tensor x = entry_(z);
    for (int i = 0; i < 3; ++i) x = torch::relu(node_norm(convs_[i](x, g.cheb_coarse)));
    x = g.up.apply(x);
    for (int i = 3; i < 5; ++i) x = torch::relu(node_norm(convs_[i](x, g.cheb)));
    Prediction p;
    p.points = {out_(x, g.cheb)};
    p.coarse = {false};
    p.mu = mu;
    p.logvar = logvar;
    return p;
  }

 private:
  GraphTensors g_;
  Encoder encoder_{nullptr};
  VaeHead vae_{nullptr};
  GraphEntry entry_{nullptr};
  std::vector<ChebConv> convs_;
  ChebConv out_{nullptr};
};

class DoubleSkipNet : public Network {
 public:
  explicit DoubleSkipNet(const ModelConfig& c) : Network(c), g_(GraphTensors::of(OrganLayout::of(c.kind))) {
    const int n2 = static_cast<int>(g_.down.rows()), z = c.latents, K = c.cheb_k;
    encoder_ = register_module("encoder", Encoder(1, false));
    vae_ = register_module("vae", VaeHead(bottleneck_flat(c), z));
    entry_ = register_module("entry", GraphEntry(z, n2));
    up6_ = register_module("up6", ChebConv(16, 16, K));
    up5_ = register_module("up5", ChebConv(16, 16, K));
    pre1_ = register_module("pre1", ChebConv(16, 2, 1, false));
    up4_ = register_module("up4", ChebConv(16 + 128 + 2, 32, K));
    up3_ = register_module("up3", ChebConv(32, 32, K));
    pre2_ = register_module("pre2", ChebConv(32, 2, 1, false));
    up2_ = register_module("up2", ChebConv(32 + 128 + 2, 32, K));
    up1_ = register_module("up1", ChebConv(32, 2, 1, false));
  }
  Prediction run(const torch::Tensor& image) override {
    GraphTensors g = g_.to(image.device());
    const bool pg = config_.lookup_position_gradients;
    auto enc = encoder_->forward(image);
    auto [z, mu, logvar] = vae_(enc[5]);
    torch::Tensor x = entry_(z);
    x = torch::relu(node_norm(up6_(x, g.cheb_coarse)));
    x = torch::relu(node_norm(up5_(x, g.cheb_coarse)));
    torch::Tensor pre1 = pre1_(x, g.cheb_coarse);
    x = torch::cat({x, igsc_lookup(pre1, enc[5], pg), pre1}, 2);
    x = torch::relu(node_norm(up4_(x, g.cheb_coarse)));
    x = g.up.apply(x);
    x = torch::relu(node_norm(up3_(x, g.cheb)));
    torch::Tensor pre2 = pre2_(x, g.cheb);
    x = torch::cat({x, igsc_lookup(pre2, enc[4], pg), pre2}, 2);
    x = torch::relu(node_norm(up2_(x, g.cheb)));
    torch::Tensor out = up1_(x, g.cheb);
    Prediction p;
    p.points = {out, pre1, pre2};
    p.coarse = {false, true, false};
    p.mu = mu;
    p.logvar = logvar;
    return p;
  }

 protected:
  GraphTensors g_;

 private:
  Encoder encoder_{nullptr};
  VaeHead vae_{nullptr};
  GraphEntry entry_{nullptr};
  ChebConv up6_{nullptr}, up5_{nullptr}, pre1_{nullptr}, up4_{nullptr}, up3_{nullptr}, pre2_{nullptr}, up2_{nullptr},
      up1_{nullptr};
};

// Rasterize: HybridGNet 2-IGSC fine-tuned through soft masks R(out), R(pre1), R(pre2), each
// [background, lungs, heart] (or [background, lungs]): lungs = clip(SP(RL) + SP(LL), 0, 1), heart = SP(H),
// background = clip(1 - lungs - heart, 0, 1); vertices at P * size - 0.5.
class RasterizeNet : public DoubleSkipNet {
 public:
  using DoubleSkipNet::DoubleSkipNet;
  Prediction run(const torch::Tensor& image) override {
    Prediction p = DoubleSkipNet::run(image);
    const int64_t size = image.size(-1);
    for (size_t i = 0; i < p.points.size(); ++i) p.dense.push_back(raster(p.points[i], p.coarse[i] ? g_.coarse_counts : g_.fine_counts, size));
    p.segmentation = p.dense[0];
    return p;
  }
  std::shared_ptr<torch::nn::Module> dependency_module() override { return shared_from_this(); }

 private:
  torch::Tensor raster(const torch::Tensor& pts, const std::vector<int>& counts, int64_t size) {
    torch::Tensor v = pts * static_cast<double>(size) - 0.5;
    std::vector<torch::Tensor> organ;
    int64_t off = 0;
    for (int n : counts) {
      organ.push_back(soft_polygon(v.narrow(1, off, n), size, config_.raster_tau, config_.raster_chunk));
      off += n;
    }
    torch::Tensor lungs = (organ[0] + organ[1]).clamp(0, 1);
    std::vector<torch::Tensor> ch{torch::Tensor(), lungs};
    torch::Tensor fg = lungs;
    if (organ.size() > 2) {
      ch.push_back(organ[2]);
      fg = lungs + organ[2];
    }
    ch[0] = (1 - fg).clamp(0, 1);
    return torch::stack(ch, 1);
  }
};

}  // namespace

std::shared_ptr<Network> make_hybridgnet(const ModelConfig& c) { return std::make_shared<HybridGNetNet>(c); }
std::shared_ptr<Network> make_double_skip(const ModelConfig& c) { return std::make_shared<DoubleSkipNet>(c); }
std::shared_ptr<Network> make_rasterize(const ModelConfig& c) { return std::make_shared<RasterizeNet>(c); }

}  // namespace orch::models
