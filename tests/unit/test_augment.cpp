#include <gtest/gtest.h>

#include <opencv2/imgproc.hpp>

#include "core/augment.h"
#include "core/distance_map.h"
#include "core/mask.h"
#include "core/metrics.h"
#include "core/synth/shape_model.h"
#include "core/synth/xray_render.h"

using namespace orch;

namespace {
Sample make_sample(int size, uint64_t seed) {
  auto layout = OrganLayout::of(DatasetKind::kLungsHeart);
  Rng rng(seed);
  Sample s;
  s.id = "x";
  s.landmarks = ShapeModel(DatasetKind::kLungsHeart).sample(rng, size);
  s.image = render_xray(layout, s.landmarks, size, rng).image;
  s.mask = label_mask(layout, s.landmarks, size);
  s.dmaps = distance_maps(layout, s.mask);
  return s;
}
}  // namespace

TEST(Augment, DeterministicInSeedEpochAndIndex) {
  Sample s = make_sample(128, 5);
  auto a = augment(s, {}, 7, 3, 11), b = augment(s, {}, 7, 3, 11), c = augment(s, {}, 7, 4, 11);
  EXPECT_EQ(cv::norm(a.image, b.image, cv::NORM_INF), 0.0);
  EXPECT_EQ(a.landmarks, b.landmarks);
  EXPECT_GT(cv::norm(a.image, c.image, cv::NORM_INF), 0.0);
  EXPECT_NE(a.landmarks, c.landmarks);
}

TEST(Augment, KeepsSizesAndRangesAndMovesEverythingTogether) {
  auto layout = OrganLayout::of(DatasetKind::kLungsHeart);
  Sample s = make_sample(128, 9);
  for (uint64_t e = 0; e < 12; ++e) {
    auto t = augment(s, AugmentOptions().masks(MaskResampling::kNearest), 1, e, 0);
    ASSERT_EQ(t.image.rows, 128);
    ASSERT_EQ(t.mask.rows, 128);
    ASSERT_EQ(t.dmaps.size(), 2u);
    ASSERT_EQ(t.landmarks.size(), 240u);
    for (float v : t.landmarks) ASSERT_TRUE(v >= 0 && v <= 1);
    // The augmented landmarks, filled again, agree with the augmented mask.
    std::vector<Point2> px;
    for (size_t i = 0; i < t.landmarks.size(); i += 2) px.push_back({t.landmarks[i] * 128.0, t.landmarks[i + 1] * 128.0});
    auto from_points = organ_masks_from_points(layout, px, 128);
    auto from_mask = organ_masks_from_labels(layout, t.mask);
    EXPECT_GT(compare_masks(from_points[0], from_mask[0]).dice, 0.93) << "epoch " << e;
    // The distance map is small on the (moved) lung border.
    cv::Mat border = inner_boundary(from_mask[0]);
    cv::Scalar on_border = cv::mean(t.dmaps[0], border);
    EXPECT_LT(on_border[0], 0.03) << "epoch " << e;
    double mn, mx;
    cv::minMaxLoc(t.mask, &mn, &mx);
    EXPECT_LE(mx, 2.0);
  }
}

TEST(Augment, ReferenceMaskResamplingErodesLabelsNearestDoesNot) {
  Sample s = make_sample(128, 3);
  AugmentOptions ref, near = AugmentOptions().masks(MaskResampling::kNearest);
  double lungs_ref = 0, lungs_near = 0;
  for (uint64_t e = 0; e < 6; ++e) {
    lungs_ref += cv::countNonZero(augment(s, ref, 2, e, 0).mask == 1);
    lungs_near += cv::countNonZero(augment(s, near, 2, e, 0).mask == 1);
  }
  // Truncating bilinear labels shrinks the lungs (label 1 -> 0 at the edges) overall.
  EXPECT_LT(lungs_ref, lungs_near);
}

TEST(Augment, NoAugmentationNormalisesOnly) {
  Sample s = make_sample(64, 2);
  auto t = to_training_sample(s);
  EXPECT_FLOAT_EQ(t.image.at<float>(10, 10), s.image.at<uchar>(10, 10) / 255.f);
  EXPECT_FLOAT_EQ(t.landmarks[0], static_cast<float>(s.landmarks[0].x / 64));
}
