// A preview PNG of a prepared data set: for a few samples, the X-ray with its contours (RL red, LL green,
// H blue; the label mask's outline in yellow) and each class's distance map (viridis, 0 on the contour).
// Stateless.
#pragma once

#include <string>

#include "storage/dataset_file.h"

namespace orch {

// Writes rows for up to `count` samples (test split first) with tiles of at most `tile` pixels.
void write_dataset_preview(const DatasetReader& data, const std::string& png_path, int count = 4, int tile = 256);

}  // namespace orch
