// The registry of networks: each of the paper's eleven configurations by id, with its paper row, what it
// predicts and is supervised with, its loss, its validation criterion, its frozen parts and what must be
// trained before it. Adding a network: one factory file (models/networks.h) and one entry in registry.cpp.
// The registry is immutable after start-up; thread-safe to read.
#pragma once

#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "models/layers.h"
#include "models/network.h"

namespace orch::models {

// What a loss or criterion needs besides the prediction and the targets.
struct LossContext {
  const ModelConfig& config;
  const GraphTensors& graph;  // on the targets' device
};

using LossFn = std::function<torch::Tensor(const Prediction&, const Targets&, const LossContext&)>;

struct ModelEntry {
  std::string id;            // e.g. "ours"
  std::string paper_name;    // the row of Tables 1-2, e.g. "Ours"
  std::string predicts;      // "point" or "dense" (the tables' Predict column)
  std::string supervision;   // "point", "dense" or "both" (the tables' Supervision column)
  std::string dependency;    // id of the network whose trained weights it starts from ("unet", "hybridgnet_igsc", "")
  bool evaluate_dense;       // evaluated by argmax of Prediction::segmentation (else by filling its points)
  bool criterion_higher_is_better;
  std::string criterion_name;
  std::function<int(DatasetKind)> default_latents;  // 0 for networks without a VAE
  std::function<std::shared_ptr<Network>(const ModelConfig&)> create;  // prefer instantiate(), which applies the layout
  LossFn loss;       // the training objective (spec §4), a scalar
  LossFn criterion;  // the validation criterion (spec §5) of one batch, a scalar
};

// The entries in the paper's row order.
const std::vector<ModelEntry>& model_registry();
// Throws InputError naming the id and listing the known ones.
const ModelEntry& find_model(const std::string& id);
// A config with the network's own defaults filled in (latents 0 -> the reference's value), validated.
ModelConfig resolve_config(const ModelEntry& entry, ModelConfig config);
std::shared_ptr<Network> create_model(const std::string& id, const ModelConfig& config);
// Builds the entry's network from a resolved config (its memory format applied): what create_model does.
std::shared_ptr<Network> instantiate(const ModelEntry& entry, const ModelConfig& resolved);

struct ParameterCounts {
  int64_t trainable = 0, frozen = 0;
};
ParameterCounts count_parameters(torch::nn::Module& module);

}  // namespace orch::models
