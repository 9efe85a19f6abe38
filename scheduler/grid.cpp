#include "scheduler/grid.h"

#include <algorithm>
#include <set>
#include <map>

#include "core/errors.h"
#include "models/catalogue.h"
#include "scheduler/resources.h"
#include "storage/workspace.h"

namespace orch::scheduler {

namespace {

struct Builder {
  explicit Builder(const Experiment& e) : exp(e), resources(e) {}
  const Experiment& exp;
  std::map<std::string, PlannedRun> by_key;  // "dataset/model/seed/stage" -> run
  std::vector<std::string> order;            // ids in dependency order
  std::map<std::string, std::string> digests;
  ResourceCache resources;

  TrainingSpec training_of(const std::string& model, const std::string& dataset) const {
    for (const auto& n : exp.networks)
      if (n.id == model) return n.training_for(exp.training, exp.path, dataset);
    return exp.training;
  }
  bool in_grid(const std::string& model) const {
    return std::any_of(exp.networks.begin(), exp.networks.end(), [&](const NetworkSpec& n) { return n.id == model; });
  }
  // The run a frozen-pretrained dependency comes from: the grid's own run of that network for the first seed when
  // the experiment shares it (its settings then equal a pretraining run's but for the stage), else a run of its
  // own (stage "pretrain").
  std::string pretrained(const DatasetSpec& d, const std::string& network) {
    const int64_t first = exp.seeds.front();
    if (exp.pretrain == PretrainMode::kShared && in_grid(network)) return add(d, network, first, Stage::kTrain);
    return add(d, network, first, Stage::kPretrain);
  }
  nlohmann::json options_of(const std::string& model) const {
    for (const auto& n : exp.networks)
      if (n.id == model) return n.options;
    return nlohmann::json::object();
  }
  const std::string& digest(const DatasetSpec& d) {
    auto it = digests.find(d.name);
    if (it == digests.end()) it = digests.emplace(d.name, dataset_spec_digest(exp, d)).first;
    return it->second;
  }

  // Adds the run and, first, what it depends on. Returns its id.
  std::string add(const DatasetSpec& d, const std::string& model, int64_t seed, Stage stage) {
    const std::string key = d.name + "/" + model + "/" + std::to_string(seed) + "/" + choice_name(stage);
    auto it = by_key.find(key);
    if (it != by_key.end()) return it->second.id;
    PlannedRun r;
    r.settings.experiment = exp.name;
    r.settings.dataset = d.name;
    r.settings.kind = d.kind;
    r.settings.size = d.size;
    r.settings.dataset_digest = digest(d);
    r.settings.model = model;
    r.settings.model_options = options_of(model);
    r.settings.seed = seed;
    r.settings.stage = stage;
    r.settings.training = training_of(model, d.name);
    if (stage == Stage::kPretrain) r.settings.training = exp.pretraining_recipe(r.settings.training);
    r.settings.evaluation = exp.evaluation;
    const models::NetworkInfo& info = models::network_info(model);
    if (info.role == models::DependencyRole::kFrozenPretrained) r.settings.dependency = pretrained(d, info.dependency);
    else if (info.role == models::DependencyRole::kFineTuneFrom)
      r.settings.dependency = add(d, info.dependency, exp.rasterize_init == RasterizeInit::kShared ? exp.seeds.front() : seed, Stage::kTrain);
    if (!r.settings.dependency.empty()) r.depends_on.push_back(r.settings.dependency);
    r.id = r.settings.id();
    r.resources = resources.shared(d.name, model);
    order.push_back(key);
    by_key.emplace(key, r);
    return r.id;
  }
  std::vector<PlannedRun> result() const {
    std::vector<PlannedRun> out;
    for (const auto& k : order) out.push_back(by_key.at(k));
    return out;
  }
};

void check_model(const Experiment& exp, const std::string& model) {
  if (!models::find_network(model))
    throw InputError(exp.path, "--model", model, "unknown network (known: " + models::known_network_list() + ")");
}

}  // namespace

std::vector<PlannedRun> expand(const Experiment& exp) {
  Builder b{exp};
  for (const auto& d : exp.datasets)
    for (const auto& n : exp.networks)
      for (int64_t seed : exp.seeds) b.add(d, n.id, seed, Stage::kTrain);
  return b.result();
}

std::vector<PlannedRun> chain_for(const Experiment& exp, const std::string& dataset, const std::string& model,
                                  int64_t seed, Stage stage) {
  const DatasetSpec& d = exp.dataset(dataset);
  check_model(exp, model);
  if (stage == Stage::kPretrain) {
    bool pretrained_by_some = false;
    for (const auto& n : models::network_catalogue())
      pretrained_by_some |= n.role == models::DependencyRole::kFrozenPretrained && n.dependency == model;
    if (!pretrained_by_some)
      throw InputError(exp.path, "--stage", choice_name(stage), model + " has no pretrain stage (no network freezes a pretrained " + model + ")");
  }
  Builder b{exp};
  b.add(d, model, seed, stage);
  return b.result();
}

namespace {
std::string filter_value(const std::string& key, const PlannedRun& r) {
  return key == "dataset" ? r.settings.dataset
         : key == "model" ? r.settings.model
         : key == "seed"  ? std::to_string(r.settings.seed)
                          : std::string(choice_name(r.settings.stage));
}
}  // namespace

bool Filter::matches(const PlannedRun& r) const {
  for (const auto& [key, values] : terms)
    if (std::find(values.begin(), values.end(), filter_value(key, r)) == values.end()) return false;
  return true;
}

void Filter::check_against(const std::vector<PlannedRun>& grid) const {
  for (const auto& [key, values] : terms) {
    std::set<std::string> present;
    for (const auto& r : grid) present.insert(filter_value(key, r));
    for (const auto& v : values)
      if (!present.count(v)) {
        std::string list;
        for (const auto& p : present) list += (list.empty() ? "" : ", ") + p;
        throw InputError("--only", key, v, "no run of the experiment has this " + key + " (it has: " + list + ")");
      }
  }
}

Filter parse_filter(const std::vector<std::string>& only) {
  Filter f;
  for (const auto& term : only) {
    auto eq = term.find('=');
    if (eq == std::string::npos || eq == 0 || eq + 1 == term.size())
      throw InputError("--only", "", term, "expected key=value[,value...]");
    std::string key = term.substr(0, eq);
    if (key != "dataset" && key != "model" && key != "seed" && key != "stage")
      throw InputError("--only", key, term, "unknown key (expected dataset, model, seed or stage)");
    std::vector<std::string> values;
    size_t start = eq + 1;
    for (;;) {
      size_t comma = term.find(',', start);
      values.push_back(term.substr(start, comma == std::string::npos ? std::string::npos : comma - start));
      if (comma == std::string::npos) break;
      start = comma + 1;
    }
    f.terms.emplace_back(key, values);
  }
  return f;
}

}  // namespace orch::scheduler
