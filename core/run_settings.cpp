#include "core/run_settings.h"

#include "core/digest.h"
#include "core/errors.h"

namespace orch {

using nlohmann::json;

json RunSettings::to_json() const {
  return json{{"experiment", experiment},
              {"dataset", {{"name", dataset}, {"kind", kind_name(kind)}, {"size", size}, {"digest", dataset_digest}}},
              {"model", {{"id", model}, {"options", model_options}}},
              {"seed", seed},
              {"stage", choice_name(stage)},
              {"dependency", dependency},
              {"training", orch::to_json(training)},
              {"evaluation", orch::to_json(evaluation)}};
}

json RunSettings::identity() const {
  json j = to_json();
  j.erase("experiment");  // renaming an experiment keeps its runs
  for (const char* k : {"threads", "loader_threads", "checkpoint_every", "keep_checkpoints", "device", "pipeline",
                        "cudnn_benchmark"})
    j["training"].erase(k);
  return j;
}

namespace {

// The id from the settings' name parts and their identity text (identity().dump()).
std::string id_of(const RunSettings& s, const std::string& identity_text) {
  Digest d;
  d.add("run-v1").add(identity_text);
  std::string name = s.model + "." + s.dataset + ".s" + std::to_string(s.seed) + (s.stage == Stage::kPretrain ? ".pretrain" : "");
  for (char& c : name)
    if (!(std::isalnum(static_cast<unsigned char>(c)) || c == '_' || c == '.' || c == '-')) c = '_';
  return name + "-" + d.hex().substr(0, 10);
}

}  // namespace

std::string RunSettings::id() const { return id_of(*this, identity().dump()); }

std::string RunIdCache::id(const RunSettings& s, const std::string& shape) {
  auto it = cuts_.find(shape);
  if (it == cuts_.end()) {
    // The identity with seed 0 and no dependency, cut where their values go. Its keys are sorted (dataset,
    // dependency, evaluation, model, seed, stage, training); names hold no quotes (core/names.h), so the first
    // `"dependency":""` and the last `"seed":0,"stage":` are the top-level ones.
    RunSettings blank = s;
    blank.seed = 0;
    blank.dependency.clear();
    const std::string text = blank.identity().dump();
    const std::string dep = "\"dependency\":\"", seed = "\"seed\":0,\"stage\":";
    Cut c;
    const size_t d = text.find(dep + "\""), k = text.rfind(seed);
    if (d != std::string::npos && k != std::string::npos && d < k) {
      c.to_dependency = text.substr(0, d + dep.size());
      c.to_seed = text.substr(d + dep.size(), k + 7 - (d + dep.size()));  // from the closing quote to `"seed":`
      c.rest = text.substr(k + 8);                                       // after the 0
      c.usable = true;
    }
    it = cuts_.emplace(shape, std::move(c)).first;
    if (it->second.usable && id(s, shape) != s.id()) it->second.usable = false;  // checked once per shape
  }
  const Cut& c = it->second;
  if (!c.usable || (!s.dependency.empty() && !is_safe_run_id(s.dependency))) return s.id();
  return id_of(s, c.to_dependency + s.dependency + c.to_seed + std::to_string(s.seed) + c.rest);
}

RunSettings RunSettings::from_json(const json& j, const std::string& where) {
  auto need = [&](const json& o, const char* key, const std::string& field) -> const json& {
    if (!o.is_object() || !o.contains(key)) throw InputError(where, field, "", "missing in the run's settings");
    return o.at(key);
  };
  RunSettings s;
  std::string stage_text;
  try {
    s.experiment = need(j, "experiment", "experiment").get<std::string>();
    const json& d = need(j, "dataset", "dataset");
    s.dataset = need(d, "name", "dataset.name").get<std::string>();
    s.kind = parse_kind(need(d, "kind", "dataset.kind").get<std::string>(), where + ": dataset.kind");
    s.size = need(d, "size", "dataset.size").get<int>();
    s.dataset_digest = need(d, "digest", "dataset.digest").get<std::string>();
    const json& m = need(j, "model", "model");
    s.model = need(m, "id", "model.id").get<std::string>();
    s.model_options = need(m, "options", "model.options");
    s.seed = need(j, "seed", "seed").get<int64_t>();
    stage_text = need(j, "stage", "stage").get<std::string>();
    s.dependency = need(j, "dependency", "dependency").get<std::string>();
  } catch (const json::exception& e) {
    throw InputError(where, "", "", std::string("malformed run settings: ") + e.what());
  }
  s.training = training_from_json(need(j, "training", "training"), where, "training");
  s.evaluation = evaluation_from_json(need(j, "evaluation", "evaluation"), where, "evaluation");
  const auto stage = choice_from<Stage>(stage_text);
  if (!stage) throw InputError(where, "stage", stage_text, choice_expectation<Stage>());
  s.stage = *stage;
  if (s.size < 32 || s.size % 32) throw InputError(where, "dataset.size", std::to_string(s.size), "expected a multiple of 32");
  return s;
}

bool is_safe_run_id(const std::string& id) {
  if (id.empty() || id.size() > 200 || id[0] == '-' || id[0] == '.') return false;
  for (char c : id)
    if (!(std::isalnum(static_cast<unsigned char>(c)) || c == '_' || c == '.' || c == '-')) return false;
  return true;
}

}  // namespace orch
