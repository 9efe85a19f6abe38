// Users' documentation: docs/report.md.
// `orchestrator report`: the paper's Tables 1-2 regenerated from the store, median models, paired tests, the cost
// per network and figures, written as Markdown, CSV, LaTeX and a self-contained HTML page.
//
// The report is built once (report/report_model.h: what is computed and how, with its settings) and written by
// one writer per format (report/writers.h). Reads only the store and the runs' artefacts. The tables come from
// the store alone and are always written; figures are best effort: a run whose predictions cannot be read loses
// its panel with a warning naming the file. Median models are recorded in the store (skipped, with a warning, on a
// store that cannot be written). Not thread-safe (one Store).
#pragma once

#include <string>
#include <vector>

#include "core/experiment.h"
#include "report/report_model.h"
#include "scheduler/grid.h"
#include "storage/store.h"

namespace orch::report {

struct ReportOptions {
  std::string out_dir;                                     // default: the workspace's report folder
  std::vector<ReportFormat> formats{ReportFormat::kMd, ReportFormat::kCsv, ReportFormat::kTex, ReportFormat::kHtml};
  ReportSettings settings;
  bool figures = true;
  int figure_images = 3;                                   // test images in the qualitative figure
};

// The experiment's "report" block as options (formats, settings, figure images); flags may then override them.
ReportOptions report_options_from(const Experiment& exp);

struct Report {
  std::string markdown;               // the tables as printed
  std::vector<std::string> files;     // everything written
  std::vector<std::string> missing;   // "<run id> (<state>)" of runs not done
  std::vector<std::string> warnings;  // artefacts that could not be read, medians that could not be recorded
  std::string claims;                 // each claim's verdict, one line each (report/writers.h claims_summary)
  std::string convergence;            // how many runs reached a plateau (report/writers.h convergence_summary)
};

Report make_report(const Experiment& exp, const std::vector<scheduler::PlannedRun>& grid, Store& store,
                   const std::string& workspace, const ReportOptions& options);

}  // namespace orch::report
