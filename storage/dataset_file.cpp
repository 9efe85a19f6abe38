#include "storage/dataset_file.h"

#include <cstring>

#include <opencv2/core.hpp>

#include "core/errors.h"

namespace orch {

const char* split_name(Split s) {
  switch (s) {
    case Split::kTrain: return "train";
    case Split::kVal: return "val";
    case Split::kTest: return "test";
  }
  return "?";
}

std::vector<int> DatasetInfo::indices(Split s) const {
  std::vector<int> out;
  for (int i = 0; i < count; ++i)
    if (split[i] == s) out.push_back(i);
  return out;
}

std::array<int, 3> DatasetInfo::split_counts() const {
  std::array<int, 3> c{0, 0, 0};
  for (auto s : split) ++c[static_cast<int>(s)];
  return c;
}

DatasetWriter::DatasetWriter(const std::string& path, DatasetKind kind, int size, std::vector<std::string> ids,
                             std::vector<Split> split, bool overwrite, int map_deflate)
    : path_(path), out_(path, overwrite), kind_(kind), size_(size), ids_(std::move(ids)), split_(std::move(split)) {
  const OrganLayout layout = OrganLayout::of(kind);
  const hsize_t n = ids_.size(), s = static_cast<hsize_t>(size), c = layout.num_classes() - 1,
                p = layout.total_points();
  sample_digest_.assign(n, 0);
  written_.assign(n, 0);
  file_ = h5::create_file(out_.temp_path());
  images_ = h5::create_dataset(file_, "images", H5T_STD_U8LE, {n, s, s}, {1, s, s}, 1, path_);
  masks_ = h5::create_dataset(file_, "masks", H5T_STD_U8LE, {n, s, s}, {1, s, s}, 1, path_);
  maps_ = h5::create_dataset(file_, "distance_maps", H5T_IEEE_F32LE, {n, c, s, s}, {1, c, s, s}, map_deflate, path_);
  landmarks_ = h5::create_dataset(file_, "landmarks", H5T_IEEE_F32LE, {n, p, 2}, {std::min<hsize_t>(n, 256), p, 2},
                                  0, path_);
}

DatasetWriter::~DatasetWriter() = default;

void DatasetWriter::write(int index, const Sample& smp) {
  const OrganLayout layout = OrganLayout::of(kind_);
  const size_t plane = static_cast<size_t>(size_) * size_;
  if (smp.image.rows != size_ || smp.image.cols != size_ || !smp.image.isContinuous() || !smp.mask.isContinuous())
    throw Error(path_ + ": sample " + smp.id + " has the wrong size");
  if (static_cast<int>(smp.dmaps.size()) != layout.num_classes() - 1 ||
      static_cast<int>(smp.landmarks.size()) != layout.total_points())
    throw Error(path_ + ": sample " + smp.id + " has the wrong number of maps or points");
  h5::write_row(images_, H5T_NATIVE_UINT8, index, smp.image.data, path_);
  h5::write_row(masks_, H5T_NATIVE_UINT8, index, smp.mask.data, path_);
  std::vector<float> maps(plane * smp.dmaps.size());
  for (size_t k = 0; k < smp.dmaps.size(); ++k) std::memcpy(maps.data() + k * plane, smp.dmaps[k].data, plane * 4);
  h5::write_row(maps_, H5T_NATIVE_FLOAT, index, maps.data(), path_);
  std::vector<float> lm;
  for (const auto& q : smp.landmarks) {
    lm.push_back(static_cast<float>(q.x / size_));
    lm.push_back(static_cast<float>(q.y / size_));
  }
  h5::write_row(landmarks_, H5T_NATIVE_FLOAT, index, lm.data(), path_);
  Digest d;
  d.add(smp.id).add(smp.image.data, plane).add(lm.data(), lm.size() * 4);
  sample_digest_[index] = d.value();
  written_[index] = 1;
}

std::string DatasetWriter::commit(const std::string& sources_json) {
  for (size_t i = 0; i < written_.size(); ++i)
    if (!written_[i]) throw Error(path_ + ": sample " + ids_[i] + " was never written");
  const OrganLayout layout = OrganLayout::of(kind_);
  h5::write_fixed_strings(file_, "ids", ids_, path_);
  hsize_t n = split_.size();
  {
    h5::Handle split = h5::create_dataset(file_, "split", H5T_STD_U8LE, {n}, {}, 0, path_);
    if (n) h5::write_all(split, H5T_NATIVE_UINT8, split_.data(), path_);
  }
  Digest all;
  all.add(kind_name(kind_)).add(&size_, sizeof size_);
  for (size_t i = 0; i < n; ++i) {
    uint8_t s = static_cast<uint8_t>(split_[i]);
    all.add(&sample_digest_[i], 8).add(&s, 1);
  }
  std::vector<std::string> organs;
  std::vector<int64_t> points;
  for (const auto& o : layout.organs) {
    organs.push_back(o.name);
    points.push_back(o.points);
  }
  h5::set_attr(file_, "format_version", static_cast<int64_t>(kDatasetFormatVersion));
  h5::set_attr_fixed(file_, "kind", kind_name(kind_));
  h5::set_attr(file_, "size", static_cast<int64_t>(size_));
  h5::set_attr(file_, "organs", organs);
  h5::set_attr(file_, "points_per_organ", points);
  h5::set_attr(file_, "classes", layout.class_names());
  h5::set_attr_fixed(file_, "content_digest", all.hex());
  h5::set_attr_fixed(file_, "sources", sources_json);
  h5::set_attr_fixed(file_, "created_by", std::string("orchestrator prepare"));
  images_.reset();
  masks_.reset();
  maps_.reset();
  landmarks_.reset();
  if (H5Fflush(file_, H5F_SCOPE_GLOBAL) < 0) throw Error(path_ + ": flush failed");
  file_.reset();
  out_.commit();
  return all.hex();
}

DatasetReader::DatasetReader(const std::string& path) : path_(path) {
  file_ = h5::open_file(path);
  int64_t version = h5::get_attr_int(file_, "format_version", path);
  if (version != kDatasetFormatVersion)
    throw InputError(path, "format_version", std::to_string(version),
                     "unsupported data set format (expected " + std::to_string(kDatasetFormatVersion) + ")");
  info_.kind = parse_kind(h5::get_attr_string(file_, "kind", path), path + ": kind");
  const int64_t size = h5::get_attr_int(file_, "size", path);
  if (size < kMinDatasetSize || size > kMaxDatasetSize)
    throw InputError(path, "attribute size", std::to_string(size),
                     "expected " + std::to_string(kMinDatasetSize) + " to " + std::to_string(kMaxDatasetSize) + " pixels");
  info_.size = static_cast<int>(size);
  info_.content_digest = h5::get_attr_string(file_, "content_digest", path);
  info_.sources = h5::get_attr_string(file_, "sources", path);
  info_.ids = h5::read_strings(file_, "ids", path);
  info_.count = static_cast<int>(info_.ids.size());
  // Every dataset against the attributes and /ids, before anything is sized from them.
  const OrganLayout layout = info_.layout();
  const int64_t n = info_.count, s = info_.size, c = layout.num_classes() - 1, p = layout.total_points();
  images_ = h5::open_checked(file_, "images", h5::ValueClass::kInteger, 1, {n, s, s}, path);
  masks_ = h5::open_checked(file_, "masks", h5::ValueClass::kInteger, 1, {n, s, s}, path);
  maps_ = h5::open_checked(file_, "distance_maps", h5::ValueClass::kFloat, 0, {n, c, s, s}, path);
  landmarks_ = h5::open_checked(file_, "landmarks", h5::ValueClass::kFloat, 0, {n, p, 2}, path);
  h5::Handle split = h5::open_checked(file_, "split", h5::ValueClass::kInteger, 1, {n}, path);
  std::vector<uint8_t> v(static_cast<size_t>(info_.count));
  if (info_.count) h5::read_all(split, H5T_NATIVE_UINT8, v.data(), path);
  for (size_t i = 0; i < v.size(); ++i) {
    if (v[i] > 2) throw InputError(path, "/split[" + std::to_string(i) + "]", std::to_string(v[i]), "expected 0, 1 or 2");
    info_.split.push_back(static_cast<Split>(v[i]));
  }
}

Sample DatasetReader::read(int index) const {
  if (index < 0 || index >= info_.count) throw Error(path_ + ": sample index " + std::to_string(index) + " out of range");
  const OrganLayout layout = info_.layout();
  const int s = info_.size, c = layout.num_classes() - 1, p = layout.total_points();
  const std::string where = "sample " + std::to_string(index) + " (" + info_.ids[index] + ")";
  Sample smp;
  smp.id = info_.ids[index];
  smp.image.create(s, s, CV_8U);
  smp.mask.create(s, s, CV_8U);
  h5::read_row(images_, H5T_NATIVE_UINT8, index, smp.image.data, path_);
  h5::read_row(masks_, H5T_NATIVE_UINT8, index, smp.mask.data, path_);
  double max_label = 0;
  cv::minMaxLoc(smp.mask, nullptr, &max_label);
  if (max_label > layout.num_classes() - 1)
    throw InputError(path_, "/masks, " + where, format_number(max_label),
                     "labels are 0 to " + std::to_string(layout.num_classes() - 1));
  std::vector<float> maps(static_cast<size_t>(c) * s * s);
  h5::read_row(maps_, H5T_NATIVE_FLOAT, index, maps.data(), path_);
  for (float v : maps)
    if (!(v >= 0.0f && v <= 1.0f + 1e-4f))
      throw InputError(path_, "/distance_maps, " + where, format_number(v), "expected values in [0, 1]");
  for (int k = 0; k < c; ++k)
    smp.dmaps.push_back(cv::Mat(s, s, CV_32F, maps.data() + static_cast<size_t>(k) * s * s).clone());
  std::vector<float> lm(static_cast<size_t>(p) * 2);
  h5::read_row(landmarks_, H5T_NATIVE_FLOAT, index, lm.data(), path_);
  for (size_t i = 0; i < lm.size(); ++i)
    if (!(lm[i] >= -kLandmarkMargin && lm[i] <= 1 + kLandmarkMargin))
      throw InputError(path_, "/landmarks, " + where + ", point " + std::to_string(i / 2), format_number(lm[i]),
                       "expected a finite coordinate within the image (0 to 1 of its size) plus a margin of " +
                           format_number(kLandmarkMargin));
  for (int i = 0; i < p; ++i) smp.landmarks.push_back({lm[2 * i] * static_cast<double>(s), lm[2 * i + 1] * static_cast<double>(s)});
  return smp;
}

}  // namespace orch
