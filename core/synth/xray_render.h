// Renders a synthetic chest X-ray for a set of contours.
//
// Body and soft tissue, darker textured lungs with ribs and vessels, a brighter heart and mediastinum, spine
// and clavicles, noise, contrast and gamma variation. Optionally the hard cases where dense methods produce
// holes and blobs: an occluding bright object (pacemaker-like, with a lead) over a lung, or a low-contrast
// region across a lung border. Deterministic in the Rng. Stateless; thread-safe.
#pragma once

#include <opencv2/core.hpp>
#include <string>
#include <vector>

#include "core/npy.h"
#include "core/organs.h"
#include "core/rng.h"

namespace orch {

struct RenderOptions {
  double occluder_fraction = 0.10;      // share of images with a pacemaker-like occluder
  double low_contrast_fraction = 0.10;  // share of images with a low-contrast region across a lung border
  double noise_sd = 0.02;               // pixel noise on the [0, 1] scale

  RenderOptions& occluders(double f) { occluder_fraction = f; return *this; }
  RenderOptions& low_contrast(double f) { low_contrast_fraction = f; return *this; }
};

struct RenderedXray {
  cv::Mat image;  // CV_8UC1, size x size
  bool occluder = false;
  bool low_contrast = false;
};

RenderedXray render_xray(const OrganLayout& layout, const std::vector<Point2>& landmarks, int size, Rng& rng,
                         const RenderOptions& options = {});

}  // namespace orch
