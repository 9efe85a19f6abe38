#include "scheduler/grid.h"

#include <algorithm>
#include <set>
#include <map>
#include <unordered_map>

#include "core/errors.h"
#include "models/catalogue.h"
#include "scheduler/resources.h"
#include "storage/workspace.h"

namespace orch::scheduler {

namespace {

struct Builder {
  explicit Builder(const Experiment& e) : exp(e), resources(e) {}
  const Experiment& exp;
  std::vector<PlannedRun> runs;                      // in dependency order
  std::unordered_map<std::string, size_t> at_key;    // "dataset/model/seed/stage" -> its position in runs
  std::map<std::string, std::string> digests;
  ResourceCache resources;
  std::map<std::string, TrainingSpec> trainings;  // per data set, network and stage: merged once, not per seed
  RunIdCache ids;                                 // per data set, network and stage

  // `shape`: "dataset/model/stage", the key of both caches.
  const TrainingSpec& training_of(const std::string& model, const std::string& dataset, Stage stage, const std::string& shape) {
    auto it = trainings.find(shape);
    if (it != trainings.end()) return it->second;
    TrainingSpec t = exp.training;
    for (const auto& n : exp.networks)
      if (n.id == model) {
        t = n.training_for(exp.training, exp.path, dataset);
        break;
      }
    if (stage == Stage::kPretrain) t = exp.pretraining_recipe(t);
    return trainings.emplace(shape, std::move(t)).first->second;
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
    if (auto it = at_key.find(key); it != at_key.end()) return runs[it->second].id;
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
    const std::string shape = d.name + "/" + model + "/" + choice_name(stage);
    r.settings.training = training_of(model, d.name, stage, shape);
    r.settings.evaluation = exp.evaluation;
    const models::NetworkInfo& info = models::network_info(model);
    if (info.role == models::DependencyRole::kFrozenPretrained) r.settings.dependency = pretrained(d, info.dependency);
    else if (info.role == models::DependencyRole::kFineTuneFrom)
      r.settings.dependency = add(d, info.dependency, exp.rasterize_init == RasterizeInit::kShared ? exp.seeds.front() : seed, Stage::kTrain);
    if (!r.settings.dependency.empty()) r.depends_on.push_back(r.settings.dependency);
    r.id = ids.id(r.settings, shape);
    r.resources = resources.shared(d.name, model);
    at_key.emplace(key, runs.size());
    runs.push_back(std::move(r));
    return runs.back().id;
  }
};

void check_model(const Experiment& exp, const std::string& model) {
  if (!models::find_network(model))
    throw InputError(exp.path, "--model", model, "unknown network (known: " + models::known_network_list() + ")");
}

std::vector<PlannedRun> expand_point(const Experiment& exp) {
  Builder b{exp};
  for (const auto& d : exp.datasets)
    for (const auto& n : exp.networks)
      for (int64_t seed : exp.seeds) b.add(d, n.id, seed, Stage::kTrain);
  return std::move(b.runs);
}

}  // namespace

// Each point's runs in their dependency order, a run already planned by an earlier point only gaining the point:
// its dependencies were planned before it there, so the merged order keeps dependencies first.
std::vector<PlannedRun> expand(const Experiment& exp) {
  if (exp.sweep.empty()) return expand_point(exp);
  const std::vector<SweepPoint> points = exp.sweep_points();
  std::vector<PlannedRun> out;
  std::unordered_map<std::string, size_t> index;
  for (uint32_t p = 0; p < points.size(); ++p)
    for (auto& r : expand_point(exp.at(points[p]))) {
      auto [it, fresh] = index.emplace(r.id, out.size());
      if (fresh) out.push_back(std::move(r));
      out[it->second].sweep_points.push_back(p);
    }
  return out;
}

std::vector<PlannedRun> runs_at(const std::vector<PlannedRun>& grid, uint32_t point) {
  std::vector<PlannedRun> out;
  for (const auto& r : grid)
    if (r.sweep_points.empty() || std::find(r.sweep_points.begin(), r.sweep_points.end(), point) != r.sweep_points.end())
      out.push_back(r);
  return out;
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
  return std::move(b.runs);
}

namespace {
const std::set<std::string> kFilterKeys = {"dataset", "model", "seed", "stage"};

// The run's values at `key`: one for a grid key, one per sweep point the run belongs to for a sweep key.
std::vector<std::string> filter_values(const std::string& key, const PlannedRun& r, const std::vector<SweepPoint>& points) {
  if (key == "dataset") return {r.settings.dataset};
  if (key == "model") return {r.settings.model};
  if (key == "seed") return {std::to_string(r.settings.seed)};
  if (key == "stage") return {choice_name(r.settings.stage)};
  std::vector<std::string> out;
  for (uint32_t p : r.sweep_points) out.push_back(points.at(p).value_text(key));
  return out;
}
}  // namespace

bool Filter::matches(const PlannedRun& r) const {
  for (const auto& [key, values] : terms) {
    bool any = false;
    for (const auto& v : filter_values(key, r, points)) any |= std::find(values.begin(), values.end(), v) != values.end();
    if (!any) return false;
  }
  return true;
}

void Filter::check_against(const std::vector<PlannedRun>& grid) const {
  for (const auto& [key, values] : terms) {
    std::set<std::string> present;
    for (const auto& r : grid)
      for (auto& v : filter_values(key, r, points)) present.insert(std::move(v));
    for (const auto& v : values)
      if (!present.count(v)) {
        std::string list;
        for (const auto& p : present) list += (list.empty() ? "" : ", ") + p;
        throw InputError("--only", key, v, "no run of the experiment has this " + key + " (it has: " + list + ")");
      }
  }
}

Filter parse_filter(const std::vector<std::string>& only, const Experiment& exp) {
  Filter f;
  std::set<std::string> sweep_keys;
  for (const auto& a : exp.sweep) sweep_keys.insert(a.key);
  if (!sweep_keys.empty()) f.points = exp.sweep_points();
  for (const auto& term : only) {
    auto eq = term.find('=');
    if (eq == std::string::npos || eq == 0 || eq + 1 == term.size())
      throw InputError("--only", "", term, "expected key=value[,value...]");
    std::string key = term.substr(0, eq);
    const bool sweep = sweep_keys.count(key) > 0;
    if (!kFilterKeys.count(key) && !sweep) {
      std::string known = "dataset, model, seed, stage";
      for (const auto& k : sweep_keys) known += ", " + k;
      throw InputError("--only", key, term, "unknown key (expected " + known + (sweep_keys.empty() ? "; the experiment has no sweep" : "") + ")");
    }
    std::vector<std::string> values;
    size_t start = eq + 1;
    for (;;) {
      size_t comma = term.find(',', start);
      std::string v = term.substr(start, comma == std::string::npos ? std::string::npos : comma - start);
      if (sweep) v = (nlohmann::json::accept(v) ? nlohmann::json::parse(v) : nlohmann::json(v)).dump();
      values.push_back(std::move(v));
      if (comma == std::string::npos) break;
      start = comma + 1;
    }
    f.terms.emplace_back(key, values);
  }
  return f;
}

}  // namespace orch::scheduler
