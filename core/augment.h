// The training augmentation of spec §1.6 and the tensor-ready form of a sample (spec §1.5).
//
// RandomScale (anisotropic, then crop or pad back to the working size) -> Rotate(±3°) -> AugColor (gamma LUT
// and Gaussian noise), applied together to the image, the label mask, the distance maps and the landmarks.
// Every draw comes from Rng::derive(seed, {epoch, sample index}), so a sample's augmentation depends on
// nothing else (not on threads, batch composition or resume point). Stateless functions; thread-safe.
//
// Mask resampling (the reference's quirk, spec §1.6 and §7.17): the reference resizes and rotates the label
// mask bilinearly (with anti-aliasing when shrinking) and truncates it to int, which erodes label edges and
// leaves a 1-pixel lung label on the heart border. MaskResampling::kReference reproduces it (default, for
// fidelity); kNearest resamples labels with nearest neighbour and keeps them clean.
#pragma once

#include <opencv2/core.hpp>
#include <cstdint>
#include <string>
#include <vector>

#include "core/npy.h"

namespace orch {

enum class MaskResampling { kReference, kNearest };

// How the scale, the crop or pad and the rotation resample the channels. kStepwise is the reference's order: a
// scikit-image resize, a crop or pad, then a rotation, each channel on its own (two interpolations; about 30 ms of
// a core at 1024²). kFused composes the three into one affine map and warps the image, the mask and the maps as
// the channels of one array in a single pass (one interpolation, after the same anti-aliasing blur when
// shrinking); it takes the same random draws, so a sample differs from kStepwise by interpolation error only
// (tests: Augment.Fused*), and writes the image's gamma and noise in the same pass.
enum class AugmentWarps { kStepwise, kFused };

struct AugmentOptions {
  double min_scale = 0.80;            // lower bound of the scale draws (upper: size / landmark bbox extent)
  double max_rotation_deg = 3.0;      // θ ~ U(-max, +max)
  double gamma_min = 0.60, gamma_max = 1.20;
  double noise_sd = 1.0 / 128.0;      // additive Gaussian noise on the [0, 1] image, no clipping afterwards
  MaskResampling mask_resampling = MaskResampling::kReference;
  AugmentWarps warps = AugmentWarps::kStepwise;

  AugmentOptions& rotation(double deg) { max_rotation_deg = deg; return *this; }
  AugmentOptions& noise(double sd) { noise_sd = sd; return *this; }
  AugmentOptions& masks(MaskResampling m) { mask_resampling = m; return *this; }
  AugmentOptions& with_warps(AugmentWarps w) { warps = w; return *this; }
};

// A stored sample at the working size (what the HDF5 data set holds).
struct Sample {
  std::string id;
  cv::Mat image;                  // CV_8UC1, size x size
  cv::Mat mask;                   // CV_8UC1 labels
  std::vector<cv::Mat> dmaps;     // CV_32FC1 per foreground class
  std::vector<Point2> landmarks;  // pixels of the working size
};

// What the network sees: image in [0, 1] (plus noise when augmented), labels, maps, normalised landmarks.
struct TrainingSample {
  std::string id;
  cv::Mat image;                 // CV_32FC1
  cv::Mat mask;                  // CV_8UC1
  std::vector<cv::Mat> dmaps;    // CV_32FC1
  std::vector<float> landmarks;  // P x 2, (x, y) / size, clipped to [0, 1]
};

// No augmentation (validation, test): image / 255, landmarks / size clipped to [0, 1].
TrainingSample to_training_sample(const Sample& s);

// The augmentation of one training sample, determined by (seed, epoch, index).
TrainingSample augment(const Sample& s, const AugmentOptions& options, uint64_t seed, uint64_t epoch,
                       uint64_t index);

}  // namespace orch
