#include "core/augment.h"

#include <opencv2/imgproc.hpp>

#include <algorithm>
#include <array>
#include <cmath>
#include <cstring>
#ifdef __SSE2__
#include <emmintrin.h>
#include <xmmintrin.h>
#endif

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

// scikit-image's anti-aliasing sigma for an axis resized from `from` to `to` pixels: max(0, (1/s - 1)/2).
double antialias_sigma(int from, int to) { return std::max(0.0, (static_cast<double>(from) / to - 1) / 2); }

// scikit-image's anti-aliasing blur (a Gaussian of 4 sigma each side, reflecting at the border); `in` may be `out`.
void antialias_blur(const cv::Mat& in, cv::Mat& out, double sig_x, double sig_y) {
  auto ksize = [](double s) { return s > 0 ? 2 * static_cast<int>(std::ceil(4 * s)) + 1 : 1; };
  cv::GaussianBlur(in, out, {ksize(sig_x), ksize(sig_y)}, std::max(sig_x, 1e-9), std::max(sig_y, 1e-9),
                   cv::BORDER_REFLECT_101);
}

// scikit-image resize (order 1, anti_aliasing when shrinking).
cv::Mat sk_resize(const cv::Mat& src, int new_h, int new_w, bool smooth) {
  cv::Mat in = src;
  const double sig_y = antialias_sigma(src.rows, new_h), sig_x = antialias_sigma(src.cols, new_w);
  if (smooth && (sig_x > 0 || sig_y > 0)) antialias_blur(src, in, sig_x, sig_y);
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

namespace {

// The random draws of one augmentation (both warp paths take the same, in the same order) and the landmarks moved
// by them.
struct Geometry {
  bool resized = false;
  int new_w = 0, new_h = 0;  // the RandomScale size before the crop or pad
  AxisFit fy, fx;
  double theta_deg = 0;
};

Geometry draw_geometry(const Sample& s, const AugmentOptions& opt, Rng& rng, std::vector<Point2>& lm) {
  const int size = s.image.rows;
  Geometry g;
  // 1. RandomScale.
  double min_x = 1e300, max_x = -1e300, min_y = 1e300, max_y = -1e300;
  for (const auto& p : lm) {
    min_x = std::min(min_x, p.x); max_x = std::max(max_x, p.x);
    min_y = std::min(min_y, p.y); max_y = std::max(max_y, p.y);
  }
  double wb = std::max(1.0, max_x - min_x), hb = std::max(1.0, max_y - min_y);
  double sx = rng.uniform(opt.min_scale, size / wb);
  double sy = rng.uniform(opt.min_scale, size / hb);
  g.new_w = std::max(1, static_cast<int>(std::lround(size * sx)));
  g.new_h = std::max(1, static_cast<int>(std::lround(size * sy)));
  for (auto& p : lm) { p.x *= sx; p.y *= sy; }
  g.resized = g.new_w != size || g.new_h != size;
  if (g.resized) {
    g.fy = fit_axis(g.new_h, size, min_y * sy, max_y * sy, rng);
    g.fx = fit_axis(g.new_w, size, min_x * sx, max_x * sx, rng);
    for (auto& p : lm) {
      p.y += g.fy.pad0 - g.fy.begin;
      p.x += g.fx.pad0 - g.fx.begin;
    }
  }
  // 2. Rotate by θ about the image centre, counter-clockwise as displayed.
  g.theta_deg = rng.uniform(-opt.max_rotation_deg, opt.max_rotation_deg);
  if (g.theta_deg != 0) {
    double t = g.theta_deg * M_PI / 180, c = std::cos(t), sn = std::sin(t), ctr = size / 2.0;
    for (auto& p : lm) {
      double dx = p.x - ctr, dy = p.y - ctr;
      p = {ctr + dx * c + dy * sn, ctr - dx * sn + dy * c};
    }
  }
  return g;
}

cv::Mat rotation(const Geometry& g, int size) {
  const float c = static_cast<float>((size - 1) / 2.0);
  return cv::getRotationMatrix2D(cv::Point2f(c, c), g.theta_deg, 1.0);
}

// The channels after the geometric steps: the image in [0, 1], the mask (float labels for kReference, else
// CV_8U), the maps inverted (1 - S).
struct Warped {
  cv::Mat img, mask;
  std::vector<cv::Mat> inv;
};

Warped warp_stepwise(const Sample& s, const AugmentOptions& opt, const Geometry& g) {
  const int size = s.image.rows;
  const bool ref_masks = opt.mask_resampling == MaskResampling::kReference;
  // Work in float: image in [0, 1], mask as float labels (reference) and the maps inverted (1 - S), so that the
  // zeros brought in by padding and rotation read as "far from the contour" (S = 1) afterwards.
  Warped w;
  s.image.convertTo(w.img, CV_32F, 1.0 / 255);
  if (ref_masks) s.mask.convertTo(w.mask, CV_32F); else w.mask = s.mask.clone();
  for (const auto& d : s.dmaps) w.inv.push_back(1.f - d);
  if (g.resized) {
    w.img = fit(sk_resize(w.img, g.new_h, g.new_w, true), g.fy, g.fx, size);
    w.mask = fit(sk_resize(w.mask, g.new_h, g.new_w, ref_masks), g.fy, g.fx, size);
    for (auto& d : w.inv) d = fit(sk_resize(d, g.new_h, g.new_w, true), g.fy, g.fx, size);
  }
  if (w.img.rows != size || w.img.cols != size) throw Error("augment: RandomScale produced a wrong size");
  if (g.theta_deg != 0) {
    cv::Mat rot = rotation(g, size);
    auto warp = [&](const cv::Mat& m, int interp) {
      cv::Mat o;
      cv::warpAffine(m, o, rot, m.size(), interp, cv::BORDER_CONSTANT, cv::Scalar(0));
      return o;
    };
    w.img = warp(w.img, cv::INTER_LINEAR);
    w.mask = warp(w.mask, ref_masks ? cv::INTER_LINEAR : cv::INTER_NEAREST);
    for (auto& d : w.inv) d = warp(d, cv::INTER_LINEAR);
  }
  return w;
}

// The gamma LUT of AugColor over 8-bit values, as floats in [0, 1].
std::array<float, 256> gamma_lut(double gamma) {
  std::array<float, 256> lut{};
  for (int i = 0; i < 256; ++i)
    lut[i] = static_cast<float>(static_cast<uchar>(255.0 * std::pow(i / 255.0, 1.0 / gamma)) * (1.0 / 255));
  return lut;
}

// Additive Gaussian noise on the image (no clipping afterwards), drawn from one seed.
void add_noise(cv::Mat& image, double sd, uint64_t seed) {
  if (sd <= 0) return;
  cv::Mat noise(image.size(), CV_32F);
  cv::RNG cvrng(seed);
  cvrng.fill(noise, cv::RNG::NORMAL, 0.0, sd);
  image += noise;
}

// 3-4 of the stepwise path: AugColor (8-bit truncation, gamma LUT, noise), then the stored forms.
void finish_stepwise(Warped& w, const AugmentOptions& opt, double gamma, uint64_t noise_seed, TrainingSample& t) {
  const int size = w.img.rows;
  cv::Mat lut(1, 256, CV_8U);
  for (int i = 0; i < 256; ++i) lut.at<uchar>(i) = static_cast<uchar>(255.0 * std::pow(i / 255.0, 1.0 / gamma));
  cv::Mat img8(size, size, CV_8U);
  for (int y = 0; y < size; ++y) {
    const float* r = w.img.ptr<float>(y);
    uchar* o = img8.ptr<uchar>(y);
    for (int x = 0; x < size; ++x) o[x] = static_cast<uchar>(std::clamp(r[x] * 255.f, 0.f, 255.f));
  }
  cv::LUT(img8, lut, img8);
  img8.convertTo(t.image, CV_32F, 1.0 / 255);
  add_noise(t.image, opt.noise_sd, noise_seed);
  if (opt.mask_resampling == MaskResampling::kReference) {
    t.mask.create(size, size, CV_8U);
    for (int y = 0; y < size; ++y) {
      const float* r = w.mask.ptr<float>(y);
      uchar* o = t.mask.ptr<uchar>(y);
      for (int x = 0; x < size; ++x) o[x] = static_cast<uchar>(std::max(0.f, r[x]));  // truncation, as .long()
    }
  } else {
    t.mask = w.mask;
  }
  for (auto& d : w.inv) t.dmaps.push_back(1.f - d);
}

// Output pixel -> source pixel of the whole geometric step: the inverse rotation, the crop or pad, then
// cv::resize's pixel-centre mapping back to the stored size.
cv::Mat fused_map(const Geometry& g, int size) {
  cv::Matx33d inv_rot = cv::Matx33d::eye();
  if (g.theta_deg != 0) {
    cv::Mat r;
    cv::invertAffineTransform(rotation(g, size), r);
    for (int i = 0; i < 2; ++i)
      for (int j = 0; j < 3; ++j) inv_rot(i, j) = r.at<double>(i, j);
  }
  cv::Matx33d to_source = cv::Matx33d::eye();
  if (g.resized) {
    const double kx = static_cast<double>(size) / g.new_w, ky = static_cast<double>(size) / g.new_h;
    // x_s = (x_f - pad0 + begin + 0.5) * kx - 0.5
    to_source = cv::Matx33d(kx, 0, (g.fx.begin - g.fx.pad0 + 0.5) * kx - 0.5,
                            0, ky, (g.fy.begin - g.fy.pad0 + 0.5) * ky - 0.5, 0, 0, 1);
  }
  cv::Matx33d m = to_source * inv_rot;
  return (cv::Mat_<double>(2, 3) << m(0, 0), m(0, 1), m(0, 2), m(1, 0), m(1, 1), m(1, 2));
}

// A standard normal quantile table over 16-bit uniforms (Acklam's rational approximation, relative error below
// 1.2e-9): the fused path's noise is table[u] for uniform 16-bit u, a normal distribution truncated at ±4.3 sd.
const std::array<float, 65536>& normal_table() {
  static const std::array<float, 65536> table = [] {
    static const double a[] = {-3.969683028665376e+01, 2.209460984245205e+02, -2.759285104469687e+02,
                               1.383577518672690e+02, -3.066479806614716e+01, 2.506628277459239e+00};
    static const double b[] = {-5.447609879822406e+01, 1.615858368580409e+02, -1.556989798598866e+02,
                               6.680131188771972e+01, -1.328068155288572e+01};
    static const double c[] = {-7.784894002430293e-03, -3.223964580411365e-01, -2.400758277161838e+00,
                               -2.549732539343734e+00, 4.374664141464968e+00, 2.938163982698783e+00};
    static const double d[] = {7.784695709041462e-03, 3.224671290700398e-01, 2.445134137142996e+00,
                               3.754408661907416e+00};
    auto tail = [&](double q) {
      return (((((c[0] * q + c[1]) * q + c[2]) * q + c[3]) * q + c[4]) * q + c[5]) /
             ((((d[0] * q + d[1]) * q + d[2]) * q + d[3]) * q + 1);
    };
    std::array<float, 65536> t{};
    for (int i = 0; i < 65536; ++i) {
      const double p = (i + 0.5) / 65536;
      double z;
      if (p < 0.02425) {
        z = tail(std::sqrt(-2 * std::log(p)));
      } else if (p > 1 - 0.02425) {
        z = -tail(std::sqrt(-2 * std::log(1 - p)));
      } else {
        const double q = p - 0.5, r = q * q;
        z = (((((a[0] * r + a[1]) * r + a[2]) * r + a[3]) * r + a[4]) * r + a[5]) * q /
            (((((b[0] * r + b[1]) * r + b[2]) * r + b[3]) * r + b[4]) * r + 1);
      }
      t[i] = static_cast<float>(z);
    }
    return t;
  }();
  return table;
}

// Four float lanes (GCC/Clang vector extension: SSE on x86-64, NEON on aarch64).
typedef float v4f __attribute__((vector_size(16)));

// One channel of the fused warp's input: value = offset + scale x the stored value (the image / 255, the mask's
// labels, a map inverted as 1 - S).
struct Plane {
  const cv::Mat* m;
  float scale, offset;
};

// The fused path, tile by tile: for each 128 x 64 tile of the output, the source window it maps from is gathered
// into four interleaved lanes (small enough to stay in cache; zeros outside the source, as cv::BORDER_CONSTANT),
// then each output pixel is one bilinear sample of all lanes through the composed map, written straight to the
// sample's forms with AugColor on the image (8-bit truncation, gamma LUT, noise from the quantile table). The
// noise of a tile comes from its own stream, so the result does not depend on the order tiles are done in.
class FusedWarp {
 public:
  static constexpr int kTileW = 128, kTileH = 64;
  FusedWarp(std::vector<Plane> planes, const cv::Mat& map, double gamma, double sd, uint64_t noise_seed, bool mask)
      : planes_(std::move(planes)), lut_(gamma_lut(gamma)), normal_(normal_table()), sd_(static_cast<float>(sd)),
        noise_seed_(noise_seed), mask_(mask) {
    for (int i = 0; i < 6; ++i) m_[i] = static_cast<float>(map.ptr<double>()[i]);
    typed_ = mask && planes_.size() == 4 && planes_[0].m->depth() == CV_8U && planes_[1].m->depth() == CV_8U;
  }

  // One tile; kMask: lane 1 is the mask; kMaps: the maps in the lanes after it (compile-time, so that the row's
  // pointers stay in registers).
  template <bool kMask, int kMaps>
  void tile(int tx, int ty, TrainingSample& t) {
    const int size = t.image.rows, w = std::min(kTileW, size - tx), h = std::min(kTileH, size - ty);
    gather(tx, ty, w, h);
    Rng noise = Rng::derive(noise_seed_, {static_cast<uint64_t>(ty), static_cast<uint64_t>(tx)});
    constexpr int kFirstMap = kMask ? 2 : 1;
    float n[kTileW + 3];
    for (int y = ty; y < ty + h; ++y) {
      float* __restrict image = t.image.ptr<float>(y);
      uchar* __restrict mask = kMask ? t.mask.ptr<uchar>(y) : nullptr;
      float* __restrict m0 = t.dmaps[0].ptr<float>(y);
      float* __restrict m1 = kMaps > 1 ? t.dmaps[1].ptr<float>(y) : nullptr;
      float* __restrict m2 = kMaps > 2 ? t.dmaps[2].ptr<float>(y) : nullptr;
      noise_row(noise, n, w);
      const float bx = m_[1] * y + m_[2] - wx_, by = m_[4] * y + m_[5] - wy_;
      int x = tx;
#ifdef __SSE2__
      x = quad<kMask, kMaps>(tx, w, bx, by, n, image, mask, m0, m1, m2);
#endif
      for (; x < tx + w; ++x) {
        const v4f v = sample(m_[0] * x + bx, m_[3] * x + by);
        // Truncation then the clamp, in integers (branch-free); the same as clamping first for these values.
        const int level = static_cast<int>(v[0] * 255.f);
        image[x] = lut_[level < 0 ? 0 : (level > 255 ? 255 : level)] + n[x - tx];
        if constexpr (kMask) {
          const int label = static_cast<int>(v[1]);  // truncation, as .long()
          mask[x] = static_cast<uchar>(label < 0 ? 0 : label);
        }
        m0[x] = 1.f - v[kFirstMap];
        if constexpr (kMaps > 1) m1[x] = 1.f - v[kFirstMap + 1];
        if constexpr (kMaps > 2) m2[x] = 1.f - v[kFirstMap + 2];
      }
    }
  }

 private:
#ifdef __SSE2__
  // The tile row's pixels four at a time: positions, floors and fractions in SSE lanes, one bilinear v4f per pixel,
  // a 4 x 4 transpose to channel-major, then four pixels of each output per store. Returns the first x not done.
  template <bool kMask, int kMaps>
  int quad(int tx, int w, float bx, float by, const float* n, float* __restrict image, uchar* __restrict mask,
           float* __restrict m0, float* __restrict m1, float* __restrict m2) const {
    constexpr int kFirstMap = kMask ? 2 : 1;
    const __m128 ax = _mm_set1_ps(m_[0]), ay = _mm_set1_ps(m_[3]), bx4 = _mm_set1_ps(bx), by4 = _mm_set1_ps(by);
    const __m128 steps = _mm_setr_ps(0, 1, 2, 3), ww = _mm_set1_ps(static_cast<float>(ww_));
    const __m128 zero = _mm_setzero_ps(), one = _mm_set1_ps(1.f), top255 = _mm_set1_ps(255.f);
    int x = tx;
    for (; x + 4 <= tx + w; x += 4) {
      const __m128 xf = _mm_add_ps(_mm_set1_ps(static_cast<float>(x)), steps);
      const __m128 xs = _mm_add_ps(_mm_mul_ps(ax, xf), bx4), ys = _mm_add_ps(_mm_mul_ps(ay, xf), by4);
      __m128i xi = _mm_cvttps_epi32(xs), yi = _mm_cvttps_epi32(ys);
      xi = _mm_add_epi32(xi, _mm_castps_si128(_mm_cmplt_ps(xs, _mm_cvtepi32_ps(xi))));  // floor: -1 where below
      yi = _mm_add_epi32(yi, _mm_castps_si128(_mm_cmplt_ps(ys, _mm_cvtepi32_ps(yi))));
      const __m128 x0 = _mm_cvtepi32_ps(xi), y0 = _mm_cvtepi32_ps(yi);
      alignas(16) float fx[4], fy[4];
      alignas(16) int at[4];
      _mm_store_ps(fx, _mm_sub_ps(xs, x0));
      _mm_store_ps(fy, _mm_sub_ps(ys, y0));
      _mm_store_si128(reinterpret_cast<__m128i*>(at), _mm_cvttps_epi32(_mm_add_ps(_mm_mul_ps(y0, ww), x0)));  // exact
      __m128 c[4];
      for (int k = 0; k < 4; ++k) {
        const v4f* r0 = buf_.data() + at[k];
        const v4f* r1 = r0 + ww_;
        const v4f t0 = r0[0] + (r0[1] - r0[0]) * fx[k], t1 = r1[0] + (r1[1] - r1[0]) * fx[k];
        c[k] = static_cast<__m128>(t0 + (t1 - t0) * fy[k]);
      }
      _MM_TRANSPOSE4_PS(c[0], c[1], c[2], c[3]);  // c[lane]: that channel of the four pixels
      alignas(16) int level[4];  // clamped, then truncated: the same as truncated, then clamped
      _mm_store_si128(reinterpret_cast<__m128i*>(level),
                      _mm_cvttps_epi32(_mm_min_ps(_mm_max_ps(_mm_mul_ps(c[0], top255), zero), top255)));
      const __m128 lut = _mm_setr_ps(lut_[level[0]], lut_[level[1]], lut_[level[2]], lut_[level[3]]);
      _mm_storeu_ps(image + x, _mm_add_ps(lut, _mm_loadu_ps(n + (x - tx))));
      if constexpr (kMask) {  // truncation, as .long(), of labels at least 0
        const __m128i labels = _mm_cvttps_epi32(_mm_max_ps(c[1], zero));
        const __m128i bytes = _mm_packus_epi16(_mm_packs_epi32(labels, labels), _mm_setzero_si128());
        const int32_t four = _mm_cvtsi128_si32(bytes);
        std::memcpy(mask + x, &four, 4);
      }
      _mm_storeu_ps(m0 + x, _mm_sub_ps(one, c[kFirstMap]));
      if constexpr (kMaps > 1) _mm_storeu_ps(m1 + x, _mm_sub_ps(one, c[kFirstMap + 1]));
      if constexpr (kMaps > 2) _mm_storeu_ps(m2 + x, _mm_sub_ps(one, c[kFirstMap + 2]));
    }
    return x;
  }
#endif

  // The source window of the tile's corners (one pixel of margin each side), its lanes interleaved.
  void gather(int tx, int ty, int w, int h) {
    float lo_x = 1e30f, hi_x = -1e30f, lo_y = 1e30f, hi_y = -1e30f;
    for (int cy : {ty, ty + h - 1})
      for (int cx : {tx, tx + w - 1}) {
        const float xs = m_[0] * cx + m_[1] * cy + m_[2], ys = m_[3] * cx + m_[4] * cy + m_[5];
        lo_x = std::min(lo_x, xs); hi_x = std::max(hi_x, xs);
        lo_y = std::min(lo_y, ys); hi_y = std::max(hi_y, ys);
      }
    wx_ = static_cast<int>(std::floor(lo_x)) - 1;
    wy_ = static_cast<int>(std::floor(lo_y)) - 1;
    ww_ = static_cast<int>(std::floor(hi_x)) + 3 - wx_;
    wh_ = static_cast<int>(std::floor(hi_y)) + 3 - wy_;
    const cv::Mat& src = *planes_[0].m;
    const size_t n = static_cast<size_t>(ww_) * wh_;
    const bool inside = wx_ >= 0 && wy_ >= 0 && wx_ + ww_ <= src.cols && wy_ + wh_ <= src.rows;
    if (typed_ && inside) {  // every pixel is written below
      if (buf_.size() < n) buf_.resize(n);
    } else {
      buf_.assign(n, v4f{0, 0, 0, 0});
    }
    const int x0 = std::max(0, wx_), x1 = std::min(src.cols, wx_ + ww_);
    for (int y = std::max(0, wy_); y < std::min(src.rows, wy_ + wh_); ++y) {
      v4f* row = buf_.data() + static_cast<size_t>(y - wy_) * ww_ - wx_;
      if (typed_) {  // the usual layout, one v4f per pixel
        const uchar* im = planes_[0].m->ptr<uchar>(y);
        const uchar* ma = planes_[1].m->ptr<uchar>(y);
        const float* d0 = planes_[2].m->ptr<float>(y);
        const float* d1 = planes_[3].m->ptr<float>(y);
        gather_row(row, im, ma, d0, d1, x0, x1);
        continue;
      }
      for (size_t c = 0; c < planes_.size(); ++c) {
        const Plane& p = planes_[c];
        if (p.m->depth() == CV_8U) {
          const uchar* in = p.m->ptr<uchar>(y);
          for (int x = x0; x < x1; ++x) row[x][c] = p.offset + p.scale * in[x];
        } else {
          const float* in = p.m->ptr<float>(y);
          for (int x = x0; x < x1; ++x) row[x][c] = p.offset + p.scale * in[x];
        }
      }
    }
  }

  // One window row of the usual layout: the image / 255, the mask's labels and both maps inverted, interleaved
  // (with SSE, four pixels at a time through a 4 x 4 transpose).
  static void gather_row(v4f* row, const uchar* im, const uchar* ma, const float* d0, const float* d1, int x0, int x1) {
    int x = x0;
#ifdef __SSE2__
    const __m128 one = _mm_set1_ps(1.f), inv255 = _mm_set1_ps(1.f / 255);
    const __m128i zero = _mm_setzero_si128();
    auto widen = [&](const uchar* p) {  // four bytes to four floats
      int32_t b;
      std::memcpy(&b, p, 4);
      const __m128i v = _mm_unpacklo_epi16(_mm_unpacklo_epi8(_mm_cvtsi32_si128(b), zero), zero);
      return _mm_cvtepi32_ps(v);
    };
    for (; x + 4 <= x1; x += 4) {
      __m128 a = _mm_mul_ps(widen(im + x), inv255), b = widen(ma + x);
      __m128 c = _mm_sub_ps(one, _mm_loadu_ps(d0 + x)), d = _mm_sub_ps(one, _mm_loadu_ps(d1 + x));
      _MM_TRANSPOSE4_PS(a, b, c, d);
      _mm_storeu_ps(reinterpret_cast<float*>(row + x), a);
      _mm_storeu_ps(reinterpret_cast<float*>(row + x + 1), b);
      _mm_storeu_ps(reinterpret_cast<float*>(row + x + 2), c);
      _mm_storeu_ps(reinterpret_cast<float*>(row + x + 3), d);
    }
#endif
    for (; x < x1; ++x) row[x] = v4f{im[x] * (1.f / 255), static_cast<float>(ma[x]), 1.f - d0[x], 1.f - d1[x]};
  }

  // Bilinear sample at window coordinates (xs, ys), inside the window by construction.
  v4f sample(float xs, float ys) const {
    int x0 = static_cast<int>(xs), y0 = static_cast<int>(ys);  // floor, without a libm call
    x0 -= xs < static_cast<float>(x0);
    y0 -= ys < static_cast<float>(y0);
    const float fx = xs - static_cast<float>(x0), fy = ys - static_cast<float>(y0);
    const v4f* r0 = buf_.data() + static_cast<size_t>(y0) * ww_ + x0;
    const v4f* r1 = r0 + ww_;
    const v4f top = r0[0] + (r0[1] - r0[0]) * fx, bottom = r1[0] + (r1[1] - r1[0]) * fx;
    return top + (bottom - top) * fy;
  }

  // A row's noise, four 16-bit draws from each 64-bit number (w rounded up to a multiple of four).
  void noise_row(Rng& noise, float* n, int w) const {
    for (int x = 0; x < w; x += 4) {  // n has room for three more
      const uint64_t bits = noise.next();
      n[x] = sd_ * normal_[bits & 0xffff];
      n[x + 1] = sd_ * normal_[(bits >> 16) & 0xffff];
      n[x + 2] = sd_ * normal_[(bits >> 32) & 0xffff];
      n[x + 3] = sd_ * normal_[bits >> 48];
    }
  }

  std::vector<Plane> planes_;
  float m_[6];
  std::array<float, 256> lut_;
  const std::array<float, 65536>& normal_;
  float sd_;
  uint64_t noise_seed_;
  bool mask_, typed_ = false;  // typed_: the image and mask 8-bit, two maps (not blurred copies)
  int wx_ = 0, wy_ = 0, ww_ = 0, wh_ = 0;
  std::vector<v4f> buf_;
};

// The fused path's input planes; where the scale shrinks enough for scikit-image's anti-aliasing to change a value
// (sigma above about 0.19 px: below it the kernel's side taps weigh under 1e-6), blurred float copies. `kept`
// holds the copies.
std::vector<Plane> fused_planes(const Sample& s, bool with_mask, const Geometry& g, std::vector<cv::Mat>& kept) {
  std::vector<Plane> planes{{&s.image, 1.f / 255, 0.f}};
  if (with_mask) planes.push_back({&s.mask, 1.f, 0.f});
  for (const auto& d : s.dmaps) planes.push_back({&d, -1.f, 1.f});
  const int size = s.image.rows;  // unresized, new_w and new_h are the size: no blur
  const double sig_y = antialias_sigma(size, g.new_h), sig_x = antialias_sigma(size, g.new_w);
  auto matters = [](double sg) { return sg > 0 && std::exp(-1 / (2 * sg * sg)) > 1e-6; };
  if (!matters(sig_x) && !matters(sig_y)) return planes;
  kept.reserve(planes.size());
  for (auto& p : planes) {
    cv::Mat f;
    p.m->convertTo(f, CV_32F, p.scale, p.offset);
    antialias_blur(f, f, sig_x, sig_y);
    kept.push_back(f);
    p = {&kept.back(), 1.f, 0.f};
  }
  return planes;
}

void augment_fused(const Sample& s, const AugmentOptions& opt, const Geometry& g, double gamma, uint64_t noise_seed,
                   TrainingSample& t) {
  const int size = s.image.rows;
  const bool ref_masks = opt.mask_resampling == MaskResampling::kReference;
  const cv::Mat map = fused_map(g, size);
  std::vector<cv::Mat> kept;
  FusedWarp warp(fused_planes(s, ref_masks, g, kept), map, gamma, opt.noise_sd, noise_seed, ref_masks);
  if (!ref_masks)
    cv::warpAffine(s.mask, t.mask, map, {size, size}, cv::INTER_NEAREST | cv::WARP_INVERSE_MAP, cv::BORDER_CONSTANT,
                   cv::Scalar(0));
  else
    t.mask.create(size, size, CV_8U);
  t.image.create(size, size, CV_32F);
  for (size_t d = 0; d < s.dmaps.size(); ++d) t.dmaps.emplace_back(size, size, CV_32F);
  const int maps = static_cast<int>(s.dmaps.size());
  for (int ty = 0; ty < size; ty += FusedWarp::kTileH)
    for (int tx = 0; tx < size; tx += FusedWarp::kTileW) {
      if (ref_masks && maps == 1) warp.tile<true, 1>(tx, ty, t);
      else if (ref_masks && maps == 2) warp.tile<true, 2>(tx, ty, t);
      else if (maps == 1) warp.tile<false, 1>(tx, ty, t);
      else if (maps == 2) warp.tile<false, 2>(tx, ty, t);
      else warp.tile<false, 3>(tx, ty, t);
    }
}

}  // namespace

TrainingSample augment(const Sample& s, const AugmentOptions& opt, uint64_t seed, uint64_t epoch, uint64_t index) {
  Rng rng = Rng::derive(seed, {epoch, index, 0x617567ULL /* "aug" */});
  std::vector<Point2> lm = s.landmarks;
  const Geometry g = draw_geometry(s, opt, rng, lm);
  // 3. AugColor's draws: the gamma, then the noise's seed.
  const double gamma = rng.uniform(opt.gamma_min, opt.gamma_max);
  const uint64_t noise_seed = opt.noise_sd > 0 ? rng.next() : 0;
  TrainingSample t;
  t.id = s.id;
  // The fused path takes four lanes: the image, the interpolated mask and up to two maps (both data set kinds).
  const size_t lanes = 1 + (opt.mask_resampling == MaskResampling::kReference ? 1 : 0) + s.dmaps.size();
  if (opt.warps == AugmentWarps::kFused && lanes <= 4) {
    augment_fused(s, opt, g, gamma, noise_seed, t);
  } else {
    Warped w = warp_stepwise(s, opt, g);
    finish_stepwise(w, opt, gamma, noise_seed, t);
  }
  t.landmarks = normalise_landmarks(lm, s.image.rows);
  return t;
}

}  // namespace orch
