// Expansion of an experiment into its runs: every (data set, network, seed) of the grid, plus the runs the
// networks need first (models/catalogue.h): one UNet per data set pretrained before the joint networks that
// freeze it, and the HybridGNet+IGSC run Rasterize fine-tunes (added even when the grid does not list it): the
// first seed's for every seed (`rasterize_init`: "shared", the default, as the reference), or seed s's for seed s
// ("per_seed").
// The pretrained UNet is the grid's own UNet run of the first seed when the experiment's `pretrain` is "shared"
// (the default: its settings are the same, so one run plays both roles); with "separate", or when the grid has
// no UNet, it is a run of its own (stage "pretrain", the first seed). Each run carries its full settings
// (core/run_settings.h) and a stable id. For experiments/paper.json: 11 x 2 x 3 = 66 runs (68 with "separate").
// Values only; thread-safe.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "core/experiment.h"
#include "core/run_settings.h"

namespace orch::scheduler {

struct RunResources;

struct PlannedRun {
  std::string id;
  RunSettings settings;
  std::vector<std::string> depends_on;  // run ids
  // What the run asks of the machine (scheduler/resources.h), resolved once at expansion; shared by the runs of
  // one (data set, network) pair.
  std::shared_ptr<const RunResources> resources;
  // The sweep points (indices into Experiment::sweep_points()) the run belongs to: a run a sweep value does not
  // change (the UNet, when only Ours's latents are swept) is one run of every point. Empty without a sweep.
  std::vector<uint32_t> sweep_points;
};

// Runs in an order where every dependency comes before the runs that need it. With a sweep: the runs of every
// point (Experiment::at), each run once.
std::vector<PlannedRun> expand(const Experiment& exp);
// The runs of one sweep point of an expanded grid (`grid` itself without a sweep).
std::vector<PlannedRun> runs_at(const std::vector<PlannedRun>& grid, uint32_t point);

// The settings of one (data set, network, seed, stage) of `exp`, whether or not the grid lists the network
// (its options then default); its dependency chain is resolved the same way. Throws InputError naming the
// unknown data set or network.
std::vector<PlannedRun> chain_for(const Experiment& exp, const std::string& dataset, const std::string& model,
                                  int64_t seed, Stage stage = Stage::kTrain);

// Narrowing by --only key=value[,value]: keys dataset, model, seed, stage, and the experiment's sweep keys (a value
// read as JSON when it is JSON: training.learning_rate=1e-4 matches the sweep's 0.0001). Throws InputError on an
// unknown key.
struct Filter {
  std::vector<std::pair<std::string, std::vector<std::string>>> terms;  // sweep values as canonical JSON text
  std::vector<SweepPoint> points;  // the experiment's (for sweep keys)
  bool matches(const PlannedRun& r) const;
  // Throws InputError naming a value that matches no run of `grid` (a typo would otherwise plan nothing).
  void check_against(const std::vector<PlannedRun>& grid) const;
};
Filter parse_filter(const std::vector<std::string>& only, const Experiment& exp);

}  // namespace orch::scheduler
