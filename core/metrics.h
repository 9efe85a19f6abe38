// Segmentation metrics per image and organ (spec §6, medpy 0.4.0 semantics): Dice, Jaccard, Hausdorff.
//
// Hausdorff: symmetric, between the border pixel sets (border = X xor erosion of X by the 4-connected cross,
// outside counted as background), Euclidean, times the pixel spacing (0.35 mm by default, as the reference
// assumes for every data set). Empty masks, where medpy raises, have defined results here:
//   both empty: Dice 1, Jaccard 1, Hausdorff 0 (perfect agreement that the organ is absent);
//   one empty:  Dice 0, Jaccard 0, Hausdorff per EmptyHausdorff: NaN (default; the report counts and flags
//               these, it never averages them silently) or the image diagonal in mm (a finite worst case).
// Stateless; thread-safe.
#pragma once

#include <opencv2/core.hpp>

namespace orch {

enum class EmptyHausdorff { kNaN, kDiagonal };

struct MetricOptions {
  double spacing_mm = 0.35;
  EmptyHausdorff empty_hausdorff = EmptyHausdorff::kNaN;

  MetricOptions& spacing(double v) { spacing_mm = v; return *this; }
  MetricOptions& empty(EmptyHausdorff v) { empty_hausdorff = v; return *this; }
};

struct OverlapMetrics {
  double dice = 0, jaccard = 0, hausdorff_mm = 0;
};

// `prediction` and `truth`: CV_8UC1, non-zero = inside, same size.
OverlapMetrics compare_masks(const cv::Mat& prediction, const cv::Mat& truth, const MetricOptions& options = {});

// The directed and symmetric Hausdorff distance in pixels between two border sets (0/1 CV_8UC1).
// Requires both sets non-empty.
double hausdorff_pixels(const cv::Mat& border_a, const cv::Mat& border_b);

}  // namespace orch
