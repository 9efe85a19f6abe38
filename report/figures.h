// The report's figures, drawn with cairo into PNG files.
//   draw_qualitative: Fig. 4 of the paper — for a few test images, each network's median-model prediction over
//     the X-ray (contours of point predictions, boundaries of dense masks; red) with the ground truth (green),
//     choosing the images where the networks' Dice differ most.
//   draw_curves: training curves per run (train loss and validation criterion per epoch), one panel per network,
//     one colour per seed.
// Stateless; thread-safe as long as the files differ.
#pragma once

#include <string>
#include <vector>

#include "core/experiment.h"
#include "core/plateau.h"
#include "storage/metrics_table.h"

namespace orch::report {

struct FigureRun {
  std::string model, label, run_id;  // the median model's run
};

struct CurveRun {
  std::string model, label, run_id;
  int64_t seed = 0;
  std::vector<EpochMetrics> epochs;
  Plateau plateau;  // marked: a dot where the criterion went flat, or the seed labelled "improving"
};

// Returns false (and writes nothing) when no prediction file can be read. A run whose predictions cannot be read
// loses its panel, with a line in `warnings`.
bool draw_qualitative(const std::string& workspace, const DatasetSpec& dataset, const std::vector<FigureRun>& runs,
                      int images, const std::string& png, std::vector<std::string>* warnings = nullptr);
void draw_curves(const std::string& dataset, const std::vector<CurveRun>& runs, const std::string& png);

}  // namespace orch::report
