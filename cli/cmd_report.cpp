// report: Tables 1-2, median models, paired tests and figures from the store (report/report.h).
#include <cstdio>
#include <iostream>

#include "cli/grid_ops.h"
#include "cli/options.h"
#include "report/report.h"
#include "storage/layout.h"

namespace orch::cli {

int cmd_report(const Args& args) {
  po::options_description desc("orchestrator report");
  std::string exp_path, workspace, out, formats = "md,csv,tex", median = "dice";
  std::vector<std::string> sets;
  bool no_figures = false;
  int images = 3;
  desc.add_options()
      ("experiment", po::value(&exp_path)->required(), "experiment file (experiments/*.json)")
      ("workspace", po::value(&workspace), "workspace folder (default: the experiment's)")
      ("set", po::value(&sets)->composing(), "override a setting: key.path=value (repeatable)")
      ("out", po::value(&out), "output folder (default: WORKSPACE/report)")
      ("format", po::value(&formats)->default_value("md,csv,tex"), "comma-separated: md, csv, tex")
      ("median-metric", po::value(&median)->default_value("dice"), "median model by mean over organs of dice, jaccard or hausdorff_mm")
      ("images", po::value(&images)->default_value(3), "test images in the qualitative figure")
      ("no-figures", po::bool_switch(&no_figures), "tables only");
  po::positional_options_description pos;
  pos.add("experiment", 1);
  po::variables_map vm;
  if (!parse_options(args, desc, vm, "orchestrator report EXP [--out DIR] [--format md,tex,csv]", &pos)) return 0;
  GridContext g = load_grid(exp_path, sets, {}, workspace);
  const WorkspaceLayout layout(g.workspace);
  if (!std::filesystem::exists(layout.store()))
    throw InputError(layout.store(), "", "", "no run store in the workspace: nothing has been submitted yet");
  report::ReportOptions o;
  o.out_dir = out;
  o.formats.clear();
  size_t start = 0;
  for (;;) {
    size_t c = formats.find(',', start);
    o.formats.push_back(formats.substr(start, c == std::string::npos ? std::string::npos : c - start));
    if (c == std::string::npos) break;
    start = c + 1;
  }
  o.median_metric = median;
  o.figures = !no_figures;
  o.figure_images = images;
  Store store(layout.store());
  report::Report r = report::make_report(g.exp, g.grid, store, g.workspace, o);
  std::cout << r.markdown;
  std::printf("Report files:\n");
  for (const auto& f : r.files) std::printf("  %s\n", f.c_str());
  return 0;
}

}  // namespace orch::cli
