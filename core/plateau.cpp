#include "core/plateau.h"

#include <cmath>

namespace orch {

namespace {

// How much `now` improves on `before`, relative to |before| (positive: better).
double relative_gain(double before, double now, bool higher_is_better) {
  const double gain = higher_is_better ? now - before : before - now;
  const double scale = std::abs(before);
  return scale > 0 ? gain / scale : (gain > 0 ? INFINITY : 0);
}

}  // namespace

Plateau measure_plateau(const std::vector<std::pair<int64_t, double>>& series, int64_t last_epoch, bool higher_is_better,
                        const PlateauOptions& options) {
  Plateau p;
  // At least one epoch: the last fifth of 3 epochs is the third.
  p.window_start = last_epoch - static_cast<int64_t>(std::ceil(options.last_fraction * static_cast<double>(last_epoch)));
  auto better = [&](double a, double b) { return higher_is_better ? a > b : a < b; };
  bool have_before = false, have_in = false;
  double best_before = 0, best = 0;  // before the window; over the whole run
  for (const auto& [epoch, value] : series) {
    if (!std::isfinite(value)) continue;
    if (epoch <= p.window_start && (!have_before || better(value, best_before))) best_before = value;
    if ((!have_before && !have_in) || better(value, best)) best = value;
    (epoch <= p.window_start ? have_before : have_in) = true;
  }
  if (!have_before || !have_in) return p;
  p.measured = true;
  p.improvement = relative_gain(best_before, best, higher_is_better);
  p.reached = p.improvement < options.threshold;
  // The first epoch whose running best is within the threshold of the final best.
  bool started = false;
  double running = 0;
  for (const auto& [epoch, value] : series) {
    if (!std::isfinite(value)) continue;
    if (!started || better(value, running)) running = value;
    started = true;
    if (relative_gain(running, best, higher_is_better) < options.threshold) {
      p.flat_from = epoch;
      break;
    }
  }
  return p;
}

}  // namespace orch
