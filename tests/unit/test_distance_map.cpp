#include <gtest/gtest.h>

#include <cmath>
#include <opencv2/imgproc.hpp>

#include "core/canny.h"
#include "core/distance_map.h"
#include "core/mask.h"
#include "test_util.h"

using namespace orch;

TEST(DistanceMap, InnerBoundaryOfASquare) {
  cv::Mat m = cv::Mat::zeros(10, 10, CV_8U);
  m(cv::Rect(2, 2, 5, 5)) = 1;
  cv::Mat b = inner_boundary(m);
  EXPECT_EQ(cv::countNonZero(b), 16);
  EXPECT_EQ(b.at<uchar>(2, 2), 1);
  EXPECT_EQ(b.at<uchar>(4, 4), 0);
  // At the image edge, outside counts as background.
  cv::Mat full = cv::Mat::ones(5, 5, CV_8U);
  EXPECT_EQ(cv::countNonZero(inner_boundary(full)), 16);
}

TEST(DistanceMap, MatchesScipyExactEdtOfTheBoundary) {
  auto fx = test::load_fixture("metrics.json");
  for (const auto& c : fx["distance_maps"]) {
    cv::Mat m = test::decode_mask(c["mask"]);
    cv::Mat d = distance_to_edges(inner_boundary(m));
    for (int y = 0; y < m.rows; ++y)
      for (int x = 0; x < m.cols; ++x)
        ASSERT_NEAR(d.at<float>(y, x), c["distance"][y][x].get<double>(), 1e-3) << c["name"] << " at " << x << "," << y;
  }
}

TEST(DistanceMap, NormalisedZeroOnContourOneAtFarthest) {
  cv::Mat m = cv::Mat::zeros(64, 64, CV_8U);
  cv::circle(m, {20, 30}, 10, cv::Scalar(1), cv::FILLED);
  cv::Mat s = class_distance_map(m, EdgeSet::kBoundary);
  double mn, mx;
  cv::Point at_max;
  cv::minMaxLoc(s, &mn, &mx, nullptr, &at_max);
  EXPECT_EQ(mn, 0.0);
  EXPECT_FLOAT_EQ(static_cast<float>(mx), 1.f);
  EXPECT_EQ(at_max, cv::Point(63, 63));  // the farthest corner from the circle
  cv::Mat b = inner_boundary(m);
  for (int y = 0; y < 64; ++y)
    for (int x = 0; x < 64; ++x)
      if (b.at<uchar>(y, x)) {
        EXPECT_EQ(s.at<float>(y, x), 0.f);
      }
}

TEST(DistanceMap, EmptyClassIsFarEverywhere) {
  cv::Mat s = class_distance_map(cv::Mat::zeros(16, 16, CV_8U));
  double mn, mx;
  cv::minMaxLoc(s, &mn, &mx);
  EXPECT_EQ(mn, 1.0);
  EXPECT_EQ(mx, 1.0);
}

TEST(DistanceMap, OneMapPerForegroundClass) {
  cv::Mat labels = cv::Mat::zeros(32, 32, CV_8U);
  labels(cv::Rect(2, 2, 10, 10)) = 1;
  labels(cv::Rect(15, 15, 10, 10)) = 2;
  EXPECT_EQ(distance_maps(OrganLayout::of(DatasetKind::kLungsHeart), labels).size(), 2u);
  EXPECT_EQ(distance_maps(OrganLayout::of(DatasetKind::kLungs), labels).size(), 1u);
  auto maps = distance_maps(OrganLayout::of(DatasetKind::kLungsHeart), labels, EdgeSet::kBoundary);
  EXPECT_EQ(maps[1].at<float>(15, 15), 0.f);  // heart contour
  EXPECT_GT(maps[0].at<float>(15, 15), 0.f);
}

TEST(Canny, MatchesScikitImagePixelForPixel) {
  auto fx = test::load_fixture("metrics.json");
  ASSERT_GE(fx["canny"].size(), 6u);
  for (const auto& c : fx["canny"]) {
    cv::Mat m = test::decode_mask(c["mask"]), want = test::decode_mask(c["edges"]);
    cv::Mat got = canny_edges(m);
    cv::Mat diff = got != want;
    EXPECT_EQ(cv::countNonZero(diff), 0) << c["name"] << ": " << cv::countNonZero(want) << " reference edge pixels";
  }
}

TEST(DistanceMap, CannyMapIsZeroOnCannyEdges) {
  cv::Mat m = cv::Mat::zeros(64, 64, CV_8U);
  cv::circle(m, {30, 30}, 15, cv::Scalar(1), cv::FILLED);
  cv::Mat e = canny_edges(m), s = class_distance_map(m);
  EXPECT_GT(cv::countNonZero(e), 60);
  for (int y = 0; y < 64; ++y)
    for (int x = 0; x < 64; ++x)
      if (e.at<uchar>(y, x)) {
        EXPECT_EQ(s.at<float>(y, x), 0.f);
      }
}
