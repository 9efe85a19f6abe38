// The report: statistics against scipy, median selection, golden tables from a store with known values,
// missing runs, figures as PNG files.
#include <gtest/gtest.h>
#include <sqlite3.h>  // a second connection from outside the store, as another process (or a damaging tool) has

#include <cmath>
#include <fstream>
#include <sstream>

#include "core/errors.h"
#include "core/experiment.h"
#include "report/figures.h"
#include "report/report.h"
#include "report/stats.h"
#include "report/writers.h"
#include "scheduler/grid.h"
#include "scheduler/plan.h"
#include "storage/metrics_table.h"
#include "storage/runs_table.h"
#include "storage/store.h"
#include "test_util.h"

namespace orch {
namespace {

using test::TempDir;

TEST(ReportStats, WilcoxonMatchesScipy) {
  // scipy 1.10.1: wilcoxon(x, y) -> statistic 9.5, pvalue 0.083984375 (exact, with ties).
  std::vector<double> x{0.91, 0.93, 0.88, 0.95, 0.90, 0.92, 0.89, 0.94, 0.87, 0.96};
  std::vector<double> y{0.90, 0.94, 0.85, 0.91, 0.905, 0.90, 0.86, 0.935, 0.88, 0.93};
  auto r = report::wilcoxon(x, y);
  EXPECT_EQ(r.statistic, 9.5);
  EXPECT_DOUBLE_EQ(r.p_value, 0.083984375);
  EXPECT_TRUE(r.exact);
  // 60 pairs (normal approximation): scipy gives statistic 516.0, pvalue 0.003310948120205268.
  std::vector<double> a{0.940818, 0.848887, 0.908362, 0.888645, 0.890947, 0.895688, 0.8596, 0.895361, 0.882696, 0.96646,
                        0.904516, 0.892947, 0.894374, 0.886639, 0.878897, 0.892184, 0.909639, 0.895229, 0.919155, 0.896004,
                        0.900485, 0.930916, 0.910902, 0.889895, 0.896343, 0.910811, 0.938702, 0.894608, 0.895129, 0.920046,
                        0.882271, 0.894166, 0.917651, 0.911607, 0.90183, 0.913402, 0.843437, 0.920426, 0.880807, 0.866628,
                        0.905529, 0.914011, 0.891105, 0.878472, 0.900522, 0.898945, 0.928112, 0.914948, 0.903876, 0.922233,
                        0.89589, 0.881482, 0.911681, 0.911651, 0.895703, 0.884344, 0.904583, 0.850122, 0.913802, 0.909827};
  std::vector<double> b{0.952207, 0.843273, 0.913003, 0.876072, 0.906289, 0.899833, 0.847504, 0.878797, 0.899276, 0.96644,
                        0.896236, 0.89404, 0.873468, 0.893551, 0.870352, 0.897668, 0.890579, 0.890445, 0.917878, 0.908186,
                        0.878667, 0.918389, 0.898366, 0.873517, 0.887851, 0.912203, 0.941704, 0.89761, 0.876428, 0.92965,
                        0.883234, 0.892378, 0.910405, 0.900854, 0.909321, 0.925702, 0.838481, 0.90329, 0.868237, 0.859471,
                        0.9037, 0.906079, 0.888538, 0.8653, 0.903467, 0.892603, 0.92422, 0.904515, 0.89663, 0.891732,
                        0.875903, 0.861515, 0.927076, 0.910054, 0.89679, 0.874017, 0.922373, 0.833377, 0.898133, 0.917848};
  r = report::wilcoxon(a, b);
  EXPECT_EQ(r.statistic, 516.0);
  EXPECT_NEAR(r.p_value, 0.003310948120205268, 1e-12);
  EXPECT_FALSE(r.exact);
}

TEST(ReportStats, MedianOddAndEvenSeedCounts) {
  EXPECT_EQ(report::median_index({0.3, 0.1, 0.2}), 2u);
  EXPECT_EQ(report::median_index({0.4, 0.1, 0.3, 0.2}), 3u) << "lower middle of 0.1 0.2 0.3 0.4 is 0.2";
  EXPECT_EQ(report::median_index({0.5}), 0u);
  EXPECT_EQ(report::median_index({0.7, 0.7}), 0u) << "ties keep the first";
  EXPECT_DOUBLE_EQ(report::stddev({0.9, 0.8, 0.7}), 0.1);
  EXPECT_TRUE(std::isnan(report::stddev({0.9})));
}

Experiment report_experiment(const std::string& ws) {
  nlohmann::json j = {{"name", "rep"},
                      {"workspace", ws},
                      {"datasets", {{"a", {{"kind", "lh"}, {"size", 64}, {"synthetic", {{"count", 10}}}}},
                                    {"b", {{"kind", "l"}, {"size", 64}, {"synthetic", {{"count", 10}}}}}}},
                      {"networks", {"unet", "ours"}},
                      {"seeds", {1, 2, 3}}};
  return parse_experiment(j, "rep.json");
}

// Known per-image values: run r's Dice on image i is base + 0.01 * i (two images), Jaccard half of it, Hausdorff 10.
void fill(Store& store, const scheduler::PlannedRun& r, double base, bool lh) {
  std::vector<TestMetric> rows;
  for (int i = 0; i < 2; ++i) {
    std::string img = "img" + std::to_string(i);
    rows.push_back({r.id, img, "lungs", base + 0.01 * i, (base + 0.01 * i) / 2, 10.0 + i});
    if (lh) rows.push_back({r.id, img, "heart", base - 0.1, (base - 0.1) / 2, 20.0});
  }
  MetricsTable(store).replace_test_metrics(r.id, rows);
  MetricsTable(store).replace_inference_times(r.id, {{"img0", 1.0, 0.9, true, "cpu"}, {"img1", 0.5, 0.4, false, "cpu"}});
  RunsTable(store).set_run_state(r.id, "done");
}

TEST(Report, GoldenTablesMediansAndMissingRuns) {
  TempDir t;
  Experiment exp = report_experiment(t / "ws");
  auto grid = scheduler::expand(exp);
  ASSERT_EQ(grid.size(), 2u * 2 * 3) << "the UNet of seed 1 is also the pretrained one";
  Store store(t / "ws.db");
  scheduler::record_runs(store, grid);
  std::map<std::string, double> base{{"a/unet/1", 0.90}, {"a/unet/2", 0.80}, {"a/unet/3", 0.70},
                                     {"a/ours/1", 0.95}, {"a/ours/2", 0.85}, {"a/ours/3", 0.90},
                                     {"b/unet/1", 0.60}, {"b/unet/2", 0.80},  // b/unet/3 left unfinished
                                     {"b/ours/1", 0.91}, {"b/ours/2", 0.92}, {"b/ours/3", 0.93}};
  std::string missing_id, b_unet_1, b_unet_2, a_unet_2;
  for (const auto& r : grid) {
    if (r.settings.stage != Stage::kTrain) continue;
    std::string k = r.settings.dataset + "/" + r.settings.model + "/" + std::to_string(r.settings.seed);
    if (!base.count(k)) {
      missing_id = r.id;
      continue;
    }
    fill(store, r, base[k], r.settings.kind == DatasetKind::kLungsHeart);
    if (k == "b/unet/1") b_unet_1 = r.id;
    if (k == "b/unet/2") b_unet_2 = r.id;
    if (k == "a/unet/2") a_unet_2 = r.id;
  }
  report::ReportOptions o;
  o.out_dir = t / "out";
  o.figures = false;
  o.settings.hausdorff = HausdorffScale::kWorking;  // the stored values (the default scales them to the paper's 1024 px)
  report::Report rep = report::make_report(exp, grid, store, t / "ws", o);
  ASSERT_EQ(rep.missing.size(), 1u) << "only b/unet/3 (pretrain stages are not table runs)";
  bool found = false;
  for (const auto& m : rep.missing) found |= m.rfind(missing_id, 0) == 0;
  EXPECT_TRUE(found);
  EXPECT_NE(rep.markdown.find("Not in the tables (not done)"), std::string::npos);

  std::ifstream in(t / "out/tables.csv");
  std::stringstream ss;
  ss << in.rdbuf();
  const std::string csv = ss.str();
  // Lungs Dice of UNet on a: per-run means 0.905, 0.805, 0.705 -> mean 0.805, std 0.1; heart 0.8 0.7 0.6.
  EXPECT_NE(csv.find("table,dataset,model,organ,metric,mean,std,n_seeds\n"), std::string::npos);
  EXPECT_NE(csv.find("1,a,unet,lungs,dice,0.805,0.1,3\n"), std::string::npos) << csv;
  EXPECT_NE(csv.find("1,a,unet,heart,hausdorff_mm,20,0,3\n"), std::string::npos) << csv;
  EXPECT_NE(csv.find("1,a,ours,lungs,jaccard,0.4525,0.025,3\n"), std::string::npos) << csv;
  // b: UNet has two seeds done (0.605, 0.805); the unfinished one is not averaged in.
  EXPECT_NE(csv.find("2,b,unet,lungs,dice,0.705,0.1414213562,2\n"), std::string::npos) << csv;
  EXPECT_NE(csv.find("2,b,unet,,inference_s,0.5,0,2\n"), std::string::npos) << csv;
  // Best marked: Ours' lungs Dice on a (0.905) beats UNet's (0.805).
  EXPECT_NE(rep.markdown.find("**0.9050 ± 0.0500**"), std::string::npos) << rep.markdown;

  // Medians: a/unet scores (0.905+0.8)/2... -> seed 2 is the middle; b/unet even (2 runs) -> the lower one, seed 1.
  sqlite3* db = nullptr;
  ASSERT_EQ(sqlite3_open((t / "ws.db").c_str(), &db), SQLITE_OK);
  auto median_of = [&](const std::string& ds, const std::string& model) {
    sqlite3_stmt* s = nullptr;
    sqlite3_prepare_v2(db, "SELECT run_id, n_seeds FROM median_models WHERE experiment='rep' AND dataset=? AND model=?", -1, &s, nullptr);
    sqlite3_bind_text(s, 1, ds.c_str(), -1, SQLITE_TRANSIENT);
    sqlite3_bind_text(s, 2, model.c_str(), -1, SQLITE_TRANSIENT);
    std::string id;
    if (sqlite3_step(s) == SQLITE_ROW) id = reinterpret_cast<const char*>(sqlite3_column_text(s, 0));
    sqlite3_finalize(s);
    return id;
  };
  EXPECT_EQ(median_of("a", "unet"), a_unet_2);
  EXPECT_EQ(median_of("b", "unet"), b_unet_1);
  sqlite3_close(db);
  // Golden: the tables are the same on a second call (stable output).
  report::Report again = report::make_report(exp, grid, store, t / "ws", o);
  EXPECT_EQ(again.markdown, rep.markdown);
}

std::string read(const std::string& path) {
  std::ifstream in(path);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

// One data set (lungs only, 64 px), UNet seeds 1-3 done; seed 2's second image has an empty predicted mask.
struct SmallReport {
  TempDir t;
  Experiment exp;
  std::vector<scheduler::PlannedRun> grid;
  std::unique_ptr<Store> store;
  SmallReport() {
    nlohmann::json j = {{"name", "small"}, {"workspace", t / "ws"},
                        {"datasets", {{"b", {{"kind", "l"}, {"size", 64}, {"synthetic", {{"count", 10}}}}}}},
                        {"networks", {"unet"}}, {"seeds", {1, 2, 3}}};
    exp = parse_experiment(j, "small.json");
    grid = scheduler::expand(exp);
    store = std::make_unique<Store>(t / "ws.db");
    scheduler::record_runs(*store, grid);
    for (const auto& r : grid) {
      const bool empty = r.settings.seed == 2;
      MetricsTable(*store).replace_test_metrics(r.id, {{r.id, "img0", "lungs", 0.9, 0.8, 2.0},
                                         {r.id, "img1", "lungs", empty ? 0.0 : 0.9, empty ? 0.0 : 0.8, empty ? std::nan("") : 4.0}});
      // warm 0.5 s synchronised; launches 0.01 s, the first (cold) call 0.2 s
      MetricsTable(*store).replace_inference_times(r.id, {{"img0", 1.0, 0.2, true, "cuda:0"}, {"img1", 0.5, 0.01, false, "cuda:0"}});
      RunsTable(*store).set_run_state(r.id, "done");
    }
  }
  std::string csv(report::ReportOptions o) {
    o.out_dir = t / "out";
    o.figures = false;
    o.formats = {ReportFormat::kCsv};
    report::make_report(exp, grid, *store, t / "ws", o);
    return read(t / "out/tables.csv");
  }
};

TEST(Report, HausdorffIsInMillimetresAtThePapersScaleByDefault) {
  SmallReport r;
  report::ReportOptions o;
  o.settings.empty_mask = EmptyMask::kExclude;
  // Stored: 3.0 mm per run at 0.35 mm per 64-px pixel (seed 2: 2.0 over its one defined image). At 1024 px: x16.
  EXPECT_NE(r.csv(o).find("2,b,unet,lungs,hausdorff_mm,42.66666667,"), std::string::npos) << r.csv(o);
  o.settings.hausdorff = HausdorffScale::kWorking;
  EXPECT_NE(r.csv(o).find("2,b,unet,lungs,hausdorff_mm,2.666666667,"), std::string::npos) << r.csv(o);
}

TEST(Report, AnEmptyMaskCountsAsTheWorstCaseByDefaultAndIsNeverHidden) {
  SmallReport r;
  report::ReportOptions o;
  o.settings.hausdorff = HausdorffScale::kWorking;
  // worst: seed 2 = (2.0 + diagonal 64 * sqrt(2) * 0.35) / 2 = 16.8391919; runs 3, 16.8392, 3 -> mean 7.6130640
  EXPECT_NE(r.csv(o).find("2,b,unet,lungs,hausdorff_mm,7.61306396"), std::string::npos) << r.csv(o);
  o.out_dir = r.t / "out";
  o.figures = false;
  o.formats = {ReportFormat::kMd};
  report::Report rep = report::make_report(r.exp, r.grid, *r.store, r.t / "ws", o);
  EXPECT_NE(rep.markdown.find("1 of 2 test images (lungs) have no Hausdorff distance"), std::string::npos) << rep.markdown;
  EXPECT_NE(rep.markdown.find("1 image(s) without a Hausdorff distance"), std::string::npos) << rep.markdown;
  o.settings.empty_mask = EmptyMask::kFail;
  try {
    report::make_report(r.exp, r.grid, *r.store, r.t / "ws", o);
    ADD_FAILURE() << "empty_mask fail did not fail";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("unet.b.s2"), std::string::npos) << e.what();
  }
}

TEST(Report, InferenceAsSynchronisedOrAsTheReferenceTimedIt) {
  SmallReport r;
  report::ReportOptions o;
  EXPECT_NE(r.csv(o).find("2,b,unet,,inference_s,0.5,0,3"), std::string::npos) << r.csv(o);
  o.settings.inference = InferenceTiming::kReference;  // mean of the launch times, the first call included: (0.2 + 0.01) / 2
  EXPECT_NE(r.csv(o).find("2,b,unet,,inference_s,0.105,"), std::string::npos) << r.csv(o);
}

TEST(Report, UnknownSettingsAndMetricsAreErrors) {
  SmallReport r;
  report::ReportOptions o;
  o.settings.median_metric = Metric::kInference;
  EXPECT_THROW(r.csv(o), InputError);
  nlohmann::json j = r.exp.raw;
  j["report"] = {{"empty_mask", "hide"}};
  EXPECT_THROW(report::report_options_from(parse_experiment(j, "x.json")), InputError);
  j["report"] = {{"colour", "red"}};
  EXPECT_THROW(report::report_options_from(parse_experiment(j, "x.json")), InputError);
}

TEST(Report, HtmlPageCarriesTablesRunsAndLinksToLogs) {
  SmallReport r;
  report::ReportOptions o;
  o.out_dir = r.t / "out";
  o.figures = false;
  o.formats = {ReportFormat::kHtml};
  report::make_report(r.exp, r.grid, *r.store, r.t / "ws", o);
  const std::string h = read(r.t / "out/report.html");
  EXPECT_NE(h.find("<table class=\"results\">"), std::string::npos);
  EXPECT_NE(h.find("Table 2. b (lungs)"), std::string::npos);
  EXPECT_NE(h.find("href=\"../ws/runs/" + r.grid[0].id + "/log.txt\""), std::string::npos) << h.substr(0, 2000);
  EXPECT_EQ(h.find("<script src"), std::string::npos) << "self-contained: no external scripts";
  // The heading says this grid's seed count (it showed only the paper's "mean over 3 runs").
  const std::string seeds = std::to_string(r.exp.seeds.size()) + (r.exp.seeds.size() == 1 ? " seed " : " seeds ");
  EXPECT_NE(h.find("This grid: mean ± std over " + seeds + "per network"), std::string::npos) << h.substr(0, 1200);
}

TEST(Report, CurvesFigureIsAPngOfTheExpectedSize) {
  TempDir t;
  std::vector<report::CurveRun> runs;
  for (int m = 0; m < 5; ++m)
    for (int s = 1; s <= 2; ++s) {
      report::CurveRun r{"m" + std::to_string(m), "Model " + std::to_string(m), "id", s, {}, {}};
      for (int e = 1; e <= 10; ++e) r.epochs.push_back({"id", 1, e, 1.0 / e + s * 0.01, 0.5 / e, 1e-4, 1});
      r.plateau.measured = true;  // seed 1 marked flat from epoch 5, seed 2 labelled "improving"
      r.plateau.reached = s == 1;
      r.plateau.flat_from = 5;
      runs.push_back(r);
    }
  report::draw_curves("d", runs, t / "c.png");
  std::ifstream in(t / "c.png", std::ios::binary);
  unsigned char h[24];
  in.read(reinterpret_cast<char*>(h), 24);
  ASSERT_TRUE(in);
  EXPECT_EQ(std::string(reinterpret_cast<char*>(h + 1), 3), "PNG");
  auto be32 = [&](int o) { return (h[o] << 24) | (h[o + 1] << 16) | (h[o + 2] << 8) | h[o + 3]; };
  EXPECT_EQ(be32(16), 4 * (300 + 16) + 16) << "4 panels per row";
  EXPECT_EQ(be32(20), 2 * (200 + 16) + 16 + 40) << "5 networks: 2 rows";
}

}  // namespace
}  // namespace orch

// Names and paths a user chose become text, never markup or a script link.
TEST(Report, MarkdownEscapesNamesAndLinksAreNeverAScheme) {
  EXPECT_EQ(orch::report::md_escape("a|b <script>[x](javascript:y) `c` *d* snake_case"),
            "a\\|b \\<script\\>\\[x\\](javascript:y) \\`c\\` \\*d\\* snake_case");
  EXPECT_EQ(orch::report::path_href("javascript:alert(1)/runs/x/log.txt"), "./javascript%3Aalert%281%29/runs/x/log.txt");
  EXPECT_EQ(orch::report::path_href("../ws/runs/r.1-ab/log.txt"), "../ws/runs/r.1-ab/log.txt");
  EXPECT_EQ(orch::report::path_href("/abs/a b\"c/log.txt"), "/abs/a%20b%22c/log.txt");
}
