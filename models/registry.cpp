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

std::deque<ModelEntry> build() {
  std::deque<ModelEntry> r;
  auto add = [&r](const std::string& id, std::function<int(DatasetKind)> latents,
                  std::function<std::shared_ptr<Network>(const ModelConfig&)> create, LossFn loss, LossFn criterion) {
    r.push_back({&network_info(id), id, std::move(latents), std::move(create), std::move(loss), std::move(criterion)});
  };
  const LossFn mse_final = [](const Prediction& p, const Targets& t, const LossContext& c) { return mse_k(p, 0, t, c); };
  const LossFn hcd_final = [](const Prediction& p, const Targets& t, const LossContext& c) { return hcd_k(p, 0, t, c); };
  const LossFn unet_dice = [](const Prediction& p, const Targets& t, const LossContext& c) {
    return mean_dice(p.segmentation, t.mask, c.config.num_classes());
  };

  add("hybridgnet", latents16, make_hybridgnet,
               [](const Prediction& p, const Targets& t, const LossContext& c) { return mse_k(p, 0, t, c) + kl(p, c); },
               mse_final);
  add("hybridgnet_igsc", latents_igsc,
               make_double_skip,
               [](const Prediction& p, const Targets& t, const LossContext& c) {
                 return mse_k(p, 0, t, c) + mse_k(p, 1, t, c) + mse_k(p, 2, t, c) + kl(p, c);
               },
               mse_final);
  add("unet", no_latents, make_unet,
               [](const Prediction& p, const Targets& t, const LossContext&) { return dense_loss(p.dense[0], t.mask); },
               unet_dice);
  add("unet_joint", no_latents,
               make_unet_joint,
               [](const Prediction& p, const Targets& t, const LossContext&) {
                 return dense_loss(p.dense[0], t.mask) + dense_loss(p.dense[1], t.mask);
               },
               unet_dice);
  const LossFn hcd7 = [](const Prediction& p, const Targets& t, const LossContext& c) { return half_sum(p, t, c, hcd_k) + kl(p, c); };
  add("hourglass", latents16, make_hourglass, hcd7,
               hcd_final);
  add("hourglass_concat", latents16,
               make_hourglass_concat, hcd7, hcd_final);
  add("multitask", latents16,
               make_multitask,
               [](const Prediction& p, const Targets& t, const LossContext& c) {
                 return half_sum(p, t, c, hcd_k) + 0.05 * dense_loss(p.dense[0], t.mask) + kl(p, c);
               },
               [](const Prediction& p, const Targets& t, const LossContext& c) {
                 return hcd_k(p, 0, t, c) + 0.05 * dense_loss(p.dense[0], t.mask);
               });
  add("no_joint", latents16, make_double_skip,
               [](const Prediction& p, const Targets& t, const LossContext& c) {
                 return hcd_k(p, 0, t, c) + hcd_k(p, 1, t, c) + hcd_k(p, 2, t, c) + kl(p, c);  // weights 1, no 1/2
               },
               hcd_final);
  add("mse_only", latents16, make_joint,
               [](const Prediction& p, const Targets& t, const LossContext& c) { return half_sum(p, t, c, mse_k) + kl(p, c); },
               mse_final);
  add("rasterize", latents_igsc,
               make_rasterize,
               [](const Prediction& p, const Targets& t, const LossContext& c) {
                 // R(pre2) + R(pre1) + R(out), no point loss
                 return raster_dense(p.dense[2], t, c) + raster_dense(p.dense[1], t, c) + raster_dense(p.dense[0], t, c) +
                        kl(p, c);
               },
               [](const Prediction& p, const Targets& t, const LossContext& c) { return raster_dense(p.dense[0], t, c); });
  add("ours", latents16, make_joint, hcd7, hcd_final);
  return r;
}

std::deque<ModelEntry>& registry() {
  static std::deque<ModelEntry> r = build();
  return r;
}

}  // namespace

const std::deque<ModelEntry>& model_registry() { return registry(); }

void add_model(const std::string& id, std::function<int(DatasetKind)> default_latents,
               std::function<std::shared_ptr<Network>(const ModelConfig&)> create, LossFn loss, LossFn criterion) {
  for (const auto& e : registry())
    if (e.id == id) throw InputError("", "model", id, "already in the registry");
  registry().push_back({&network_info(id), id, std::move(default_latents), std::move(create), std::move(loss),
                        std::move(criterion)});
}

const ModelEntry& find_model(const std::string& id) {
  for (const auto& e : model_registry())
    if (e.id == id) return e;
  network_info(id);  // throws, naming the id and the known ones
  throw InputError("", "model", id, "in the catalogue but not in the registry");
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
