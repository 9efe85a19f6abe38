// Users' documentation: docs/report.md ("Convergence").
// Whether a run's training reached a plateau: its validation criterion improved by less than a threshold (1 %)
// over the last fifth of its epochs. The report shows it per run (the run list, runs.csv, a mark in the training
// curves) so that a comparison of networks trained for a fixed budget says which of them were still improving
// (issue 20: the demo once compared converged baselines with joint networks still learning at their last epoch).
// Pure functions on values; thread-safe.
#pragma once

#include <cstdint>
#include <utility>
#include <vector>

namespace orch {

struct PlateauOptions {
  double threshold = 0.01;     // relative improvement below which the criterion counts as flat
  double last_fraction = 0.2;  // the window: this fraction of the run's epochs, at its end
};

struct Plateau {
  bool measured = false;     // false: too few validations (none before the window, or none in it)
  bool reached = false;      // improvement < threshold
  double improvement = 0;    // the best value at the end over the best before the window, relative (0.05: 5 % better)
  int64_t window_start = 0;  // the window is epochs (window_start, last epoch]: the last ceil(fraction x epochs)
  int64_t flat_from = 0;     // the first epoch from which the best stayed within the threshold of the final best
};

// `series`: (epoch, validation criterion) in epoch order, non-finite values ignored; `last_epoch`: the run's last
// trained epoch (validations may be sparser than epochs).
Plateau measure_plateau(const std::vector<std::pair<int64_t, double>>& series, int64_t last_epoch, bool higher_is_better,
                        const PlateauOptions& options = {});

}  // namespace orch
