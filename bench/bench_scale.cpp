// Control-plane scale (issues 5 and 6): planning the paper's grid, one status refresh and one report over a
// store of about 10,000 runs with their per-image metrics.
//   bench_scale EXPERIMENTS_DIR WORKDIR
// Prints the time of: expanding and planning experiments/paper.json (66 runs) against an empty store; filling a
// store with 10,010 done runs (11 networks x 2 data sets x 455 seeds + 2, each with 58 LH or 79 L test images);
// one plan/status refresh over it (store.progress + plan); one report (tables, medians, paired tests; no figures).
#include <chrono>
#include <cstdio>
#include <filesystem>

#include "core/allocator.h"
#include "core/experiment.h"
#include "report/report.h"
#include "scheduler/grid.h"
#include "scheduler/plan.h"
#include "storage/metrics_table.h"
#include "storage/runs_table.h"
#include "storage/store.h"

using namespace orch;
namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;

static double since(Clock::time_point t0) { return std::chrono::duration<double>(Clock::now() - t0).count(); }

int main(int argc, char** argv) {
  tune_allocator();
  if (argc < 3) {
    std::fprintf(stderr, "usage: bench_scale EXPERIMENTS_DIR WORKDIR\n");
    return 2;
  }
  const std::string dir = argv[2];
  fs::remove_all(dir);
  fs::create_directories(dir);
  {
    auto t0 = Clock::now();
    Experiment paper = load_experiment(std::string(argv[1]) + "/paper.json");
    auto grid = scheduler::expand(paper);
    Store empty(":memory:");
    auto plan = scheduler::plan(grid, empty, {}, scheduler::PlanMode::kSubmit, {});
    std::printf("plan of experiments/paper.json: %zu runs, %.3f s (load, expand, plan)\n", plan.size(), since(t0));
  }
  nlohmann::json j = {{"name", "scale"},
                      {"workspace", dir},
                      {"datasets", {{"lh", {{"kind", "lh"}, {"size", 1024}, {"synthetic", {{"count", 10}}}}},
                                    {"l", {{"kind", "l"}, {"size", 1024}, {"synthetic", {{"count", 10}}}}}}},
                      {"networks", {"hybridgnet", "hybridgnet_igsc", "unet", "unet_joint", "hourglass", "hourglass_concat",
                                    "multitask", "no_joint", "mse_only", "rasterize", "ours"}}};
  nlohmann::json seeds = nlohmann::json::array();
  for (int s = 1; s <= 455; ++s) seeds.push_back(s);
  j["seeds"] = seeds;
  Experiment exp = parse_experiment(j, "scale.json");
  auto grid = scheduler::expand(exp);
  Store store(dir + "/orchestrator.db");
  auto t0 = Clock::now();
  scheduler::record_runs(store, grid);
  uint64_t state = 42;
  auto rnd = [&] {
    state = state * 6364136223846793005ULL + 1442695040888963407ULL;
    return static_cast<double>(state >> 11) * 0x1.0p-53;
  };
  std::vector<std::string> ids;
  for (const auto& r : grid) {
    const bool lh = r.settings.kind == DatasetKind::kLungsHeart;
    std::vector<TestMetric> rows;
    for (int i = 0; i < (lh ? 58 : 79); ++i) {
      std::string img = "img" + std::to_string(i);
      rows.push_back({r.id, img, "lungs", 0.9 + 0.05 * rnd(), 0.85 + 0.05 * rnd(), 10 + 5 * rnd()});
      if (lh) rows.push_back({r.id, img, "heart", 0.85 + 0.05 * rnd(), 0.8 + 0.05 * rnd(), 12 + 5 * rnd()});
    }
    MetricsTable(store).replace_test_metrics(r.id, rows);
    ids.push_back(r.id);
  }
  RunsTable(store).set_runs_state(ids, "done");
  std::printf("filled a store with %zu runs and %lld test-metric rows in %.1f s\n", grid.size(),
              static_cast<long long>(store.count("test_metrics")), since(t0));
  for (int rep = 0; rep < 3; ++rep) {
    t0 = Clock::now();
    auto plan = scheduler::plan(grid, store, {}, scheduler::PlanMode::kSubmit, scheduler::live_job_states(store, dir));
    std::printf("status refresh (live job states + progress + plan) over %zu runs: %.3f s\n", plan.size(), since(t0));
  }
  for (int rep = 0; rep < 2; ++rep) {
    t0 = Clock::now();
    report::ReportOptions o;
    o.figures = false;
    o.out_dir = dir + "/report";
    auto r = report::make_report(exp, grid, store, dir, o);
    std::printf("report over %zu runs (tables md/csv/tex, medians, Wilcoxon): %.3f s\n", grid.size(), since(t0));
  }
  return 0;
}
