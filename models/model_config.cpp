#include "models/model_config.h"

#include <algorithm>
#include <set>

#include "core/errors.h"
#include "core/experiment.h"
#include "models/catalogue.h"

namespace orch::models {

void ModelConfig::validate() const {
  if (size < kMinNetworkSize || size % 32 != 0)
    throw InputError("", "size", std::to_string(size),
                     "networks need a multiple of 32 (five 2x poolings), at least " + std::to_string(kMinNetworkSize));
  if (latents < 0 || latents > 4096) throw InputError("", "latents", std::to_string(latents), "expected 1 to 4096");
  if (cheb_k < 1 || cheb_k > 20) throw InputError("", "cheb_k", std::to_string(cheb_k), "expected 1 to 20");
  if (!(raster_tau > 0)) throw InputError("", "raster_tau", format_number(raster_tau), "expected > 0");
  if (raster_chunk < 1) throw InputError("", "raster_chunk", std::to_string(raster_chunk), "expected >= 1");
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
    auto need_int = [&](int64_t lo, int64_t hi) {
      int64_t x = 0;
      if (!json_int64(v, &x)) throw InputError(file, field, v.dump(), "expected an integer");
      if (x < lo || x > hi)
        throw InputError(file, field, v.dump(), "expected " + std::to_string(lo) + " to " + std::to_string(hi));
      return static_cast<int>(x);
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
    if (k == "latents") base.latents = need_int(1, 4096);  // 0 ("the reference's choice") is internal only
    else if (k == "cheb_k") base.cheb_k = need_int(1, 20);
    else if (k == "kld_weight") base.kld_weight = need_num();
    else if (k == "hcd_beta") base.hcd_beta = need_num();
    else if (k == "lookup_position_gradients") base.lookup_position_gradients = need_bool();
    else if (k == "multitask_reference_dense_head") base.multitask_reference_dense_head = need_bool();
    else if (k == "rasterize_probabilities_as_logits") base.rasterize_probabilities_as_logits = need_bool();
    else if (k == "raster_tau") base.raster_tau = need_num();
    else if (k == "raster_chunk") base.raster_chunk = need_int(1, 1 << 30);
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
  // A swept network option is checked at each of its values (the other keys as the file has them).
  for (const auto& axis : e.sweep)
    for (const auto& v : axis.values) {
      try {
        validate_experiment_networks(e.at(SweepPoint{{{axis.key, v}}}));
      } catch (const InputError& err) {
        throw InputError(std::string(err.what()) + " (the sweep's value " + axis.key + " = " + v.dump() + ")");
      }
    }
  std::set<std::string> seen;
  for (const auto& d : e.datasets)
    if (!e.networks.empty() && (d.size < kMinNetworkSize || d.size % 32 != 0))
      throw InputError(e.path, "datasets." + d.name + ".size", std::to_string(d.size),
                       "the networks need a multiple of 32, at least " + std::to_string(kMinNetworkSize) +
                           " (their decoders sample features at 1/32 of the input)");
  for (const auto& n : e.networks) {
    const std::string where = "networks." + n.id;
    if (!find_network(n.id))
      throw InputError(e.path, "networks", "\"" + n.id + "\"", "unknown network (known: " + known_network_list() + ")");
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
