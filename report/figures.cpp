#include "report/figures.h"

#include <cairo.h>

#include <opencv2/imgproc.hpp>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <functional>
#include <map>
#include <set>

#include "core/atomic_file.h"
#include "core/errors.h"
#include "core/mask.h"
#include "core/metrics.h"
#include "storage/dataset_file.h"
#include "storage/layout.h"
#include "storage/predictions.h"
#include "storage/workspace.h"

namespace orch::report {

namespace fs = std::filesystem;

namespace {

struct Surface {
  cairo_surface_t* s;
  cairo_t* cr;
  Surface(int w, int h) {
    s = cairo_image_surface_create(CAIRO_FORMAT_RGB24, w, h);
    cr = cairo_create(s);
    cairo_set_source_rgb(cr, 1, 1, 1);
    cairo_paint(cr);
  }
  ~Surface() {
    cairo_destroy(cr);
    cairo_surface_destroy(s);
  }
  void save(const std::string& path) {
    cairo_surface_flush(s);
    AtomicFile out(path, true);  // a temporary of this process's own ("<path>.tmp-<pid>"), renamed into place
    if (cairo_surface_write_to_png(s, out.temp_path().c_str()) != CAIRO_STATUS_SUCCESS) throw Error(path + ": cannot write PNG");
    out.commit();
  }
};

void text(cairo_t* cr, double x, double y, const std::string& t, double size, bool centre = false) {
  cairo_select_font_face(cr, "sans-serif", CAIRO_FONT_SLANT_NORMAL, CAIRO_FONT_WEIGHT_NORMAL);
  cairo_set_font_size(cr, size);
  cairo_text_extents_t e;
  cairo_text_extents(cr, t.c_str(), &e);
  cairo_move_to(cr, centre ? x - e.width / 2 - e.x_bearing : x, y);
  cairo_show_text(cr, t.c_str());
}

// A grey image (CV_8UC1) painted at (x, y) scaled to `tile` px.
void paint_image(cairo_t* cr, const cv::Mat& grey, double x, double y, double tile) {
  cairo_surface_t* img = cairo_image_surface_create(CAIRO_FORMAT_RGB24, grey.cols, grey.rows);
  cairo_surface_flush(img);
  unsigned char* data = cairo_image_surface_get_data(img);
  const int stride = cairo_image_surface_get_stride(img);
  for (int r = 0; r < grey.rows; ++r) {
    uint32_t* row = reinterpret_cast<uint32_t*>(data + r * stride);
    for (int c = 0; c < grey.cols; ++c) {
      uint32_t v = grey.at<uint8_t>(r, c);
      row[c] = (v << 16) | (v << 8) | v;
    }
  }
  cairo_surface_mark_dirty(img);
  cairo_save(cr);
  cairo_translate(cr, x, y);
  cairo_scale(cr, tile / grey.cols, tile / grey.rows);
  cairo_set_source_surface(cr, img, 0, 0);
  cairo_pattern_set_filter(cairo_get_source(cr), CAIRO_FILTER_BILINEAR);
  cairo_paint(cr);
  cairo_restore(cr);
  cairo_surface_destroy(img);
}

void stroke_polygon(cairo_t* cr, const std::vector<Point2>& pts, double x, double y, double scale) {
  if (pts.empty()) return;
  for (const auto& p : pts)  // a diverged network's points: nothing to draw
    if (!std::isfinite(p.x) || !std::isfinite(p.y) || std::abs(p.x) > 1e6 || std::abs(p.y) > 1e6) return;
  cairo_move_to(cr, x + pts[0].x * scale, y + pts[0].y * scale);
  for (size_t i = 1; i < pts.size(); ++i) cairo_line_to(cr, x + pts[i].x * scale, y + pts[i].y * scale);
  cairo_close_path(cr);
  cairo_stroke(cr);
}

void stroke_mask(cairo_t* cr, const cv::Mat& binary, double x, double y, double scale) {
  std::vector<std::vector<cv::Point>> contours;
  cv::Mat m = binary.clone();
  cv::findContours(m, contours, cv::RETR_EXTERNAL, cv::CHAIN_APPROX_SIMPLE);
  for (const auto& c : contours) {
    std::vector<Point2> p;
    for (const auto& q : c) p.push_back({q.x + 0.5, q.y + 0.5});
    stroke_polygon(cr, p, x, y, scale);
  }
}

}  // namespace

namespace {

// The median models' predictions that can be shown over this data set (a missing or foreign file: a warning).
std::vector<std::pair<Predictions, const FigureRun*>> readable_predictions(const std::string& workspace,
                                                                          const DatasetReader& data,
                                                                          const std::vector<FigureRun>& runs,
                                                                          const std::function<void(const std::string&)>& warn) {
  std::vector<std::pair<Predictions, const FigureRun*>> out;
  for (const auto& r : runs) {
    std::string p = WorkspaceLayout(workspace).predictions(r.run_id);
    if (!fs::exists(p)) {
      warn(r.label + " (" + r.run_id + ") left out of the qualitative figure: " + p + " is missing");
      continue;
    }
    try {
      Predictions pr = read_predictions(p);
      if (pr.kind != kind_name(data.info().kind) || pr.size != data.info().size || pr.run_id != r.run_id)
        throw InputError(p, "", "", "belongs to another run, data set kind or size (" + pr.run_id + ", " + pr.kind + ", " +
                                        std::to_string(pr.size) + " px)");
      out.emplace_back(std::move(pr), &r);
    } catch (const std::exception& e) {
      warn(r.label + " (" + r.run_id + ") left out of the qualitative figure: " + brief_reason(e.what()));
    }
  }
  return out;
}

// The test images where the networks differ most (the spread of their lung Dice), most first.
std::vector<std::string> most_disputed(const std::vector<std::pair<Predictions, const FigureRun*>>& preds,
                                       const DatasetReader& data, const std::map<std::string, int>& index_of) {
  const OrganLayout layout = OrganLayout::of(data.info().kind);
  std::map<std::string, std::vector<double>> dice;
  for (const auto& [p, run] : preds)
    for (size_t i = 0; i < p.ids.size(); ++i) {
      auto it = index_of.find(p.ids[i]);
      if (it == index_of.end()) continue;
      Sample s = data.read(it->second);
      cv::Mat truth = organ_masks_from_labels(layout, s.mask)[0];
      cv::Mat pred = p.on_points() ? organ_masks_from_points(layout, denormalise_points(p.points[i], p.size), p.size)[0]
                                   : organ_masks_from_labels(layout, p.masks[i])[0];
      dice[p.ids[i]].push_back(compare_masks(pred, truth).dice);
    }
  std::vector<std::pair<double, std::string>> spread;
  for (auto& [id, v] : dice) spread.push_back({*std::max_element(v.begin(), v.end()) - *std::min_element(v.begin(), v.end()), id});
  std::sort(spread.begin(), spread.end(), [](auto& a, auto& b) { return a.first > b.first || (a.first == b.first && a.second < b.second); });
  std::vector<std::string> out;
  for (auto& [d, id] : spread) out.push_back(id);
  return out;
}

// One tile: the image, its ground truth (green) and the prediction for it (red), clipped to the tile.
void draw_tile(cairo_t* cr, const Sample& s, const std::vector<cv::Mat>& truth, const Predictions& p,
               const OrganLayout& layout, double x, double y, double tile) {
  cairo_save(cr);
  cairo_rectangle(cr, x, y, tile, tile);
  cairo_clip(cr);  // predictions far off the image stay inside their tile
  paint_image(cr, s.image, x, y, tile);
  cairo_set_line_width(cr, 1.4);
  cairo_set_source_rgb(cr, 0.1, 0.85, 0.2);
  for (const auto& m : truth) stroke_mask(cr, m, x, y, tile / s.image.cols);
  auto it = std::find(p.ids.begin(), p.ids.end(), s.id);
  if (it != p.ids.end()) {
    const size_t i = static_cast<size_t>(it - p.ids.begin());
    cairo_set_source_rgb(cr, 0.95, 0.15, 0.15);
    if (p.on_points()) {
      auto px = denormalise_points(p.points[i], p.size);
      for (size_t o = 0; o < layout.organs.size(); ++o) stroke_polygon(cr, organ_points(layout, px, static_cast<int>(o)), x, y, tile / p.size);
    } else {
      for (const auto& m : organ_masks_from_labels(layout, p.masks[i])) stroke_mask(cr, m, x, y, tile / p.size);
    }
  }
  cairo_restore(cr);
}

}  // namespace

bool draw_qualitative(const std::string& workspace, const DatasetSpec& ds, const std::vector<FigureRun>& runs,
                      int images, const std::string& png, std::vector<std::string>* warnings) {
  const std::string data_path = dataset_path(workspace, ds.name);
  if (!fs::exists(data_path)) return false;
  DatasetReader data(data_path);
  const OrganLayout layout = OrganLayout::of(data.info().kind);
  std::map<std::string, int> index_of;
  for (int i = 0; i < data.info().count; ++i) index_of[data.info().ids[i]] = i;
  const auto preds = readable_predictions(workspace, data, runs, [&](const std::string& w) {
    if (warnings) warnings->push_back(w);
  });
  if (preds.empty()) return false;
  const std::vector<std::string> chosen = most_disputed(preds, data, index_of);
  const int n_img = std::min<int>(images, static_cast<int>(chosen.size()));
  const double tile = 180, pad = 6, head = 34, left = 90;
  Surface S(static_cast<int>(left + preds.size() * (tile + pad)), static_cast<int>(head + n_img * (tile + pad) + 24));
  cairo_t* cr = S.cr;
  cairo_set_source_rgb(cr, 0, 0, 0);
  for (size_t c = 0; c < preds.size(); ++c) text(cr, left + c * (tile + pad) + tile / 2, 22, preds[c].second->label, 13, true);
  for (int r = 0; r < n_img; ++r) {
    const std::string& id = chosen[static_cast<size_t>(r)];
    Sample s = data.read(index_of.at(id));
    const double y = head + r * (tile + pad);
    cairo_set_source_rgb(cr, 0, 0, 0);
    text(cr, 6, y + tile / 2, id, 11);
    const auto truth = organ_masks_from_labels(layout, s.mask);
    for (size_t c = 0; c < preds.size(); ++c) draw_tile(cr, s, truth, preds[c].first, layout, left + c * (tile + pad), y, tile);
  }
  cairo_set_source_rgb(cr, 0, 0, 0);
  text(cr, 6, head + n_img * (tile + pad) + 14,
       "green: ground truth; red: median model's prediction (contours of points, boundaries of dense masks)", 11);
  S.save(png);
  return true;
}

namespace {

// Tick positions: about `want` round values (1, 2 or 5 times a power of ten) spanning [lo, hi].
std::vector<double> linear_ticks(double lo, double hi, int want) {
  const double raw = (hi - lo) / std::max(1, want);
  const double mag = std::pow(10.0, std::floor(std::log10(std::max(raw, 1e-12))));
  double step = mag;
  for (double m : {1.0, 2.0, 5.0, 10.0})
    if (raw <= m * mag) {
      step = m * mag;
      break;
    }
  std::vector<double> out;
  for (double v = std::ceil(lo / step) * step; v <= hi + 1e-9; v += step) out.push_back(v);
  return out;
}

// Ticks of a log axis: the decades in [lo, hi], and 2 and 5 times them when fewer than three decades show.
std::vector<double> log_ticks(double lo, double hi) {
  std::vector<double> out;
  const int a = static_cast<int>(std::floor(std::log10(lo))), b = static_cast<int>(std::ceil(std::log10(hi)));
  const bool fine = b - a < 3;
  for (int k = a; k <= b; ++k)
    for (double m : fine ? std::vector<double>{1, 2, 5} : std::vector<double>{1}) {
      const double v = m * std::pow(10.0, k);
      if (v >= lo * 0.999 && v <= hi * 1.001) out.push_back(v);
    }
  return out;
}

std::string tick_text(double v) {
  char b[32];
  if (v >= 0.01 && v < 1000) std::snprintf(b, sizeof b, "%g", v);
  else std::snprintf(b, sizeof b, "%.0e", v);
  return b;
}

}  // namespace

namespace {

// One network's panel of the training-curves figure: where it lies on the page and how epochs and (log-scale)
// values map to its plot area.
struct CurvePanel {
  static constexpr double kW = 300, kH = 200, kPad = 16;
  static constexpr double kLeft = 46, kRight = 8, kTop = 22, kBottom = 30;  // room for the labels
  double x0 = 0, y0 = 0, px0 = 0, px1 = 0, py0 = 0, py1 = 0;
  double lo = 1e300, hi = -1e300, emax = 1;
  CurvePanel(double x, double y) : x0(x), y0(y), px0(x + kLeft), px1(x + kW - kRight), py0(y + kTop), py1(y + kH - kBottom) {}
  bool empty() const { return lo > hi; }
  double px(double e) const { return px0 + (e - 1) / std::max(1.0, emax - 1) * (px1 - px0); }
  double py(double v) const {
    return py1 - (std::log10(v) - std::log10(lo)) / std::max(1e-12, std::log10(hi) - std::log10(lo)) * (py1 - py0);
  }
};

bool plottable(double v) { return v > 0 && std::isfinite(v); }

// The value range and last epoch of a network's runs (widened when narrower than 1.5x, so a flat curve shows).
void fit_range(CurvePanel& p, const std::vector<const CurveRun*>& mine) {
  for (const CurveRun* r : mine)
    for (const auto& e : r->epochs) {
      for (double v : {e.train_loss, e.val_criterion})
        if (plottable(v)) p.lo = std::min(p.lo, v), p.hi = std::max(p.hi, v);
      p.emax = std::max(p.emax, static_cast<double>(e.epoch));
    }
  if (!p.empty() && p.hi / p.lo < 1.5) p.lo /= 1.25, p.hi *= 1.25;
}

void draw_axes(cairo_t* cr, const CurvePanel& p) {
  cairo_set_line_width(cr, 0.8);
  cairo_set_source_rgb(cr, 0.3, 0.3, 0.3);
  cairo_move_to(cr, p.px0, p.py0);
  cairo_line_to(cr, p.px0, p.py1);
  cairo_line_to(cr, p.px1, p.py1);
  cairo_stroke(cr);
  for (double e : linear_ticks(1, p.emax, 5)) {
    if (e < 1) continue;
    cairo_move_to(cr, p.px(e), p.py1);
    cairo_line_to(cr, p.px(e), p.py1 + 3);
    cairo_stroke(cr);
    text(cr, p.px(e), p.py1 + 13, tick_text(e), 9, true);
  }
  text(cr, (p.px0 + p.px1) / 2, p.py1 + 25, "epoch", 9, true);
  for (double v : log_ticks(p.lo, p.hi)) {
    cairo_set_source_rgb(cr, 0.88, 0.88, 0.88);
    cairo_move_to(cr, p.px0, p.py(v));
    cairo_line_to(cr, p.px1, p.py(v));
    cairo_stroke(cr);
    cairo_set_source_rgb(cr, 0.3, 0.3, 0.3);
    text(cr, p.x0 + 16, p.py(v) + 3, tick_text(v), 9);
  }
  cairo_save(cr);
  cairo_translate(cr, p.x0 + 10, (p.py0 + p.py1) / 2 + 18);
  cairo_rotate(cr, -M_PI / 2);
  text(cr, 0, 0, "log scale", 8);
  cairo_restore(cr);
}

// A dot on the validation curve at the epoch from which the run's criterion stayed flat (core/plateau.h).
void mark_plateau(cairo_t* cr, const CurveRun& run, const CurvePanel& p) {
  if (!run.plateau.measured || !run.plateau.reached) return;
  for (const auto& e : run.epochs)
    if (e.epoch == run.plateau.flat_from && plottable(e.val_criterion)) {
      cairo_arc(cr, p.px(static_cast<double>(e.epoch)), p.py(e.val_criterion), 3.5, 0, 2 * M_PI);
      cairo_fill(cr);
    }
}

// One run's two curves (train loss solid, validation criterion dashed), its plateau dot and its seed's label, in
// the colour of its position `k` among the network's runs.
void draw_run(cairo_t* cr, const CurvePanel& p, const CurveRun& run, size_t k) {
  static const double colours[6][3] = {{0.12, 0.47, 0.71}, {1.0, 0.5, 0.05}, {0.17, 0.63, 0.17},
                                       {0.84, 0.15, 0.16}, {0.58, 0.4, 0.74}, {0.55, 0.34, 0.29}};
  const double* c = colours[k % 6];
  cairo_set_source_rgb(cr, c[0], c[1], c[2]);
  cairo_set_line_width(cr, 1.3);
  for (int series = 0; series < 2; ++series) {
    const double dash[] = {4, 3};
    cairo_set_dash(cr, series == 1 ? dash : nullptr, series == 1 ? 2 : 0, 0);
    bool started = false;
    for (const auto& e : run.epochs) {
      const double v = series == 0 ? e.train_loss : e.val_criterion;
      if (!plottable(v)) continue;
      if (!started) cairo_move_to(cr, p.px(static_cast<double>(e.epoch)), p.py(v));
      else cairo_line_to(cr, p.px(static_cast<double>(e.epoch)), p.py(v));
      started = true;
    }
    cairo_stroke(cr);
  }
  cairo_set_dash(cr, nullptr, 0, 0);
  mark_plateau(cr, run, p);
  const std::string seed = "s" + std::to_string(run.seed) + (run.plateau.measured && !run.plateau.reached ? " improving" : "");
  text(cr, p.px1 - 70, p.y0 + 14 + 10 * static_cast<double>(k), seed, 9);
}

}  // namespace

void draw_curves(const std::string& dataset, const std::vector<CurveRun>& runs, const std::string& png) {
  std::vector<std::string> models;  // in the order of their first run
  std::map<std::string, std::vector<const CurveRun*>> of;
  for (const auto& r : runs) {
    if (!of.count(r.model)) models.push_back(r.model);
    of[r.model].push_back(&r);
  }
  using P = CurvePanel;
  const int cols = 4, rows_n = static_cast<int>((models.size() + cols - 1) / cols);
  Surface S(static_cast<int>(cols * (P::kW + P::kPad) + P::kPad), static_cast<int>(rows_n * (P::kH + P::kPad) + P::kPad + 40));
  cairo_t* cr = S.cr;
  cairo_set_source_rgb(cr, 0, 0, 0);
  text(cr, P::kPad, 20, "Training curves, " + dataset + ": train loss (solid) and validation criterion (dashed) per "
                        "epoch, log scale; one colour per seed", 13);
  text(cr, P::kPad, 37, "a dot: where the criterion went flat (within 1 % of its final best); 'improving': not flat "
                        "over the last fifth of the run's epochs", 11);
  for (size_t m = 0; m < models.size(); ++m) {
    const auto& mine = of[models[m]];
    CurvePanel p(P::kPad + (m % cols) * (P::kW + P::kPad), 40 + P::kPad + (m / cols) * (P::kH + P::kPad));
    fit_range(p, mine);
    cairo_set_source_rgb(cr, 0.97, 0.97, 0.97);
    cairo_rectangle(cr, p.x0, p.y0, P::kW, P::kH);
    cairo_fill(cr);
    cairo_set_source_rgb(cr, 0, 0, 0);
    text(cr, p.px0, p.y0 + 14, mine.front()->label, 12);
    if (p.empty()) continue;
    draw_axes(cr, p);
    for (size_t k = 0; k < mine.size(); ++k) draw_run(cr, p, *mine[k], k);
  }
  S.save(png);
}

}  // namespace orch::report
