// Polygons to label masks (spec §1.4): the reference's cv2.drawContours(filled) with vertices truncated to int.
//
// Landmarks are (x, y) in pixels of a size x size canvas. LH labels: 0 background, 1 lungs, 2 heart, the lungs
// painted after the heart so they win where they overlap. L labels: 0/1. Stateless; thread-safe.
#pragma once

#include <opencv2/core.hpp>
#include <vector>

#include "core/npy.h"
#include "core/organs.h"

namespace orch {

// Fills one closed polygon into `canvas` (CV_8UC1) with `value`, vertices truncated toward zero (astype(int)).
void fill_polygon(cv::Mat& canvas, const std::vector<Point2>& polygon, int value);

// Label mask of one sample from its concatenated landmarks (layout order, pixels).
cv::Mat label_mask(const OrganLayout& layout, const std::vector<Point2>& landmarks, int size);

// Binary (0/1) masks per dense class for metrics on point predictions (spec §6): index 0 lungs (RL ∪ LL),
// index 1 heart (the H polygon alone, including any overlap with the lungs).
std::vector<cv::Mat> organ_masks_from_points(const OrganLayout& layout, const std::vector<Point2>& landmarks, int size);

// Binary (0/1) masks per class from a label mask: index 0 is label 1 (lungs), index 1 label 2 (heart).
std::vector<cv::Mat> organ_masks_from_labels(const OrganLayout& layout, const cv::Mat& labels);

// Normalised (x, y) pairs (a network's output, /points of predictions.h5) to pixels of a size x size canvas:
// double(v) * size, the one conversion evaluation and every re-computation use.
std::vector<Point2> denormalise_points(const std::vector<float>& xy, int size);

// The points of organ `organ_index` out of the concatenated landmarks.
std::vector<Point2> organ_points(const OrganLayout& layout, const std::vector<Point2>& landmarks, int organ_index);

}  // namespace orch
