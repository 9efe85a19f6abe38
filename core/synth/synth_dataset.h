// `orchestrator synth`: a synthetic chest X-ray data set in exactly the public layout.
//
//   DIR/images/<id>.png                 8-bit grey, size x size
//   DIR/landmarks/{RL,LL,H}/<id>.npy    float64 (n, 2), (x, y) in pixels (no H for kind l)
//   DIR/splits/{train,val,test}.txt     70 / 15 / 15
// Sample i depends only on (seed, i): the same seed gives the same bytes, with any thread count. The folder
// is built under a temporary name and renamed into place, so a failure leaves nothing half-written.
#pragma once

#include <cstdint>
#include <string>

#include "core/organs.h"
#include "core/synth/shape_model.h"
#include "core/synth/xray_render.h"

namespace orch {

struct SynthOptions {
  DatasetKind kind = DatasetKind::kLungsHeart;
  int count = 100;
  int size = 256;
  uint64_t seed = 1;
  int threads = 0;  // 0: all cores
  RenderOptions render;
  ShapeModelOptions shape;

  SynthOptions& with_kind(DatasetKind k) { kind = k; return *this; }
  SynthOptions& with_count(int n) { count = n; return *this; }
  SynthOptions& with_size(int s) { size = s; return *this; }
  SynthOptions& with_seed(uint64_t s) { seed = s; return *this; }
  void validate() const;  // throws InputError naming the option and value
};

struct SynthSummary {
  int train = 0, val = 0, test = 0, occluded = 0, low_contrast = 0;
};

// How write_synthetic_dataset splits `count` images: 15 % each for val and test (at least one each), the rest
// train. Only train, val and test are set.
SynthSummary synthetic_split_sizes(int count);

// Sample ids: "<prefix>_<index, 4 digits>", prefix "synlh" or "synl".
std::string synth_id(DatasetKind kind, int index);

SynthSummary write_synthetic_dataset(const SynthOptions& options, const std::string& out_dir, bool quiet = false);

}  // namespace orch
