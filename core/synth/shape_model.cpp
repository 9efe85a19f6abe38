#include "core/synth/shape_model.h"

#include <opencv2/imgproc.hpp>

#include <algorithm>

#include "core/mask.h"

namespace orch {

namespace {
#include "core/synth/shape_model_data.inc"
}  // namespace

ShapeModel::ShapeModel(DatasetKind kind) : kind_(kind) {
  if (kind == DatasetKind::kLungsHeart) {
    mean_ = kLungsHeartMean;
    modes_ = &kLungsHeartModes[0][0];
    points_ = 120;
  } else {
    mean_ = kLungsMean;
    modes_ = &kLungsModes[0][0];
    points_ = 94;
  }
}

int ShapeModel::modes() const { return kShapeModes; }

std::vector<Point2> ShapeModel::mean(int size) const {
  std::vector<Point2> pts(points_);
  double s = size / 1024.0;
  for (int i = 0; i < points_; ++i) pts[i] = {mean_[2 * i] * s, mean_[2 * i + 1] * s};
  return pts;
}

std::vector<Point2> ShapeModel::sample(Rng& rng, int size, const ShapeModelOptions& opt) const {
  const OrganLayout layout = OrganLayout::of(kind_);
  const double s = size / 1024.0;
  for (int attempt = 0;; ++attempt) {
    std::vector<double> b(kShapeModes);
    for (auto& v : b) v = std::clamp(rng.normal(), -opt.clip_sd, opt.clip_sd) * opt.mode_scale;
    std::vector<Point2> pts(points_);
    bool inside = true;
    for (int i = 0; i < points_; ++i) {
      double x = mean_[2 * i], y = mean_[2 * i + 1];
      for (int k = 0; k < kShapeModes; ++k) {
        x += b[k] * modes_[k * 2 * points_ + 2 * i];
        y += b[k] * modes_[k * 2 * points_ + 2 * i + 1];
      }
      pts[i] = {x * s, y * s};
      if (x < 2 || y < 2 || x > 1021 || y > 1021) inside = false;
    }
    if (!inside && attempt < 50) continue;
    // The lungs must not overlap (the reference asserts it for the lungs-only masks).
    cv::Mat rl = cv::Mat::zeros(size, size, CV_8U), ll = cv::Mat::zeros(size, size, CV_8U);
    fill_polygon(rl, organ_points(layout, pts, 0), 1);
    fill_polygon(ll, organ_points(layout, pts, 1), 1);
    cv::Mat both;
    cv::bitwise_and(rl, ll, both);
    if (cv::countNonZero(both) == 0 || attempt >= 50) {
      for (auto& p : pts) {
        p.x = std::clamp(p.x, 0.0, size - 1.0);
        p.y = std::clamp(p.y, 0.0, size - 1.0);
      }
      return pts;
    }
  }
}

}  // namespace orch
