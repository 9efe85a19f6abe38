// Sweeps (core/experiment.h SweepAxis, scheduler/grid.h): parsing and validation of axes, the grid's expansion
// (ids stable, runs a value does not change shared by every point), --only on a sweep key, and the report over a
// 2-point sweep (one report per point, the summary in md, csv, tex and html).
#include <gtest/gtest.h>

#include <fstream>
#include <sstream>

#include "core/errors.h"
#include "core/experiment.h"
#include "core/run_settings.h"
#include "models/model_config.h"
#include "report/report.h"
#include "scheduler/grid.h"
#include "scheduler/plan.h"
#include "storage/metrics_table.h"
#include "storage/runs_table.h"
#include "storage/store.h"
#include "test_util.h"

namespace orch {
namespace {

using nlohmann::json;
using test::TempDir;

json base_doc() {
  return {{"name", "sw"},
          {"workspace", "ws"},
          {"datasets", {{"a", {{"kind", "l"}, {"size", 64}, {"synthetic", {{"count", 10}}}}}}},
          {"networks", {{"unet", json::object()}, {"ours", {{"latents", 64}}}}},
          {"seeds", {1, 2}}};
}

std::string error_of(const json& doc) {
  try {
    models::validate_experiment_networks(parse_experiment(doc, "sw.json"));
  } catch (const InputError& e) {
    return e.what();
  }
  return "";
}

std::string read(const std::string& path) {
  std::ifstream in(path);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

TEST(Sweep, AxesMakeTheProductOfTheirValues) {
  json d = base_doc();
  d["sweep"] = {{"training.learning_rate", {1e-4, 3e-4}}, {"networks.ours.latents", {32, 64, 96}}};
  const Experiment e = parse_experiment(d, "sw.json");
  ASSERT_EQ(e.sweep.size(), 2u);
  const auto points = e.sweep_points();
  ASSERT_EQ(points.size(), 6u);
  // Keys in alphabetical order, the last varying fastest.
  EXPECT_EQ(points[0].label(), "networks.ours.latents=32 training.learning_rate=0.0001");
  EXPECT_EQ(points[1].label(), "networks.ours.latents=32 training.learning_rate=0.0003");
  EXPECT_EQ(points[5].value_text("networks.ours.latents"), "96");
  const Experiment at = e.at(points[1]);
  EXPECT_TRUE(at.sweep.empty());
  EXPECT_EQ(at.training.learning_rate, 3e-4);
  EXPECT_EQ(at.networks[0].id == "ours" ? at.networks[0].options["latents"] : at.networks[1].options["latents"], 32);
  EXPECT_EQ(parse_experiment(base_doc(), "sw.json").sweep_points().size(), 1u) << "no sweep: one empty point";
}

TEST(Sweep, KeysAndValuesAreValidatedLikeSet) {
  json d = base_doc();
  d["sweep"] = {{"training.learning_rat", {1e-4}}};
  EXPECT_NE(error_of(d).find("training.learning_rat"), std::string::npos) << error_of(d);
  d["sweep"] = {{"training.learning_rate", {1e-4, -1}}};
  EXPECT_NE(error_of(d).find("training.learning_rate = -1"), std::string::npos) << error_of(d);
  d["sweep"] = {{"training.learning_rate", {1e-4, 1e-4}}};
  EXPECT_NE(error_of(d).find("listed twice"), std::string::npos) << error_of(d);
  d["sweep"] = {{"training.learning_rate", json::array()}};
  EXPECT_NE(error_of(d).find("non-empty list"), std::string::npos) << error_of(d);
  d["sweep"] = {{"datasets.a.size", {64, 96}}};
  EXPECT_NE(error_of(d).find("not a sweep axis"), std::string::npos) << error_of(d);
  d["sweep"] = {{"seeds", {{1}, {2}}}};
  EXPECT_NE(error_of(d).find("not a sweep axis"), std::string::npos) << error_of(d);
  d["sweep"] = {{"networks.hybridgnet.latents", {32}}};
  EXPECT_NE(error_of(d).find("no object for \"hybridgnet\""), std::string::npos) << error_of(d);
  d["sweep"] = {{"networks.ours.latentz", {32}}};  // a network option the model does not know
  EXPECT_NE(error_of(d).find("latentz"), std::string::npos) << error_of(d);
  d["sweep"] = {{"networks.ours.latents", {32}}};
  EXPECT_EQ(error_of(d), "");
}

TEST(Sweep, ExpansionKeepsIdsAndSharesRunsAValueDoesNotChange) {
  json d = base_doc();
  d["sweep"] = {{"networks.ours.latents", {32, 64}}};
  const Experiment e = parse_experiment(d, "sw.json");
  const auto grid = scheduler::expand(e);
  // UNet x 2 seeds (shared by both points) + Ours x 2 seeds x 2 points.
  ASSERT_EQ(grid.size(), 6u);
  std::set<std::string> ids;
  for (const auto& r : grid) {
    ids.insert(r.id);
    if (r.settings.model == "unet") EXPECT_EQ(r.sweep_points, (std::vector<uint32_t>{0, 1}));
    else EXPECT_EQ(r.sweep_points.size(), 1u);
  }
  EXPECT_EQ(ids.size(), grid.size());
  // The ids of a point's runs are those of the experiment with that value and no sweep (latents 64: the file's own).
  json plain = base_doc();
  for (const auto& r : scheduler::expand(parse_experiment(plain, "sw.json"))) EXPECT_TRUE(ids.count(r.id)) << r.id;
  plain["networks"]["ours"]["latents"] = 32;
  for (const auto& r : scheduler::expand(parse_experiment(plain, "sw.json"))) EXPECT_TRUE(ids.count(r.id)) << r.id;
  EXPECT_EQ(scheduler::runs_at(grid, 0).size(), 4u);
  // Dependencies come first in the merged order.
  std::set<std::string> seen;
  for (const auto& r : grid) {
    for (const auto& dep : r.depends_on) EXPECT_TRUE(seen.count(dep)) << r.id << " before " << dep;
    seen.insert(r.id);
  }
}

TEST(Sweep, OnlySelectsASweepValueAndRefusesUnknownKeysAndValues) {
  json d = base_doc();
  d["sweep"] = {{"training.learning_rate", {1e-4, 3e-4}}};
  const Experiment e = parse_experiment(d, "sw.json");
  const auto grid = scheduler::expand(e);
  ASSERT_EQ(grid.size(), 8u) << "every run's learning rate changes: nothing shared";
  const auto f = scheduler::parse_filter({"training.learning_rate=1e-4"}, e);
  f.check_against(grid);
  int matched = 0;
  for (const auto& r : grid)
    if (f.matches(r)) {
      ++matched;
      EXPECT_EQ(r.settings.training.learning_rate, 1e-4);
    }
  EXPECT_EQ(matched, 4);
  try {
    scheduler::parse_filter({"training.lr_gamma=0.5"}, e);
    FAIL();
  } catch (const InputError& err) {
    EXPECT_NE(std::string(err.what()).find("training.lr_gamma"), std::string::npos) << err.what();
    EXPECT_NE(std::string(err.what()).find("training.learning_rate"), std::string::npos) << "lists the sweep keys";
  }
  EXPECT_THROW(scheduler::parse_filter({"training.learning_rate=0.5"}, e).check_against(grid), InputError);
}

TEST(Sweep, ReportWritesOneTableSetPerPointAndASummary) {
  TempDir t;
  json d = base_doc();
  d["workspace"] = t / "ws";
  d["sweep"] = {{"networks.ours.latents", {32, 64}}};
  const Experiment e = parse_experiment(d, "sw.json");
  const auto grid = scheduler::expand(e);
  Store store(t / "ws.db");
  scheduler::record_runs(store, grid);
  for (const auto& r : grid) {  // Dice: UNet 0.80; Ours 0.90 at latents 32, 0.85 at 64
    const double dice = r.settings.model == "unet" ? 0.80 : r.settings.model_options["latents"] == 32 ? 0.90 : 0.85;
    MetricsTable(store).replace_test_metrics(r.id, {{r.id, "img0", "lungs", dice, dice / 2, 10}, {r.id, "img1", "lungs", dice, dice / 2, 12}});
    MetricsTable(store).replace_inference_times(r.id, {{"img0", 0.1, 0.1, true, "cpu"}, {"img1", 0.1, 0.1, false, "cpu"}});
    RunsTable(store).set_run_state(r.id, "done");
  }
  report::ReportOptions o;
  o.out_dir = t / "out";
  o.figures = false;
  const report::Report rep = report::make_report(e, grid, store, t / "ws", o);
  // Each point: a full report in its own folder.
  for (const char* dir : {"out/sweep/01-networks.ours.latents=32", "out/sweep/02-networks.ours.latents=64"})
    for (const char* f : {"tables.md", "tables.csv", "tables.tex", "report.html", "runs.csv"})
      EXPECT_TRUE(std::filesystem::exists(t / (std::string(dir) + "/" + f))) << dir << "/" << f;
  EXPECT_NE(read(t / "out/sweep/01-networks.ours.latents=32/tables.md").find("0.9000"), std::string::npos);
  // The summary: each network's headline metric at each point, its best point in bold.
  const std::string md = read(t / "out/sweep.md");
  EXPECT_NE(md.find("| Ours | **0.9000** (n=2) | 0.8500 (n=2) |"), std::string::npos) << md;
  EXPECT_NE(md.find("| UNet | **0.8000** (n=2) | 0.8000 (n=2) |"), std::string::npos) << md;
  EXPECT_EQ(rep.markdown, md);
  const std::string csv = read(t / "out/sweep.csv");
  EXPECT_NE(csv.find("dataset,model,point,networks.ours.latents,metric,value,n_seeds,best\n"), std::string::npos) << csv;
  EXPECT_NE(csv.find("a,ours,1,32,dice,0.9,2,1\n"), std::string::npos) << csv;
  EXPECT_NE(csv.find("a,ours,2,64,dice,0.85,2,0\n"), std::string::npos) << csv;
  EXPECT_NE(read(t / "out/sweep.tex").find("\\textbf{0.9000}"), std::string::npos);
  const std::string html = read(t / "out/sweep.html");
  EXPECT_NE(html.find("<b>0.9000</b>"), std::string::npos) << html;
  EXPECT_NE(html.find("./sweep/01-networks.ours.latents%3D32/report.html"), std::string::npos) << html;
}

}  // namespace
}  // namespace orch

namespace orch {
namespace {

// The grid's ids come from RunIdCache (the identity text cut around seed and dependency): they must equal
// RunSettings::id() for every run, with per-network and per-data-set training, dependencies and a pretraining stage.
TEST(RunIdCache, EveryIdEqualsTheFullComputation) {
  json doc = base_doc();
  doc["seeds"] = {1, 2, 3, 17, 123456789};
  doc["networks"] = {{"unet", {{"training", {{"epochs", 3}}}}},
                     {"ours", {{"latents", 64}}},
                     {"rasterize", json::object()},
                     {"hybridgnet", {{"datasets", {{"a", {{"training", {{"learning_rate", 0.0005}}}}}}}}}};
  doc["pretrain"] = "separate";
  const Experiment e = parse_experiment(doc, "x.json");
  const auto grid = scheduler::expand(e);
  ASSERT_GT(grid.size(), 20u);
  int with_dependency = 0;
  for (const auto& r : grid) {
    EXPECT_EQ(r.id, r.settings.id()) << r.id;
    with_dependency += !r.settings.dependency.empty();
  }
  EXPECT_GT(with_dependency, 5);
}

// Options whose keys look like the identity's own ("seed", "stage", "dependency") and a dependency that is not a
// safe run id: still the full computation's id.
TEST(RunIdCache, LookalikeKeysAndUnsafeDependenciesKeepTheId) {
  RunSettings s;
  s.experiment = "x";
  s.dataset = "a";
  s.kind = DatasetKind::kLungs;
  s.size = 64;
  s.model = "ours";
  s.model_options = {{"seed", 0}, {"stage", "train"}, {"dependency", ""}};
  RunIdCache ids;
  for (int64_t seed : {1, 2, 40}) {
    s.seed = seed;
    for (const std::string dep : {"", "unet.a.s1-0123456789", "odd\"dep\\"}) {
      s.dependency = dep;
      EXPECT_EQ(ids.id(s, "a/ours/train"), s.id()) << seed << " " << dep;
    }
  }
  EXPECT_TRUE(ids.cut("a/ours/train")) << "the ids were not made from the cut text";
}

}  // namespace
}  // namespace orch
