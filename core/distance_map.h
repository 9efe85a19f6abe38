// Per-class distance maps S (spec §1.4): distance of every pixel to the class contour, divided by the image max.
//
// Edge set (EdgeSet): by default the reference's, scikit-image's Canny (sigma 2, thresholds 0.5/1.5) on the
// class's binary map, ported in core/canny.h; it lies half on the inner and half on the outer side of the
// contour, following the gradient direction. EdgeSet::kBoundary uses the mask's 1-pixel inner boundary
// instead (X xor erosion by the 4-connected cross): no smoothing pass, but up to 2 px from the reference's
// distances on real contours (tests/python/test_real_data.py measures both).
// Distance: exact Euclidean (OpenCV's Felzenszwalb-Huttenlocher transform, DIST_MASK_PRECISE), where the
// reference uses a fast-marching approximation that overestimates diagonals by a few percent.
// Result: S = d / max(d), 0 on the contour and 1 at the farthest pixel. A class with no pixels has no contour:
// its map is 1 everywhere (as far from the contour as possible). Stateless; thread-safe.
#pragma once

#include <opencv2/core.hpp>
#include <vector>

#include "core/organs.h"

#include <string>

namespace orch {

enum class EdgeSet { kCanny, kBoundary };  // spelled "canny" and "boundary" (core/choices.h)

// 0/1 CV_8UC1 mask of pixels on the inner boundary: X xor erode(X, cross), border value 0.
cv::Mat inner_boundary(const cv::Mat& binary);

// Unnormalised Euclidean distance (CV_32F, pixels) of each pixel to the nearest non-zero pixel of `edges`.
// If `edges` is empty, every value is +inf.
cv::Mat distance_to_edges(const cv::Mat& edges);

// Normalised map S of one binary (0/1) class mask.
cv::Mat class_distance_map(const cv::Mat& binary, EdgeSet edges = EdgeSet::kCanny);

// One map per foreground class of a label mask (lungs, then heart for LH): CV_32F each.
std::vector<cv::Mat> distance_maps(const OrganLayout& layout, const cv::Mat& labels, EdgeSet edges = EdgeSet::kCanny);

}  // namespace orch
