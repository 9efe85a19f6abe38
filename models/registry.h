// The registry of networks: for each row of the catalogue (models/catalogue.h: names, columns, dependency,
// criterion), what needs LibTorch: its factory, its loss and its validation criterion. Adding a network: a row in
// the catalogue, a factory (models/networks.h) and one entry in build() in registry.cpp; a test checks that the
// registry and the catalogue list the same networks. Immutable after start-up; thread-safe to read.
#pragma once

#include <deque>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "models/catalogue.h"
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
  const NetworkInfo* info = nullptr;  // the catalogue's row: names, columns, dependency, criterion (models/catalogue.h)
  std::string id;                     // == info->id
  std::function<int(DatasetKind)> default_latents;  // 0 for networks without a VAE
  std::function<std::shared_ptr<Network>(const ModelConfig&)> create;  // prefer instantiate(), which applies the layout
  LossFn loss;       // the training objective (spec §4), a scalar
  LossFn criterion;  // the validation criterion (spec §5) of one batch, a scalar
};

// The entries in the paper's row order (then those added with add_model). A deque: references stay valid.
const std::deque<ModelEntry>& model_registry();
// Adds an entry for a network added to the catalogue (models::add_network): start-up only, as add_network.
void add_model(const std::string& id, std::function<int(DatasetKind)> default_latents,
               std::function<std::shared_ptr<Network>(const ModelConfig&)> create, LossFn loss, LossFn criterion);
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
