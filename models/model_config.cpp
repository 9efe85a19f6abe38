#include "models/model_config.h"

#include <algorithm>
#include <set>

#include "core/errors.h"
#include "core/experiment.h"

namespace orch::models {

void ModelConfig::validate() const {
  if (size < 32 || size % 32 != 0)
    throw InputError("", "size", std::to_string(size), "networks need a multiple of 32 (five 2x poolings)");
  if (latents < 0 || latents > 4096) throw InputError("", "latents", std::to_string(latents), "expected 1 to 4096");
  if (cheb_k < 1 || cheb_k > 20) throw InputError("", "cheb_k", std::to_string(cheb_k), "expected 1 to 20");
  if (!(raster_tau > 0)) throw InputError("", "raster_tau", format_number(raster_tau), "expected > 0");
  if (raster_chunk < 1) throw InputError("", "raster_chunk", std::to_string(raster_chunk), "expected >= 1");
}


const std::vector<std::string>& known_model_ids() {
  static const std::vector<std::string> ids = {"hybridgnet", "hybridgnet_igsc", "unet",     "unet_joint",
                                               "hourglass",  "hourglass_concat", "multitask", "no_joint",
                                               "mse_only",   "rasterize",        "ours"};
  return ids;
}

std::string model_dependency(const std::string& id) {
  if (id == "unet_joint" || id == "hourglass" || id == "hourglass_concat" || id == "mse_only" || id == "ours")
    return "unet";
  if (id == "rasterize") return "hybridgnet_igsc";
  return "";
}

ModelConfig model_config_from_json(const nlohmann::json& j, ModelConfig base, const std::string& file,
                                   const std::string& where) {
  if (!j.is_object()) throw InputError(file, where, j.dump(), "expected an object of network options");
  static const std::set<std::string> known = {"latents", "cheb_k", "kld_weight", "hcd_beta",
                                              "lookup_position_gradients", "multitask_reference_dense_head",
                                              "rasterize_probabilities_as_logits", "raster_tau", "raster_chunk",
                                              "channels_last"};
  for (auto it = j.begin(); it != j.end(); ++it) {
    const std::string field = where + "." + it.key();
    const auto& v = it.value();
    if (!known.count(it.key())) {
      std::string list;
      for (const auto& k : known) list += (list.empty() ? "" : ", ") + k;
      throw InputError(file, field, v.dump(), "unknown network option (expected one of: " + list + ")");
    }
    auto need_int = [&] {
      if (!v.is_number_integer()) throw InputError(file, field, v.dump(), "expected an integer");
      return v.get<int>();
    };
    auto need_num = [&] {
      if (!v.is_number()) throw InputError(file, field, v.dump(), "expected a number");
      return v.get<double>();
    };
    auto need_bool = [&] {
      if (!v.is_boolean()) throw InputError(file, field, v.dump(), "expected true or false");
      return v.get<bool>();
    };
    const std::string& k = it.key();
    if (k == "latents") base.latents = need_int();
    else if (k == "cheb_k") base.cheb_k = need_int();
    else if (k == "kld_weight") base.kld_weight = need_num();
    else if (k == "hcd_beta") base.hcd_beta = need_num();
    else if (k == "lookup_position_gradients") base.lookup_position_gradients = need_bool();
    else if (k == "multitask_reference_dense_head") base.multitask_reference_dense_head = need_bool();
    else if (k == "rasterize_probabilities_as_logits") base.rasterize_probabilities_as_logits = need_bool();
    else if (k == "raster_tau") base.raster_tau = need_num();
    else if (k == "raster_chunk") base.raster_chunk = need_int();
    else if (k == "channels_last") base.channels_last = need_bool();
  }
  try {
    base.validate();
  } catch (const InputError& e) {
    throw InputError(file + ": " + where + ": " + e.what());
  }
  return base;
}

void validate_experiment_networks(const Experiment& e) {
  std::set<std::string> seen;
  const auto& ids = known_model_ids();
  for (const auto& n : e.networks) {
    const std::string where = "networks." + n.id;
    if (std::find(ids.begin(), ids.end(), n.id) == ids.end()) {
      std::string list;
      for (const auto& k : ids) list += (list.empty() ? "" : ", ") + k;
      throw InputError(e.path, "networks", "\"" + n.id + "\"", "unknown network (known: " + list + ")");
    }
    if (!seen.insert(n.id).second) throw InputError(e.path, "networks", "\"" + n.id + "\"", "listed twice");
    for (const auto& d : e.datasets) {
      ModelConfig base;
      base.kind = d.kind;
      base.size = d.size;
      try {
        model_config_from_json(n.options, base, e.path, where);
      } catch (const InputError& err) {
        throw InputError(std::string(err.what()) + " (data set " + d.name + ", size " + std::to_string(d.size) + ")");
      }
    }
  }
}

}  // namespace orch::models
