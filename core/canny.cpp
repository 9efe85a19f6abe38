#include "core/canny.h"

#include <opencv2/imgproc.hpp>

#include <cmath>
#include <limits>
#include <memory>
#include <vector>

namespace orch {

namespace {

// scipy.ndimage._gaussian_kernel1d (order 0) with numpy's pairwise summation for the normalisation.
// numpy's vectorised exp differs from glibc's in the last bit for 10 of the 17 taps of sigma 2, and those bits
// decide the exact ties between the two pixels of a straight edge (scikit-image keeps both). For the
// reference's sigma 2 the weights are therefore the ones scipy 1.10 computes, as exact hexadecimal literals.
std::vector<double> gaussian_kernel(double sigma, int radius) {
  if (sigma == 2.0 && radius == 8) {
    static const double half[9] = {0x1.98862a07ae7b4p-3, 0x1.68856f9ab1982p-3, 0x1.ef9093fc46e5ap-4,
                                   0x1.0941b71ceef37p-4, 0x1.ba4d4125ffd29p-6, 0x1.1f30504e20207p-7,
                                   0x1.227362b5fc92ep-9, 0x1.c98b8c5d0dda5p-12, 0x1.18aad19e4159bp-14};
    std::vector<double> k(17);
    for (int i = 0; i <= 8; ++i) k[8 + i] = k[8 - i] = half[i];
    return k;
  }
  std::vector<double> phi(2 * radius + 1);
  const double s2 = sigma * sigma;
  for (int i = -radius; i <= radius; ++i) phi[i + radius] = std::exp(-0.5 / s2 * static_cast<double>(i) * i);
  // numpy pairwise sum for n < 8 is a plain loop; for 8 <= n <= 128 it uses 8 accumulators.
  const size_t n = phi.size();
  double sum;
  if (n < 8) {
    sum = 0;
    for (double v : phi) sum += v;
  } else {
    double r[8];
    for (int k = 0; k < 8; ++k) r[k] = phi[k];
    size_t i = 8;
    for (; i + 8 <= n; i += 8)
      for (int k = 0; k < 8; ++k) r[k] += phi[i + k];
    sum = ((r[0] + r[1]) + (r[2] + r[3])) + ((r[4] + r[5]) + (r[6] + r[7]));
    for (; i < n; ++i) sum += phi[i];
  }
  for (auto& v : phi) v /= sum;
  return phi;
}

}  // namespace

cv::Mat canny_edges(const cv::Mat& binary, const CannyOptions& opt) {
  const int H = binary.rows, W = binary.cols;
  cv::Mat out = cv::Mat::zeros(H, W, CV_8U);
  cv::Mat nz = binary != 0;
  cv::Rect box = cv::boundingRect(nz);
  if (box.area() == 0 || H < 3 || W < 3) return out;
  const int r = static_cast<int>(4.0 * opt.sigma + 0.5);
  const std::vector<double> k = gaussian_kernel(opt.sigma, r);
  const double* w = k.data() + r;  // w[-r..r], symmetric
  // Region where the smoothed image can be non-zero, plus two pixels for Sobel; outside it (inside the image)
  // every intermediate value is exactly zero.
  const int m = r + 2;
  const int y0 = std::max(0, box.y - m), y1 = std::min(H, box.y + box.height + m);
  const int x0 = std::max(0, box.x - m), x1 = std::min(W, box.x + box.width + m);
  const int h = y1 - y0, wd = x1 - x0;

  // Gaussian along axis 0 (rows), as scipy's correlate1d for a symmetric kernel, mode constant:
  // t = v0 * w0 + sum over j = r..1 of (v[-j] + v[+j]) * wj. The input is binary, so a window of all zeros
  // gives 0 and a window of all ones (inside the image) one fixed value computed the same way.
  const int ph = h + 2 * r;  // input rows y0 - r .. y1 + r, zero outside the image
  std::vector<double> in(static_cast<size_t>(ph) * wd, 0.0);
  for (int y = 0; y < ph; ++y) {
    int gy = y0 - r + y;
    if (gy < 0 || gy >= H) continue;
    const uchar* src = nz.ptr<uchar>(gy) + x0;
    double* dst = in.data() + static_cast<size_t>(y) * wd;
    for (int x = 0; x < wd; ++x) dst[x] = src[x] ? 1.0 : 0.0;
  }
  const double full = [&] {
    double t = 1.0 * w[0];
    for (int j = r; j >= 1; --j) t += (1.0 + 1.0) * w[j];
    return t;
  }();
  std::vector<int> count(wd, 0);  // ones in the current 2r+1 window of each column
  for (int y = 0; y < 2 * r; ++y)
    for (int x = 0; x < wd; ++x) count[x] += in[static_cast<size_t>(y) * wd + x] != 0;
  const int wpad = wd + 2 * r;  // tmp rows padded with r zero columns each side
  std::vector<double> tmp(static_cast<size_t>(h) * wpad, 0.0);
  for (int y = 0; y < h; ++y) {
    const double* c0 = in.data() + static_cast<size_t>(y + r) * wd;  // the centre row
    const double* add = in.data() + static_cast<size_t>(y + 2 * r) * wd;
    for (int x = 0; x < wd; ++x) count[x] += add[x] != 0;
    double* dst = tmp.data() + static_cast<size_t>(y) * wpad + r;
    for (int x = 0; x < wd; ++x) {
      if (count[x] == 0) continue;
      if (count[x] == 2 * r + 1) {
        dst[x] = full;
        continue;
      }
      double t = c0[x] * w[0];
      for (int j = r; j >= 1; --j) t += (c0[x - static_cast<ptrdiff_t>(j) * wd] + c0[x + static_cast<ptrdiff_t>(j) * wd]) * w[j];
      dst[x] = t;
    }
    const double* drop = in.data() + static_cast<size_t>(y) * wd;
    for (int x = 0; x < wd; ++x) count[x] -= drop[x] != 0;
  }

  // Gaussian along axis 1, and the bleed-over image (the gaussian of ones; its axis-0 pass depends on the row
  // only, and its axis-1 pass on the column only near the image's left and right borders).
  const double eps = std::numeric_limits<double>::epsilon();
  const int sw = wd + 4, sh = h + 4;  // smoothed image with a 2-pixel frame
  std::vector<double> sm(static_cast<size_t>(sh) * sw, 0.0);
  for (int y = 0; y < h; ++y) {
    int gy = y0 + y;
    double c = 1.0 * w[0];
    for (int j = r; j >= 1; --j) c += ((gy - j >= 0 ? 1.0 : 0.0) + (gy + j < H ? 1.0 : 0.0)) * w[j];
    double b_inner = c * w[0];
    for (int j = r; j >= 1; --j) b_inner += (c + c) * w[j];
    const double* row = tmp.data() + static_cast<size_t>(y) * wpad + r;
    double* dst = sm.data() + static_cast<size_t>(y + 2) * sw + 2;
    for (int x = 0; x < wd; ++x) {
      double t = row[x] * w[0];
      for (int j = r; j >= 1; --j) t += (row[x - j] + row[x + j]) * w[j];
      if (t == 0.0) continue;  // 0 / (b + eps) is 0
      int gx = x0 + x;
      double b = b_inner;
      if (gx < r || gx >= W - r) {
        b = c * w[0];
        for (int j = r; j >= 1; --j) b += ((gx - j >= 0 ? c : 0.0) + (gx + j < W ? c : 0.0)) * w[j];
      }
      dst[x] = t / (b + eps);
    }
  }
  // Reflect (scipy mode 'reflect': the edge pixel repeated) through the image's own borders.
  auto S = [&](int y, int x) -> double& { return sm[static_cast<size_t>(y + 2) * sw + (x + 2)]; };
  if (y0 == 0)
    for (int x = -2; x < wd + 2; ++x) { S(-1, x) = S(0, x); S(-2, x) = S(1, x); }
  if (y1 == H)
    for (int x = -2; x < wd + 2; ++x) { S(h, x) = S(h - 1, x); S(h + 1, x) = S(h - 2, x); }
  if (x0 == 0)
    for (int y = -2; y < h + 2; ++y) { S(y, -1) = S(y, 0); S(y, -2) = S(y, 1); }
  if (x1 == W)
    for (int y = -2; y < h + 2; ++y) { S(y, wd) = S(y, wd - 1); S(y, wd + 1) = S(y, wd - 2); }

  // Sobel: first pass [-1 0 1] (v0 * 0 + (v[+1] - v[-1]) * 1, as scipy's antisymmetric branch gives), over the
  // region and a one-pixel ring; the ring is then reflected through the image borders for the second pass.
  const int aw = wd + 2, ah = h + 2;
  // Every cell of a0 and a1 is written below, so they are left uninitialised (zeroing megabytes costs time).
  std::unique_ptr<double[]> a0(new double[static_cast<size_t>(ah) * aw]), a1(new double[static_cast<size_t>(ah) * aw]);
  std::vector<double> mag(static_cast<size_t>(ah) * aw, 0.0);
  auto A = [&](auto& a, int y, int x) -> double& { return a[static_cast<size_t>(y + 1) * aw + (x + 1)]; };
  for (int y = -1; y <= h; ++y)
    for (int x = -1; x <= wd; ++x) {
      A(a0, y, x) = S(y, x) * 0.0 + (S(y + 1, x) - S(y - 1, x)) * 1.0;
      A(a1, y, x) = S(y, x) * 0.0 + (S(y, x + 1) - S(y, x - 1)) * 1.0;
    }
  for (auto* a : {&a0, &a1}) {
    if (y0 == 0) for (int x = -1; x <= wd; ++x) A(*a, -1, x) = A(*a, 0, x);
    if (y1 == H) for (int x = -1; x <= wd; ++x) A(*a, h, x) = A(*a, h - 1, x);
    if (x0 == 0) for (int y = -1; y <= h; ++y) A(*a, y, -1) = A(*a, y, 0);
    if (x1 == W) for (int y = -1; y <= h; ++y) A(*a, y, wd) = A(*a, y, wd - 1);
  }
  const size_t n = static_cast<size_t>(h) * wd;
  std::unique_ptr<double[]> di(new double[n]), dj(new double[n]);
  for (int y = 0; y < h; ++y)
    for (int x = 0; x < wd; ++x) {
      size_t i = static_cast<size_t>(y) * wd + x;
      di[i] = A(a0, y, x) * 2.0 + (A(a0, y, x - 1) + A(a0, y, x + 1)) * 1.0;
      dj[i] = A(a1, y, x) * 2.0 + (A(a1, y - 1, x) + A(a1, y + 1, x)) * 1.0;
      if (di[i] != 0.0 || dj[i] != 0.0) A(mag, y, x) = std::hypot(di[i], dj[i]);
    }

  // Non-maximum suppression (skimage _get_local_maxima): four cases in order, later ones overwriting.
  cv::Mat local = cv::Mat::zeros(H, W, CV_8U);
  for (int y = 0; y < h; ++y) {
    int gy = y0 + y;
    if (gy < 1 || gy >= H - 1) continue;  // the eroded mask excludes the image border
    for (int x = 0; x < wd; ++x) {
      int gx = x0 + x;
      if (gx < 1 || gx >= W - 1) continue;
      double mm = A(mag, y, x);
      if (!(mm > 0) || mm < opt.low_threshold) continue;  // below the low threshold it can never be an edge
      size_t i = static_cast<size_t>(y) * wd + x;
      double ai = std::abs(di[i]), aj = std::abs(dj[i]);
      bool horiz = ai >= aj, vert = ai <= aj;
      bool up = di[i] >= 0, down = di[i] <= 0, right = dj[i] >= 0, left = dj[i] <= 0;
      auto M = [&](int yy, int xx) { return A(mag, yy, xx); };
      int result = -1;
      auto test = [&](double wt, double c1p, double c2p, double c1m, double c2m) {
        result = (c2p * wt + c1p * (1 - wt) <= mm) && (c2m * wt + c1m * (1 - wt) <= mm);
      };
      bool pm1 = (up && right) || (down && left), pm2 = (down && right) || (up && left);
      if (pm1 && horiz) test(aj / ai, M(y + 1, x), M(y + 1, x + 1), M(y - 1, x), M(y - 1, x - 1));
      if (pm1 && vert) test(ai / aj, M(y, x + 1), M(y + 1, x + 1), M(y, x - 1), M(y - 1, x - 1));
      if (pm2 && vert) test(ai / aj, M(y, x + 1), M(y - 1, x + 1), M(y, x - 1), M(y + 1, x - 1));
      if (pm2 && horiz) test(aj / ai, M(y - 1, x), M(y - 1, x + 1), M(y + 1, x), M(y + 1, x - 1));
      if (result == 1) local.at<uchar>(gy, gx) = mm >= opt.high_threshold ? 2 : 1;
    }
  }

  // Hysteresis: keep the 8-connected components of the low mask that contain a high pixel.
  cv::Rect roi(x0, y0, wd, h);
  cv::Mat labels;
  int nl = cv::connectedComponents(local(roi) > 0, labels, 8, CV_32S);
  if (nl <= 1) return out;
  std::vector<char> good(static_cast<size_t>(nl), 0);
  for (int y = 0; y < h; ++y) {
    const uchar* lr = local.ptr<uchar>(y0 + y) + x0;
    const int* lab = labels.ptr<int>(y);
    for (int x = 0; x < wd; ++x)
      if (lr[x] == 2) good[static_cast<size_t>(lab[x])] = 1;
  }
  for (int y = 0; y < h; ++y) {
    const int* lab = labels.ptr<int>(y);
    uchar* o = out.ptr<uchar>(y0 + y) + x0;
    for (int x = 0; x < wd; ++x)
      if (lab[x] > 0 && good[static_cast<size_t>(lab[x])]) o[x] = 1;
  }
  return out;
}

}  // namespace orch
