#include "core/canny.h"

#include <opencv2/imgproc.hpp>

#include <cmath>
#include <limits>
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
  const int radius = static_cast<int>(4.0 * opt.sigma + 0.5);
  const std::vector<double> k = gaussian_kernel(opt.sigma, radius);  // symmetric: k[radius + j] == k[radius - j]
  const double* w = k.data() + radius;
  // Region where the smoothed image can be non-zero, plus one pixel for Sobel.
  const int m = radius + 2;
  const int y0 = std::max(0, box.y - m), y1 = std::min(H, box.y + box.height + m);
  const int x0 = std::max(0, box.x - m), x1 = std::min(W, box.x + box.width + m);
  const int h = y1 - y0, wd = x1 - x0;
  auto in = [&](int y, int x) -> double {  // the input image, zero outside (mode constant, cval 0)
    return (y >= 0 && y < H && x >= 0 && x < W && nz.at<uchar>(y, x)) ? 1.0 : 0.0;
  };

  // Gaussian, axis 0 then axis 1, as scipy's correlate1d for a symmetric kernel: tmp = c*w0 + sum (l + r)*wj.
  std::vector<double> tmp(static_cast<size_t>(h) * wd), smooth(static_cast<size_t>(h) * wd);
  for (int y = 0; y < h; ++y)
    for (int x = 0; x < wd; ++x) {
      int gy = y0 + y, gx = x0 + x;
      double t = in(gy, gx) * w[0];
      for (int j = radius; j >= 1; --j) t += (in(gy - j, gx) + in(gy + j, gx)) * w[j];
      tmp[static_cast<size_t>(y) * wd + x] = t;
    }
  // The bleed-over image (gaussian of ones): its axis-0 pass depends on the row only.
  std::vector<double> ones_col(h);
  for (int y = 0; y < h; ++y) {
    int gy = y0 + y;
    double t = 1.0 * w[0];
    for (int j = radius; j >= 1; --j) t += ((gy - j >= 0 ? 1.0 : 0.0) + (gy + j < H ? 1.0 : 0.0)) * w[j];
    ones_col[y] = t;
  }
  const double eps = std::numeric_limits<double>::epsilon();
  for (int y = 0; y < h; ++y) {
    const double* row = tmp.data() + static_cast<size_t>(y) * wd;
    const double c = ones_col[y];
    for (int x = 0; x < wd; ++x) {
      int gx = x0 + x;
      auto at = [&](int xx) -> double {  // tmp outside the region: zero inside the image too (no mask there)
        return (xx >= 0 && xx < wd) ? row[xx] : 0.0;
      };
      double t = at(x) * w[0];
      double b = c * w[0];
      for (int j = radius; j >= 1; --j) {  // scipy sums from the farthest taps inwards
        t += (at(x - j) + at(x + j)) * w[j];
        b += ((gx - j >= 0 ? c : 0.0) + (gx + j < W ? c : 0.0)) * w[j];
      }
      smooth[static_cast<size_t>(y) * wd + x] = t / (b + eps);
    }
  }

  // Sobel (mode reflect at the image border; beyond the region, inside the image, the smoothed image is 0).
  auto sm = [&](int gy, int gx) -> double {
    if (gy < 0) gy = -gy - 1;
    if (gy >= H) gy = 2 * H - gy - 1;
    if (gx < 0) gx = -gx - 1;
    if (gx >= W) gx = 2 * W - gx - 1;
    int y = gy - y0, x = gx - x0;
    if (y < 0 || y >= h || x < 0 || x >= wd) return 0.0;
    return smooth[static_cast<size_t>(y) * wd + x];
  };
  // isobel = sobel(axis 0): [-1 0 1] along rows, then [1 2 1] along columns; jsobel the transpose.
  std::vector<double> di(static_cast<size_t>(h) * wd), dj(static_cast<size_t>(h) * wd), mag(static_cast<size_t>(h) * wd);
  std::vector<double> a0(static_cast<size_t>(h + 2) * (wd + 2)), a1(static_cast<size_t>(h + 2) * (wd + 2));
  // First pass of each over the region grown by one pixel, so the second pass reads real values.
  auto idx2 = [&](int y, int x) { return static_cast<size_t>(y + 1) * (wd + 2) + (x + 1); };
  for (int y = -1; y <= h; ++y)
    for (int x = -1; x <= wd; ++x) {
      int gy = y0 + y, gx = x0 + x;
      if (gy < -1 || gy > H || gx < -1 || gx > W) continue;
      // correlate1d antisymmetric: tmp = v0*0 + (v[+1] - v[-1]) * 1
      a0[idx2(y, x)] = sm(gy, gx) * 0.0 + (sm(gy + 1, gx) - sm(gy - 1, gx)) * 1.0;
      a1[idx2(y, x)] = sm(gy, gx) * 0.0 + (sm(gy, gx + 1) - sm(gy, gx - 1)) * 1.0;
    }
  auto first = [&](const std::vector<double>& a, int y, int x) -> double {
    // a at region coords; reflect through the image border as scipy does for the second pass.
    int gy = y0 + y, gx = x0 + x;
    if (gy < 0) gy = -gy - 1;
    if (gy >= H) gy = 2 * H - gy - 1;
    if (gx < 0) gx = -gx - 1;
    if (gx >= W) gx = 2 * W - gx - 1;
    return a[idx2(gy - y0, gx - x0)];
  };
  for (int y = 0; y < h; ++y)
    for (int x = 0; x < wd; ++x) {
      size_t i = static_cast<size_t>(y) * wd + x;
      di[i] = first(a0, y, x) * 2.0 + (first(a0, y, x - 1) + first(a0, y, x + 1)) * 1.0;
      dj[i] = first(a1, y, x) * 2.0 + (first(a1, y - 1, x) + first(a1, y + 1, x)) * 1.0;
      mag[i] = std::hypot(di[i], dj[i]);
    }

  // Non-maximum suppression (skimage _get_local_maxima), the four cases in order, later ones overwriting.
  cv::Mat local = cv::Mat::zeros(H, W, CV_8U);
  auto M = [&](int y, int x) -> double {
    if (y < 0 || y >= h || x < 0 || x >= wd) return 0.0;
    return mag[static_cast<size_t>(y) * wd + x];
  };
  for (int y = 0; y < h; ++y)
    for (int x = 0; x < wd; ++x) {
      int gy = y0 + y, gx = x0 + x;
      if (gy < 1 || gy >= H - 1 || gx < 1 || gx >= W - 1) continue;  // eroded mask: not the image border
      size_t i = static_cast<size_t>(y) * wd + x;
      double m = mag[i];
      if (!(m > 0)) continue;
      double ai = std::abs(di[i]), aj = std::abs(dj[i]);
      bool horiz = ai >= aj, vert = ai <= aj;
      bool up = di[i] >= 0, down = di[i] <= 0, right = dj[i] >= 0, left = dj[i] <= 0;
      int result = -1;
      auto test = [&](double wt, double c1p, double c2p, double c1m, double c2m) {
        bool plus = c2p * wt + c1p * (1 - wt) <= m;
        bool minus = c2m * wt + c1m * (1 - wt) <= m;
        result = plus && minus;
      };
      bool pm1 = (up && right) || (down && left), pm2 = (down && right) || (up && left);
      if (pm1 && horiz) test(aj / ai, M(y + 1, x), M(y + 1, x + 1), M(y - 1, x), M(y - 1, x - 1));
      if (pm1 && vert) test(ai / aj, M(y, x + 1), M(y + 1, x + 1), M(y, x - 1), M(y - 1, x - 1));
      if (pm2 && vert) test(ai / aj, M(y, x + 1), M(y - 1, x + 1), M(y, x - 1), M(y + 1, x - 1));
      if (pm2 && horiz) test(aj / ai, M(y - 1, x), M(y - 1, x + 1), M(y + 1, x), M(y + 1, x - 1));
      if (result == 1 && m >= opt.low_threshold) local.at<uchar>(gy, gx) = m >= opt.high_threshold ? 2 : 1;
    }

  // Hysteresis: keep 8-connected components of the low mask that contain a high pixel.
  cv::Mat labels;
  int n = cv::connectedComponents(local > 0, labels, 8, CV_32S);
  if (n <= 1) return out;
  std::vector<char> good(static_cast<size_t>(n), 0);
  for (int y = y0; y < y1; ++y)
    for (int x = x0; x < x1; ++x)
      if (local.at<uchar>(y, x) == 2) good[static_cast<size_t>(labels.at<int>(y, x))] = 1;
  for (int y = y0; y < y1; ++y)
    for (int x = x0; x < x1; ++x) {
      int l = labels.at<int>(y, x);
      if (l > 0 && good[static_cast<size_t>(l)]) out.at<uchar>(y, x) = 1;
    }
  return out;
}

}  // namespace orch
