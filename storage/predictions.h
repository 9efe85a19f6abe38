// A run's test-split predictions, WORKSPACE/runs/<run-id>/predictions.h5 (readable by h5py):
//   /ids     strings [N]             test image ids, in the order evaluated (sorted)
//   /masks   uint8 [N, H, W]         label masks (0 background, 1 lungs, 2 heart): argmax for dense networks;
//                                    for point networks the polygons filled lungs over heart, as the data set's
//   /points  float32 [N, P, 2]       point networks only: final node positions, (x, y) / size like /landmarks
//   attributes: format_version, run_id, model, dataset, kind, size, evaluated ("dense" or "points")
// Metrics of point networks are computed from /points (spec §6: heart including its overlap with the lungs),
// of dense ones from /masks. Written atomically (temporary file, fsync, rename). Values only; no shared state.
#pragma once

#include "core/atomic_file.h"

#include <opencv2/core.hpp>

#include <string>
#include <vector>

namespace orch {

struct Predictions {
  std::string run_id, model, dataset, kind, evaluated = "dense";
  bool on_points() const { return evaluated == "points"; }  // the network's points were evaluated, not a dense output
  int size = 0;
  std::vector<std::string> ids;
  std::vector<cv::Mat> masks;                // CV_8UC1 size x size
  std::vector<std::vector<float>> points;    // per image P*2 values; empty for dense networks
};

// Published through `fence` when one is given (core/atomic_file.h: FencedError when it refuses).
void write_predictions(const std::string& path, const Predictions& p, const PublishFence& fence = nullptr,
                       Env& env = Env::system());
Predictions read_predictions(const std::string& path);  // throws InputError naming the file

}  // namespace orch
