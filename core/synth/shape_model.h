// A statistical shape model of the chest contours, derived from the real annotations.
//
// Mean shape and the 12 leading PCA modes (times their standard deviation) of the ngaggion/Chest-xray-
// landmark-dataset annotations (see shape_model_data.inc and scripts/derive_shape_model.py): LH from the 383
// JSRT+Padchest images (RL, LL, H), L from all 911 images (RL, LL). Samples keep the real point counts and
// ordering (point 0 at each apex, closed contours, RL on the image's left). Immutable; thread-safe.
#pragma once

#include <vector>

#include "core/npy.h"
#include "core/organs.h"
#include "core/rng.h"

namespace orch {

struct ShapeModelOptions {
  double mode_scale = 1.0;  // multiplies every mode's standard deviation
  double clip_sd = 2.5;     // coefficients are drawn N(0, 1) and clipped to ±clip_sd
};

class ShapeModel {
 public:
  explicit ShapeModel(DatasetKind kind);
  // A plausible contour set in pixels of a size x size frame (the model's 1024 frame scaled), every point inside
  // the image and the two lungs not overlapping.
  std::vector<Point2> sample(Rng& rng, int size, const ShapeModelOptions& options = {}) const;
  std::vector<Point2> mean(int size) const;
  int modes() const;

 private:
  DatasetKind kind_;
  const double* mean_;
  const double* modes_;  // modes() rows of 2 * points doubles
  int points_;
};

}  // namespace orch
