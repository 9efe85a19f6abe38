#include "core/experiment.h"

#include <algorithm>
#include <fstream>
#include <set>

#include "core/errors.h"

namespace orch {

using nlohmann::json;

namespace {

struct Ctx {
  const std::string& file;
  [[noreturn]] void fail(const std::string& field, const json& value, const std::string& problem) const {
    std::string v = value.is_null() ? "" : value.dump();
    if (v.size() > 80) v = v.substr(0, 77) + "...";
    throw InputError(file, field, v, problem);
  }
  void only(const json& obj, const std::string& where, const std::set<std::string>& allowed) const {
    for (auto it = obj.begin(); it != obj.end(); ++it)
      if (!allowed.count(it.key())) {
        std::string list;
        for (const auto& a : allowed) list += (list.empty() ? "" : ", ") + a;
        fail(where.empty() ? it.key() : where + "." + it.key(), it.value(), "unknown field (expected one of: " + list + ")");
      }
  }
  const json& object(const json& obj, const std::string& where) const {
    if (!obj.is_object()) fail(where, obj, "expected an object");
    return obj;
  }
  std::string str(const json& obj, const std::string& key, const std::string& where, const std::string& def,
                  bool required = false) const {
    if (!obj.contains(key)) {
      if (required) fail(where + "." + key, json(), "missing required field");
      return def;
    }
    if (!obj[key].is_string() || obj[key].get<std::string>().empty())
      fail(where + "." + key, obj[key], "expected a non-empty string");
    return obj[key];
  }
  int64_t integer(const json& obj, const std::string& key, const std::string& where, int64_t def, int64_t lo,
                  int64_t hi) const {
    if (!obj.contains(key)) return def;
    const json& v = obj[key];
    if (!v.is_number_integer()) fail(where + "." + key, v, "expected an integer");
    int64_t x = v.get<int64_t>();
    if (x < lo || x > hi)
      fail(where + "." + key, v, "expected " + std::to_string(lo) + " to " + std::to_string(hi));
    return x;
  }
  double number(const json& obj, const std::string& key, const std::string& where, double def, double lo,
                double hi) const {
    if (!obj.contains(key)) return def;
    const json& v = obj[key];
    if (!v.is_number()) fail(where + "." + key, v, "expected a number");
    double x = v.get<double>();
    if (!(x >= lo && x <= hi)) fail(where + "." + key, v, "expected " + format_number(lo) + " to " + format_number(hi));
    return x;
  }
  std::vector<std::string> paths(const json& obj, const std::string& key, const std::string& where) const {
    std::vector<std::string> out;
    if (!obj.contains(key)) return out;
    const json& v = obj[key];
    if (v.is_string()) return {v.get<std::string>()};
    if (!v.is_array()) fail(where + "." + key, v, "expected a path or a list of paths");
    for (const auto& e : v) {
      if (!e.is_string()) fail(where + "." + key, e, "expected a path");
      out.push_back(e);
    }
    return out;
  }
};

}  // namespace

void apply_override(json& doc, const std::string& assignment) {
  auto eq = assignment.find('=');
  if (eq == std::string::npos || eq == 0)
    throw InputError("", "--set", assignment, "expected key=value, e.g. datasets.synth_lh.synthetic.count=40");
  std::string key = assignment.substr(0, eq), text = assignment.substr(eq + 1);
  json value = json::parse(text, nullptr, false);
  if (value.is_discarded()) value = text;
  json* node = &doc;
  size_t start = 0;
  for (;;) {
    size_t dot = key.find('.', start);
    std::string part = key.substr(start, dot == std::string::npos ? std::string::npos : dot - start);
    if (part.empty()) throw InputError("", "--set", assignment, "empty key component");
    if (!node->is_object()) {
      if (!node->is_null()) throw InputError("", "--set", assignment, "'" + part + "' is inside a non-object value");
      *node = json::object();
    }
    if (dot == std::string::npos) {
      (*node)[part] = value;
      return;
    }
    node = &(*node)[part];
    start = dot + 1;
  }
}

TrainingSpec training_from_json(const json& t, const std::string& path, const std::string& w) {
  Ctx c{path};
  c.object(t, w);
  c.only(t, w, {"epochs", "batch_size", "learning_rate", "weight_decay", "validate_every", "threads",
                "loader_threads", "augment", "mask_resampling", "seed_mode", "checkpoint_every", "keep_checkpoints",
                "device", "lr_step_epochs", "lr_gamma"});
  TrainingSpec ts;
  ts.epochs = static_cast<int>(c.integer(t, "epochs", w, ts.epochs, 1, 1000000));
  ts.batch_size = static_cast<int>(c.integer(t, "batch_size", w, ts.batch_size, 1, 4096));
  ts.learning_rate = c.number(t, "learning_rate", w, ts.learning_rate, 1e-12, 10);
  ts.weight_decay = c.number(t, "weight_decay", w, ts.weight_decay, 0, 1);
  ts.validate_every = static_cast<int>(c.integer(t, "validate_every", w, ts.validate_every, 1, 1000000));
  ts.threads = static_cast<int>(c.integer(t, "threads", w, ts.threads, 0, 1024));
  ts.loader_threads = static_cast<int>(c.integer(t, "loader_threads", w, ts.loader_threads, 1, 256));
  if (t.contains("augment")) {
    if (!t["augment"].is_boolean()) c.fail(w + ".augment", t["augment"], "expected true or false");
    ts.augment = t["augment"];
  }
  ts.mask_resampling = c.str(t, "mask_resampling", w, ts.mask_resampling);
  if (ts.mask_resampling != "reference" && ts.mask_resampling != "nearest")
    c.fail(w + ".mask_resampling", t["mask_resampling"], "expected \"reference\" or \"nearest\"");
  ts.seed_mode = c.str(t, "seed_mode", w, ts.seed_mode);
  if (ts.seed_mode != "full" && ts.seed_mode != "reference")
    c.fail(w + ".seed_mode", t["seed_mode"], "expected \"full\" or \"reference\"");
  ts.checkpoint_every = static_cast<int>(c.integer(t, "checkpoint_every", w, ts.checkpoint_every, 1, 1000000));
  ts.keep_checkpoints = static_cast<int>(c.integer(t, "keep_checkpoints", w, ts.keep_checkpoints, 1, 1000));
  ts.lr_step_epochs = static_cast<int>(c.integer(t, "lr_step_epochs", w, ts.lr_step_epochs, 0, 1000000));
  ts.lr_gamma = c.number(t, "lr_gamma", w, ts.lr_gamma, 0, 1);
  ts.device = c.str(t, "device", w, ts.device);
  if (ts.device != "auto" && ts.device != "cpu" && ts.device != "cuda")
    c.fail(w + ".device", t["device"], "expected \"auto\", \"cpu\" or \"cuda\"");
  return ts;
}

EvaluationSpec evaluation_from_json(const json& v, const std::string& path, const std::string& w) {
  Ctx c{path};
  c.object(v, w);
  c.only(v, w, {"spacing_mm", "empty_hausdorff"});
  EvaluationSpec e;
  e.spacing_mm = c.number(v, "spacing_mm", w, e.spacing_mm, 1e-6, 1000);
  e.empty_hausdorff = c.str(v, "empty_hausdorff", w, e.empty_hausdorff);
  if (e.empty_hausdorff != "nan" && e.empty_hausdorff != "diagonal")
    c.fail(w + ".empty_hausdorff", v["empty_hausdorff"], "expected \"nan\" or \"diagonal\"");
  return e;
}

json to_json(const TrainingSpec& t) {
  json j{{"epochs", t.epochs}, {"batch_size", t.batch_size}, {"learning_rate", t.learning_rate},
              {"weight_decay", t.weight_decay}, {"validate_every", t.validate_every}, {"threads", t.threads},
              {"loader_threads", t.loader_threads}, {"augment", t.augment}, {"mask_resampling", t.mask_resampling},
              {"seed_mode", t.seed_mode}, {"checkpoint_every", t.checkpoint_every},
              {"keep_checkpoints", t.keep_checkpoints}, {"device", t.device}};
  // Written only when set, so that runs made before these keys existed keep their ids.
  if (t.lr_step_epochs != 0) j["lr_step_epochs"] = t.lr_step_epochs;
  if (t.lr_gamma != 0) j["lr_gamma"] = t.lr_gamma;
  return j;
}

TrainingSpec NetworkSpec::training_for(const TrainingSpec& base, const std::string& file) const {
  if (training.empty()) return base;
  json merged = to_json(base);
  for (auto it = training.begin(); it != training.end(); ++it) merged[it.key()] = it.value();
  Ctx c{file};
  c.only(training, "networks." + id + ".training",
         {"epochs", "batch_size", "learning_rate", "weight_decay", "validate_every", "threads", "loader_threads", "augment",
          "mask_resampling", "seed_mode", "checkpoint_every", "keep_checkpoints", "device", "lr_step_epochs",
          "lr_gamma"});
  return training_from_json(merged, file, "networks." + id + ".training");
}

json to_json(const EvaluationSpec& e) {
  return json{{"spacing_mm", e.spacing_mm}, {"empty_hausdorff", e.empty_hausdorff}};
}

Experiment load_experiment(const std::string& path, const std::vector<std::string>& overrides) {
  std::ifstream in(path);
  if (!in) throw InputError(path, "", "", "cannot open experiment file");
  json doc;
  try {
    doc = json::parse(in);
  } catch (const json::parse_error& e) {
    throw InputError(path, "", "", std::string("invalid JSON: ") + e.what());
  }
  for (const auto& o : overrides) apply_override(doc, o);
  return parse_experiment(doc, path);
}

const DatasetSpec& Experiment::dataset(const std::string& n) const {
  for (const auto& d : datasets)
    if (d.name == n) return d;
  std::string list;
  for (const auto& d : datasets) list += (list.empty() ? "" : ", ") + d.name;
  throw InputError(path, "--dataset", n, "no such data set in the experiment (it has: " + list + ")");
}

Experiment parse_experiment(const json& doc, const std::string& path) {
  Ctx c{path};
  c.object(doc, "(top level)");
  // Sections later stages read (networks, seeds, training, ...) are accepted here and validated by their owners.
  c.only(doc, "", {"name", "description", "workspace", "datasets", "networks", "seeds", "training", "evaluation",
                   "resources", "backend", "report"});
  Experiment e;
  e.path = path;
  e.raw = doc;
  e.name = c.str(doc, "name", "", "", true);
  e.workspace = c.str(doc, "workspace", "", "workspace/" + e.name);
  if (!doc.contains("datasets")) c.fail("datasets", json(), "missing required field");
  const json& ds = c.object(doc["datasets"], "datasets");
  if (ds.empty()) c.fail("datasets", ds, "declare at least one data set");
  for (auto it = ds.begin(); it != ds.end(); ++it) {
    std::string w = "datasets." + it.key();
    for (char ch : it.key())
      if (!(std::isalnum(static_cast<unsigned char>(ch)) || ch == '_' || ch == '-'))
        c.fail(w, it.key(), "data set names use letters, digits, '_' and '-' only");
    const json& d = c.object(it.value(), w);
    c.only(d, w, {"kind", "size", "synthetic", "landmarks", "images", "raw_jsrt", "raw_png", "splits", "split_seed",
                  "blank_images", "description", "edges"});
    DatasetSpec s;
    s.name = it.key();
    std::string kind = c.str(d, "kind", w, "", true);
    try {
      s.kind = parse_kind(kind, w + ".kind");
    } catch (const InputError&) {
      c.fail(w + ".kind", d["kind"], "expected \"lh\" (lungs and heart) or \"l\" (lungs only)");
    }
    s.size = static_cast<int>(c.integer(d, "size", w, 1024, 32, 4096));
    s.edges = c.str(d, "edges", w, "canny");
    if (s.edges != "canny" && s.edges != "boundary") c.fail(w + ".edges", d["edges"], "expected \"canny\" or \"boundary\"");
    if (d.contains("synthetic")) {
      std::string sw = w + ".synthetic";
      const json& sy = c.object(d["synthetic"], sw);
      c.only(sy, sw, {"count", "seed", "size", "occluder_fraction", "low_contrast_fraction"});
      SynthOptions o;
      o.kind = s.kind;
      o.count = static_cast<int>(c.integer(sy, "count", sw, 100, 3, 1000000));
      o.seed = static_cast<uint64_t>(c.integer(sy, "seed", sw, 1, 0, INT64_MAX));
      o.size = static_cast<int>(c.integer(sy, "size", sw, s.size, 32, 4096));
      o.render.occluder_fraction = c.number(sy, "occluder_fraction", sw, o.render.occluder_fraction, 0, 1);
      o.render.low_contrast_fraction = c.number(sy, "low_contrast_fraction", sw, o.render.low_contrast_fraction, 0, 1);
      s.synthetic = o;
      for (const char* k : {"landmarks", "images", "raw_jsrt", "raw_png", "splits", "blank_images"})
        if (d.contains(k)) c.fail(w + "." + k, d[k], "a synthetic data set takes no file sources");
    } else {
      s.landmarks = c.str(d, "landmarks", w, "", true);
      s.images = c.paths(d, "images", w);
      s.raw_jsrt = c.paths(d, "raw_jsrt", w);
      s.raw_png = c.paths(d, "raw_png", w);
      s.splits = c.paths(d, "splits", w);
      if (d.contains("blank_images")) {
        if (!d["blank_images"].is_boolean()) c.fail(w + ".blank_images", d["blank_images"], "expected true or false");
        s.blank_images = d["blank_images"];
      }
      if (d.contains("split_seed")) s.split_seed = static_cast<uint64_t>(c.integer(d, "split_seed", w, 0, 0, INT64_MAX));
      if (s.images.empty() && s.raw_jsrt.empty() && s.raw_png.empty() && !s.blank_images)
        c.fail(w, json(), "needs an image source: images, raw_jsrt, raw_png, or blank_images: true");
      if (s.splits.empty() && !s.split_seed) c.fail(w, json(), "needs splits (folders of split lists) or split_seed");
    }
    e.datasets.push_back(std::move(s));
  }

  if (doc.contains("networks")) {
    const json& n = doc["networks"];
    // A list of ids, or an object id -> options.
    if (n.is_array()) {
      for (const auto& v : n) {
        if (!v.is_string() || v.get<std::string>().empty()) c.fail("networks", v, "expected a network id");
        e.networks.push_back({v.get<std::string>(), json::object()});
      }
    } else if (n.is_object()) {
      for (auto it = n.begin(); it != n.end(); ++it) {
        if (!it.value().is_object()) c.fail("networks." + it.key(), it.value(), "expected an object of network options");
        NetworkSpec n{it.key(), it.value(), json::object()};
        if (n.options.contains("training")) {
          n.training = n.options["training"];
          n.options.erase("training");
          c.object(n.training, "networks." + it.key() + ".training");
        }
        e.networks.push_back(n);
      }
    } else {
      c.fail("networks", n, "expected a list of network ids or an object of id -> options");
    }
  }
  if (doc.contains("seeds")) {
    const json& s = doc["seeds"];
    if (!s.is_array() || s.empty()) c.fail("seeds", s, "expected a non-empty list of integers");
    e.seeds.clear();
    for (const auto& v : s) {
      if (!v.is_number_integer() || v.get<int64_t>() < 0) c.fail("seeds", v, "expected a non-negative integer");
      if (std::find(e.seeds.begin(), e.seeds.end(), v.get<int64_t>()) != e.seeds.end()) c.fail("seeds", v, "listed twice");
      e.seeds.push_back(v.get<int64_t>());
    }
  }
  if (doc.contains("training")) e.training = training_from_json(doc["training"], path, "training");
  if (doc.contains("evaluation")) e.evaluation = evaluation_from_json(doc["evaluation"], path, "evaluation");
  for (const auto& n : e.networks) n.training_for(e.training, path);  // validates the overrides now
  return e;
}

}  // namespace orch
