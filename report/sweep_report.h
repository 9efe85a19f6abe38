// Users' documentation: docs/report.md ("Sweeps").
// The report of a sweep (core/experiment.h SweepAxis): one full report per sweep point, in its own folder
// (WORKSPACE/report/sweep/<NN>-<point>/), and a summary: per data set, the headline metric of each network at
// each point (the report's median metric, by default Dice, averaged over the data set's organs and over the
// point's done seeds), the best point of each network in bold, written as sweep.md, sweep.csv, sweep.tex and
// sweep.html beside the points' folders. Median models of a point are recorded in the store under the
// experiment's name followed by the point's label. Values and pure functions; thread-safe.
#pragma once

#include <string>
#include <vector>

#include "core/experiment.h"
#include "report/report_model.h"

namespace orch::report {

struct SweepCell {
  double value = 0;  // NaN when the network has no done run at the point
  int seeds = 0;
  bool best = false;  // the network's best point
};

struct SweepRow {
  std::string network, label;     // catalogue id, paper name
  std::vector<SweepCell> cells;   // one per point
};

struct SweepTable {
  std::string dataset;
  Metric metric = Metric::kDice;  // the headline metric (median_metric over organs)
  bool higher_better = true;
  std::vector<SweepRow> rows;
};

struct SweepSummary {
  std::string experiment;
  std::vector<std::string> axes;             // the swept keys
  std::vector<SweepPoint> points;
  std::vector<std::string> point_dirs;       // each point's report folder, relative to the summary's
  std::vector<SweepTable> tables;
};

// The folder name of point `index`: "03-training.learning_rate=0.0001" (characters outside [A-Za-z0-9_.=-] as '_').
std::string sweep_point_dir(size_t index, const SweepPoint& point);

// Adds one point's tables (from its report model) to the summary; call in point order.
void add_sweep_point(SweepSummary& s, const ReportModel& m, size_t point);
void mark_sweep_best(SweepSummary& s);

std::string sweep_markdown(const SweepSummary& s);
std::string sweep_csv(const SweepSummary& s);
std::string sweep_latex(const SweepSummary& s);
std::string sweep_html(const SweepSummary& s);

}  // namespace orch::report
