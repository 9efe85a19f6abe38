// The report, built once from the store: Tables 1-2 as a model (tables, columns, rows, cells with their paper
// values and best marks, median models, paired tests, notes), the cost of the runs, and what each run is. The
// writers (report/writers.h) only format it: Markdown, CSV, LaTeX and a self-contained HTML page.
//
// How values are computed is the report's settings (the experiment's "report" block, or `orchestrator report`'s
// flags), each printed with the tables:
//   hausdorff   "1024px" (default): mm at 0.35 mm per pixel of a 1024-px image, the paper's scale (a value stored
//               at a working size of S px is multiplied by 1024/S); "working": mm at evaluation.spacing_mm per
//               pixel of the working size, as stored.
//   inference   "synchronized" (default): the mean forward pass after the first call, synchronised on a GPU;
//               "reference": as the reference timed it, without synchronisation and with the first call.
//   empty_mask  an image whose predicted (or true) mask is empty has no Hausdorff distance. "worst" (default):
//               it counts as the image's diagonal; "exclude": it is left out of the run's mean; "fail": the
//               report stops naming the runs. Either way the count of such images is in the tables' notes.
// A metric the report does not know is an error. Values only; not thread-safe (one Store).
#pragma once

#include <map>
#include <string>
#include <vector>

#include "core/claims.h"
#include "core/experiment.h"
#include "core/plateau.h"
#include "models/catalogue.h"
#include "scheduler/grid.h"
#include "storage/provenance_table.h"
#include "storage/store.h"

namespace orch::report {

struct Column {
  std::string organ;                 // "" for the inference time
  Metric metric = Metric::kDice;
  std::string label;
  bool higher_better = true;
  int digits = 4;
};

struct Cell {
  double mean = 0, std = 0, paper = 0;  // NaN when absent
  int n = 0;                             // runs with a value
  bool best = false;
};

struct Row {
  const models::NetworkInfo* network = nullptr;
  std::vector<Cell> cells;               // one per column
  std::vector<std::string> done_ids;
  std::string median;                    // the median model's run id ("" when no run is done)
  double p_vs_baseline = 0;              // NaN when not tested
  int n_pairs = 0;
};

struct Table {
  std::string number;                    // "1", "2", "1a", ...
  const DatasetSpec* dataset = nullptr;
  bool lungs_and_heart = true;
  std::vector<Column> columns;
  std::vector<Row> rows;
  std::string paper_dataset;             // the paper's data set the values come from
  int empty_mask_images = 0;             // images without a Hausdorff distance, over the table's runs
};

// The cost of one network's runs: attempts and their time, from the store's attempts (every backend) and, where
// Slurm accounted them, sacct's rows.
struct CostRow {
  std::string network;
  int runs = 0, attempts = 0;
  double wall_hours = 0, gpu_hours = 0;  // every attempt
  double lost_hours = 0;                 // attempts that did not finish the run (failed, requeued, killed, lost)
  double slurm_gpu_hours = 0;            // sacct's elapsed x allocated GPUs, where accounted
};

struct RunInfo {
  std::string run_id, network, dataset, state, log;  // log: the run's log relative to the report folder
  Stage stage = Stage::kTrain;
  int64_t seed = 0;
  int attempts = 0;
  double wall_hours = 0;
  int64_t epochs = 0, planned_epochs = 0;  // trained (recorded), and the run's training.epochs
  Plateau plateau;                         // of its validation criterion (measured only with epochs recorded)
  std::map<std::string, std::string> provenance;
};

// A claim checked on the grid (report/claims.h says how).
struct ClaimComparison {
  std::string dataset;
  Metric metric = Metric::kDice;
  std::string better, than;                   // network ids
  double effect = 0, lo = 0, hi = 0;          // all seeds: the advantage and its 95 % interval (NaN: not evaluated)
  double median_effect = 0, p_value = 0;      // the median models (NaN when not tested)
  int seeds_better = 0, seeds_than = 0, images = 0;
  Verdict verdict = Verdict::kNotEvaluated;
};

struct CheckedClaim {
  ClaimSpec spec;
  bool from_paper = true;
  std::vector<ClaimComparison> comparisons;
  Verdict verdict = Verdict::kNotEvaluated;
  int count(Verdict v) const;
};

struct ReportModel {
  std::string experiment;
  ReportSettings settings;
  std::vector<Table> tables;
  std::vector<MedianModel> medians;
  std::vector<std::string> missing;      // "<run id> (<state>)" of table runs not done
  std::vector<std::string> notes;        // per run: images without a Hausdorff distance and how they were counted
  std::vector<CostRow> cost;
  std::vector<RunInfo> runs;
  std::string paper_source;  // where the paper's values come from (the paper's own means are over its 3 runs)
  int seeds = 0;             // the grid's seeds: this report's means are over at most this many runs per cell
  std::vector<CheckedClaim> claims;  // the paper's claims, then the experiment's own
};

ReportModel build_report_model(const Experiment& exp, const std::vector<scheduler::PlannedRun>& grid, Store& store,
                               const std::string& workspace, const std::string& report_dir, const ReportSettings& settings);

// What one stored Hausdorff millimetre counts in the report (the paper's 1024-px scale or as stored), and the
// worst case an image without a Hausdorff distance counts as (its diagonal, in stored units).
double hausdorff_scale(const ReportSettings& s, const RunSettings& run);
double worst_hausdorff_mm(const RunSettings& run);

// The run list's words for a run's convergence: "yes, from epoch 40", "no: +3.2 % in epochs 81-100", "-" (not
// measured).
std::string plateau_text(const RunInfo& run);
int runs_with_plateau(const ReportModel& m, int* measured);

// Human words for the settings, as the tables print them.
std::string hausdorff_unit(const ReportSettings& s);
std::string inference_description(const ReportSettings& s);
std::string empty_mask_description(const ReportSettings& s);

}  // namespace orch::report
