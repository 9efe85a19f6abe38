// run: the main job. Prepares the experiment's data sets, submits every run that is not done to the local pool
// (through the control plane's sequence, scheduler/submission.h), shows progress, waits, and writes the report:
// Tables 1-2, median models, paired tests and figures. A second run reuses what is done (data sets by digest,
// runs by id).
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <iostream>

#include "cli/grid_ops.h"
#include "cli/options.h"
#include "core/blas.h"
#include "core/progress.h"
#include "report/report.h"
#include "storage/dataset_file.h"
#include "storage/layout.h"
#include "storage/preview.h"
#include "storage/workspace.h"

namespace orch::cli {

namespace fs = std::filesystem;

int cmd_run(const Args& args) {
  po::options_description desc("orchestrator run");
  CommonOptions c;
  po::positional_options_description pos;
  add_common(desc, c, pos);
  int workers = 0;
  desc.add_options()
      ("workers", po::value(&workers)->default_value(0), "local worker processes (0: resources.local_workers, else cores)");
  po::variables_map vm;
  if (!parse_options(args, desc, vm, "orchestrator run EXP [--workspace DIR] [--set key=value]... [--workers N]", &pos))
    return 0;
  if (workers < 0 || workers > 1024) throw InputError("--workers", "", std::to_string(workers), "expected 0 to 1024");
  auto t0 = std::chrono::steady_clock::now();
  GridContext g = load_grid(c.exp_path, c.sets, c.only, c.workspace);
  if (g.exp.backend != BackendKind::kLocal)
    throw InputError(c.exp_path, "backend", choice_name(g.exp.backend), "orchestrator run drives the local backend; use submit for Slurm");
  workers = scheduler::local_workers_for(g.exp, workers);
  const WorkspaceLayout layout(g.workspace);
  fs::create_directories(layout.report_dir());
  std::printf("run: experiment '%s' (%s), workspace %s, %zu run(s), %d local worker(s)\n", g.exp.name.c_str(),
              c.exp_path.c_str(), g.workspace.c_str(), g.grid.size(), workers);
  if (const std::string blas = loaded_blas(); is_reference_blas(blas))
    std::fprintf(stderr, "run: warning: LibTorch runs on the reference BLAS (%s), training steps up to 2x slower than on OpenBLAS; "
                         "install libopenblas0-openmp (scripts/setup does)\n", blas.c_str());
  for (const auto& spec : g.exp.datasets) {
    EnsuredDataset e = ensure_dataset(g.exp, spec, g.workspace);
    DatasetReader reader(e.path);
    auto c = reader.info().split_counts();
    std::printf("  data set %-14s %-3s %4d px: %d train / %d val / %d test  %s%s\n", spec.name.c_str(),
                kind_name(reader.info().kind).c_str(), reader.info().size, c[0], c[1], c[2], e.path.c_str(),
                e.rebuilt ? "" : " (up to date)");
    write_dataset_preview(reader, (fs::path(layout.report_dir()) / ("preview_" + spec.name + ".png")).string(), 4, 256);
  }
  std::fflush(stdout);
  scheduler::SubmitOptions o;
  o.workers = workers;
  o.on_event = [](const std::string& l) { std::fprintf(stderr, "%s\n", l.c_str()); };
  auto out = scheduler::submit_grid(g.request("orchestrator run " + c.exp_path), o);
  const int code = tell_outcome(out, "run", c.exp_path);
  if (out.trained.interrupted_by) return code;
  Store store(layout.store());
  report::ReportOptions ro = report::report_options_from(g.exp);
  report::Report rep = report::make_report(g.exp, g.grid, store, g.workspace, ro);
  std::cout << "\n" << rep.markdown;
  double mins = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count() / 60;
  std::printf("run: %d run(s) trained now (%d failed), %.1f min. Report:\n", out.trained.done, out.trained.failed, mins);
  for (const auto& f : rep.files) std::printf("  %s\n", f.c_str());
  std::printf("  %s (previews of the data sets)\n", layout.report_dir().c_str());
  std::printf("Runs and metrics: sqlite3 %s; status: orchestrator status %s\n", layout.store().c_str(), c.exp_path.c_str());
  if (!rep.convergence.empty()) std::printf("Convergence: %s.\n", rep.convergence.c_str());
  if (!rep.claims.empty())
    std::printf("The paper's claims on this grid (report: \"The paper's claims on this grid\", claims.csv):\n%s", rep.claims.c_str());
  return code;
}

}  // namespace orch::cli
