#include "storage/predictions.h"

#include "core/atomic_file.h"
#include "core/errors.h"
#include "storage/h5.h"

namespace orch {

void write_predictions(const std::string& path, const Predictions& p) {
  const hsize_t n = p.ids.size(), s = static_cast<hsize_t>(p.size);
  if (p.masks.size() != n) throw Error(path + ": " + std::to_string(p.masks.size()) + " masks for " + std::to_string(n) + " ids");
  AtomicFile out(path, true);
  {
    h5::Handle f = h5::create_file(out.temp_path());
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
  }
  out.commit();
}

Predictions read_predictions(const std::string& path) {
  Predictions p;
  h5::Handle f = h5::open_file(path);
  p.run_id = h5::get_attr_string(f, "run_id", path);
  p.model = h5::get_attr_string(f, "model", path);
  p.dataset = h5::get_attr_string(f, "dataset", path);
  p.kind = h5::get_attr_string(f, "kind", path);
  p.evaluated = h5::get_attr_string(f, "evaluated", path);
  p.size = static_cast<int>(h5::get_attr_int(f, "size", path));
  p.ids = h5::read_strings(f, "ids", path);
  {
    h5::Handle d = h5::open_dataset(f, "masks", path);
    for (size_t i = 0; i < p.ids.size(); ++i) {
      cv::Mat m(p.size, p.size, CV_8UC1);
      h5::read_row(d, H5T_NATIVE_UINT8, i, m.data, path);
      p.masks.push_back(m);
    }
  }
  if (H5Lexists(f, "points", H5P_DEFAULT) > 0) {
    h5::Handle d = h5::open_dataset(f, "points", path);
    auto dims = h5::dataset_dims(d);
    if (dims.size() != 3 || dims[0] != p.ids.size() || dims[2] != 2) throw InputError(path, "/points", "", "unexpected shape");
    std::vector<float> all(dims[0] * dims[1] * 2);
    if (!all.empty()) h5::read_all(d, H5T_NATIVE_FLOAT, all.data(), path);
    for (size_t i = 0; i < dims[0]; ++i)
      p.points.emplace_back(all.begin() + i * dims[1] * 2, all.begin() + (i + 1) * dims[1] * 2);
  }
  return p;
}

}  // namespace orch
