#include "core/augment.h"

#include <opencv2/imgproc.hpp>

#include <algorithm>
#include <cmath>

#include "core/errors.h"
#include "core/rng.h"

namespace orch {

namespace {

std::vector<float> normalise_landmarks(const std::vector<Point2>& pts, int size) {
  std::vector<float> out;
  out.reserve(pts.size() * 2);
  for (const auto& p : pts) {
    out.push_back(static_cast<float>(std::clamp(p.x / size, 0.0, 1.0)));
    out.push_back(static_cast<float>(std::clamp(p.y / size, 0.0, 1.0)));
  }
  return out;
}

// scikit-image resize (order 1, anti_aliasing when shrinking with sigma = max(0, (1/s - 1)/2) per axis).
cv::Mat sk_resize(const cv::Mat& src, int new_h, int new_w, bool smooth) {
  cv::Mat in = src;
  double sig_y = std::max(0.0, (static_cast<double>(src.rows) / new_h - 1) / 2);
  double sig_x = std::max(0.0, (static_cast<double>(src.cols) / new_w - 1) / 2);
  if (smooth && (sig_x > 0 || sig_y > 0)) {
    auto ksize = [](double s) { return s > 0 ? 2 * static_cast<int>(std::ceil(4 * s)) + 1 : 1; };
    cv::GaussianBlur(src, in, {ksize(sig_x), ksize(sig_y)}, std::max(sig_x, 1e-9), std::max(sig_y, 1e-9),
                     cv::BORDER_REFLECT_101);
  }
  cv::Mat out;
  cv::resize(in, out, {new_w, new_h}, 0, 0, smooth ? cv::INTER_LINEAR : cv::INTER_NEAREST);
  return out;
}

// Crop or zero-pad one axis back to `size` (spec §1.6); returns the offset to add to that coordinate.
// An axis is either cropped (begin > 0 possible, no padding) or padded (begin stays 0), never both.
struct AxisFit {
  int begin = 0;   // crop start (when cropping)
  int pad0 = 0;    // zeros before (when padding)
  int pad1 = 0;
};

AxisFit fit_axis(int new_len, int size, double min_c, double max_c, Rng& rng) {
  AxisFit f;
  if (new_len > size) {
    long r = size - static_cast<long>(std::lround(max_c) - std::lround(min_c));
    long m = std::lround(min_c);
    long l0 = m;
    if (r > 0 && m > 0) {
      l0 = m - rng.randint(0, std::min(r, m));
      l0 = std::min<long>(l0, new_len - size - 1);
    }
    f.begin = static_cast<int>(std::clamp<long>(l0, 0, new_len - size));
  } else if (new_len < size) {
    int pad = size - new_len;
    int lo = pad / 4, hi = (3 * pad + 3) / 4;
    f.pad0 = static_cast<int>(rng.randint(lo, hi));
    f.pad1 = pad - f.pad0;
  }
  return f;
}

cv::Mat fit(const cv::Mat& m, const AxisFit& fy, const AxisFit& fx, int size) {
  cv::Mat out = m(cv::Rect(fx.begin, fy.begin, std::min(m.cols, size), std::min(m.rows, size)));
  if (fy.pad0 || fy.pad1 || fx.pad0 || fx.pad1) {
    cv::Mat padded;
    cv::copyMakeBorder(out, padded, fy.pad0, fy.pad1, fx.pad0, fx.pad1, cv::BORDER_CONSTANT, cv::Scalar(0));
    return padded;
  }
  return out.clone();
}

}  // namespace

TrainingSample to_training_sample(const Sample& s) {
  TrainingSample t;
  t.id = s.id;
  s.image.convertTo(t.image, CV_32F, 1.0 / 255);
  t.mask = s.mask.clone();
  for (const auto& d : s.dmaps) t.dmaps.push_back(d.clone());
  t.landmarks = normalise_landmarks(s.landmarks, s.image.rows);
  return t;
}

TrainingSample augment(const Sample& s, const AugmentOptions& opt, uint64_t seed, uint64_t epoch, uint64_t index) {
  const int size = s.image.rows;
  Rng rng = Rng::derive(seed, {epoch, index, 0x617567ULL /* "aug" */});
  const bool ref_masks = opt.mask_resampling == MaskResampling::kReference;

  // Work in float: image in [0, 1], mask as float labels (reference) and the maps inverted (1 - S), so that the
  // zeros brought in by padding and rotation read as "far from the contour" (S = 1) afterwards.
  cv::Mat img, mask;
  s.image.convertTo(img, CV_32F, 1.0 / 255);
  if (ref_masks) s.mask.convertTo(mask, CV_32F); else mask = s.mask.clone();
  std::vector<cv::Mat> inv;
  for (const auto& d : s.dmaps) inv.push_back(1.f - d);
  std::vector<Point2> lm = s.landmarks;

  // 1. RandomScale.
  double min_x = 1e300, max_x = -1e300, min_y = 1e300, max_y = -1e300;
  for (const auto& p : lm) {
    min_x = std::min(min_x, p.x); max_x = std::max(max_x, p.x);
    min_y = std::min(min_y, p.y); max_y = std::max(max_y, p.y);
  }
  double wb = std::max(1.0, max_x - min_x), hb = std::max(1.0, max_y - min_y);
  double sx = rng.uniform(opt.min_scale, size / wb);
  double sy = rng.uniform(opt.min_scale, size / hb);
  int new_w = std::max(1, static_cast<int>(std::lround(size * sx)));
  int new_h = std::max(1, static_cast<int>(std::lround(size * sy)));
  for (auto& p : lm) { p.x *= sx; p.y *= sy; }
  if (new_w != size || new_h != size) {
    img = sk_resize(img, new_h, new_w, true);
    mask = sk_resize(mask, new_h, new_w, ref_masks);
    for (auto& d : inv) d = sk_resize(d, new_h, new_w, true);
    AxisFit fy = fit_axis(new_h, size, min_y * sy, max_y * sy, rng);
    AxisFit fx = fit_axis(new_w, size, min_x * sx, max_x * sx, rng);
    img = fit(img, fy, fx, size);
    mask = fit(mask, fy, fx, size);
    for (auto& d : inv) d = fit(d, fy, fx, size);
    for (auto& p : lm) {
      p.y += fy.pad0 - fy.begin;
      p.x += fx.pad0 - fx.begin;
    }
  }
  if (img.rows != size || img.cols != size) throw Error("augment: RandomScale produced a wrong size");

  // 2. Rotate by θ about the image centre, counter-clockwise as displayed.
  double theta_deg = rng.uniform(-opt.max_rotation_deg, opt.max_rotation_deg);
  if (theta_deg != 0) {
    cv::Mat rot = cv::getRotationMatrix2D(cv::Point2f(static_cast<float>((size - 1) / 2.0), static_cast<float>((size - 1) / 2.0)), theta_deg, 1.0);
    auto warp = [&](const cv::Mat& m, int interp) {
      cv::Mat o;
      cv::warpAffine(m, o, rot, m.size(), interp, cv::BORDER_CONSTANT, cv::Scalar(0));
      return o;
    };
    img = warp(img, cv::INTER_LINEAR);
    mask = warp(mask, ref_masks ? cv::INTER_LINEAR : cv::INTER_NEAREST);
    for (auto& d : inv) d = warp(d, cv::INTER_LINEAR);
    double t = theta_deg * M_PI / 180, c = std::cos(t), sn = std::sin(t), ctr = size / 2.0;
    for (auto& p : lm) {
      double dx = p.x - ctr, dy = p.y - ctr;
      p = {ctr + dx * c + dy * sn, ctr - dx * sn + dy * c};
    }
  }

  // 3. AugColor: 8-bit truncation, gamma LUT, then additive Gaussian noise.
  double gamma = rng.uniform(opt.gamma_min, opt.gamma_max);
  cv::Mat lut(1, 256, CV_8U);
  for (int i = 0; i < 256; ++i) lut.at<uchar>(i) = static_cast<uchar>(255.0 * std::pow(i / 255.0, 1.0 / gamma));
  cv::Mat img8(size, size, CV_8U);
  for (int y = 0; y < size; ++y) {
    const float* r = img.ptr<float>(y);
    uchar* o = img8.ptr<uchar>(y);
    for (int x = 0; x < size; ++x) o[x] = static_cast<uchar>(std::clamp(r[x] * 255.f, 0.f, 255.f));
  }
  cv::LUT(img8, lut, img8);
  TrainingSample t;
  t.id = s.id;
  img8.convertTo(t.image, CV_32F, 1.0 / 255);
  if (opt.noise_sd > 0) {
    cv::Mat noise(size, size, CV_32F);
    cv::RNG cvrng(rng.next());
    cvrng.fill(noise, cv::RNG::NORMAL, 0.0, opt.noise_sd);
    t.image += noise;
  }

  // 4. Back to the stored forms.
  if (ref_masks) {
    t.mask.create(size, size, CV_8U);
    for (int y = 0; y < size; ++y) {
      const float* r = mask.ptr<float>(y);
      uchar* o = t.mask.ptr<uchar>(y);
      for (int x = 0; x < size; ++x) o[x] = static_cast<uchar>(std::max(0.f, r[x]));  // truncation, as .long()
    }
  } else {
    t.mask = mask;
  }
  for (auto& d : inv) t.dmaps.push_back(1.f - d);
  t.landmarks = normalise_landmarks(lm, size);
  return t;
}

}  // namespace orch
