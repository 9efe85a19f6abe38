#include "report/report.h"

#include <algorithm>
#include <filesystem>
#include <map>
#include <set>

#include "core/atomic_file.h"
#include "core/control.h"
#include "core/errors.h"
#include "report/figures.h"
#include "report/sweep_report.h"
#include "report/writers.h"
#include "storage/layout.h"
#include "storage/metrics_table.h"
#include "storage/provenance_table.h"
#include "storage/workspace_lock.h"

namespace orch::report {

namespace fs = std::filesystem;

namespace {

// Draws each data set's figures; a failure costs the figure, with a warning, never the tables.
std::vector<FigureFile> draw_figures(const Experiment& exp, const ReportModel& m, Store& store, const std::string& workspace,
                                     const ReportOptions& o, Report& rep) {
  std::vector<FigureFile> out;
  std::map<std::string, const RunInfo*> runs;
  for (const auto& r : m.runs) runs[r.run_id] = &r;
  for (const auto& t : m.tables) {
    const DatasetSpec& ds = *t.dataset;
    try {
      std::vector<FigureRun> fr;
      std::vector<CurveRun> curves;
      for (const auto& row : t.rows) {
        if (!row.median.empty()) fr.push_back({row.network->id, row.network->paper_name, row.median});
        for (const auto& id : row.done_ids) {
          const auto info = runs.find(id);
          if (info == runs.end()) continue;
          curves.push_back({row.network->id, row.network->paper_name, id, info->second->seed, MetricsTable(store).epoch_metrics(id),
                            info->second->plateau});
        }
      }
      if (!fr.empty()) {
        const std::string q = (fs::path(o.out_dir) / ("qualitative_" + ds.name + ".png")).string();
        if (draw_qualitative(workspace, ds, fr, o.figure_images, q, &rep.warnings)) {
          out.push_back({"Predictions of the median models, " + ds.name, q});
          rep.files.push_back(q);
        }
      }
      if (!curves.empty()) {
        const std::string c = (fs::path(o.out_dir) / ("curves_" + ds.name + ".png")).string();
        draw_curves(ds.name, curves, c);
        out.push_back({"Training curves, " + ds.name, c});
        rep.files.push_back(c);
      }
    } catch (const std::exception& e) {
      rep.warnings.push_back("figures of " + ds.name + " not drawn: " + brief_reason(e.what()));
    }
  }
  (void)exp;
  return out;
}

}  // namespace

ReportOptions report_options_from(const Experiment& exp) {
  ReportOptions o;
  o.formats = exp.report.formats;
  o.settings = exp.report.settings;
  o.figure_images = exp.report.figure_images;
  return o;
}

namespace {

// One report (the experiment's, or one sweep point's) into o.out_dir, whose lock the caller holds. Median models
// are recorded under `median_key`; `model` receives the report's model.
Report write_report(const Experiment& exp, const std::vector<scheduler::PlannedRun>& grid, Store& store,
                    const std::string& workspace, const ReportOptions& o, const std::string& median_key, ReportModel* model) {
  Report rep;
  *model = build_report_model(exp, grid, store, workspace, o.out_dir, o.settings);
  const ReportModel& m = *model;
  rep.missing = m.missing;
  try {
    ProvenanceTable(store).set_median_models(median_key, m.medians);
  } catch (const std::exception& e) {
    rep.warnings.push_back("median models not recorded in the store: " + brief_reason(e.what()));
  }
  const std::vector<FigureFile> figures = o.figures ? draw_figures(exp, m, store, workspace, o, rep) : std::vector<FigureFile>{};
  rep.markdown = to_markdown(m, rep.warnings);
  rep.claims = claims_summary(m);
  rep.convergence = convergence_summary(m);
  auto out = [&](const std::string& name) { return (fs::path(o.out_dir) / name).string(); };
  auto write = [&](const std::string& name, const std::string& text) {
    write_file_atomically(out(name), text);
    rep.files.push_back(out(name));
  };
  for (ReportFormat f : o.formats) {
    switch (f) {
      case ReportFormat::kMd: write("tables.md", "# " + exp.name + ": Tables 1-2\n\n" + rep.markdown); break;
      case ReportFormat::kCsv:
        write("tables.csv", to_csv(m));
        write("paper_comparison.csv", to_paper_comparison_csv(m));
        write("claims.csv", to_claims_csv(m));
        write("runs.csv", to_runs_csv(m));
        break;
      case ReportFormat::kTex: write("tables.tex", to_latex(m)); break;
      case ReportFormat::kHtml: write("report.html", to_html(m, figures, rep.warnings)); break;
    }
  }
  return rep;
}

// A sweep: one report per point in its own folder (report/sweep_report.h), then the summary beside them.
Report write_sweep_report(const Experiment& exp, const std::vector<scheduler::PlannedRun>& grid, Store& store,
                          const std::string& workspace, const ReportOptions& o) {
  SweepSummary s;
  s.experiment = exp.name;
  for (const auto& a : exp.sweep) s.axes.push_back(a.key);
  s.points = exp.sweep_points();
  Report rep;
  std::set<std::string> missing;
  for (uint32_t p = 0; p < s.points.size(); ++p) {
    const Experiment point = exp.at(s.points[p]);
    ReportOptions po = o;
    s.point_dirs.push_back(sweep_point_dir(p, s.points[p]));
    po.out_dir = (fs::path(o.out_dir) / "sweep" / s.point_dirs.back()).string();
    fs::create_directories(po.out_dir);
    remove_stale_temporaries_in(po.out_dir);
    ReportModel m;
    Report r = write_report(point, scheduler::runs_at(grid, p), store, workspace, po, exp.name + " [" + s.points[p].label() + "]", &m);
    add_sweep_point(s, m, p);
    const std::string tag = "point " + std::to_string(p + 1) + " (" + s.points[p].label() + ")";
    rep.files.insert(rep.files.end(), r.files.begin(), r.files.end());
    missing.insert(r.missing.begin(), r.missing.end());
    for (const auto& w : r.warnings) rep.warnings.push_back(tag + ": " + w);
    if (!r.claims.empty()) rep.claims += "  " + tag + ":\n" + r.claims;
    if (!r.convergence.empty()) rep.convergence += (rep.convergence.empty() ? "" : "; ") + tag + ": " + r.convergence;
  }
  for (auto& s_dir : s.point_dirs) s_dir = "sweep/" + s_dir;
  mark_sweep_best(s);
  rep.missing.assign(missing.begin(), missing.end());
  rep.markdown = sweep_markdown(s);
  auto write = [&](const std::string& name, const std::string& text) {
    const std::string path = (fs::path(o.out_dir) / name).string();
    write_file_atomically(path, text);
    rep.files.push_back(path);
  };
  for (ReportFormat f : o.formats) {
    switch (f) {
      case ReportFormat::kMd: write("sweep.md", rep.markdown); break;
      case ReportFormat::kCsv: write("sweep.csv", sweep_csv(s)); break;
      case ReportFormat::kTex: write("sweep.tex", sweep_latex(s)); break;
      case ReportFormat::kHtml: write("sweep.html", sweep_html(s)); break;
    }
  }
  return rep;
}

}  // namespace

Report make_report(const Experiment& exp, const std::vector<scheduler::PlannedRun>& grid, Store& store,
                   const std::string& workspace, const ReportOptions& opt_in) {
  ReportOptions o = opt_in;
  if (o.out_dir.empty()) o.out_dir = WorkspaceLayout(workspace).report_dir();
  fs::create_directories(o.out_dir);
  // One report at a time per folder (two into one folder would interleave their files); temporaries left by a
  // killed report are removed under the lock.
  FileLock lock(report_lock(o.out_dir), "report", control_timeouts().lock_wait_s);
  remove_stale_temporaries_in(o.out_dir);
  if (!exp.sweep.empty()) return write_sweep_report(exp, grid, store, workspace, o);
  ReportModel m;
  return write_report(exp, grid, store, workspace, o, exp.name, &m);
}

}  // namespace orch::report
