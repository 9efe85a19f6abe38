#include <gtest/gtest.h>

#include <opencv2/imgproc.hpp>

#include "core/mask.h"

using namespace orch;

TEST(Mask, VerticesAreTruncatedNotRounded) {
  cv::Mat m = cv::Mat::zeros(10, 10, CV_8U);
  fill_polygon(m, {{1.9, 1.9}, {5.9, 1.9}, {5.9, 5.9}, {1.9, 5.9}}, 7);
  // Truncation gives the square 1..5 (rounding would give 2..6).
  EXPECT_EQ(cv::countNonZero(m), 25);
  EXPECT_EQ(m.at<uchar>(1, 1), 7);
  EXPECT_EQ(m.at<uchar>(5, 5), 7);
  EXPECT_EQ(m.at<uchar>(6, 6), 0);
}

TEST(Mask, FilledPolygonIncludesItsBoundaryLikeDrawContours) {
  cv::Mat m = cv::Mat::zeros(20, 20, CV_8U);
  fill_polygon(m, {{2, 2}, {12, 2}, {2, 12}}, 1);  // right triangle, legs of 11 pixels
  EXPECT_EQ(m.at<uchar>(2, 12), 1);
  EXPECT_EQ(m.at<uchar>(12, 2), 1);
  EXPECT_EQ(m.at<uchar>(7, 7), 1);  // on the hypotenuse
  EXPECT_EQ(m.at<uchar>(8, 8), 0);
  EXPECT_EQ(cv::countNonZero(m), 66);  // 11 + 10 + ... + 1
}

namespace {
std::vector<Point2> square(double x0, double y0, double s, int n) {
  // n points around a square (n divisible by 4), point 0 at the top-left corner.
  std::vector<Point2> p;
  int q = n / 4;
  for (int i = 0; i < q; ++i) p.push_back({x0 + s * i / q, y0});
  for (int i = 0; i < q; ++i) p.push_back({x0 + s, y0 + s * i / q});
  for (int i = 0; i < q; ++i) p.push_back({x0 + s - s * i / q, y0 + s});
  for (int i = 0; i < n - 3 * q; ++i) p.push_back({x0, y0 + s - s * i / (n - 3 * q)});
  return p;
}
}  // namespace

TEST(Mask, LungsArePaintedOverTheHeart) {
  auto layout = OrganLayout::of(DatasetKind::kLungsHeart);
  std::vector<Point2> lm;
  for (auto& p : square(5, 5, 20, 44)) lm.push_back(p);     // RL
  for (auto& p : square(40, 5, 20, 50)) lm.push_back(p);    // LL
  for (auto& p : square(20, 20, 30, 26)) lm.push_back(p);   // H overlaps both lungs
  cv::Mat m = label_mask(layout, lm, 64);
  EXPECT_EQ(m.at<uchar>(22, 22), 1);  // overlap of RL and H: lungs win
  EXPECT_EQ(m.at<uchar>(45, 30), 2);  // heart only
  EXPECT_EQ(m.at<uchar>(10, 10), 1);
  EXPECT_EQ(m.at<uchar>(60, 60), 0);
  auto from_points = organ_masks_from_points(layout, lm, 64);
  ASSERT_EQ(from_points.size(), 2u);
  EXPECT_EQ(from_points[1].at<uchar>(22, 22), 1);  // predicted hearts include the overlap (spec §6)
  auto from_labels = organ_masks_from_labels(layout, m);
  EXPECT_EQ(from_labels[1].at<uchar>(22, 22), 0);  // the ground-truth heart excludes it
  EXPECT_EQ(cv::countNonZero(from_labels[0]), cv::countNonZero(from_points[0]));
}

TEST(Mask, LungsOnlyLabelsAreZeroOne) {
  auto layout = OrganLayout::of(DatasetKind::kLungs);
  std::vector<Point2> lm;
  for (auto& p : square(5, 5, 20, 44)) lm.push_back(p);
  for (auto& p : square(40, 5, 20, 50)) lm.push_back(p);
  cv::Mat m = label_mask(layout, lm, 64);
  double mx;
  cv::minMaxLoc(m, nullptr, &mx);
  EXPECT_EQ(mx, 1.0);
  EXPECT_EQ(cv::countNonZero(m), 2 * 21 * 21);
}
