// Users' documentation: docs/data.md.
// A prepared data set in one HDF5 file (format version 1), readable by h5py:
//
//   /images         uint8   [N, H, W]      chunk [1, H, W], deflate 1
//   /masks          uint8   [N, H, W]      labels 0 background, 1 lungs, 2 heart; chunk [1, H, W], deflate 1
//   /distance_maps  float32 [N, C, H, W]   C = 2 (lungs, heart) for LH, 1 for L; chunk [1, C, H, W]
//   /landmarks      float32 [N, P, 2]      (x, y) divided by the image size (not clipped)
//   /ids            UTF-8 strings [N], sorted (fixed-length; older files: variable-length)
//   /split          uint8   [N]            0 train, 1 val, 2 test
//   attributes: format_version, kind ("lh"/"l"), size, organs, points_per_organ, classes, content_digest,
//               sources (JSON), created_by
//
// Written in HDF5's latest file format (checksummed metadata and chunk indices) with the strings the readers use
// stored fixed-length, so that a damaged file is refused by the library's checks or by DatasetReader's, never
// followed into undefined behaviour.
// Chunked so that one sample reads alone. DatasetWriter writes into a temporary file that commit() renames
// into place (core/atomic_file.h). DatasetReader is safe to use from several threads (the HDF5 library
// serialises calls); the writer is not.
#pragma once

#include <array>
#include <memory>
#include <string>
#include <vector>

#include "core/atomic_file.h"
#include "core/augment.h"
#include "core/digest.h"
#include "core/organs.h"
#include "storage/h5.h"

namespace orch {

constexpr int kDatasetFormatVersion = 1;
constexpr int kMinDatasetSize = 32, kMaxDatasetSize = 4096;  // pixels
// Landmarks (stored as a fraction of the image size) may lie outside the image by this much, no further: real
// annotations sit inside it; more means a damaged or mis-scaled file.
constexpr double kLandmarkMargin = 0.5;
enum class Split : uint8_t { kTrain = 0, kVal = 1, kTest = 2 };
const char* split_name(Split s);

struct DatasetInfo {
  DatasetKind kind = DatasetKind::kLungsHeart;
  int size = 0;
  int count = 0;
  std::vector<std::string> ids;
  std::vector<Split> split;
  std::string content_digest;  // over ids, splits, images and landmarks
  std::string sources;         // JSON describing how it was made

  OrganLayout layout() const { return OrganLayout::of(kind); }
  std::vector<int> indices(Split s) const;
  std::array<int, 3> split_counts() const;
};

class DatasetWriter {
 public:
  // `ids` and `split` fix the order; samples are then written by index, in any order, exactly once each.
  DatasetWriter(const std::string& path, DatasetKind kind, int size, std::vector<std::string> ids,
                std::vector<Split> split, bool overwrite, int map_deflate = 0);
  ~DatasetWriter();
  void write(int index, const Sample& sample);
  // Writes ids, splits and attributes, closes, fsyncs and renames into place. Returns the content digest.
  std::string commit(const std::string& sources_json);

 private:
  std::string path_;
  AtomicFile out_;
  DatasetKind kind_;
  int size_;
  std::vector<std::string> ids_;
  std::vector<Split> split_;
  std::vector<uint64_t> sample_digest_;
  std::vector<char> written_;
  h5::Handle file_, images_, masks_, maps_, landmarks_;
};

// Where a loader reads samples from: a prepared data set (DatasetReader) or, in tests, a source that fails the way
// a damaged chunk or an I/O error would (the seam the loader's fault tests use). read() is called from several
// threads at once.
class SampleSource {
 public:
  virtual ~SampleSource() = default;
  virtual const DatasetInfo& info() const = 0;
  virtual Sample read(int index) const = 0;
};

class DatasetReader : public SampleSource {
 public:
  // Validates the file before anything is sized from it (storage/h5.h): every dataset's shape and type against
  // the attributes and /ids. Throws InputError naming the file and what is wrong.
  explicit DatasetReader(const std::string& path);
  const DatasetInfo& info() const override { return info_; }
  const std::string& path() const { return path_; }
  // Sample i with landmarks back in pixels of the stored size. Checks its values: mask labels, distance maps in
  // [0, 1], landmarks finite and inside the image plus kLandmarkMargin (InputError naming the sample).
  Sample read(int index) const override;

 private:
  std::string path_;
  DatasetInfo info_;
  h5::Handle file_, images_, masks_, maps_, landmarks_;
};

}  // namespace orch
