#include "core/distance_map.h"

#include <opencv2/imgproc.hpp>

#include <limits>

#include "core/canny.h"
#include "core/errors.h"

namespace orch {

cv::Mat inner_boundary(const cv::Mat& binary) {
  cv::Mat bin = binary != 0;  // 0/255
  cv::Mat eroded;
  cv::erode(bin, eroded, cv::getStructuringElement(cv::MORPH_CROSS, {3, 3}), {-1, -1}, 1, cv::BORDER_CONSTANT,
            cv::Scalar(0));
  cv::Mat border;
  cv::bitwise_xor(bin, eroded, border);
  return border / 255;
}

cv::Mat distance_to_edges(const cv::Mat& edges) {
  cv::Mat dist;
  if (cv::countNonZero(edges) == 0) {
    dist = cv::Mat(edges.size(), CV_32F, cv::Scalar(std::numeric_limits<float>::infinity()));
    return dist;
  }
  cv::Mat src = edges == 0;  // distanceTransform measures to the nearest zero pixel
  cv::distanceTransform(src, dist, cv::DIST_L2, cv::DIST_MASK_PRECISE, CV_32F);
  return dist;
}

cv::Mat class_distance_map(const cv::Mat& binary, EdgeSet edge_set) {
  cv::Mat edges = edge_set == EdgeSet::kCanny ? canny_edges(binary) : inner_boundary(binary);
  if (cv::countNonZero(edges) == 0) return cv::Mat(binary.size(), CV_32F, cv::Scalar(1.f));
  cv::Mat d = distance_to_edges(edges);
  double mx;
  cv::minMaxLoc(d, nullptr, &mx);
  if (mx > 0) d *= 1.0 / mx;
  return d;
}

std::vector<cv::Mat> distance_maps(const OrganLayout& layout, const cv::Mat& labels, EdgeSet edges) {
  std::vector<cv::Mat> out;
  for (int c = 1; c < layout.num_classes(); ++c) out.push_back(class_distance_map(labels == c, edges));
  return out;
}

}  // namespace orch
