// `orchestrator report`: the paper's Tables 1-2 regenerated from the store, median models, paired tests and
// figures. Reads only the store and the runs' artefacts (predictions.h5, the data sets for the figures).
//
// Tables: one per data set of the experiment, Table 1 for a lungs-and-heart data set (Dice, Hausdorff, Jaccard
// for lungs and heart), Table 2 for a lungs-only one (lungs plus inference time); rows in the paper's order with
// its Predict and Supervision columns. A cell is the mean over seeds of each run's mean over test images, with
// the standard deviation across seeds and the number of seeds; the best value per column is marked; the paper's
// value (report/paper_tables.json) and the difference beside it. Runs not done are listed, never averaged.
// Hausdorff values that are undefined (an empty mask) are left out of a run's mean and counted in the notes.
// Median model per data set and network: the run whose score (mean over organs of `median_metric`) is the median
// of its seeds (the lower middle for an even count); recorded in the store. Paired Wilcoxon signed-rank tests over
// test images between Ours' median model and every other network's.
// Not thread-safe (one Store).
#pragma once

#include <string>
#include <vector>

#include "core/experiment.h"
#include "scheduler/grid.h"
#include "storage/store.h"

namespace orch::report {

struct ReportOptions {
  std::string out_dir;                               // default WORKSPACE/report
  std::vector<std::string> formats{"md", "csv", "tex"};
  std::string median_metric = "dice";                // dice, jaccard or hausdorff_mm
  bool figures = true;
  int figure_images = 3;                             // test images in the qualitative figure
};

struct Report {
  std::string markdown;               // the tables as printed
  std::vector<std::string> files;     // everything written
  std::vector<std::string> missing;   // "<run id> (<state>)" of runs not done
};

Report make_report(const Experiment& exp, const std::vector<scheduler::PlannedRun>& grid, Store& store,
                   const std::string& workspace, const ReportOptions& options);

}  // namespace orch::report
