// Times the data kernels on one 1024² LH sample made from a real-shaped synthetic contour set:
//   distance maps (both classes), metrics (Dice, Jaccard, Hausdorff for lungs and heart), one augmentation.
// Usage: bench_kernels [repeats]   (prints one line per kernel: name, median ms, min ms)
// bench/reference_kernels.py times the reference's Python way on the same machine; bench/run_kernels.sh runs both.
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <functional>
#include <vector>

#include <opencv2/core/utility.hpp>

#include "core/allocator.h"
#include "core/augment.h"
#include "core/distance_map.h"
#include "core/mask.h"
#include "core/metrics.h"
#include "core/png_io.h"
#include "core/npy.h"
#include "core/synth/shape_model.h"
#include "core/synth/xray_render.h"

using namespace orch;

static void time_it(const char* name, int repeats, const std::function<void()>& fn) {
  fn();  // warm-up
  std::vector<double> ms;
  for (int i = 0; i < repeats; ++i) {
    auto t0 = std::chrono::steady_clock::now();
    fn();
    ms.push_back(std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count());
  }
  std::sort(ms.begin(), ms.end());
  std::printf("%-28s median %8.2f ms   min %8.2f ms   (%d runs)\n", name, ms[ms.size() / 2], ms.front(), repeats);
}

int main(int argc, char** argv) {
  tune_allocator();
  cv::setNumThreads(1);  // one thread, as the Python reference
  int repeats = argc > 1 ? std::atoi(argv[1]) : 15;
  const int size = 1024;
  auto layout = OrganLayout::of(DatasetKind::kLungsHeart);
  Rng rng(42);
  ShapeModel model(DatasetKind::kLungsHeart);
  Sample s;
  s.landmarks = model.sample(rng, size);
  s.image = render_xray(layout, s.landmarks, size, rng).image;
  s.mask = label_mask(layout, s.landmarks, size);
  s.dmaps = distance_maps(layout, s.mask);
  // A second shape as the "prediction" for the metrics.
  auto pred_pts = model.sample(rng, size);
  auto pred = organ_masks_from_points(layout, pred_pts, size);
  auto truth = organ_masks_from_labels(layout, s.mask);
  if (argc > 2) {  // also dump the inputs for the Python reference timing
    std::string dir = argv[2];
    write_png(dir + "/mask.png", s.mask);
    write_png(dir + "/image.png", s.image);
    write_png(dir + "/pred_lungs.png", pred[0]);
    write_png(dir + "/pred_heart.png", pred[1]);
    write_npy_points(dir + "/landmarks.npy", s.landmarks);
  }
  time_it("distance_maps_1024_lh", repeats, [&] { distance_maps(layout, s.mask); });
  time_it("metrics_1024_lungs_heart", repeats, [&] {
    for (int c = 0; c < 2; ++c) compare_masks(pred[c], truth[c]);
  });
  uint64_t e = 0;
  time_it("augment_1024_lh", repeats, [&] { augment(s, {}, 1, e++, 0); });
  const auto fused = AugmentOptions().with_warps(AugmentWarps::kFused);
  time_it("augment_1024_lh_fused", repeats, [&] { augment(s, fused, 1, e++, 0); });
  return 0;
}
