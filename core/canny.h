// Canny edges of a binary class mask, ported from scikit-image's feature.canny (0.19; the reference pinned
// 0.18.3, whose algorithm is the same) for the reference's call canny(mask, sigma=2, low=0.5, high=1.5):
// Gaussian smoothing (mode constant, renormalised by the smoothed all-ones image), scipy's Sobel (mode
// reflect), non-maximum suppression with interpolated neighbours, hysteresis with 8-connectivity. Arithmetic
// is double precision in scipy's operation order, so edges match scikit-image's pixel for pixel except where
// two magnitudes tie to the last bit. Work is confined to the mask's bounding box plus the kernel reach
// (everything else is exactly zero). Stateless; thread-safe.
#pragma once

#include <opencv2/core.hpp>

namespace orch {

struct CannyOptions {
  double sigma = 2.0;
  double low_threshold = 0.5;
  double high_threshold = 1.5;
};

// `binary`: CV_8UC1, non-zero = inside. Returns a 0/1 CV_8UC1 edge map.
cv::Mat canny_edges(const cv::Mat& binary, const CannyOptions& options = {});

}  // namespace orch
