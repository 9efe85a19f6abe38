// Experiment files (experiments/*.json): what data sets to prepare and, in later stages, what to train.
//
// Parsing validates eagerly: an unknown field, a wrong type or an out-of-range value throws an InputError
// naming the file, the field's path (e.g. datasets.synth_lh.synthetic.count) and the value. `--set key=value`
// overrides apply to the JSON before validation, with dotted keys; the value is read as JSON when it parses
// as JSON, else as a string. Relative paths in the file are resolved against the current directory.
// Values only; thread-safe to share once built.
#pragma once

#include <cstdint>
#include <map>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

#include "core/organs.h"
#include "core/synth/synth_dataset.h"

namespace orch {

struct DatasetSpec {
  std::string name;
  DatasetKind kind = DatasetKind::kLungsHeart;
  int size = 1024;  // working size of the prepared data set
  std::optional<SynthOptions> synthetic;  // generate first, then prepare
  // Prepared from files (spec §1.1): landmarks folder plus image sources.
  std::string landmarks;
  std::vector<std::string> images, raw_jsrt, raw_png, splits;
  std::optional<uint64_t> split_seed;
  bool blank_images = false;
  std::string edges = "canny";  // distance-map contour: canny (reference) or boundary
};

struct Experiment {
  std::string path;  // the file it came from
  std::string name;
  std::string workspace;
  std::vector<DatasetSpec> datasets;
  nlohmann::json raw;  // the validated document, overrides applied

  const DatasetSpec& dataset(const std::string& name) const;  // throws InputError if unknown
};

// Applies "a.b.c=value" to a JSON document (creates objects on the way). Throws InputError on a bad form.
void apply_override(nlohmann::json& doc, const std::string& assignment);

Experiment load_experiment(const std::string& path, const std::vector<std::string>& overrides = {});
Experiment parse_experiment(const nlohmann::json& doc, const std::string& path);

}  // namespace orch
