// run: the main job. At this stage it prepares every data set of the experiment (generating the synthetic
// ones), prints a summary and writes preview PNGs; training, evaluation and the report join it as they land.
#include <cstdio>
#include <filesystem>

#include "cli/options.h"
#include "core/experiment.h"
#include "models/model_config.h"
#include "storage/dataset_file.h"
#include "storage/preview.h"
#include "storage/workspace.h"

namespace orch::cli {

namespace fs = std::filesystem;

int cmd_run(const Args& args) {
  po::options_description desc("orchestrator run");
  std::string exp_path, workspace;
  std::vector<std::string> sets;
  int threads = 0;
  desc.add_options()
      ("experiment", po::value(&exp_path)->required(), "experiment file (experiments/*.json)")
      ("workspace", po::value(&workspace), "workspace folder (default: the experiment's)")
      ("set", po::value(&sets)->composing(), "override a setting: key.path=value (repeatable)")
      ("threads", po::value(&threads)->default_value(0), "worker threads (0: all cores)");
  po::positional_options_description pos;
  pos.add("experiment", 1);
  po::variables_map vm;
  if (!parse_options(args, desc, vm, "orchestrator run EXP [--workspace DIR] [--set key=value]...", &pos)) return 0;
  Experiment exp = load_experiment(exp_path, sets);
  models::validate_experiment_networks(exp);
  if (workspace.empty()) workspace = exp.workspace;
  fs::create_directories(fs::path(workspace) / "report");
  std::printf("run: experiment '%s' (%s), workspace %s\n", exp.name.c_str(), exp_path.c_str(), workspace.c_str());

  std::vector<EnsuredDataset> ensured;
  for (const auto& spec : exp.datasets) ensured.push_back(ensure_dataset(exp, spec, workspace, threads));
  std::printf("\n%-14s %-4s %6s %7s %6s %5s %5s  %-16s %s\n", "dataset", "kind", "size", "samples", "train", "val",
              "test", "digest", "file");
  std::vector<std::string> previews;
  for (size_t i = 0; i < exp.datasets.size(); ++i) {
    const DatasetSpec& spec = exp.datasets[i];
    const EnsuredDataset& e = ensured[i];
    DatasetReader reader(e.path);
    const DatasetInfo& info = reader.info();
    auto counts = info.split_counts();
    std::printf("%-14s %-4s %6d %7d %6d %5d %5d  %-16s %s%s\n", spec.name.c_str(), kind_name(info.kind).c_str(),
                info.size, info.count, counts[0], counts[1], counts[2], info.content_digest.c_str(), e.path.c_str(),
                e.rebuilt ? "" : " (up to date)");
    std::string png = (fs::path(workspace) / "report" / ("preview_" + spec.name + ".png")).string();
    write_dataset_preview(reader, png, 4, 256);
    previews.push_back(png);
  }
  std::printf("\nPreviews (X-rays with contours, distance maps):\n");
  for (const auto& p : previews) std::printf("  %s\n", p.c_str());
  std::printf("Training, Tables 1-2 and figures are not part of this stage yet: the data sets above are ready for them.\n");
  return 0;
}

}  // namespace orch::cli
