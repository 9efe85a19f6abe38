#include "models/registry.h"

#include <torch/torch.h>

#include "core/errors.h"
#include "models/losses.h"
#include "models/networks.h"

namespace orch::models {

namespace {

torch::Tensor kl(const Prediction& p, const LossContext& c) { return c.config.kld_weight * kl_divergence(p.mu, p.logvar); }

torch::Tensor target_for(const Prediction& p, size_t k, const Targets& t, const LossContext& c) {
  return p.coarse[k] ? c.graph.down.apply(t.landmarks) : t.landmarks;  // coarse targets D·P
}

torch::Tensor hcd_k(const Prediction& p, size_t k, const Targets& t, const LossContext& c) {
  return hcd(p.points[k], target_for(p, k, t, c), t.dmaps, p.coarse[k] ? c.graph.channel_coarse : c.graph.channel_fine,
             c.config.hcd_beta);
}

torch::Tensor mse_k(const Prediction& p, size_t k, const Targets& t, const LossContext& c) {
  return point_mse(p.points[k], target_for(p, k, t, c));
}

// 1/2 * sum over the seven predictions.
torch::Tensor half_sum(const Prediction& p, const Targets& t, const LossContext& c,
                       torch::Tensor (*term)(const Prediction&, size_t, const Targets&, const LossContext&)) {
  torch::Tensor s = term(p, 0, t, c);
  for (size_t k = 1; k < p.points.size(); ++k) s = s + term(p, k, t, c);
  return 0.5 * s;
}

torch::Tensor raster_dense(const torch::Tensor& soft, const Targets& t, const LossContext& c) {
  return dense_loss(soft, t.mask, !c.config.rasterize_probabilities_as_logits);
}

int latents16(DatasetKind) { return 16; }
int latents_igsc(DatasetKind k) { return k == DatasetKind::kLungsHeart ? 64 : 16; }  // spec §3.4, §7.3
int no_latents(DatasetKind) { return 0; }

std::vector<ModelEntry> build() {
  std::vector<ModelEntry> r;
  const LossFn mse_final = [](const Prediction& p, const Targets& t, const LossContext& c) { return mse_k(p, 0, t, c); };
  const LossFn hcd_final = [](const Prediction& p, const Targets& t, const LossContext& c) { return hcd_k(p, 0, t, c); };
  const LossFn unet_dice = [](const Prediction& p, const Targets& t, const LossContext& c) {
    return mean_dice(p.segmentation, t.mask, c.config.num_classes());
  };

  r.push_back({"hybridgnet", "HybridGNet", "point", "point", "", false, false, "mse", latents16, make_hybridgnet,
               [](const Prediction& p, const Targets& t, const LossContext& c) { return mse_k(p, 0, t, c) + kl(p, c); },
               mse_final});
  r.push_back({"hybridgnet_igsc", "HybridGNet+IGSC", "point", "point", "", false, false, "mse", latents_igsc,
               make_double_skip,
               [](const Prediction& p, const Targets& t, const LossContext& c) {
                 return mse_k(p, 0, t, c) + mse_k(p, 1, t, c) + mse_k(p, 2, t, c) + kl(p, c);
               },
               mse_final});
  r.push_back({"unet", "UNet", "dense", "dense", "", true, true, "mean_dice", no_latents, make_unet,
               [](const Prediction& p, const Targets& t, const LossContext&) { return dense_loss(p.dense[0], t.mask); },
               unet_dice});
  r.push_back({"unet_joint", "UNet Joint", "dense", "dense", "unet", true, true, "mean_dice", no_latents,
               make_unet_joint,
               [](const Prediction& p, const Targets& t, const LossContext&) {
                 return dense_loss(p.dense[0], t.mask) + dense_loss(p.dense[1], t.mask);
               },
               unet_dice});
  const LossFn hcd7 = [](const Prediction& p, const Targets& t, const LossContext& c) { return half_sum(p, t, c, hcd_k) + kl(p, c); };
  r.push_back({"hourglass", "Hourglass", "point", "both", "unet", false, false, "hcd", latents16, make_hourglass, hcd7,
               hcd_final});
  r.push_back({"hourglass_concat", "Hourglass Concat", "point", "both", "unet", false, false, "hcd", latents16,
               make_hourglass_concat, hcd7, hcd_final});
  r.push_back({"multitask", "Multi-task", "point", "both", "", false, false, "hcd+0.05*dense", latents16,
               make_multitask,
               [](const Prediction& p, const Targets& t, const LossContext& c) {
                 return half_sum(p, t, c, hcd_k) + 0.05 * dense_loss(p.dense[0], t.mask) + kl(p, c);
               },
               [](const Prediction& p, const Targets& t, const LossContext& c) {
                 return hcd_k(p, 0, t, c) + 0.05 * dense_loss(p.dense[0], t.mask);
               }});
  r.push_back({"no_joint", "No Joint", "point", "point", "", false, false, "hcd", latents16, make_double_skip,
               [](const Prediction& p, const Targets& t, const LossContext& c) {
                 return hcd_k(p, 0, t, c) + hcd_k(p, 1, t, c) + hcd_k(p, 2, t, c) + kl(p, c);  // weights 1, no 1/2
               },
               hcd_final});
  r.push_back({"mse_only", "MSE Only", "point", "both", "unet", false, false, "mse", latents16, make_joint,
               [](const Prediction& p, const Targets& t, const LossContext& c) { return half_sum(p, t, c, mse_k) + kl(p, c); },
               mse_final});
  r.push_back({"rasterize", "Rasterize", "point", "dense", "hybridgnet_igsc", true, false, "dense", latents_igsc,
               make_rasterize,
               [](const Prediction& p, const Targets& t, const LossContext& c) {
                 // R(pre2) + R(pre1) + R(out), no point loss
                 return raster_dense(p.dense[2], t, c) + raster_dense(p.dense[1], t, c) + raster_dense(p.dense[0], t, c) +
                        kl(p, c);
               },
               [](const Prediction& p, const Targets& t, const LossContext& c) { return raster_dense(p.dense[0], t, c); }});
  r.push_back({"ours", "Ours", "point", "both", "unet", false, false, "hcd", latents16, make_joint, hcd7, hcd_final});
  return r;
}

}  // namespace

const std::vector<ModelEntry>& model_registry() {
  static const std::vector<ModelEntry> r = build();
  return r;
}

const ModelEntry& find_model(const std::string& id) {
  std::string known;
  for (const auto& e : model_registry()) {
    if (e.id == id) return e;
    known += (known.empty() ? "" : ", ") + e.id;
  }
  throw InputError("", "model", id, "unknown network (known: " + known + ")");
}

ModelConfig resolve_config(const ModelEntry& e, ModelConfig c) {
  if (c.latents == 0) c.latents = e.default_latents(c.kind);
  if (c.latents == 0) c.latents = 16;  // unused by networks without a VAE
  c.validate();
  return c;
}

std::shared_ptr<Network> create_model(const std::string& id, const ModelConfig& config) {
  const ModelEntry& e = find_model(id);
  return instantiate(e, resolve_config(e, config));
}

std::shared_ptr<Network> instantiate(const ModelEntry& e, const ModelConfig& resolved) {
  auto net = e.create(resolved);
  if (resolved.channels_last) {
    torch::NoGradGuard g;
    for (auto& p : net->parameters())
      if (p.dim() == 4) p.set_data(p.contiguous(at::MemoryFormat::ChannelsLast));
  }
  return net;
}

ParameterCounts count_parameters(torch::nn::Module& m) {
  ParameterCounts c;
  for (const auto& p : m.parameters()) (p.requires_grad() ? c.trainable : c.frozen) += p.numel();
  return c;
}

}  // namespace orch::models
