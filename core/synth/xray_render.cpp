#include "core/synth/xray_render.h"

#include <opencv2/imgproc.hpp>

#include <algorithm>
#include <cmath>

#include "core/mask.h"

namespace orch {

namespace {

constexpr int kShift = 4;  // sub-pixel bits for OpenCV drawing
cv::Point fp(double x, double y) { return {static_cast<int>(std::lround(x * 16)), static_cast<int>(std::lround(y * 16))}; }

cv::Mat polygon_mask(const std::vector<Point2>& pts, int size) {
  cv::Mat m = cv::Mat::zeros(size, size, CV_32F);
  std::vector<cv::Point> p;
  for (const auto& q : pts) p.push_back(fp(q.x, q.y));
  cv::fillPoly(m, std::vector<std::vector<cv::Point>>{p}, cv::Scalar(1.0), cv::LINE_AA, kShift);
  return m;
}

// Smooth random texture: white noise blurred at `scale` pixels, normalised to zero mean and unit sd.
cv::Mat texture(int size, double scale, Rng& rng) {
  cv::Mat n(size, size, CV_32F);
  cv::RNG cvr(rng.next());
  cvr.fill(n, cv::RNG::NORMAL, 0, 1);
  cv::GaussianBlur(n, n, {0, 0}, std::max(0.5, scale));
  cv::Scalar mean, sd;
  cv::meanStdDev(n, mean, sd);
  return (n - mean[0]) / std::max(1e-6, sd[0]);
}

void blur(cv::Mat& m, double sigma) {
  if (sigma > 0.3) cv::GaussianBlur(m, m, {0, 0}, sigma);
}

struct Box {
  double x0, y0, x1, y1;
};
Box bbox(const std::vector<Point2>& pts) {
  Box b{1e300, 1e300, -1e300, -1e300};
  for (const auto& p : pts) {
    b.x0 = std::min(b.x0, p.x); b.y0 = std::min(b.y0, p.y);
    b.x1 = std::max(b.x1, p.x); b.y1 = std::max(b.y1, p.y);
  }
  return b;
}

}  // namespace

RenderedXray render_xray(const OrganLayout& layout, const std::vector<Point2>& lm, int size, Rng& rng,
                         const RenderOptions& opt) {
  const double u = size / 1024.0;  // drawing unit: one pixel of the 1024 frame
  auto rl = organ_points(layout, lm, 0), ll = organ_points(layout, lm, 1);
  Box brl = bbox(rl), bll = bbox(ll);
  Box lungs{std::min(brl.x0, bll.x0), std::min(brl.y0, bll.y0), std::max(brl.x1, bll.x1), std::max(brl.y1, bll.y1)};
  double cx = (brl.x1 + bll.x0) / 2;  // midline between the lungs

  cv::Mat img(size, size, CV_32F, cv::Scalar(0.04));
  // Body: a wide rounded thorax with shoulders, brighter towards the abdomen.
  cv::Mat body = cv::Mat::zeros(size, size, CV_32F);
  double bw = (lungs.x1 - lungs.x0) * rng.uniform(0.60, 0.70), bh = (lungs.y1 - lungs.y0) * rng.uniform(0.85, 1.0);
  cv::ellipse(body, fp(cx, lungs.y0 + 0.55 * (lungs.y1 - lungs.y0)), cv::Size(static_cast<int>(bw * 16), static_cast<int>(bh * 16)),
              0, 0, 360, cv::Scalar(1.0), cv::FILLED, cv::LINE_AA, kShift);
  cv::rectangle(body, fp(lungs.x0 - 60 * u, lungs.y0 + 0.45 * (lungs.y1 - lungs.y0)), fp(lungs.x1 + 60 * u, size + 10),
                cv::Scalar(1.0), cv::FILLED, cv::LINE_AA, kShift);
  blur(body, 25 * u);
  cv::Mat ramp(size, size, CV_32F);
  for (int y = 0; y < size; ++y) ramp.row(y).setTo(0.45 + 0.25 * y / size);
  img += body.mul(ramp + 0.05 * texture(size, 40 * u, rng));

  // Lungs: darker, with a fine texture and vessels fanning out from the hila.
  cv::Mat lung_m = polygon_mask(rl, size) + polygon_mask(ll, size);
  cv::min(lung_m, 1.0, lung_m);
  blur(lung_m, 3 * u);
  double lung_dark = rng.uniform(0.28, 0.40);
  cv::Mat lung_tex = 0.04 * texture(size, 6 * u, rng) + 0.03 * texture(size, 20 * u, rng);
  cv::Mat vessels = cv::Mat::zeros(size, size, CV_32F);
  for (int side = 0; side < 2; ++side) {
    const Box& b = side == 0 ? brl : bll;
    double hx = side == 0 ? b.x1 - 0.15 * (b.x1 - b.x0) : b.x0 + 0.15 * (b.x1 - b.x0);
    double hy = b.y0 + 0.45 * (b.y1 - b.y0);
    for (int k = 0; k < 9; ++k) {
      double ang = rng.uniform(-2.6, 2.6) + (side == 0 ? M_PI : 0);
      double len = rng.uniform(0.3, 0.7) * (b.x1 - b.x0);
      cv::line(vessels, fp(hx, hy), fp(hx + len * std::cos(ang), hy + len * std::sin(ang) * 1.4), cv::Scalar(1.0),
               std::max(1, static_cast<int>(4 * u)), cv::LINE_AA, kShift);
    }
  }
  blur(vessels, 3 * u);
  img -= lung_m.mul(lung_dark - lung_tex - 0.06 * vessels);

  // Ribs: bright arcs across both lungs, posterior ribs curving down from the spine.
  cv::Mat ribs = cv::Mat::zeros(size, size, CV_32F);
  int n_ribs = 9;
  double rib_step = (lungs.y1 - lungs.y0) / (n_ribs + 1.0);
  double rib_t = std::max(1.0, 14 * u * rng.uniform(0.8, 1.2));
  for (int side = 0; side < 2; ++side) {
    const Box& b = side == 0 ? brl : bll;
    double dir = side == 0 ? -1 : 1;
    for (int k = 0; k < n_ribs; ++k) {
      double y0 = lungs.y0 + (k + 0.6) * rib_step + rng.normal(0, 4 * u);
      std::vector<cv::Point> arc;
      double width = (b.x1 - b.x0) * 1.05;
      for (int t = 0; t <= 24; ++t) {
        double f = t / 24.0;
        double x = cx + dir * (0.05 * width + f * width);
        double y = y0 - 0.9 * rib_step * std::sin(f * M_PI * 0.9) + 0.6 * rib_step * f;
        arc.push_back(fp(x, y));
      }
      cv::polylines(ribs, arc, false, cv::Scalar(1.0), static_cast<int>(rib_t), cv::LINE_AA, kShift);
    }
  }
  blur(ribs, 2.5 * u);
  img += 0.10 * ribs.mul(body);

  // Mediastinum, spine and clavicles.
  cv::Mat med = cv::Mat::zeros(size, size, CV_32F);
  cv::rectangle(med, fp(cx - 45 * u, 0), fp(cx + 45 * u, lungs.y1), cv::Scalar(1.0), cv::FILLED, cv::LINE_AA, kShift);
  blur(med, 20 * u);
  img += 0.14 * med.mul(body);
  for (int side = 0; side < 2; ++side) {
    double dir = side == 0 ? -1 : 1;
    cv::Mat clav = cv::Mat::zeros(size, size, CV_32F);
    double y = lungs.y0 + rng.uniform(0.02, 0.10) * (lungs.y1 - lungs.y0);
    cv::line(clav, fp(cx + dir * 30 * u, y + 20 * u), fp(cx + dir * 330 * u, y - 25 * u), cv::Scalar(1.0),
             std::max(1, static_cast<int>(22 * u)), cv::LINE_AA, kShift);
    blur(clav, 4 * u);
    img += 0.12 * clav;
  }

  // Heart: a dense shadow over the mediastinum and the medial lungs.
  if (layout.kind == DatasetKind::kLungsHeart) {
    cv::Mat heart = polygon_mask(organ_points(layout, lm, 2), size);
    blur(heart, 4 * u);
    img += heart.mul(rng.uniform(0.12, 0.20) + 0.02 * texture(size, 15 * u, rng));
  } else {
    // Lungs-only data sets still show a heart; it is simply not annotated.
    cv::Mat heart = cv::Mat::zeros(size, size, CV_32F);
    cv::ellipse(heart, fp(cx + 40 * u, lungs.y0 + 0.72 * (lungs.y1 - lungs.y0)),
                cv::Size(static_cast<int>(170 * u * 16), static_cast<int>(130 * u * 16)), -15, 0, 360, cv::Scalar(1.0),
                cv::FILLED, cv::LINE_AA, kShift);
    blur(heart, 15 * u);
    img += 0.15 * heart;
  }

  RenderedXray out;
  // Hard case 1: a low-contrast region across a lung border (effusion- or consolidation-like): the lung is as
  // bright as the surrounding tissue there, so the border is invisible.
  if (rng.bernoulli(opt.low_contrast_fraction)) {
    out.low_contrast = true;
    const auto& lung = rng.bernoulli(0.5) ? rl : ll;
    const Point2& c = lung[static_cast<size_t>(rng.randint(10, static_cast<int64_t>(lung.size()) - 5))];
    cv::Mat blob = cv::Mat::zeros(size, size, CV_32F);
    double r = rng.uniform(60, 110) * u;
    cv::ellipse(blob, fp(c.x, c.y), cv::Size(static_cast<int>(r * 16), static_cast<int>(r * 0.8 * 16)),
                rng.uniform(0, 180), 0, 360, cv::Scalar(1.0), cv::FILLED, cv::LINE_AA, kShift);
    blur(blob, r / 4);
    img += blob.mul(lung_m) * (lung_dark * rng.uniform(0.85, 1.05));
  }
  // Hard case 2: a pacemaker-like bright occluder over a lung, with its lead running towards the heart.
  if (rng.bernoulli(opt.occluder_fraction)) {
    out.occluder = true;
    const Box& b = rng.bernoulli(0.7) ? bll : brl;
    double ox = rng.uniform(b.x0 + 0.2 * (b.x1 - b.x0), b.x1 - 0.2 * (b.x1 - b.x0));
    double oy = rng.uniform(b.y0 + 0.1 * (b.y1 - b.y0), b.y0 + 0.45 * (b.y1 - b.y0));
    cv::Mat occ = cv::Mat::zeros(size, size, CV_32F);
    cv::ellipse(occ, fp(ox, oy), cv::Size(static_cast<int>(38 * u * 16), static_cast<int>(28 * u * 16)),
                rng.uniform(-30, 30), 0, 360, cv::Scalar(1.0), cv::FILLED, cv::LINE_AA, kShift);
    std::vector<cv::Point> lead;
    double tx = cx + rng.uniform(-20, 60) * u, ty = lungs.y0 + 0.7 * (lungs.y1 - lungs.y0);
    for (int t = 0; t <= 20; ++t) {
      double f = t / 20.0;
      lead.push_back(fp(ox + (tx - ox) * f, oy + (ty - oy) * f * f - 40 * u * std::sin(f * M_PI)));
    }
    cv::polylines(occ, lead, false, cv::Scalar(0.9), std::max(1, static_cast<int>(6 * u)), cv::LINE_AA, kShift);
    blur(occ, 1.0 * u);
    cv::Mat inv = 1.0 - occ;
    img = img.mul(inv) + occ * 0.97;
  }

  // Acquisition: contrast, brightness and gamma variation, then noise.
  double contrast = rng.uniform(0.85, 1.15), bright = rng.uniform(-0.05, 0.05), gamma = rng.uniform(0.75, 1.35);
  img = img * contrast + bright;
  cv::max(img, 0.0, img);
  cv::min(img, 1.0, img);
  cv::pow(img, gamma, img);
  cv::Mat noise(size, size, CV_32F);
  cv::RNG cvr(rng.next());
  cvr.fill(noise, cv::RNG::NORMAL, 0, opt.noise_sd);
  img += noise;
  img.convertTo(out.image, CV_8U, 255.0);
  return out;
}

}  // namespace orch
