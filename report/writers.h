// The report's formats, each written from the one model (report/report_model.h) and nothing else: Markdown (as
// printed), tidy CSV (and the comparison with the paper), LaTeX, and a self-contained HTML page with the tables,
// the figures inline, the cost per network and, per run, its state, provenance and a link to its log.
// Pure functions of their arguments; thread-safe.
#pragma once

#include <string>
#include <vector>

#include "report/report_model.h"

namespace orch::report {

struct FigureFile {
  std::string title, path;  // a PNG the report drew
};

// Markdown text for a name or message: \ ` * [ ] < > | escaped (a folder named "<script>" or "[x](javascript:..)"
// stays text).
std::string md_escape(const std::string& s);
// A number with `digits` decimals, "–" for NaN (tables); for CSV: %.10g, "" for NaN; a CSV field quoted (RFC 4180)
// when it holds a comma, a quote or a line break.
std::string fmt(double v, int digits);
std::string csv_num(double v);
std::string csv_field(const std::string& v);
// HTML text or attribute value: & < > " ' escaped.
std::string html_escape(const std::string& s);
// An href for a file path: percent-encoded and always relative ("./", "../") or absolute, never a URL scheme.
std::string path_href(const std::string& path);

std::string to_markdown(const ReportModel& m, const std::vector<std::string>& warnings);
// table,dataset,model,organ,metric,mean,std,n_seeds
std::string to_csv(const ReportModel& m);
// table,dataset,model,organ,metric,mean,paper,difference
std::string to_paper_comparison_csv(const ReportModel& m);
std::string to_latex(const ReportModel& m);
// One row per claim comparison: claim,source,kind,verdict_of_claim,dataset,metric,better,than,effect,lo,hi,
// median_effect,p_value,seeds_better,seeds_than,images,verdict
std::string to_claims_csv(const ReportModel& m);
// Every run of the grid: state, attempts, epochs and whether its validation criterion reached a plateau.
std::string to_runs_csv(const ReportModel& m);
// The claims' verdicts, one line each ("supported  ours_beats_the_baselines: 18 of 18 comparisons ..."), as `run` prints.
std::string claims_summary(const ReportModel& m);
// "18 of 22 trained runs reached a plateau (...)", or "" when no run has epochs recorded.
std::string convergence_summary(const ReportModel& m);
// One file: PNGs embedded as data URIs (read from `figures`), links to run logs relative to the report folder.
std::string to_html(const ReportModel& m, const std::vector<FigureFile>& figures, const std::vector<std::string>& warnings);

}  // namespace orch::report
