// `orchestrator prepare`: landmarks plus images (already in the landmark frame, raw JSRT, or raw PNG) into one
// HDF5 data set (storage/dataset_file.h) at a working size, with label masks and distance maps.
//
// Which samples: the ids of the split lists when given (each must have an image and every organ's landmarks),
// otherwise every image found (then split by split_seed). Landmark files of other ids are ignored and counted
// (a landmark folder usually serves several data sets). Everything is checked before any output is written;
// the output appears atomically or not at all. Bad input throws InputError naming the file and the value.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "core/distance_map.h"
#include "core/organs.h"

namespace orch {

struct PrepareOptions {
  std::string out;
  int size = 1024;
  std::string landmarks;
  std::vector<std::string> images, raw_jsrt, raw_png, splits;
  std::optional<uint64_t> split_seed;
  bool blank_images = false;  // no X-rays: zero images in the 1024 landmark frame
  std::string kind = "auto";  // lh, l, or auto (lh when every sample has heart landmarks, l when none has)
  bool overwrite = false;
  int threads = 0;            // 0: all cores
  EdgeSet edges = EdgeSet::kCanny;  // contour pixels of the distance maps (core/distance_map.h)
  int map_deflate = 0;        // deflate level for the distance maps (0: none; they compress poorly)
  bool quiet = false;
  std::string spec_digest;    // recorded in the sources attribute (workspace up-to-date checks)

  void validate() const;  // throws InputError naming the option
};

struct PrepareSummary {
  std::string path;
  DatasetKind kind = DatasetKind::kLungsHeart;
  int count = 0, train = 0, val = 0, test = 0, size = 0;
  int unused_landmark_ids = 0;  // landmark files whose id is not in this data set
  int unused_images = 0;        // images whose id is in no split list
  std::string content_digest;
  double seconds = 0;
};

PrepareSummary prepare_dataset(const PrepareOptions& options);

// The folders `options` names that do not exist ("data/raw/JSRT (raw_jsrt)"), all at once.
std::vector<std::string> missing_sources(const PrepareOptions& options);

}  // namespace orch
