// The settings of one run: everything a worker needs to train and evaluate it, with no experiment file at hand.
//
// The scheduler makes them from an experiment (scheduler/grid.h) and stores them as JSON in the run store
// (runs.settings_json); the worker reads them back with from_json, which validates like the experiment parser
// (errors name the run and the field). A run's id is a stable hash of the settings that change its result
// (not threads, device or checkpoint cadence), so changing one setting changes only the runs it touches.
// Values only; thread-safe to share.
#pragma once

#include <cstdint>
#include <nlohmann/json.hpp>
#include <string>
#include <unordered_map>

#include "core/experiment.h"
#include "core/organs.h"

namespace orch {

struct RunSettings {
  std::string experiment;       // the experiment's name
  std::string dataset;          // data set name (WORKSPACE/datasets/<dataset>.h5)
  DatasetKind kind = DatasetKind::kLungsHeart;
  int size = 1024;
  std::string dataset_digest;   // the data set's spec digest (storage/workspace.h)
  std::string model;            // registry id
  nlohmann::json model_options = nlohmann::json::object();
  int64_t seed = 1;
  Stage stage = Stage::kTrain;  // "train", or "pretrain" (the UNet the joint networks freeze)
  std::string dependency;       // id of the run whose weights this one starts from, or ""
  TrainingSpec training;
  EvaluationSpec evaluation;

  nlohmann::json to_json() const;
  // `where` names the source in errors (e.g. "run ours.synth_lh.s1-…").
  static RunSettings from_json(const nlohmann::json& doc, const std::string& where);
  // The part of to_json that decides the result (hashed into the id).
  nlohmann::json identity() const;
  // "<model>.<dataset>.s<seed>[.pretrain]-<10 hex digits>", characters outside [A-Za-z0-9_.-] replaced by '_'.
  std::string id() const;
};

// Run ids of many runs that differ only in their seed and dependency (a grid's seeds), made without serialising
// each run's settings again: the identity text of the first run of a shape is cut around its seed and dependency
// and checked against RunSettings::id() once; later runs of the shape only fill them in. The caller names the
// shape and guarantees that runs given the same shape differ in nothing else (scheduler/grid.cpp: data set,
// network and stage of one experiment). Ids are those of RunSettings::id(). Not thread-safe.
class RunIdCache {
 public:
  std::string id(const RunSettings& s, const std::string& shape);
  // Whether ids of `shape` are made from its cut text (false: not seen yet, or the full computation is used).
  bool cut(const std::string& shape) const {
    auto it = cuts_.find(shape);
    return it != cuts_.end() && it->second.usable;
  }

 private:
  struct Cut {
    std::string to_dependency, to_seed, rest;  // the identity text around the dependency's and the seed's values
    bool usable = false;                        // the cut text reproduced the full computation
  };
  std::unordered_map<std::string, Cut> cuts_;
};

// True when `id` is safe to place in a path or a shell word: [A-Za-z0-9_.-]+, not starting with '-' or '.'.
bool is_safe_run_id(const std::string& id);

}  // namespace orch
