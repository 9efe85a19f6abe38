#include "models/catalogue.h"

#include "core/errors.h"

namespace orch::models {

namespace {

std::deque<NetworkInfo> build() {
  using R = DependencyRole;
  //        id                  paper name          predicts supervision dependency         role                 prefix   step  gamma dense  criterion         higher baseline
  return {
      {"hybridgnet",        "HybridGNet",        "point", "point", "",                R::kNone,             "",      50,   0.9,  false, "mse",            false, false},
      {"hybridgnet_igsc",   "HybridGNet+IGSC",   "point", "point", "",                R::kNone,             "",      50,   0.9,  false, "mse",            false, false},
      {"unet",              "UNet",              "dense", "dense", "",                R::kNone,             "",      3000, 0.1,  true,  "mean_dice",      true,  false},
      {"unet_joint",        "UNet Joint",        "dense", "dense", "unet",            R::kFrozenPretrained, "unet.", 3000, 0.1,  true,  "mean_dice",      true,  false},
      {"hourglass",         "Hourglass",         "point", "both",  "unet",            R::kFrozenPretrained, "unet.", 50,   0.9,  false, "hcd",            false, false},
      {"hourglass_concat",  "Hourglass Concat",  "point", "both",  "unet",            R::kFrozenPretrained, "unet.", 50,   0.9,  false, "hcd",            false, false},
      {"multitask",         "Multi-task",        "point", "both",  "",                R::kNone,             "",      50,   0.9,  false, "hcd+0.05*dense", false, false},
      {"no_joint",          "No Joint",          "point", "point", "",                R::kNone,             "",      50,   0.9,  false, "hcd",            false, false},
      {"mse_only",          "MSE Only",          "point", "both",  "unet",            R::kFrozenPretrained, "unet.", 50,   0.9,  false, "mse",            false, false},
      {"rasterize",         "Rasterize",         "point", "dense", "hybridgnet_igsc", R::kFineTuneFrom,     "",      50,   0.9,  true,  "dense",          false, false},
      {"ours",              "Ours",              "point", "both",  "unet",            R::kFrozenPretrained, "unet.", 50,   0.9,  false, "hcd",            false, true},
  };
}

std::deque<NetworkInfo>& catalogue() {
  static std::deque<NetworkInfo> c = build();
  return c;
}

}  // namespace

const std::deque<NetworkInfo>& network_catalogue() { return catalogue(); }

void add_network(NetworkInfo info) {
  if (info.id.empty() || info.id.find_first_not_of("abcdefghijklmnopqrstuvwxyz0123456789_") != std::string::npos)
    throw InputError("", "network id", info.id, "expected [a-z0-9_]+");
  if (find_network(info.id)) throw InputError("", "network id", info.id, "already in the catalogue");
  if (!info.dependency.empty() && !find_network(info.dependency))
    throw InputError("", "dependency", info.dependency, "not in the catalogue");
  catalogue().push_back(std::move(info));
}

const NetworkInfo* find_network(const std::string& id) {
  for (const auto& n : network_catalogue())
    if (n.id == id) return &n;
  return nullptr;
}

std::string known_network_list() {
  std::string list;
  for (const auto& n : network_catalogue()) list += (list.empty() ? "" : ", ") + n.id;
  return list;
}

const NetworkInfo& network_info(const std::string& id) {
  if (const NetworkInfo* n = find_network(id)) return *n;
  throw InputError("", "model", id, "unknown network (known: " + known_network_list() + ")");
}

const NetworkInfo& paired_test_baseline() {
  for (const auto& n : network_catalogue())
    if (n.paired_test_baseline) return n;
  throw Error("the network catalogue names no paired-test baseline");
}

}  // namespace orch::models
