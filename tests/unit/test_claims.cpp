// The paper's claims checked on a grid (report/claims.h): stores filled with known per-image values, where each
// verdict is known, and the parsing of claims (core/claims.h).
#include <gtest/gtest.h>

#include <cmath>

#include "core/errors.h"
#include "core/experiment.h"
#include "report/claims.h"
#include "report/report_model.h"
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

nlohmann::json claim(const std::string& id, std::vector<std::string> better, std::vector<std::string> than,
                     std::vector<std::string> metrics) {
  return {{"id", id}, {"text", id}, {"better", better}, {"than", than}, {"metrics", metrics}};
}

Experiment claims_experiment(const std::string& ws, const nlohmann::json& claims) {
  nlohmann::json j = {{"name", "claims"},
                      {"workspace", ws},
                      {"datasets", {{"a", {{"kind", "l"}, {"size", 64}, {"synthetic", {{"count", 10}}}}}}},
                      {"networks", {"unet", "ours", "hybridgnet", "no_joint"}},
                      {"seeds", {1, 2, 3}},
                      {"report", {{"claims", claims}}}};
  return parse_experiment(j, "claims.json");
}

// Per network, seed and test image (12 images): Dice and Hausdorff with known means.
//   ours 0.90 (HD 10), unet 0.80 (HD 20), hybridgnet 0.95 (HD 8); no_joint alternates around unet's 0.80 so that
//   its mean difference from unet is 0 with a spread that includes zero.
void fill(Store& store, const scheduler::PlannedRun& r) {
  std::vector<TestMetric> rows;
  const int s = static_cast<int>(r.settings.seed);
  for (int i = 0; i < 12; ++i) {
    const double wiggle = 0.002 * ((i + s) % 3);
    double dice = 0, hd = 0;
    if (r.settings.model == "ours") dice = 0.90 + wiggle, hd = 10 + i % 2;
    if (r.settings.model == "unet") dice = 0.80 + 0.02 * (((i + s) % 2) ? 1 : -1), hd = 20 + i % 2;
    if (r.settings.model == "hybridgnet") dice = 0.95 - wiggle, hd = 8;
    if (r.settings.model == "no_joint") dice = 0.80 + 0.02 * (((i + s + 1) % 2) ? 1 : -1) + 0.001 * (i % 4), hd = 20;
    rows.push_back({r.id, "img" + std::to_string(i), "lungs", dice, dice / 2, hd});
  }
  MetricsTable(store).replace_test_metrics(r.id, rows);
  MetricsTable(store).replace_inference_times(r.id, {{"img0", 0.05, 0.05, true, "cpu"}, {"img1", 0.01, 0.01, false, "cpu"}});
  RunsTable(store).set_run_state(r.id, "done");
}

struct Grid {
  TempDir t;
  Experiment exp;
  std::vector<scheduler::PlannedRun> grid;
  std::unique_ptr<Store> store;
  explicit Grid(const nlohmann::json& claims) : exp(claims_experiment(t / "ws", claims)), grid(scheduler::expand(exp)) {
    store = std::make_unique<Store>(t / "ws.db");
    scheduler::record_runs(*store, grid);
    for (const auto& r : grid) fill(*store, r);
  }
  report::ReportModel model() { return report::build_report_model(exp, grid, *store, t / "ws", t / "out", {}); }
};

const report::CheckedClaim& find(const report::ReportModel& m, const std::string& id) {
  for (const auto& c : m.claims)
    if (c.spec.id == id) return c;
  throw std::runtime_error("no claim " + id);
}

TEST(Claims, EachVerdictWhereItIsKnown) {
  nlohmann::json own = nlohmann::json::array();
  own.push_back(claim("ours_beats_unet", {"ours"}, {"unet"}, {"dice", "jaccard", "hausdorff_mm"}));
  own.push_back(claim("ours_beats_hybridgnet", {"ours"}, {"hybridgnet"}, {"dice"}));
  own.push_back(claim("no_joint_beats_unet", {"no_joint"}, {"unet"}, {"dice"}));
  auto similar = claim("no_joint_like_unet", {"no_joint"}, {"unet"}, {"dice"});
  similar["kind"] = "similar";
  similar["margin"] = {{"dice", 0.05}};
  own.push_back(similar);
  similar["id"] = "no_joint_identical_to_unet";
  similar["margin"] = {{"dice", 0.0001}};
  own.push_back(similar);
  own.push_back(claim("rasterize_beats_unet", {"rasterize"}, {"unet"}, {"dice"}));  // not in this grid
  Grid g(own);
  const auto m = g.model();
  const auto& sup = find(m, "ours_beats_unet");
  EXPECT_FALSE(sup.from_paper);
  EXPECT_EQ(sup.verdict, Verdict::kSupported);
  ASSERT_EQ(sup.comparisons.size(), 3u);
  for (const auto& c : sup.comparisons) {
    EXPECT_EQ(c.verdict, Verdict::kSupported) << choice_name(c.metric);
    EXPECT_EQ(c.seeds_better, 3);
    EXPECT_EQ(c.images, 12);
    EXPECT_LE(c.lo, c.effect);
    EXPECT_GE(c.hi, c.effect);
  }
  EXPECT_NEAR(sup.comparisons[0].effect, 0.10, 0.005) << "Dice: 0.90 against 0.80";
  EXPECT_LT(sup.comparisons[0].lo, sup.comparisons[0].hi) << "seeds and images vary: the interval has a width";
  EXPECT_NEAR(sup.comparisons[2].effect, 10.0 * 1024 / 64, 1e-6) << "Hausdorff lower is better, at the paper's scale";
  EXPECT_LT(sup.comparisons[0].p_value, 0.01);
  EXPECT_EQ(find(m, "ours_beats_hybridgnet").verdict, Verdict::kContradicted);
  EXPECT_LT(find(m, "ours_beats_hybridgnet").comparisons[0].hi, 0);
  const auto& inc = find(m, "no_joint_beats_unet");
  EXPECT_EQ(inc.verdict, Verdict::kInconclusive) << inc.comparisons[0].lo << " " << inc.comparisons[0].hi;
  EXPECT_LT(inc.comparisons[0].lo, 0);
  EXPECT_GT(inc.comparisons[0].hi, 0);
  EXPECT_EQ(find(m, "no_joint_like_unet").verdict, Verdict::kSupported);
  EXPECT_EQ(find(m, "no_joint_identical_to_unet").verdict, Verdict::kInconclusive);
  EXPECT_EQ(find(m, "rasterize_beats_unet").verdict, Verdict::kNotEvaluated);
  // The paper's claims come first and are evaluated on what the grid has.
  ASSERT_GE(m.claims.size(), 6u + report::paper_claims().size());
  EXPECT_TRUE(m.claims.front().from_paper);
  EXPECT_EQ(find(m, "ours_beats_the_baselines").verdict, Verdict::kContradicted) << "HybridGNet beats Ours here";
  // Seeded: the same store gives the same intervals.
  const auto again = g.model();
  EXPECT_EQ(find(again, "no_joint_beats_unet").comparisons[0].lo, inc.comparisons[0].lo);
  // Every format carries them.
  const std::string csv = report::to_claims_csv(m);
  EXPECT_NE(csv.find("ours_beats_hybridgnet,experiment,better,contradicted,a,dice,ours,hybridgnet,"), std::string::npos) << csv;
  EXPECT_NE(report::to_markdown(m, {}).find("The paper's claims on this grid"), std::string::npos);
  EXPECT_NE(report::to_html(m, {}, {}).find("class=\"claims\""), std::string::npos);
  EXPECT_NE(report::claims_summary(m).find("supported     ours_beats_unet (yours)"), std::string::npos) << report::claims_summary(m);
}

TEST(Claims, EqualValuesAreInconclusive) {
  Grid g(nlohmann::json::array({claim("ours_faster", {"ours"}, {"unet"}, {"inference_s"})}));
  const auto m = g.model();
  const auto& c = find(m, "ours_faster");
  EXPECT_EQ(c.comparisons.at(0).images, 0) << "inference time is per run";
  EXPECT_EQ(c.verdict, Verdict::kInconclusive) << "equal times: the interval is [0, 0]";
}

TEST(Claims, VerdictFromTheInterval) {
  EXPECT_EQ(report::comparison_verdict(ClaimKind::kBetter, 0.01, 0.2, 0), Verdict::kSupported);
  EXPECT_EQ(report::comparison_verdict(ClaimKind::kBetter, -0.2, -0.01, 0), Verdict::kContradicted);
  EXPECT_EQ(report::comparison_verdict(ClaimKind::kBetter, -0.01, 0.2, 0), Verdict::kInconclusive);
  EXPECT_EQ(report::comparison_verdict(ClaimKind::kSimilar, -0.01, 0.02, 0.03), Verdict::kSupported);
  EXPECT_EQ(report::comparison_verdict(ClaimKind::kSimilar, 0.04, 0.09, 0.03), Verdict::kContradicted);
  EXPECT_EQ(report::comparison_verdict(ClaimKind::kSimilar, 0.01, 0.09, 0.03), Verdict::kInconclusive);
  EXPECT_EQ(report::comparison_verdict(ClaimKind::kBetter, std::nan(""), 1, 0), Verdict::kNotEvaluated);
}

TEST(Claims, BadClaimsAreRefusedNamingTheField) {
  auto refused = [](nlohmann::json c, const std::string& field) {
    try {
      claims_experiment("ws", nlohmann::json::array({c}));
      ADD_FAILURE() << "accepted " << c.dump();
    } catch (const InputError& e) {
      EXPECT_NE(std::string(e.what()).find(field), std::string::npos) << e.what();
    }
  };
  refused(claim("x", {"ours"}, {"unet"}, {"speed"}), "report.claims[0].metrics");
  refused(claim("x", {}, {"unet"}, {"dice"}), "report.claims[0].better");
  auto s = claim("x", {"ours"}, {"unet"}, {"dice"});
  s["kind"] = "similar";
  refused(s, "report.claims[0].margin");
  s["kind"] = "worse";
  refused(s, "report.claims[0].kind");
  s = claim("x", {"ours"}, {"unet"}, {"dice"});
  s["colour"] = 1;
  refused(s, "report.claims[0].colour");
  // An unknown network is the report's to refuse (the catalogue is not core's).
  Grid g(nlohmann::json::array({claim("x", {"ours"}, {"resnet"}, {"dice"})}));
  EXPECT_THROW(g.model(), InputError);
}

}  // namespace
}  // namespace orch
