#include "storage/predictions.h"

#include "core/atomic_file.h"
#include "core/errors.h"
#include "core/organs.h"
#include "storage/h5.h"

namespace orch {

void write_predictions(const std::string& path, const Predictions& p, const PublishFence& fence, Env& env) {
  const hsize_t n = p.ids.size(), s = static_cast<hsize_t>(p.size);
  if (p.masks.size() != n) throw Error(path + ": " + std::to_string(p.masks.size()) + " masks for " + std::to_string(n) + " ids");
  AtomicFile out(path, true, env);
  {
    h5::Handle f = h5::create_memory_file();  // written out in one go below (storage/h5.h)
    h5::write_strings(f, "ids", p.ids, path);
    {
      h5::Handle d = h5::create_dataset(f, "masks", H5T_NATIVE_UINT8, {n, s, s}, {1, s, s}, 4, path);
      for (hsize_t i = 0; i < n; ++i) {
        cv::Mat m = p.masks[i].isContinuous() ? p.masks[i] : p.masks[i].clone();
        if (m.type() != CV_8UC1 || m.rows != p.size || m.cols != p.size) throw Error(path + ": mask of another size or type");
        h5::write_row(d, H5T_NATIVE_UINT8, i, m.data, path);
      }
    }
    if (!p.points.empty()) {
      if (p.points.size() != n) throw Error(path + ": points for some images only");
      const hsize_t np = p.points[0].size() / 2;
      std::vector<float> all;
      all.reserve(n * np * 2);
      for (const auto& v : p.points) {
        if (v.size() != np * 2) throw Error(path + ": point counts differ between images");
        all.insert(all.end(), v.begin(), v.end());
      }
      h5::Handle d = h5::create_dataset(f, "points", H5T_NATIVE_FLOAT, {n, np, 2}, {}, 0, path);
      if (!all.empty()) h5::write_all(d, H5T_NATIVE_FLOAT, all.data(), path);
    }
    h5::set_attr(f, "format_version", static_cast<int64_t>(1));
    h5::set_attr(f, "run_id", p.run_id);
    h5::set_attr(f, "model", p.model);
    h5::set_attr(f, "dataset", p.dataset);
    h5::set_attr(f, "kind", p.kind);
    h5::set_attr(f, "size", static_cast<int64_t>(p.size));
    h5::set_attr(f, "evaluated", p.evaluated);
    h5::save_memory_file(f, out.temp_path(), out.env());
  }
  out.commit(fence);
}

Predictions read_predictions(const std::string& path) {
  Predictions p;
  h5::Handle f = h5::open_file(path);
  const int64_t version = h5::get_attr_int(f, "format_version", path);
  if (version != 1) throw InputError(path, "attribute format_version", std::to_string(version), "expected 1");
  p.run_id = h5::get_attr_string(f, "run_id", path);
  p.model = h5::get_attr_string(f, "model", path);
  p.dataset = h5::get_attr_string(f, "dataset", path);
  p.kind = h5::get_attr_string(f, "kind", path);
  const OrganLayout layout = OrganLayout::of(parse_kind(p.kind, path + ": attribute kind"));
  p.evaluated = h5::get_attr_string(f, "evaluated", path);
  if (p.evaluated != "dense" && p.evaluated != "points")
    throw InputError(path, "attribute evaluated", p.evaluated, "expected dense or points");
  const int64_t size = h5::get_attr_int(f, "size", path);
  if (size < 32 || size > 4096) throw InputError(path, "attribute size", std::to_string(size), "expected 32 to 4096 pixels");
  p.size = static_cast<int>(size);
  p.ids = h5::read_strings(f, "ids", path);
  const int64_t n = static_cast<int64_t>(p.ids.size());
  {
    h5::Handle d = h5::open_checked(f, "masks", h5::ValueClass::kInteger, 1, {n, size, size}, path);
    for (size_t i = 0; i < p.ids.size(); ++i) {
      cv::Mat m(p.size, p.size, CV_8UC1);
      h5::read_row(d, H5T_NATIVE_UINT8, i, m.data, path);
      p.masks.push_back(m);
    }
  }
  const bool has_points = H5Lexists(f, "points", H5P_DEFAULT) > 0;
  if (p.on_points() && !has_points)
    throw InputError(path, "/points", "", "missing (the file says its metrics come from points)");
  if (has_points) {
    const int64_t np = layout.total_points();
    h5::Handle d = h5::open_checked(f, "points", h5::ValueClass::kFloat, 0, {n, np, 2}, path);
    std::vector<float> all(static_cast<size_t>(n * np * 2));
    if (!all.empty()) h5::read_all(d, H5T_NATIVE_FLOAT, all.data(), path);
    for (int64_t i = 0; i < n; ++i)
      p.points.emplace_back(all.begin() + i * np * 2, all.begin() + (i + 1) * np * 2);
  }
  return p;
}

}  // namespace orch
