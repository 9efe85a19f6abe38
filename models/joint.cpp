// The seven-prediction graph decoder (spec §3.7) and the networks built on it: the joint dense-graph network
// of Ours and MSE Only (DD features fused into the DG encoder), Hourglass and Hourglass Concat (§3.8) and
// Multi-task (§3.9).
#include <torch/torch.h>

#include "models/layers.h"
#include "models/networks.h"
#include "models/unet.h"

namespace orch::models {

namespace {

// Six ChebConv blocks (up6 .. up1, the unpool after the third), seven K = 1 bias-free heads, six IGSC
// lookups into the DG encoder maps conv6 .. conv1. Returns pos7 (final), pos6, ..., pos1.
class SevenDecoderImpl : public torch::nn::Module {
 public:
  SevenDecoderImpl(const ModelConfig& c, int n2) : cfg_(c) {
    const int K = c.cheb_k;
    entry_ = register_module("entry", GraphEntry(c.latents, n2));
    const int feat[6] = {16, 16, 32, 32, 32, 32};          // output of up6, up5, up4, up3, up2, up1
    const int skip[6] = {128, 128, 64, 32, 16, 8};          // conv6 .. conv1 channels
    int in = 16;
    for (int i = 0; i < 6; ++i) {
      ups_.push_back(register_module("up" + std::to_string(6 - i), ChebConv(in, feat[i], K)));
      heads_.push_back(register_module("out" + std::to_string(6 - i), ChebConv(feat[i], 2, 1, false)));
      in = feat[i] + skip[i] + 2;
    }
    heads_.push_back(register_module("out0", ChebConv(in, 2, 1, false)));
  }
  std::vector<torch::Tensor> forward(const torch::Tensor& z, const std::vector<torch::Tensor>& enc,
                                     const GraphTensors& g) {
    torch::Tensor x = entry_(z);
    std::vector<torch::Tensor> pos;
    for (int i = 0; i < 6; ++i) {
      const GraphOperator& lhat = i < 3 ? g.cheb_coarse : g.cheb;
      x = torch::relu(node_norm(ups_[i](x, lhat)));
      torch::Tensor p = heads_[i](x, lhat);
      x = torch::cat({x, igsc_lookup(p, enc[5 - i], cfg_.lookup_position_gradients), p}, 2);
      pos.push_back(p);
      if (i == 2) x = g.up.apply(x);  // unpool features, skips and coordinates alike
    }
    pos.push_back(heads_[6](x, g.cheb));
    std::reverse(pos.begin(), pos.end());
    return pos;
  }

 private:
  ModelConfig cfg_;
  GraphEntry entry_{nullptr};
  std::vector<ChebConv> ups_, heads_;
};
TORCH_MODULE(SevenDecoder);

enum class Variant { kJoint, kHourglass, kHourglassConcat, kMultitask };

class SevenNet : public Network {
 public:
  SevenNet(const ModelConfig& c, Variant v) : Network(c), variant_(v), g_(GraphTensors::of(OrganLayout::of(c.kind))) {
    const int ncls = c.num_classes();
    if (v != Variant::kMultitask) {
      unet_ = register_module("unet", UNet(1, ncls, false));
      for (auto& p : unet_->parameters()) p.set_requires_grad(false);
    }
    int in = v == Variant::kJoint ? 1 + ncls : v == Variant::kHourglass ? ncls : v == Variant::kHourglassConcat ? 1 + ncls : 1;
    encoder_ = register_module("encoder", Encoder(in, v == Variant::kJoint));
    vae_ = register_module("vae", VaeHead(128 * (c.size / 32) * (c.size / 32), c.latents));
    decoder_ = register_module("decoder", SevenDecoder(c, static_cast<int>(g_.down.rows())));
    if (v == Variant::kMultitask) dense_ = register_module("dense_decoder", DenseDecoder(ncls, true));
  }
  Prediction run(const torch::Tensor& image) override {
    GraphTensors g = g_.to(image.device());
    std::vector<torch::Tensor> enc;
    if (variant_ == Variant::kMultitask) {
      enc = encoder_->forward(image);
    } else {
      std::vector<torch::Tensor> u;
      {
        torch::NoGradGuard frozen;  // the pretrained UNet is frozen: no gradient is needed through it
        u = unet_->forward_all(image);
      }
      const torch::Tensor& logits = u[6];
      if (variant_ == Variant::kJoint) enc = encoder_->forward(torch::cat({image, logits}, 1), std::vector<torch::Tensor>(u.begin(), u.begin() + 6));
      else if (variant_ == Variant::kHourglass) enc = encoder_->forward(logits);
      else enc = encoder_->forward(torch::cat({logits, image}, 1));  // logits first, as hourglass_concat.py
    }
    auto [z, mu, logvar] = vae_(enc[5]);
    Prediction p;
    p.points = decoder_(z, enc, g);
    p.coarse = {false, false, false, false, true, true, true};
    p.mu = mu;
    p.logvar = logvar;
    if (dense_) {
      auto d = dense_(enc);  // conv5up .. conv1up, logits of the (in the reference unused) conv_last
      p.dense = {config_.multitask_reference_dense_head ? d[4] : d[5]};
    }
    return p;
  }
  std::shared_ptr<torch::nn::Module> dependency_module() override {
    return unet_ ? unet_.ptr() : std::shared_ptr<torch::nn::Module>();
  }

 private:
  Variant variant_;
  GraphTensors g_;
  UNet unet_{nullptr};
  Encoder encoder_{nullptr};
  VaeHead vae_{nullptr};
  SevenDecoder decoder_{nullptr};
  DenseDecoder dense_{nullptr};
};

}  // namespace

std::shared_ptr<Network> make_joint(const ModelConfig& c) { return std::make_shared<SevenNet>(c, Variant::kJoint); }
std::shared_ptr<Network> make_hourglass(const ModelConfig& c) { return std::make_shared<SevenNet>(c, Variant::kHourglass); }
std::shared_ptr<Network> make_hourglass_concat(const ModelConfig& c) {
  return std::make_shared<SevenNet>(c, Variant::kHourglassConcat);
}
std::shared_ptr<Network> make_multitask(const ModelConfig& c) { return std::make_shared<SevenNet>(c, Variant::kMultitask); }

}  // namespace orch::models
