#include "scheduler/resources.h"

#include <algorithm>
#include <cctype>
#include <cstring>
#include <set>

#include "core/errors.h"

namespace orch::scheduler {

using nlohmann::json;

namespace {

const std::set<std::string> kRunKeys = {"partition", "mem", "time", "constraint", "gpus", "cpus", "ranks", "runs_per_gpu"};
const std::set<std::string> kExperimentKeys = {"max_attempts", "oom_mem_factor", "array_throttle", "signal_seconds", "template", "local_workers",
                                               "local_gpus", "time_margin", "max_queued", "device_model"};

bool word(const std::string& s) {
  return !s.empty() && s.size() <= 128 && std::all_of(s.begin(), s.end(), [](char c) {
           return std::isalnum(static_cast<unsigned char>(c)) || c == '_' || c == '.' || c == '-';
         });
}

bool slurm_size(const std::string& s) {
  return !s.empty() && s.size() <= 16 && std::isdigit(static_cast<unsigned char>(s[0])) &&
         std::all_of(s.begin(), s.end(), [](char c) { return std::isdigit(static_cast<unsigned char>(c)) || std::strchr("KMGT", c); });
}

bool slurm_time(const std::string& s) {
  return s == "auto" || (!s.empty() && s.size() <= 16 && std::isdigit(static_cast<unsigned char>(s[0])) &&
                         std::all_of(s.begin(), s.end(), [](char c) { return std::isdigit(static_cast<unsigned char>(c)) || c == ':' || c == '-'; }));
}

bool constraint_expr(const std::string& s) {  // Slurm features joined by & | , and brackets
  return !s.empty() && s.size() <= 256 && std::all_of(s.begin(), s.end(), [](char c) {
           return std::isalnum(static_cast<unsigned char>(c)) || std::strchr("_.-&|,[]*", c);
         });
}

int integer(const json& v, const std::string& file, const std::string& field, int lo, int hi) {
  int64_t x = 0;
  if (!json_int64(v, &x) || x < lo || x > hi)
    throw InputError(file, field, v.dump(), "expected an integer " + std::to_string(lo) + " to " + std::to_string(hi));
  return static_cast<int>(x);
}

std::string text(const json& v, const std::string& file, const std::string& field, bool (*ok)(const std::string&),
                 const char* what) {
  if (!v.is_string() || !ok(v.get<std::string>())) throw InputError(file, field, v.dump(), what);
  return v.get<std::string>();
}

// Applies one level's fields to `r`; `where` is the level's path ("resources", "networks.ours.resources", ...).
void apply(const json& level, const std::string& file, const std::string& where, bool top, RunResources& r) {
  if (!level.is_object()) throw InputError(file, where, level.dump(), "expected an object");
  for (auto it = level.begin(); it != level.end(); ++it) {
    const std::string field = where + "." + it.key();
    const json& v = it.value();
    if (!kRunKeys.count(it.key())) {
      if (top && kExperimentKeys.count(it.key())) continue;
      std::string list;
      for (const auto& k : kRunKeys) list += (list.empty() ? "" : ", ") + k;
      if (top)
        for (const auto& k : kExperimentKeys) list += ", " + k;
      throw InputError(file, field, v.dump(),
                       std::string("unknown resource (expected one of: ") + list + ")" +
                           (kExperimentKeys.count(it.key()) ? "; this one belongs in the experiment's resources block" : ""));
    }
    const std::string& k = it.key();
    if (k == "partition") r.partition = text(v, file, field, word, "expected a partition name ([A-Za-z0-9_.-])");
    else if (k == "mem") r.mem = text(v, file, field, slurm_size, "expected a size such as 16G or 4000M");
    else if (k == "time") r.time = text(v, file, field, slurm_time, "expected a time limit such as 2-00:00:00, 12:00:00 or 90, or \"auto\"");
    else if (k == "constraint") r.constraint = text(v, file, field, constraint_expr, "expected a Slurm feature expression ([A-Za-z0-9_.-&|,[]*])");
    else if (k == "gpus") r.gpus = integer(v, file, field, 0, 64);
    else if (k == "cpus") r.cpus = integer(v, file, field, 1, 1024);
    else if (k == "ranks") r.ranks = integer(v, file, field, 1, 1024);
    else if (k == "runs_per_gpu") r.runs_per_gpu = integer(v, file, field, 1, 64);
  }
}

}  // namespace

std::string RunResources::key() const {
  return partition + "|" + mem + "|" + time + "|" + constraint + "|" + std::to_string(gpus) + "|" + std::to_string(cpus) +
         "|" + std::to_string(ranks) + "|" + std::to_string(runs_per_gpu);
}

std::string RunResources::describe() const {
  std::string s = "gpus " + std::to_string(gpus) + ", cpus " + std::to_string(cpus);
  if (ranks > 1) s += ", ranks " + std::to_string(ranks);
  if (runs_per_gpu > 1) s += ", " + std::to_string(runs_per_gpu) + " runs per GPU";
  if (!mem.empty()) s += ", mem " + mem;
  if (!time.empty()) s += ", time " + time;
  if (!partition.empty()) s += ", partition " + partition;
  if (!constraint.empty()) s += ", constraint " + constraint;
  return s;
}

RunResources resources_for(const Experiment& exp, const std::string& dataset, const std::string& model) {
  RunResources r;
  const json& top = exp.raw.contains("resources") ? exp.raw["resources"] : json::object();
  apply(top, exp.path, "resources", true, r);
  for (const auto& d : exp.datasets)
    if (d.name == dataset) apply(d.resources, exp.path, "datasets." + d.name + ".resources", false, r);
  for (const auto& n : exp.networks) {
    if (n.id != model) continue;
    apply(n.resources, exp.path, "networks." + n.id + ".resources", false, r);
    if (auto it = n.datasets.find(dataset); it != n.datasets.end())
      apply(it->second.resources, exp.path, "networks." + n.id + ".datasets." + dataset + ".resources", false, r);
  }
  if (r.runs_per_gpu > 1 && r.gpus != 1)
    throw InputError(exp.path, "resources.runs_per_gpu", std::to_string(r.runs_per_gpu),
                     "packs runs onto one GPU: needs gpus = 1 for " + model + " on " + dataset + " (it has " +
                         std::to_string(r.gpus) + ")");
  if (r.runs_per_gpu > 1 && r.ranks > 1)
    throw InputError(exp.path, "resources.runs_per_gpu", std::to_string(r.runs_per_gpu),
                     "cannot be combined with ranks > 1 (" + model + " on " + dataset + ")");
  return r;
}

std::shared_ptr<const RunResources> ResourceCache::shared(const std::string& dataset, const std::string& model) {
  auto key = std::make_pair(dataset, model);
  auto it = cache_.find(key);
  if (it == cache_.end())
    it = cache_.emplace(key, std::make_shared<const RunResources>(resources_for(exp_, dataset, model))).first;
  return it->second;
}

ExperimentResources experiment_resources(const Experiment& exp) {
  ExperimentResources e;
  if (!exp.raw.contains("resources")) return e;
  const json& j = exp.raw["resources"];
  if (!j.is_object()) throw InputError(exp.path, "resources", j.dump(), "expected an object");
  const std::string& f = exp.path;
  if (j.contains("array_throttle")) e.array_throttle = integer(j["array_throttle"], f, "resources.array_throttle", 1, 100000);
  if (j.contains("signal_seconds")) e.signal_seconds = integer(j["signal_seconds"], f, "resources.signal_seconds", 0, 86400);
  if (j.contains("max_attempts")) e.max_attempts = integer(j["max_attempts"], f, "resources.max_attempts", 1, 100);
  if (j.contains("local_workers")) e.local_workers = integer(j["local_workers"], f, "resources.local_workers", 1, 1024);
  if (j.contains("max_queued")) e.max_queued = integer(j["max_queued"], f, "resources.max_queued", 1, 10000000);
  if (j.contains("template")) {
    const json& t = j["template"];
    if (!t.is_string() || t.get<std::string>().empty()) throw InputError(f, "resources.template", t.dump(), "expected a path");
    e.template_path = t;
  }
  if (j.contains("device_model")) {
    const json& m = j["device_model"];
    if (!m.is_string() || m.get<std::string>().empty())
      throw InputError(f, "resources.device_model", m.dump(), "expected the GPU model's name or part of it, e.g. \"A100\"");
    e.device_model = m;
  }
  if (j.contains("local_gpus")) {
    const json& g = j["local_gpus"];
    if (!g.is_array()) throw InputError(f, "resources.local_gpus", g.dump(), "expected a list of GPU indices, e.g. [0, 1]");
    for (const auto& x : g) e.local_gpus.push_back(integer(x, f, "resources.local_gpus", 0, 1023));
  }
  if (j.contains("oom_mem_factor")) {
    const json& m = j["oom_mem_factor"];
    if (!m.is_number() || !(m.get<double>() >= 1 && m.get<double>() <= 10))
      throw InputError(f, "resources.oom_mem_factor", m.dump(), "expected a number 1 to 10");
    e.oom_mem_factor = m;
  }
  if (j.contains("time_margin")) {
    const json& m = j["time_margin"];
    if (!m.is_number() || m.get<double>() < 1 || m.get<double>() > 10)
      throw InputError(f, "resources.time_margin", m.dump(), "expected a number 1 to 10");
    e.time_margin = m;
  }
  return e;
}

void validate_resources(const Experiment& exp) {
  experiment_resources(exp);
  for (const auto& d : exp.datasets)
    for (const auto& n : exp.networks) resources_for(exp, d.name, n.id);
  for (const auto& d : exp.datasets) resources_for(exp, d.name, "unet");  // the pretraining runs
}

}  // namespace orch::scheduler
