// Options a network is built with: the data set's kind and size, the reference's hyper-parameters, and the
// switches for the places where the reference's code is odd (each defaulting to the reference's behaviour).
// Plain values, no torch: the CLI and the scheduler use it without LibTorch's compile cost. Thread-safe.
#pragma once

#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "core/organs.h"

namespace orch::models {

// The smallest input every network runs at: the graph decoders sample image features at 1/32 of the input, and
// below 64 px that map is 1x1 (the IGSC lookups then see no neighbourhood). Checked when an experiment loads.
constexpr int kMinNetworkSize = 64;

struct ModelConfig {
  DatasetKind kind = DatasetKind::kLungsHeart;
  int size = 1024;          // input size; a multiple of 32 (five 2x poolings), at least kMinNetworkSize
  int latents = 0;          // 0: the reference's choice for the network (16; 64 for HybridGNet+IGSC and Rasterize on LH)
  int cheb_k = 6;           // K of the hidden ChebConvs
  double kld_weight = 1e-5;
  double hcd_beta = 0.025;
  // IGSC lookups: torchvision's roi_align gives no gradient to the node positions; true lets it flow.
  bool lookup_position_gradients = false;
  // Multi-task: the reference applies the dense loss to the 8-channel conv1up (its conv_last is unused);
  // false uses conv_last's n_classes logits instead.
  bool multitask_reference_dense_head = true;
  // Rasterize: the reference feeds the soft masks' probabilities to Dice and cross-entropy as if they were
  // logits; false uses them as probabilities (log for CE, no softmax for Dice).
  bool rasterize_probabilities_as_logits = true;
  // Convolution weights and activations in channels-last (NHWC) layout: oneDNN's convolutions run without
  // layout reorders (measured: a 512² training step of Ours 15 % faster on CPU). Same arithmetic otherwise.
  bool channels_last = true;
  double raster_tau = 0.1;   // SoftPolygon inv_smoothness
  int raster_chunk = 65536;  // pixels per chunk of the CPU rasteriser (bounds its memory)

  ModelConfig& with_kind(DatasetKind k) { kind = k; return *this; }
  ModelConfig& with_size(int s) { size = s; return *this; }
  ModelConfig& with_latents(int z) { latents = z; return *this; }
  void validate() const;  // throws InputError naming the option and value
  int num_classes() const { return kind == DatasetKind::kLungsHeart ? 3 : 2; }
};

// Applies the options of an experiment file's network entry (e.g. {"latents": 64}) to `base`; unknown fields,
// wrong types and invalid values throw an InputError naming `file`, the field path under `where` and the value.
ModelConfig model_config_from_json(const nlohmann::json& options, ModelConfig base, const std::string& file,
                                   const std::string& where);

}  // namespace orch::models

namespace orch {
struct Experiment;
}

namespace orch::models {

// Checks the networks of an experiment: known ids, each listed once, options valid for every data set of the
// experiment (at the data set's size). Throws InputError naming the file, the field and the value.
void validate_experiment_networks(const Experiment& experiment);

}  // namespace orch::models
