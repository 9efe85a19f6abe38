#include <gtest/gtest.h>

#include <cmath>

#include "core/metrics.h"
#include "test_util.h"

using namespace orch;

TEST(Metrics, MatchScipyMedpyFixtures) {
  auto fx = test::load_fixture("metrics.json");
  ASSERT_GE(fx["pairs"].size(), 10u);
  for (const auto& c : fx["pairs"]) {
    cv::Mat p = test::decode_mask(c["prediction"]), t = test::decode_mask(c["truth"]);
    auto m = compare_masks(p, t, MetricOptions().spacing(c["spacing"].get<double>()));
    EXPECT_NEAR(m.dice, c["dice"].get<double>(), 1e-12) << c["name"];
    EXPECT_NEAR(m.jaccard, c["jaccard"].get<double>(), 1e-12) << c["name"];
    EXPECT_NEAR(m.hausdorff_mm, c["hausdorff"].get<double>(), 1e-4) << c["name"];
  }
}

TEST(Metrics, IdenticalMasksArePerfect) {
  cv::Mat a = cv::Mat::zeros(20, 20, CV_8U);
  a(cv::Rect(3, 4, 9, 7)) = 1;
  auto m = compare_masks(a, a);
  EXPECT_EQ(m.dice, 1.0);
  EXPECT_EQ(m.jaccard, 1.0);
  EXPECT_EQ(m.hausdorff_mm, 0.0);
}

TEST(Metrics, ShiftedSquareHausdorffInMillimetres) {
  cv::Mat a = cv::Mat::zeros(40, 40, CV_8U), b = a.clone();
  a(cv::Rect(5, 5, 10, 10)) = 1;
  b(cv::Rect(8, 5, 10, 10)) = 1;  // shifted 3 px right
  auto m = compare_masks(a, b);
  EXPECT_NEAR(m.hausdorff_mm, 3 * 0.35, 1e-9);
  EXPECT_NEAR(m.dice, 2.0 * 70 / 200, 1e-12);
  EXPECT_NEAR(m.jaccard, 70.0 / 130, 1e-12);
}

TEST(Metrics, EmptyMasksHaveDefinedResults) {
  cv::Mat empty = cv::Mat::zeros(30, 40, CV_8U), a = empty.clone();
  a(cv::Rect(3, 3, 5, 5)) = 1;
  auto both = compare_masks(empty, empty);
  EXPECT_EQ(both.dice, 1.0);
  EXPECT_EQ(both.jaccard, 1.0);
  EXPECT_EQ(both.hausdorff_mm, 0.0);
  auto one = compare_masks(empty, a);
  EXPECT_EQ(one.dice, 0.0);
  EXPECT_EQ(one.jaccard, 0.0);
  EXPECT_TRUE(std::isnan(one.hausdorff_mm));
  auto diag = compare_masks(a, empty, MetricOptions().empty(EmptyHausdorff::kDiagonal));
  EXPECT_NEAR(diag.hausdorff_mm, 50 * 0.35, 1e-9);
}

TEST(Metrics, RejectsMismatchedSizes) {
  EXPECT_THROW(compare_masks(cv::Mat::zeros(3, 3, CV_8U), cv::Mat::zeros(4, 3, CV_8U)), std::exception);
}
