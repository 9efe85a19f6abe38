#include "core/mask.h"

#include <opencv2/imgproc.hpp>

#include <algorithm>
#include <cmath>

namespace orch {

namespace {

// Truncation to int as cv2.drawContours does, defined for every input: a non-finite coordinate becomes 0 and
// a huge one is held within a few canvas sizes (filling is the same: the canvas clips it anyway).
int vertex(double v, int size) {
  if (!std::isfinite(v)) return 0;
  const double bound = 8.0 * std::max(size, 1) + 8;
  return static_cast<int>(std::clamp(v, -bound, bound));
}

}  // namespace

void fill_polygon(cv::Mat& canvas, const std::vector<Point2>& polygon, int value) {
  std::vector<cv::Point> pts;
  pts.reserve(polygon.size());
  const int size = std::max(canvas.rows, canvas.cols);
  for (const auto& p : polygon) pts.emplace_back(vertex(p.x, size), vertex(p.y, size));
  std::vector<std::vector<cv::Point>> polys{pts};
  cv::fillPoly(canvas, polys, cv::Scalar(value), cv::LINE_8);
}

std::vector<Point2> organ_points(const OrganLayout& layout, const std::vector<Point2>& lm, int organ_index) {
  int off = layout.offset(organ_index);
  return {lm.begin() + off, lm.begin() + off + layout.organs[organ_index].points};
}

cv::Mat label_mask(const OrganLayout& layout, const std::vector<Point2>& lm, int size) {
  cv::Mat mask = cv::Mat::zeros(size, size, CV_8UC1);
  // Heart first, then lungs over it (the reference's order: lungs win the overlap).
  for (int pass = 2; pass >= 1; --pass)
    for (size_t o = 0; o < layout.organs.size(); ++o)
      if (layout.organs[o].label == pass) fill_polygon(mask, organ_points(layout, lm, static_cast<int>(o)), pass);
  return mask;
}

std::vector<cv::Mat> organ_masks_from_points(const OrganLayout& layout, const std::vector<Point2>& lm, int size) {
  std::vector<cv::Mat> out;
  for (int c = 1; c < layout.num_classes(); ++c) {
    cv::Mat m = cv::Mat::zeros(size, size, CV_8UC1);
    for (size_t o = 0; o < layout.organs.size(); ++o)
      if (layout.organs[o].label == c) fill_polygon(m, organ_points(layout, lm, static_cast<int>(o)), 1);
    out.push_back(m);
  }
  return out;
}

std::vector<cv::Mat> organ_masks_from_labels(const OrganLayout& layout, const cv::Mat& labels) {
  std::vector<cv::Mat> out;
  for (int c = 1; c < layout.num_classes(); ++c) {
    cv::Mat m = (labels == c) / 255;
    out.push_back(m);
  }
  return out;
}

std::vector<Point2> denormalise_points(const std::vector<float>& xy, int size) {
  std::vector<Point2> out(xy.size() / 2);
  for (size_t i = 0; i < out.size(); ++i)
    out[i] = {static_cast<double>(xy[2 * i]) * size, static_cast<double>(xy[2 * i + 1]) * size};
  return out;
}

}  // namespace orch
