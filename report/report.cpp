#include "report/report.h"

#include <algorithm>
#include <filesystem>

#include "core/atomic_file.h"
#include "core/control.h"
#include "core/errors.h"
#include "report/figures.h"
#include "report/writers.h"
#include "storage/layout.h"
#include "storage/workspace_lock.h"

namespace orch::report {

namespace fs = std::filesystem;

namespace {

const std::vector<std::string>& known_formats() {
  static const std::vector<std::string> f = {"md", "csv", "tex", "html"};
  return f;
}

// Draws each data set's figures; a failure costs the figure, with a warning, never the tables.
std::vector<FigureFile> draw_figures(const Experiment& exp, const ReportModel& m, Store& store, const std::string& workspace,
                                     const ReportOptions& o, Report& rep) {
  std::vector<FigureFile> out;
  for (const auto& t : m.tables) {
    const DatasetSpec& ds = *t.dataset;
    try {
      std::vector<FigureRun> fr;
      std::vector<CurveRun> curves;
      for (const auto& row : t.rows) {
        if (!row.median.empty()) fr.push_back({row.network->id, row.network->paper_name, row.median});
        for (const auto& id : row.done_ids) {
          int64_t seed = 0;
          for (const auto& r : m.runs)
            if (r.run_id == id) seed = r.seed;
          curves.push_back({row.network->id, row.network->paper_name, id, seed, store.epoch_metrics(id)});
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

Report make_report(const Experiment& exp, const std::vector<scheduler::PlannedRun>& grid, Store& store,
                   const std::string& workspace, const ReportOptions& opt_in) {
  ReportOptions o = opt_in;
  if (o.out_dir.empty()) o.out_dir = WorkspaceLayout(workspace).report_dir();
  for (const auto& f : o.formats)
    if (std::find(known_formats().begin(), known_formats().end(), f) == known_formats().end())
      throw InputError("--format", "", f, "expected md, csv, tex or html");
  fs::create_directories(o.out_dir);
  // One report at a time per folder (two into one folder would interleave their files); temporaries left by a
  // killed report are removed under the lock.
  FileLock lock(report_lock(o.out_dir), "report", control_timeouts().lock_wait_s);
  remove_stale_temporaries_in(o.out_dir);
  Report rep;
  const ReportModel m = build_report_model(exp, grid, store, workspace, o.out_dir, o.settings);
  rep.missing = m.missing;
  try {
    store.set_median_models(exp.name, m.medians);
  } catch (const std::exception& e) {
    rep.warnings.push_back("median models not recorded in the store: " + brief_reason(e.what()));
  }
  const std::vector<FigureFile> figures = o.figures ? draw_figures(exp, m, store, workspace, o, rep) : std::vector<FigureFile>{};
  rep.markdown = to_markdown(m, rep.warnings);
  rep.claims = claims_summary(m);
  auto out = [&](const std::string& name) { return (fs::path(o.out_dir) / name).string(); };
  for (const auto& f : o.formats) {
    if (f == "md") {
      write_file_atomically(out("tables.md"), "# " + exp.name + ": Tables 1-2\n\n" + rep.markdown);
      rep.files.push_back(out("tables.md"));
    } else if (f == "csv") {
      write_file_atomically(out("tables.csv"), to_csv(m));
      write_file_atomically(out("paper_comparison.csv"), to_paper_comparison_csv(m));
      write_file_atomically(out("claims.csv"), to_claims_csv(m));
      rep.files.push_back(out("tables.csv"));
      rep.files.push_back(out("paper_comparison.csv"));
      rep.files.push_back(out("claims.csv"));
    } else if (f == "tex") {
      write_file_atomically(out("tables.tex"), to_latex(m));
      rep.files.push_back(out("tables.tex"));
    } else if (f == "html") {
      write_file_atomically(out("report.html"), to_html(m, figures, rep.warnings));
      rep.files.push_back(out("report.html"));
    }
  }
  return rep;
}

}  // namespace orch::report
