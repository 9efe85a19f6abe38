#include "core/experiment.h"

#include <algorithm>
#include <fstream>
#include <set>

#include "core/errors.h"
#include "core/json_input.h"
#include "core/names.h"

namespace orch {

using nlohmann::json;

namespace {

struct Ctx {
  const std::string& file;
  static std::string at(const std::string& where, const std::string& key) { return where.empty() ? key : where + "." + key; }
  [[noreturn]] void fail(const std::string& field, const json& value, const std::string& problem) const {
    std::string v = value.is_null() ? "" : value.dump(-1, ' ', false, json::error_handler_t::replace);
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
      if (required) fail(at(where, key), json(), "missing required field");
      return def;
    }
    if (!obj[key].is_string() || obj[key].get<std::string>().empty())
      fail(at(where, key), obj[key], "expected a non-empty string");
    return obj[key];
  }
  int64_t integer(const json& obj, const std::string& key, const std::string& where, int64_t def, int64_t lo,
                  int64_t hi) const {
    if (!obj.contains(key)) return def;
    const json& v = obj[key];
    int64_t x = 0;
    if (!json_int64(v, &x)) fail(at(where, key), v, "expected an integer");
    if (x < lo || x > hi)
      fail(at(where, key), v, "expected " + std::to_string(lo) + " to " + std::to_string(hi));
    return x;
  }
  // A fixed choice (core/choices.h), spelled as its table spells it.
  template <class E>
  E pick(const json& obj, const std::string& key, const std::string& where, E def) const {
    if (!obj.contains(key)) return def;
    const json& v = obj[key];
    if (!v.is_string()) fail(at(where, key), v, choice_expectation<E>());
    auto e = choice_from<E>(v.get<std::string>());
    if (!e) fail(at(where, key), v, choice_expectation<E>());
    return *e;
  }
  double number(const json& obj, const std::string& key, const std::string& where, double def, double lo,
                double hi) const {
    if (!obj.contains(key)) return def;
    const json& v = obj[key];
    if (!v.is_number()) fail(at(where, key), v, "expected a number");
    double x = v.get<double>();
    if (!(x >= lo && x <= hi)) fail(at(where, key), v, "expected " + format_number(lo) + " to " + format_number(hi));
    return x;
  }
  std::vector<std::string> paths(const json& obj, const std::string& key, const std::string& where) const {
    std::vector<std::string> out;
    if (!obj.contains(key) || obj[key].is_null()) return out;  // null: none (--set datasets.x.raw_png=null)
    const json& v = obj[key];
    if (v.is_string()) return {v.get<std::string>()};
    if (!v.is_array()) fail(at(where, key), v, "expected a path or a list of paths");
    for (const auto& e : v) {
      if (!e.is_string()) fail(at(where, key), e, "expected a path");
      out.push_back(e);
    }
    return out;
  }
};

const std::vector<std::string> kTrainingKeys = {
    "epochs", "batch_size", "learning_rate", "weight_decay", "validate_every", "threads", "loader_threads", "augment",
    "mask_resampling", "augment_warps", "seed_mode", "checkpoint_every", "keep_checkpoints", "device", "lr_step_epochs", "lr_gamma",
    "lr_decay", "best_after_epoch", "nonfinite", "precision", "pipeline", "cudnn_benchmark", "early_stop"};

// Whether some string in `v` (keys included) is not valid UTF-8; if so, `path` gets its field path's parts,
// innermost first. Depth-bounded: documents are at most kMaxJsonDepth deep (core/json_input.h, and --set keys).
bool invalid_utf8(const json& v, std::vector<std::string>& path, int depth = 0) {
  if (depth > kMaxJsonDepth + 1) return false;
  if (v.is_string()) return !is_valid_utf8(v.get_ref<const std::string&>());
  if (v.is_object()) {
    for (auto it = v.begin(); it != v.end(); ++it) {
      if (!is_valid_utf8(it.key())) {
        path.push_back("(a key)");
        return true;
      }
      if (invalid_utf8(it.value(), path, depth + 1)) {
        path.push_back("." + it.key());
        return true;
      }
    }
  }
  if (v.is_array())
    for (size_t i = 0; i < v.size(); ++i)
      if (invalid_utf8(v[i], path, depth + 1)) {
        path.push_back("[" + std::to_string(i) + "]");
        return true;
      }
  return false;
}

// The first string in `v` (keys included) that is not valid UTF-8, as its field path; "" when all are.
std::string invalid_utf8_field(const json& v) {
  std::vector<std::string> parts;
  if (!invalid_utf8(v, parts)) return "";
  std::string out;
  for (auto it = parts.rbegin(); it != parts.rend(); ++it) out += *it;
  if (!out.empty() && out[0] == '.') out.erase(0, 1);
  return out.empty() ? "(top level)" : out;
}

}  // namespace

bool json_int64(const nlohmann::json& v, int64_t* out) {
  if (v.is_number_unsigned()) {
    if (v.get<uint64_t>() > static_cast<uint64_t>(INT64_MAX)) return false;
    *out = static_cast<int64_t>(v.get<uint64_t>());
    return true;
  }
  if (!v.is_number_integer()) return false;
  *out = v.get<int64_t>();
  return true;
}

bool is_valid_utf8(const std::string& s) {
  size_t i = 0;
  const size_t n = s.size();
  while (i < n) {
    unsigned char c = static_cast<unsigned char>(s[i]);
    size_t len = c < 0x80 ? 1 : (c >> 5) == 0x6 ? 2 : (c >> 4) == 0xE ? 3 : (c >> 3) == 0x1E ? 4 : 0;
    if (len == 0 || i + len > n) return false;
    uint32_t cp = len == 1 ? c : len == 2 ? (c & 0x1F) : len == 3 ? (c & 0x0F) : (c & 0x07);
    for (size_t k = 1; k < len; ++k) {
      unsigned char d = static_cast<unsigned char>(s[i + k]);
      if ((d >> 6) != 0x2) return false;
      cp = (cp << 6) | (d & 0x3F);
    }
    if ((len == 2 && cp < 0x80) || (len == 3 && cp < 0x800) || (len == 4 && cp < 0x10000) || cp > 0x10FFFF ||
        (cp >= 0xD800 && cp <= 0xDFFF))
      return false;
    i += len;
  }
  return true;
}

void apply_override(json& doc, const std::string& assignment) {
  if (!is_valid_utf8(assignment)) throw InputError("", "--set", "", "not valid UTF-8 text");
  auto eq = assignment.find('=');
  if (eq == std::string::npos || eq == 0)
    throw InputError("", "--set", assignment, "expected key=value, e.g. datasets.synth_lh.synthetic.count=40");
  std::string key = assignment.substr(0, eq), text = assignment.substr(eq + 1);
  if (std::count(key.begin(), key.end(), '.') >= kMaxJsonDepth)
    throw InputError("", "--set", key.substr(0, 80) + "...", "more than " + std::to_string(kMaxJsonDepth) + " key components");
  // JSON when it is JSON (bounded like a file: depth, duplicate keys, ranges), else the text as a string.
  json value = json::accept(text) ? parse_json_input(text, "--set " + key) : json(text);
  set_key(doc, key, value, "--set", assignment);
}

void set_key(json& doc, const std::string& key, const json& value, const std::string& field, const std::string& shown) {
  json* node = &doc;
  size_t start = 0;
  for (;;) {
    size_t dot = key.find('.', start);
    std::string part = key.substr(start, dot == std::string::npos ? std::string::npos : dot - start);
    if (part.empty()) throw InputError("", field, shown, "empty key component");
    if (!node->is_object()) {
      if (!node->is_null()) throw InputError("", field, shown, "'" + part + "' is inside a non-object value");
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

// "early_stop": an object {patience, min_delta}, or false or null for off (a network turning the grid's off).
static EarlyStop early_stop_from_json(const Ctx& c, const json& t, const std::string& w) {
  EarlyStop es;
  if (!t.contains("early_stop") || t["early_stop"].is_null() || t["early_stop"] == json(false)) return es;
  const std::string where = w + ".early_stop";
  const json& o = t["early_stop"];
  if (!o.is_object()) c.fail(where, o, "expected {\"patience\": epochs, \"min_delta\": fraction}, or false");
  c.only(o, where, {"patience", "min_delta"});
  if (!o.contains("patience")) c.fail(where + ".patience", json(), "missing required field (epochs without improvement)");
  es.patience = static_cast<int>(c.integer(o, "patience", where, 0, 1, 1000000));
  es.min_delta = c.number(o, "min_delta", where, es.min_delta, 0, 1);
  return es;
}

TrainingSpec training_from_json(const json& t, const std::string& path, const std::string& w) {
  Ctx c{path};
  c.object(t, w);
  c.only(t, w, std::set<std::string>(kTrainingKeys.begin(), kTrainingKeys.end()));
  TrainingSpec ts;
  ts.epochs = static_cast<int>(c.integer(t, "epochs", w, ts.epochs, 1, 1000000));
  ts.batch_size = static_cast<int>(c.integer(t, "batch_size", w, ts.batch_size, 1, 4096));
  ts.learning_rate = c.number(t, "learning_rate", w, ts.learning_rate, 1e-12, 10);
  ts.weight_decay = c.number(t, "weight_decay", w, ts.weight_decay, 0, 1);
  ts.validate_every = static_cast<int>(c.integer(t, "validate_every", w, ts.validate_every, 1, 1000000));
  ts.threads = static_cast<int>(c.integer(t, "threads", w, ts.threads, 0, 1024));
  ts.loader_threads = static_cast<int>(c.integer(t, "loader_threads", w, ts.loader_threads, 0, 256));
  if (t.contains("augment")) {
    if (!t["augment"].is_boolean()) c.fail(w + ".augment", t["augment"], "expected true or false");
    ts.augment = t["augment"];
  }
  ts.mask_resampling = c.pick(t, "mask_resampling", w, ts.mask_resampling);
  ts.augment_warps = c.pick(t, "augment_warps", w, ts.augment_warps);
  ts.seed_mode = c.pick(t, "seed_mode", w, ts.seed_mode);
  ts.checkpoint_every = static_cast<int>(c.integer(t, "checkpoint_every", w, ts.checkpoint_every, 1, 1000000));
  ts.keep_checkpoints = static_cast<int>(c.integer(t, "keep_checkpoints", w, ts.keep_checkpoints, 1, 1000));
  ts.lr_step_epochs = static_cast<int>(c.integer(t, "lr_step_epochs", w, ts.lr_step_epochs, 0, 1000000));
  ts.lr_gamma = c.number(t, "lr_gamma", w, ts.lr_gamma, 0, 1);
  ts.lr_decay = c.pick(t, "lr_decay", w, ts.lr_decay);
  if (ts.lr_decay == LrDecay::kCosine && (ts.lr_step_epochs != 0 || ts.lr_gamma != 0))
    c.fail(w + ".lr_decay", t["lr_decay"],
           "a cosine decay has no step: unset lr_step_epochs and lr_gamma (a network's training block inherits "
           "the experiment's)");
  ts.device = c.pick(t, "device", w, ts.device);
  ts.best_after_epoch = static_cast<int>(c.integer(t, "best_after_epoch", w, ts.best_after_epoch, 0, 1000000));
  if (ts.best_after_epoch >= ts.epochs)
    c.fail(w + ".best_after_epoch", t["best_after_epoch"],
           "must be below training.epochs (" + std::to_string(ts.epochs) + "), or no epoch could become the best");
  ts.nonfinite = c.pick(t, "nonfinite", w, ts.nonfinite);
  ts.precision = c.pick(t, "precision", w, ts.precision);
  ts.pipeline = c.pick(t, "pipeline", w, ts.pipeline);
  if (t.contains("cudnn_benchmark")) {
    if (!t["cudnn_benchmark"].is_boolean()) c.fail(w + ".cudnn_benchmark", t["cudnn_benchmark"], "expected true or false");
    ts.cudnn_benchmark = t["cudnn_benchmark"];
  }
  ts.early_stop = early_stop_from_json(c, t, w);
  return ts;
}

EvaluationSpec evaluation_from_json(const json& v, const std::string& path, const std::string& w) {
  Ctx c{path};
  c.object(v, w);
  c.only(v, w, {"spacing_mm", "empty_hausdorff", "precision"});
  EvaluationSpec e;
  e.spacing_mm = c.number(v, "spacing_mm", w, e.spacing_mm, 1e-6, 1000);
  e.empty_hausdorff = c.pick(v, "empty_hausdorff", w, e.empty_hausdorff);
  e.precision = c.pick(v, "precision", w, e.precision);
  return e;
}

json to_json(const TrainingSpec& t) {
  json j{{"epochs", t.epochs}, {"batch_size", t.batch_size}, {"learning_rate", t.learning_rate},
              {"weight_decay", t.weight_decay}, {"validate_every", t.validate_every}, {"threads", t.threads},
              {"loader_threads", t.loader_threads}, {"augment", t.augment},
              {"mask_resampling", choice_name(t.mask_resampling)}, {"seed_mode", choice_name(t.seed_mode)},
              {"checkpoint_every", t.checkpoint_every}, {"keep_checkpoints", t.keep_checkpoints},
              {"device", choice_name(t.device)}};
  // Written only when set, so that runs made before these keys existed keep their ids.
  if (t.lr_step_epochs != 0) j["lr_step_epochs"] = t.lr_step_epochs;
  if (t.lr_gamma != 0) j["lr_gamma"] = t.lr_gamma;
  if (t.lr_decay != LrDecay::kStep) j["lr_decay"] = choice_name(t.lr_decay);
  if (t.best_after_epoch != 0) j["best_after_epoch"] = t.best_after_epoch;
  if (t.nonfinite != NonFinite::kStop) j["nonfinite"] = choice_name(t.nonfinite);
  if (t.augment_warps != AugmentWarps::kStepwise) j["augment_warps"] = choice_name(t.augment_warps);
  if (t.precision != Precision::kTf32) j["precision"] = choice_name(t.precision);
  if (t.pipeline != Pipeline::kOverlap) j["pipeline"] = choice_name(t.pipeline);
  if (!t.cudnn_benchmark) j["cudnn_benchmark"] = false;
  if (t.early_stop.enabled()) j["early_stop"] = {{"patience", t.early_stop.patience}, {"min_delta", t.early_stop.min_delta}};
  return j;
}

TrainingSpec NetworkSpec::training_for(const TrainingSpec& base, const std::string& file, const std::string& dataset) const {
  const json* per_dataset = nullptr;
  if (auto it = datasets.find(dataset); !dataset.empty() && it != datasets.end() && !it->second.training.empty())
    per_dataset = &it->second.training;
  if (training.empty() && !per_dataset) return base;
  const std::set<std::string> keys(kTrainingKeys.begin(), kTrainingKeys.end());
  Ctx c{file};
  json merged = to_json(base);
  std::string where = "networks." + id + ".training";
  c.only(training, where, keys);
  for (auto it = training.begin(); it != training.end(); ++it) merged[it.key()] = it.value();
  if (per_dataset) {
    where = "networks." + id + ".datasets." + dataset + ".training";
    c.only(*per_dataset, where, keys);
    for (auto it = per_dataset->begin(); it != per_dataset->end(); ++it) merged[it.key()] = it.value();
  }
  return training_from_json(merged, file, where);
}

json to_json(const EvaluationSpec& e) {
  json j{{"spacing_mm", e.spacing_mm}, {"empty_hausdorff", choice_name(e.empty_hausdorff)}};
  if (e.precision != Precision::kTf32) j["precision"] = choice_name(e.precision);  // written only when set: older run ids stay
  return j;
}

void ReportSettings::validate() const {
  if (median_metric == Metric::kInference)
    throw InputError("report.median_metric", "", choice_name(median_metric), "expected dice, jaccard or hausdorff_mm");
}

namespace {

ReportSpec report_from_json(const json& j, const std::string& path) {
  Ctx c{path};
  const std::string w = "report";
  c.object(j, w);
  c.only(j, w, {"formats", "median_metric", "hausdorff", "inference", "empty_mask", "figure_images", "claims"});
  ReportSpec r;
  if (j.contains("claims")) r.claims = claims_from_json(j["claims"], path, "report.claims");
  r.settings.median_metric = c.pick(j, "median_metric", w, r.settings.median_metric);
  if (r.settings.median_metric == Metric::kInference)
    c.fail("report.median_metric", j["median_metric"], "expected dice, jaccard or hausdorff_mm");
  r.settings.hausdorff = c.pick(j, "hausdorff", w, r.settings.hausdorff);
  r.settings.inference = c.pick(j, "inference", w, r.settings.inference);
  r.settings.empty_mask = c.pick(j, "empty_mask", w, r.settings.empty_mask);
  r.figure_images = static_cast<int>(c.integer(j, "figure_images", w, r.figure_images, 1, 20));
  if (j.contains("formats")) {
    const json& f = j["formats"];
    if (!f.is_array()) c.fail("report.formats", f, "expected a list such as [\"md\", \"html\"]");
    r.formats.clear();
    for (const auto& v : f) {
      auto format = v.is_string() ? choice_from<ReportFormat>(v.get<std::string>()) : std::nullopt;
      if (!format) c.fail("report.formats", v, choice_expectation<ReportFormat>());
      r.formats.push_back(*format);
    }
  }
  return r;
}

}  // namespace

namespace {

// Where a sweep key may point: settings that change runs' results and are read per run.
void check_sweep_key(const Ctx& c, const json& doc, const std::string& key, const std::string& field) {
  static const std::set<std::string> kAxes = {"training", "evaluation", "networks", "pretrain", "pretrain_training",
                                              "rasterize_init"};
  const std::string first = key.substr(0, key.find('.'));
  if (!kAxes.count(first)) {
    std::string why = "not a sweep axis (keys under training, evaluation, networks.<id>, pretrain, pretrain_training "
                      "or rasterize_init";
    if (first == "seeds") why += "; the seeds are an axis of their own: \"seeds\"";
    if (first == "datasets") why += "; a data set is one file per name: declare each variant as a data set";
    c.fail(field, json(key), why + ")");
  }
  if (first != "networks") return;
  const size_t dot = key.find('.'), next = key.find('.', dot == std::string::npos ? dot : dot + 1);
  const std::string id = dot == std::string::npos ? "" : key.substr(dot + 1, next == std::string::npos ? std::string::npos : next - dot - 1);
  if (next == std::string::npos || id.empty())
    c.fail(field, json(key), "expected networks.<id>.<option> (e.g. networks.ours.latents)");
  if (!doc.contains("networks") || !doc["networks"].is_object() || !doc["networks"].contains(id))
    c.fail(field, json(key), "the experiment's \"networks\" has no object for \"" + id +
                                 "\" (sweeping a network's options needs the object form: \"networks\": {\"" + id + "\": {}})");
}

std::vector<SweepAxis> sweep_from_json(const json& doc, const std::string& path) {
  Ctx c{path};
  std::vector<SweepAxis> out;
  if (!doc.contains("sweep") || doc["sweep"].is_null()) return out;
  const json& sweep = c.object(doc["sweep"], "sweep");
  json base = doc;
  base.erase("sweep");
  double points = 1;
  for (auto it = sweep.begin(); it != sweep.end(); ++it) {
    const std::string field = "sweep." + it.key();
    check_sweep_key(c, base, it.key(), field);
    if (!it.value().is_array() || it.value().empty()) c.fail(field, it.value(), "expected a non-empty list of values");
    SweepAxis axis{it.key(), {}};
    for (const auto& v : it.value()) {
      if (std::find(axis.values.begin(), axis.values.end(), v) != axis.values.end()) c.fail(field, v, "listed twice");
      json point = base;
      set_key(point, axis.key, v, field, v.dump());
      try {
        parse_experiment(point, path);
      } catch (const InputError& e) {
        throw InputError(std::string(e.what()) + " (the sweep's value " + axis.key + " = " + v.dump() + ")");
      }
      axis.values.push_back(v);
    }
    points *= static_cast<double>(axis.values.size());
    if (points > 1e6) c.fail("sweep", json(), "more than 1,000,000 points");
    out.push_back(std::move(axis));
  }
  return out;
}

}  // namespace

std::string SweepPoint::label() const {
  std::string out;
  for (const auto& [key, value] : values) out += (out.empty() ? "" : " ") + key + "=" + value.dump();
  return out;
}

std::string SweepPoint::value_text(const std::string& key) const {
  for (const auto& [k, v] : values)
    if (k == key) return v.dump();
  return "";
}

std::vector<SweepPoint> Experiment::sweep_points() const {
  std::vector<SweepPoint> out(1);
  for (const auto& axis : sweep) {
    std::vector<SweepPoint> next;
    next.reserve(out.size() * axis.values.size());
    for (const auto& p : out)
      for (const auto& v : axis.values) {
        SweepPoint q = p;
        q.values.emplace_back(axis.key, v);
        next.push_back(std::move(q));
      }
    out = std::move(next);
  }
  return out;
}

Experiment Experiment::at(const SweepPoint& point) const {
  json doc = raw;
  doc.erase("sweep");
  for (const auto& [key, value] : point.values) set_key(doc, key, value, "sweep." + key, value.dump());
  return parse_experiment(doc, path);
}

Experiment load_experiment(const std::string& path, const std::vector<std::string>& overrides) {
  json doc = read_json_input(path, "experiment file");
  for (const auto& o : overrides) apply_override(doc, o);
  if (std::string bad = invalid_utf8_field(doc); !bad.empty())
    throw InputError(path, bad, "", "not valid UTF-8 text");
  return parse_experiment(doc, path);
}

TrainingSpec Experiment::pretraining_recipe(const TrainingSpec& unet_training) const {
  if (pretrain_training.empty()) return unet_training;
  json merged = to_json(unet_training);
  for (auto it = pretrain_training.begin(); it != pretrain_training.end(); ++it) merged[it.key()] = it.value();
  return training_from_json(merged, path, "pretrain_training");
}

const DatasetSpec& Experiment::dataset(const std::string& n) const {
  for (const auto& d : datasets)
    if (d.name == n) return d;
  std::string list;
  for (const auto& d : datasets) list += (list.empty() ? "" : ", ") + d.name;
  throw InputError(path, "--dataset", n, "no such data set in the experiment (it has: " + list + ")");
}

namespace {

// One data set of the "datasets" block, `key` its name.
DatasetSpec dataset_from_json(const Ctx& c, const std::string& key, const json& value) {
  std::string w = "datasets." + key;
  if (std::string bad = name_problem(key); !bad.empty()) c.fail(w, key, "data set " + bad);
  const json& d = c.object(value, w);
  c.only(d, w, {"kind", "size", "synthetic", "landmarks", "images", "raw_jsrt", "raw_png", "splits", "split_seed",
                "blank_images", "description", "edges", "resources"});
  DatasetSpec s;
  s.name = key;
  if (d.contains("resources")) s.resources = c.object(d["resources"], w + ".resources");
  std::string kind = c.str(d, "kind", w, "", true);
  try {
    s.kind = parse_kind(kind, w + ".kind");
  } catch (const InputError&) {
    c.fail(w + ".kind", d["kind"], "expected \"lh\" (lungs and heart) or \"l\" (lungs only)");
  }
  s.size = static_cast<int>(c.integer(d, "size", w, 1024, 32, 4096));
  s.edges = c.pick(d, "edges", w, s.edges);
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
  return s;
}

// The "networks" block: a list of ids, or an object id -> options (with training, resources and per-data-set
// overrides); `ds` is the experiment's "datasets" block, which per-data-set overrides must name.
std::vector<NetworkSpec> networks_from_json(const Ctx& c, const json& block, const json& ds) {
  std::vector<NetworkSpec> out;
  if (block.is_array()) {
    for (const auto& v : block) {
      if (!v.is_string() || v.get<std::string>().empty()) c.fail("networks", v, "expected a network id");
      if (std::string bad = name_problem(v.get<std::string>()); !bad.empty()) c.fail("networks", v, "network " + bad);
      NetworkSpec n;
      n.id = v.get<std::string>();
      out.push_back(n);
    }
  } else if (block.is_object()) {
    for (auto it = block.begin(); it != block.end(); ++it) {
      if (std::string bad = name_problem(it.key()); !bad.empty()) c.fail("networks." + it.key(), it.key(), "network " + bad);
      if (!it.value().is_object()) c.fail("networks." + it.key(), it.value(), "expected an object of network options");
      const std::string w = "networks." + it.key();
      NetworkSpec n;
      n.id = it.key();
      n.options = it.value();
      if (n.options.contains("training")) {
        n.training = c.object(n.options["training"], w + ".training");
        n.options.erase("training");
      }
      if (n.options.contains("resources")) {
        n.resources = c.object(n.options["resources"], w + ".resources");
        n.options.erase("resources");
      }
      if (n.options.contains("datasets")) {
        const json& per = c.object(n.options["datasets"], w + ".datasets");
        for (auto d = per.begin(); d != per.end(); ++d) {
          const std::string dw = w + ".datasets." + d.key();
          if (!ds.contains(d.key())) c.fail(dw, d.key(), "no such data set in the experiment");
          c.object(d.value(), dw);
          c.only(d.value(), dw, {"training", "resources"});
          NetworkDatasetOverrides o;
          if (d.value().contains("training")) o.training = c.object(d.value()["training"], dw + ".training");
          if (d.value().contains("resources")) o.resources = c.object(d.value()["resources"], dw + ".resources");
          n.datasets[d.key()] = o;
        }
        n.options.erase("datasets");
      }
      out.push_back(n);
    }
  } else {
    c.fail("networks", block, "expected a list of network ids or an object of id -> options");
  }
  return out;
}

std::vector<int64_t> seeds_from_json(const Ctx& c, const json& s) {
  std::vector<int64_t> out;
  if (!s.is_array() || s.empty()) c.fail("seeds", s, "expected a non-empty list of integers");
  for (const auto& v : s) {
    int64_t seed = 0;
    if (!json_int64(v, &seed) || seed < 0) c.fail("seeds", v, "expected a non-negative integer (at most 2^63 - 1)");
    if (std::find(out.begin(), out.end(), seed) != out.end()) c.fail("seeds", v, "listed twice");
    out.push_back(seed);
  }
  return out;
}

}  // namespace

Experiment parse_experiment(const json& doc, const std::string& path) {
  Ctx c{path};
  c.object(doc, "(top level)");
  // Sections later stages read (networks, seeds, training, ...) are accepted here and validated by their owners.
  c.only(doc, "", {"name", "description", "workspace", "datasets", "networks", "seeds", "training", "evaluation",
                   "resources", "backend", "report", "pretrain", "pretrain_training", "rasterize_init", "sweep"});
  if (std::string bad = invalid_utf8_field(doc); !bad.empty()) c.fail(bad, json(), "not valid UTF-8 text");
  Experiment e;
  e.path = path;
  e.raw = doc;
  e.name = c.str(doc, "name", "", "", true);
  if (std::string bad = name_problem(e.name); !bad.empty()) c.fail("name", doc["name"], bad);
  e.workspace = c.str(doc, "workspace", "", "workspace/" + e.name);
  if (!doc.contains("datasets")) c.fail("datasets", json(), "missing required field");
  const json& ds = c.object(doc["datasets"], "datasets");
  if (ds.empty()) c.fail("datasets", ds, "declare at least one data set");
  for (auto it = ds.begin(); it != ds.end(); ++it) e.datasets.push_back(dataset_from_json(c, it.key(), it.value()));
  if (doc.contains("networks")) e.networks = networks_from_json(c, doc["networks"], ds);
  if (doc.contains("seeds")) e.seeds = seeds_from_json(c, doc["seeds"]);
  e.pretrain = c.pick(doc, "pretrain", "", e.pretrain);
  e.rasterize_init = c.pick(doc, "rasterize_init", "", e.rasterize_init);
  e.backend = c.pick(doc, "backend", "", e.backend);
  if (doc.contains("pretrain_training")) {
    e.pretrain_training = c.object(doc["pretrain_training"], "pretrain_training");
    c.only(e.pretrain_training, "pretrain_training", std::set<std::string>(kTrainingKeys.begin(), kTrainingKeys.end()));
    if (!e.pretrain_training.empty() && e.pretrain != PretrainMode::kSeparate)
      c.fail("pretrain_training", e.pretrain_training,
             "a recipe of its own for the frozen UNet needs \"pretrain\": \"separate\" (with \"shared\" the grid's UNet "
             "run of the first seed is the frozen one, trained with the grid's recipe)");
  }
  if (doc.contains("training")) e.training = training_from_json(doc["training"], path, "training");
  if (doc.contains("evaluation")) e.evaluation = evaluation_from_json(doc["evaluation"], path, "evaluation");
  if (doc.contains("report")) e.report = report_from_json(doc["report"], path);
  e.pretraining_recipe(e.training);  // validated merged over the base training block
  for (const auto& n : e.networks) {  // validates the overrides now
    n.training_for(e.training, path);
    for (const auto& [dname, o] : n.datasets) n.training_for(e.training, path, dname);
  }
  e.sweep = sweep_from_json(doc, path);
  return e;
}

}  // namespace orch
