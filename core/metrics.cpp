#include "core/metrics.h"

#include <opencv2/imgproc.hpp>

#include <cmath>
#include <limits>

#include "core/distance_map.h"
#include "core/errors.h"

namespace orch {

namespace {
// Largest distance from a pixel of `from` to the nearest pixel of `to`, using an exact EDT of `to` restricted to
// the bounding box of both sets: every pixel of `to` lies inside, so the restriction changes no distance.
double directed(const cv::Mat& from, const cv::Mat& to, const cv::Rect& box) {
  cv::Mat dist = distance_to_edges(to(box));
  cv::Mat f = from(box);
  double worst = 0;
  for (int y = 0; y < f.rows; ++y) {
    const uchar* fr = f.ptr<uchar>(y);
    const float* dr = dist.ptr<float>(y);
    for (int x = 0; x < f.cols; ++x)
      if (fr[x] && dr[x] > worst) worst = dr[x];
  }
  return worst;
}
}  // namespace

double hausdorff_pixels(const cv::Mat& a, const cv::Mat& b) {
  cv::Rect box = cv::boundingRect(a) | cv::boundingRect(b);
  return std::max(directed(a, b, box), directed(b, a, box));
}

OverlapMetrics compare_masks(const cv::Mat& prediction, const cv::Mat& truth, const MetricOptions& opt) {
  if (prediction.size() != truth.size() || prediction.type() != CV_8UC1 || truth.type() != CV_8UC1)
    throw Error("compare_masks: prediction and truth must be CV_8UC1 masks of the same size");
  cv::Mat p = prediction != 0, t = truth != 0;
  double np = cv::countNonZero(p), nt = cv::countNonZero(t);
  cv::Mat inter;
  cv::bitwise_and(p, t, inter);
  double ni = cv::countNonZero(inter);
  OverlapMetrics m;
  if (np == 0 && nt == 0) {
    m.dice = 1;
    m.jaccard = 1;
    m.hausdorff_mm = 0;
    return m;
  }
  m.dice = 2 * ni / (np + nt);
  m.jaccard = ni / (np + nt - ni);
  if (np == 0 || nt == 0) {
    m.hausdorff_mm = opt.empty_hausdorff == EmptyHausdorff::kNaN
                         ? std::numeric_limits<double>::quiet_NaN()
                         : std::hypot(prediction.cols, prediction.rows) * opt.spacing_mm;
    return m;
  }
  m.hausdorff_mm = hausdorff_pixels(inner_boundary(p), inner_boundary(t)) * opt.spacing_mm;
  return m;
}

}  // namespace orch
