// Factories of the eleven networks (spec §3). Each returns a Network (models/network.h); the registry
// (models/registry.h) names them and attaches losses and criteria.
#pragma once

#include <memory>

#include "models/network.h"

namespace orch::models {

std::shared_ptr<Network> make_unet(const ModelConfig& c);              // §3.5
std::shared_ptr<Network> make_unet_joint(const ModelConfig& c);        // §3.6
std::shared_ptr<Network> make_hybridgnet(const ModelConfig& c);        // §3.3
std::shared_ptr<Network> make_double_skip(const ModelConfig& c);       // §3.4 HybridGNet 2-IGSC (+IGSC, No Joint)
std::shared_ptr<Network> make_rasterize(const ModelConfig& c);         // §3.11
std::shared_ptr<Network> make_joint(const ModelConfig& c);             // §3.7 Ours, MSE Only
std::shared_ptr<Network> make_hourglass(const ModelConfig& c);         // §3.8
std::shared_ptr<Network> make_hourglass_concat(const ModelConfig& c);  // §3.8
std::shared_ptr<Network> make_multitask(const ModelConfig& c);         // §3.9

}  // namespace orch::models
