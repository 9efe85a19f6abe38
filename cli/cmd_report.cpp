// report: Tables 1-2, median models, paired tests, cost and figures from the store (report/report.h), in
// Markdown, CSV, LaTeX and HTML. Defaults come from the experiment's "report" block; flags override them.
#include <cstdio>
#include <filesystem>
#include <iostream>

#include "cli/grid_ops.h"
#include "cli/options.h"
#include "report/report.h"
#include "storage/layout.h"

namespace orch::cli {

namespace {

std::vector<std::string> split_commas(const std::string& text) {
  std::vector<std::string> out;
  size_t start = 0;
  for (;;) {
    size_t c = text.find(',', start);
    out.push_back(text.substr(start, c == std::string::npos ? std::string::npos : c - start));
    if (c == std::string::npos) break;
    start = c + 1;
  }
  return out;
}

}  // namespace

int cmd_report(const Args& args) {
  po::options_description desc("orchestrator report");
  std::string exp_path, workspace, out, formats, median, hausdorff, inference, empty_mask;
  std::vector<std::string> sets;
  bool no_figures = false;
  int images = 0;
  desc.add_options()
      ("experiment", po::value(&exp_path)->required(), "experiment file (experiments/*.json)")
      ("workspace", po::value(&workspace), "workspace folder (default: the experiment's)")
      ("set", po::value(&sets)->composing(), "override a setting: key.path=value (repeatable)")
      ("out", po::value(&out), "output folder (default: WORKSPACE/report)")
      ("format", po::value(&formats), "comma-separated: md, csv, tex, html (default: all, or report.formats)")
      ("median-metric", po::value(&median), "median model by mean over organs of dice, jaccard or hausdorff_mm")
      ("hausdorff", po::value(&hausdorff), "1024px (the paper's scale, default) or working (as stored)")
      ("inference", po::value(&inference), "synchronized (default) or reference (not synchronised, first call included)")
      ("empty-mask", po::value(&empty_mask), "images without a Hausdorff distance: worst (default), exclude or fail")
      ("images", po::value(&images), "test images in the qualitative figure (1 to 20)")
      ("no-figures", po::bool_switch(&no_figures), "tables only");
  po::positional_options_description pos;
  pos.add("experiment", 1);
  po::variables_map vm;
  if (!parse_options(args, desc, vm, "orchestrator report EXP [--out DIR] [--format md,csv,tex,html] [--hausdorff ...]", &pos))
    return 0;
  GridContext g = load_grid(exp_path, sets, {}, workspace);
  const WorkspaceLayout layout(g.workspace);
  if (!std::filesystem::exists(layout.store()))
    throw InputError(layout.store(), "", "", "no run store in the workspace: nothing has been submitted yet");
  report::ReportOptions o = report::report_options_from(g.exp);
  o.out_dir = out;
  if (vm.count("format")) {
    o.formats.clear();
    for (const auto& f : split_commas(formats)) o.formats.push_back(choice_flag<ReportFormat>("--format", f));
  }
  if (vm.count("median-metric")) o.settings.median_metric = choice_flag<Metric>("--median-metric", median);
  if (vm.count("hausdorff")) o.settings.hausdorff = choice_flag<HausdorffScale>("--hausdorff", hausdorff);
  if (vm.count("inference")) o.settings.inference = choice_flag<InferenceTiming>("--inference", inference);
  if (vm.count("empty-mask")) o.settings.empty_mask = choice_flag<EmptyMask>("--empty-mask", empty_mask);
  if (vm.count("images")) {
    if (images < 1 || images > 20) throw InputError("--images", "", std::to_string(images), "expected 1 to 20");
    o.figure_images = images;
  }
  o.figures = !no_figures;
  o.settings.validate();
  std::unique_ptr<Store> store;
  try {
    store = std::make_unique<Store>(layout.store());
  } catch (const BusyError&) {
    throw;
  } catch (const Error&) {  // a read-only workspace: report from a read-only store (medians not recorded)
    store = std::make_unique<Store>(layout.store(), Store::Mode::kRead);
  }
  report::Report r = report::make_report(g.exp, g.grid, *store, g.workspace, o);
  std::cout << r.markdown;
  std::printf("Report files:\n");
  for (const auto& f : r.files) std::printf("  %s\n", f.c_str());
  return 0;
}

}  // namespace orch::cli
