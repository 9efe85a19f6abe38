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
  for (uint64_t e = 0; e < 24; ++e) {
    const auto warps = e % 2 ? AugmentWarps::kFused : AugmentWarps::kStepwise;
    auto t = augment(s, AugmentOptions().masks(MaskResampling::kNearest).with_warps(warps), 1, e, 0);
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

namespace {
// How far the fused warps are from the stepwise ones on the same draws: mean |difference| of the image and the
// maps, the fraction of mask pixels with another label, over several epochs.
struct WarpGap {
  double image = 0, maps = 0, labels = 0, image_max = 0;
};
WarpGap gap(const Sample& s, AugmentOptions opt, int epochs) {
  WarpGap g;
  for (int e = 0; e < epochs; ++e) {
    auto a = augment(s, AugmentOptions(opt).with_warps(AugmentWarps::kStepwise), 4, e, 1);
    auto b = augment(s, AugmentOptions(opt).with_warps(AugmentWarps::kFused), 4, e, 1);
    EXPECT_EQ(a.landmarks, b.landmarks) << "the same draws move the landmarks the same way";
    g.image += cv::norm(a.image, b.image, cv::NORM_L1) / a.image.total() / epochs;
    g.image_max = std::max(g.image_max, cv::norm(a.image, b.image, cv::NORM_INF));
    for (size_t d = 0; d < a.dmaps.size(); ++d)
      g.maps += cv::norm(a.dmaps[d], b.dmaps[d], cv::NORM_L1) / a.dmaps[d].total() / epochs / a.dmaps.size();
    g.labels += static_cast<double>(cv::countNonZero(a.mask != b.mask)) / a.mask.total() / epochs;
  }
  return g;
}
}  // namespace

TEST(Augment, FusedWarpsMatchStepwiseWithinInterpolationError) {
  for (int size : {128, 1024}) {
    Sample s = make_sample(size, 21);
    const WarpGap g = gap(s, AugmentOptions().noise(0), size == 1024 ? 3 : 10);
    // Without rotation the two are identical (one interpolation each); with it, the stepwise path interpolates twice
    // (and rotates through OpenCV's 1/32-pixel table), which blurs edges: truncated labels differ in a band of about
    // a pixel along each edge, a larger share of a small image. Measured: 128 px 0.008 / 0.0038 / 2.1 %, 1024 px
    // 0.0038 / 0.0017 / 0.29 %; another epoch's draws differ by 0.11 in the image.
    const bool big = size == 1024;
    EXPECT_LT(g.image, big ? 0.006 : 0.012) << size;
    EXPECT_LT(g.maps, big ? 0.0025 : 0.005) << size;
    EXPECT_LT(g.labels, big ? 0.005 : 0.03) << size;
    const WarpGap other_epoch = [&] {
      WarpGap w;
      auto a = augment(s, AugmentOptions().noise(0), 4, 0, 1), b = augment(s, AugmentOptions().noise(0), 4, 1, 1);
      w.image = cv::norm(a.image, b.image, cv::NORM_L1) / a.image.total();
      return w;
    }();
    EXPECT_GT(other_epoch.image, 10 * g.image) << size;
    std::printf("size %d: image %.5f (max %.3f), maps %.5f, labels %.5f; another epoch's image %.5f\n", size, g.image,
                g.image_max, g.maps, g.labels, other_epoch.image);
  }
  // Nearest-neighbour labels, and scales that shrink far enough for the anti-aliasing blur to count.
  Sample s = make_sample(128, 22);
  const WarpGap unrotated = gap(s, AugmentOptions().noise(0).rotation(0), 6);  // the composed map, checked exactly
  EXPECT_LT(unrotated.image, 1e-6);
  EXPECT_LT(unrotated.maps, 1e-6);
  EXPECT_EQ(unrotated.labels, 0.0);
  const WarpGap near = gap(s, AugmentOptions().noise(0).masks(MaskResampling::kNearest), 10);
  EXPECT_LT(near.labels, 0.03);
  AugmentOptions shrink = AugmentOptions().noise(0);
  shrink.min_scale = 0.4;
  const WarpGap blurred = gap(s, shrink, 10);
  EXPECT_LT(blurred.image, 0.012);
  EXPECT_LT(blurred.maps, 0.005);
  std::printf("nearest labels %.5f; shrinking to 0.4: image %.5f, maps %.5f\n", near.labels, blurred.image, blurred.maps);
}

TEST(Augment, FusedWarpsAreDeterministicAndTheirNoiseGaussian) {
  Sample s = make_sample(256, 23);
  const auto fused = AugmentOptions().with_warps(AugmentWarps::kFused);
  auto a = augment(s, fused, 7, 3, 11), b = augment(s, fused, 7, 3, 11), c = augment(s, fused, 7, 4, 11);
  EXPECT_EQ(cv::norm(a.image, b.image, cv::NORM_INF), 0.0);
  EXPECT_EQ(cv::norm(a.dmaps[1], b.dmaps[1], cv::NORM_INF), 0.0);
  EXPECT_EQ(cv::countNonZero(a.mask != b.mask), 0);
  EXPECT_GT(cv::norm(a.image, c.image, cv::NORM_INF), 0.0);
  // The noise alone: the same draws with and without it.
  cv::Mat noise = a.image - augment(s, AugmentOptions(fused).noise(0), 7, 3, 11).image;
  cv::Scalar mean, sd;
  cv::meanStdDev(noise, mean, sd);
  const double n = static_cast<double>(noise.total()), want = AugmentOptions().noise_sd;
  EXPECT_LT(std::abs(mean[0]), 4 * want / std::sqrt(n));
  EXPECT_NEAR(sd[0], want, 0.02 * want);
  const double beyond_2sd = cv::countNonZero(cv::abs(noise) > 2 * want) / n;
  EXPECT_NEAR(beyond_2sd, 0.0455, 0.004);  // a normal's two tails
}

TEST(Augment, FusedWarpsFallBackToStepwiseBeyondFourChannels) {
  Sample s = make_sample(128, 24);
  s.dmaps.push_back(s.dmaps[0].clone());  // image, mask and three maps: five channels
  auto a = augment(s, AugmentOptions(), 3, 2, 1);
  auto b = augment(s, AugmentOptions().with_warps(AugmentWarps::kFused), 3, 2, 1);
  EXPECT_EQ(cv::norm(a.image, b.image, cv::NORM_INF), 0.0);
  for (size_t d = 0; d < 3; ++d) EXPECT_EQ(cv::norm(a.dmaps[d], b.dmaps[d], cv::NORM_INF), 0.0);
}
