#include "models/unet.h"

#include <torch/torch.h>

#include "models/losses.h"
#include "models/networks.h"

namespace orch::models {

UNetImpl::UNetImpl(int in_channels, int n_classes, bool fuse) {
  encoder_ = register_module("encoder", Encoder(in_channels, fuse));
  decoder_ = register_module("decoder", DenseDecoder(n_classes, true));
}

std::vector<torch::Tensor> UNetImpl::forward_all(const torch::Tensor& x, const std::vector<torch::Tensor>& fused) {
  auto enc = encoder_->forward(x, fused);
  auto dec = decoder_(enc);  // conv5up .. conv1up, logits
  return {dec[4], dec[3], dec[2], dec[1], dec[0], enc[5], dec[5]};
}

namespace {

class UNetNet : public Network {
 public:
  explicit UNetNet(const ModelConfig& c) : Network(c) { unet_ = register_module("unet", UNet(1, c.num_classes(), false)); }
  Prediction run(const torch::Tensor& image) override {
    Prediction p;
    p.segmentation = unet_(image);
    p.dense = {p.segmentation};
    return p;
  }

 private:
  UNet unet_{nullptr};
};

class UNetJointNet : public Network {
 public:
  explicit UNetJointNet(const ModelConfig& c) : Network(c) {
    unet1_ = register_module("unet_1", UNet(1, c.num_classes(), false));
    for (auto& p : unet1_->parameters()) p.set_requires_grad(false);
    unet2_ = register_module("unet_2", UNet(1 + c.num_classes(), c.num_classes(), true));
  }
  Prediction run(const torch::Tensor& image) override {
    std::vector<torch::Tensor> u;
    {
      torch::NoGradGuard frozen;  // unet_1 is frozen: nothing upstream of it trains
      u = unet1_->forward_all(image);
    }
    torch::Tensor logits1 = u[6];
    auto v = unet2_->forward_all(torch::cat({image, logits1}, 1), {u.begin(), u.begin() + 6});
    Prediction p;
    p.dense = {logits1, v[6]};
    p.segmentation = v[6];
    return p;
  }
  std::shared_ptr<torch::nn::Module> dependency_module() override { return unet1_.ptr(); }

 private:
  UNet unet1_{nullptr}, unet2_{nullptr};
};

}  // namespace

std::shared_ptr<Network> make_unet(const ModelConfig& c) { return std::make_shared<UNetNet>(c); }
std::shared_ptr<Network> make_unet_joint(const ModelConfig& c) { return std::make_shared<UNetJointNet>(c); }

}  // namespace orch::models
