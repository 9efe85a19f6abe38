// Expansion of an experiment into its runs: every (data set, network, seed) of the grid, plus the stages the
// networks need first: one UNet per data set pretrained before the joint networks that freeze it (stage
// "pretrain", seed = the experiment's first seed), and HybridGNet+IGSC seed s before Rasterize seed s (added
// even when the grid does not list it). Each run carries its full settings (core/run_settings.h) and a stable id.
// For experiments/paper.json: 11 x 2 x 3 + 2 = 68 runs. Values only; thread-safe.
#pragma once

#include <string>
#include <vector>

#include "core/experiment.h"
#include "core/run_settings.h"

namespace orch::scheduler {

struct PlannedRun {
  std::string id;
  RunSettings settings;
  std::vector<std::string> depends_on;  // run ids
};

// Runs in an order where every dependency comes before the runs that need it.
std::vector<PlannedRun> expand(const Experiment& exp);

// The settings of one (data set, network, seed, stage) of `exp`, whether or not the grid lists the network
// (its options then default); its dependency chain is resolved the same way. Throws InputError naming the
// unknown data set or network.
std::vector<PlannedRun> chain_for(const Experiment& exp, const std::string& dataset, const std::string& model,
                                  int64_t seed, const std::string& stage = "train");

// Narrowing by --only key=value[,value]: keys dataset, model, seed, stage. Throws InputError on an unknown key.
struct Filter {
  std::vector<std::pair<std::string, std::vector<std::string>>> terms;
  bool matches(const PlannedRun& r) const;
};
Filter parse_filter(const std::vector<std::string>& only);

}  // namespace orch::scheduler
