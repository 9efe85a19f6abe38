#include "runner/checkpoint.h"

#include <ATen/CPUGeneratorImpl.h>
#include <torch/torch.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <sstream>
#include <type_traits>

#include "core/atomic_file.h"
#include "core/digest.h"
#include "core/errors.h"
#include "storage/h5.h"
#include "storage/layout.h"

namespace orch::runner {

namespace fs = std::filesystem;

namespace {

constexpr int64_t kFormat = 1;

hid_t h5_type(torch::ScalarType t) {
  switch (t) {
    case torch::kFloat32: return H5T_NATIVE_FLOAT;
    case torch::kFloat64: return H5T_NATIVE_DOUBLE;
    case torch::kInt64: return H5T_NATIVE_INT64;
    case torch::kUInt8: return H5T_NATIVE_UINT8;
    default: throw Error("checkpoint: unsupported tensor type");
  }
}

h5::Handle group(hid_t parent, const std::string& name) {
  hid_t g = H5Gcreate2(parent, name.c_str(), H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
  if (g < 0) throw Error("checkpoint: cannot create group " + name);
  return h5::Handle(g, H5Gclose);
}

void write_tensor(hid_t parent, const std::string& name, const torch::Tensor& t, const std::string& where) {
  torch::Tensor c = t.detach().to(torch::kCPU).contiguous();
  std::vector<hsize_t> dims(c.sizes().begin(), c.sizes().end());
  if (dims.empty()) dims = {1};
  h5::Handle ds = h5::create_dataset(parent, name, h5_type(c.scalar_type()), dims, {}, 0, where);
  if (c.numel()) h5::write_all(ds, h5_type(c.scalar_type()), c.data_ptr(), where);
}

h5::ValueClass value_class(torch::ScalarType t) {
  return t == torch::kFloat32 || t == torch::kFloat64 ? h5::ValueClass::kFloat : h5::ValueClass::kInteger;
}

// A tensor of exactly `sizes` (what the module or optimizer holds), checked against the file before allocation.
torch::Tensor read_tensor(hid_t parent, const std::string& name, torch::ScalarType type, c10::IntArrayRef sizes,
                          const std::string& where) {
  std::vector<int64_t> want(sizes.begin(), sizes.end());
  if (want.empty()) want = {1};  // scalars are written as [1]
  h5::Handle ds = h5::open_checked(parent, name, value_class(type), 0, want, where);
  torch::Tensor t = torch::empty(sizes, torch::TensorOptions().dtype(type));
  if (t.numel()) h5::read_all(ds, h5_type(type), t.data_ptr(), where);
  return t;
}

// The checksum: every dataset's name and bytes and every attribute but "checksum", objects visited in name
// order, so it can be recomputed from the file alone. Names are collected by HDF5's iterators (whose callbacks
// only record them); everything that can fail happens outside them.
herr_t collect_name(hid_t, const char* name, const void*, void* out) {
  static_cast<std::vector<std::string>*>(out)->push_back(name);
  return 0;
}
herr_t collect_attr(hid_t obj, const char* name, const H5A_info_t* info, void* out) { return collect_name(obj, name, info, out); }
herr_t collect_link(hid_t obj, const char* name, const H5L_info_t* info, void* out) { return collect_name(obj, name, info, out); }

void hash_attributes(hid_t obj, Digest& d, const std::string& path) {
  std::vector<std::string> names;
  hsize_t idx = 0;
  if (H5Aiterate2(obj, H5_INDEX_NAME, H5_ITER_INC, &idx, collect_attr, &names) < 0)
    throw InputError(path, "", "", "unreadable attributes (damaged file?)");
  for (const auto& name : names) {
    if (name == "checksum") continue;
    d.add(name);
    h5::Handle a(H5Aopen(obj, name.c_str(), H5P_DEFAULT), H5Aclose);
    h5::Handle t(H5Aget_type(a), H5Tclose);
    if (!a.valid() || !t.valid()) throw InputError(path, "attribute " + name, "", "unreadable (damaged file?)");
    if (H5Tget_class(t) == H5T_STRING) {
      d.add(h5::get_attr_string(obj, name, path));
    } else {
      int64_t v = h5::get_attr_int(obj, name, path);
      d.add(&v, 8);
    }
  }
}

void hash_group(hid_t group, Digest& d, const std::string& path, int depth) {
  if (depth > 8) throw InputError(path, "", "", "groups nested too deep (damaged file?)");
  hash_attributes(group, d, path);
  std::vector<std::string> names;
  hsize_t idx = 0;
  if (H5Literate(group, H5_INDEX_NAME, H5_ITER_INC, &idx, collect_link, &names) < 0)
    throw InputError(path, "", "", "unreadable group (damaged file?)");
  for (const auto& name : names) {
    d.add(name);
    H5O_info_t info;
    if (H5Oget_info_by_name(group, name.c_str(), &info, H5P_DEFAULT) < 0)
      throw InputError(path, "/" + name, "", "unreadable object (damaged file?)");
    if (info.type == H5O_TYPE_GROUP) {
      hash_group(h5::open_group(group, name, path), d, path, depth + 1);
      continue;
    }
    if (info.type != H5O_TYPE_DATASET) throw InputError(path, "/" + name, "", "neither a group nor a dataset");
    h5::Handle ds = h5::open_dataset(group, name, path);
    hash_attributes(ds, d, path);
    h5::Handle ft(H5Dget_type(ds), H5Tclose);
    h5::Handle mt(H5Tget_native_type(ft, H5T_DIR_ASCEND), H5Tclose);
    h5::Handle space(H5Dget_space(ds), H5Sclose);
    const hssize_t points = space.valid() ? H5Sget_simple_extent_npoints(space) : -1;
    const size_t elem = mt.valid() ? H5Tget_size(mt) : 0;
    if (points < 0 || elem == 0 || static_cast<size_t>(points) > h5::kMaxReadBytes / elem)
      throw InputError(path, "/" + name, "", "unreadable or implausibly large dataset (damaged file?)");
    std::vector<unsigned char> buf(static_cast<size_t>(points) * elem);
    if (!buf.empty() && H5Dread(ds, mt, H5S_ALL, H5S_ALL, H5P_DEFAULT, buf.data()) < 0)
      throw InputError(path, "/" + name, "", "unreadable data (damaged file?)");
    d.add(buf.data(), buf.size());
  }
}

std::string file_digest(hid_t f, const std::string& path) {
  Digest d;
  hash_group(f, d, path, 0);
  return d.hex();
}

// The optimizer's state key of a parameter: LibTorch 1.x keys by the TensorImpl address as text, 2.x by the
// address itself; deduced from the map so the worker builds against either.
template <class Map>
typename Map::key_type state_key(const Map&, const torch::Tensor& p) {
  if constexpr (std::is_same_v<typename Map::key_type, std::string>) {
    std::ostringstream s;
    s << p.unsafeGetTensorImpl();
    return s.str();
  } else {
    return p.unsafeGetTensorImpl();
  }
}

struct Loaded {
  CheckpointState state;
  std::vector<std::pair<std::string, torch::Tensor>> params, buffers;
  std::vector<std::array<torch::Tensor, 3>> adam;  // exp_avg, exp_avg_sq, max_exp_avg_sq (may be undefined)
  std::vector<int64_t> steps;
  std::vector<char> has_state;
  torch::Tensor rng;
};

double parse_criterion(const std::string& text, const std::string& path) {
  char* end = nullptr;
  const double v = std::strtod(text.c_str(), &end);
  if (text.empty() || end == text.c_str() || *end != '\0')
    throw InputError(path, "attribute best_criterion", text, "not a number");
  return v;
}

// Reads and verifies everything before anything is applied.
Loaded read_all(const std::string& path, torch::nn::Module& module, torch::optim::Adam& opt) {
  h5::Handle f = h5::open_file(path);
  if (h5::get_attr_int(f, "format_version", path) != kFormat) throw InputError(path, "attribute format_version", "", "unsupported checkpoint format");
  Loaded l;
  l.state.epoch = h5::get_attr_int(f, "epoch", path);
  l.state.batch = h5::get_attr_int(f, "batch", path);
  l.state.best_epoch = h5::get_attr_int(f, "best_epoch", path);
  if (l.state.epoch < 0 || l.state.batch < 0) throw InputError(path, "attribute epoch/batch", "", "negative position");
  l.state.best_criterion = parse_criterion(h5::get_attr_string(f, "best_criterion", path), path);
  l.state.config_hash = h5::get_attr_string(f, "config_hash", path);
  l.state.extra = h5::get_attr_string(f, "extra", path);
  {
    h5::Handle g = h5::open_group(f, "parameters", path);
    for (const auto& p : module.named_parameters())
      l.params.emplace_back(p.key(), read_tensor(g, p.key(), p.value().scalar_type(), p.value().sizes(), path));
  }
  {
    h5::Handle g = h5::open_group(f, "buffers", path);
    for (const auto& b : module.named_buffers())
      l.buffers.emplace_back(b.key(), read_tensor(g, b.key(), b.value().scalar_type(), b.value().sizes(), path));
  }
  {
    h5::Handle g = h5::open_group(f, "optimizer", path);
    size_t i = 0;
    for (auto& group : opt.param_groups())
      for (auto& p : group.params()) {
        std::string name = std::to_string(i++);
        bool has = H5Lexists(g, name.c_str(), H5P_DEFAULT) > 0;
        l.has_state.push_back(has);
        std::array<torch::Tensor, 3> st;
        int64_t step = 0;
        if (has) {
          h5::Handle pg = h5::open_group(g, name, path);
          step = h5::get_attr_int(pg, "step", path);
          st[0] = read_tensor(pg, "exp_avg", p.scalar_type(), p.sizes(), path);
          st[1] = read_tensor(pg, "exp_avg_sq", p.scalar_type(), p.sizes(), path);
          if (H5Lexists(pg, "max_exp_avg_sq", H5P_DEFAULT) > 0)
            st[2] = read_tensor(pg, "max_exp_avg_sq", p.scalar_type(), p.sizes(), path);
        }
        l.adam.push_back(st);
        l.steps.push_back(step);
      }
  }
  {
    std::vector<hsize_t> dims;
    h5::Handle r = h5::open_checked(f, "rng", h5::ValueClass::kInteger, 1, {-1}, path, &dims);
    if (dims[0] > (1u << 20)) throw InputError(path, "/rng", std::to_string(dims[0]) + " bytes", "not a generator state");
    l.rng = torch::empty({static_cast<int64_t>(dims[0])}, torch::kUInt8);
    if (dims[0]) h5::read_all(r, H5T_NATIVE_UINT8, l.rng.data_ptr(), path);
    auto gen = at::detail::getDefaultCPUGenerator();
    std::lock_guard<std::mutex> lock(gen.mutex());
    if (l.rng.numel() != gen.get_state().numel())
      throw InputError(path, "/rng", std::to_string(l.rng.numel()) + " bytes", "not a CPU generator state of this LibTorch");
  }
  std::string want = h5::get_attr_string(f, "checksum", path), got = file_digest(f, path);
  if (want != got) throw InputError(path, "checksum", want, "does not match the contents (computed " + got + "): damaged");
  return l;
}

}  // namespace

void save_checkpoint(const std::string& path, torch::nn::Module& module, torch::optim::Adam& opt,
                     const CheckpointState& s, const PublishFence& fence, Env& env) {
  AtomicFile out(path, true, env);
  {
    h5::Handle f = h5::create_memory_file();  // written out in one go below (storage/h5.h)
    {
      h5::Handle g = group(f, "parameters");
      for (const auto& p : module.named_parameters()) write_tensor(g, p.key(), p.value(), path);
    }
    {
      h5::Handle g = group(f, "buffers");
      for (const auto& b : module.named_buffers()) write_tensor(g, b.key(), b.value(), path);
    }
    {
      h5::Handle g = group(f, "optimizer");
      auto& state = opt.state();
      size_t i = 0;
      for (auto& grp : opt.param_groups())
        for (auto& p : grp.params()) {
          std::string name = std::to_string(i++);
          auto it = state.find(state_key(state, p));
          if (it == state.end()) continue;  // never stepped
          auto& st = static_cast<torch::optim::AdamParamState&>(*it->second);
          h5::Handle pg = group(g, name);
          int64_t step = st.step();
          h5::set_attr(pg, "step", step);
          write_tensor(pg, "exp_avg", st.exp_avg(), path);
          write_tensor(pg, "exp_avg_sq", st.exp_avg_sq(), path);
          if (st.max_exp_avg_sq().defined()) write_tensor(pg, "max_exp_avg_sq", st.max_exp_avg_sq(), path);
        }
    }
    {
      auto gen = at::detail::getDefaultCPUGenerator();
      std::lock_guard<std::mutex> lock(gen.mutex());
      write_tensor(f, "rng", gen.get_state(), path);
    }
    h5::set_attr(f, "format_version", kFormat);
    h5::set_attr(f, "epoch", s.epoch);
    h5::set_attr(f, "batch", s.batch);
    h5::set_attr(f, "best_epoch", s.best_epoch);
    char buf[64];
    std::snprintf(buf, sizeof buf, "%.17g", s.best_criterion);
    h5::set_attr(f, "best_criterion", std::string(buf));  // text: exact round trip, NaN/inf allowed
    h5::set_attr(f, "config_hash", s.config_hash);
    h5::set_attr(f, "extra", s.extra);
    h5::set_attr(f, "checksum", file_digest(f, path));
    h5::save_memory_file(f, out.temp_path(), out.env());
  }
  out.commit(fence);
}

CheckpointState load_checkpoint(const std::string& path, torch::nn::Module& module, torch::optim::Adam& opt) {
  Loaded l = read_all(path, module, opt);
  torch::NoGradGuard g;
  auto params = module.named_parameters();
  for (auto& [name, t] : l.params) params[name].copy_(t);
  auto buffers = module.named_buffers();
  for (auto& [name, t] : l.buffers) buffers[name].copy_(t);
  auto& state = opt.state();
  size_t i = 0;
  for (auto& grp : opt.param_groups())
    for (auto& p : grp.params()) {
      state.erase(state_key(state, p));
      if (l.has_state[i]) {
        auto st = std::make_unique<torch::optim::AdamParamState>();
        st->step(l.steps[i]);
        st->exp_avg(l.adam[i][0].to(p.device()));
        st->exp_avg_sq(l.adam[i][1].to(p.device()));
        if (l.adam[i][2].defined()) st->max_exp_avg_sq(l.adam[i][2].to(p.device()));
        state[state_key(state, p)] = std::move(st);
      }
      ++i;
    }
  {
    auto gen = at::detail::getDefaultCPUGenerator();
    std::lock_guard<std::mutex> lock(gen.mutex());
    try {
      gen.set_state(l.rng);
    } catch (const std::exception&) {
      throw InputError(path, "/rng", std::to_string(l.rng.numel()) + " bytes", "not a CPU generator state");
    }
  }
  return l.state;
}

void load_weights(const std::string& path, torch::nn::Module& module, const std::string& prefix) {
  std::string why;
  if (!verify_checkpoint(path, &why)) throw Error(path + ": " + why);
  h5::Handle f = h5::open_file(path);
  std::vector<std::pair<torch::Tensor, torch::Tensor>> copies;
  {
    h5::Handle g = h5::open_group(f, "parameters", path);
    for (const auto& p : module.named_parameters()) {
      const std::string name = prefix + p.key();
      if (H5Lexists(g, name.c_str(), H5P_DEFAULT) <= 0) throw InputError(path, "/parameters/" + name, "", "missing");
      copies.emplace_back(p.value(), read_tensor(g, name, p.value().scalar_type(), p.value().sizes(), path));
    }
  }
  {
    h5::Handle g = h5::open_group(f, "buffers", path);
    for (const auto& b : module.named_buffers()) {
      const std::string name = prefix + b.key();
      if (H5Lexists(g, name.c_str(), H5P_DEFAULT) <= 0) throw InputError(path, "/buffers/" + name, "", "missing");
      copies.emplace_back(b.value(), read_tensor(g, name, b.value().scalar_type(), b.value().sizes(), path));
    }
  }
  torch::NoGradGuard ng;
  for (auto& [dst, src] : copies) dst.copy_(src);
}

bool verify_checkpoint(const std::string& path, std::string* why) {
  try {
    h5::Handle f = h5::open_file(path);
    if (h5::get_attr_int(f, "format_version", path) != kFormat) throw Error("unsupported format");
    std::string want = h5::get_attr_string(f, "checksum", path), got = file_digest(f, path);
    if (want != got) throw Error("checksum mismatch (stored " + want + ", computed " + got + ")");
    return true;
  } catch (const std::exception& e) {
    if (why) *why = e.what();
    return false;
  }
}

CheckpointSeries::CheckpointSeries(std::string dir, int keep, PublishFence fence, Env& env)
    : dir_(std::move(dir)), keep_(std::max(1, keep)), fence_(std::move(fence)), env_(&env) {
  fs::create_directories(dir_);
  remove_stale_temporaries_in(dir_, *env_);  // of writers that died before their rename: never valid
}

std::vector<std::string> CheckpointSeries::list() const {
  std::vector<std::pair<std::pair<int64_t, int64_t>, std::string>> found;
  for (const auto& e : fs::directory_iterator(dir_)) {
    long long ep, b;
    std::string name = e.path().filename().string();
    if (name.size() > 3 && name.compare(name.size() - 3, 3, ".h5") == 0 &&
        std::sscanf(name.c_str(), "ckpt-%lld-%lld.h5", &ep, &b) == 2)
      found.push_back({{ep, b}, e.path().string()});
  }
  std::sort(found.begin(), found.end());
  std::vector<std::string> out;
  for (auto& f : found) out.push_back(f.second);
  return out;
}

std::string CheckpointSeries::save(torch::nn::Module& m, torch::optim::Adam& o, const CheckpointState& s) {
  char name[64];
  std::snprintf(name, sizeof name, "ckpt-%08lld-%06lld.h5", static_cast<long long>(s.epoch), static_cast<long long>(s.batch));
  std::string path = (fs::path(dir_) / name).string();
  save_checkpoint(path, m, o, s, fence_, *env_);
  auto all = list();
  for (size_t i = 0; i + keep_ < all.size(); ++i) env_->remove(all[i]);
  return path;
}

void CheckpointSeries::save_best(torch::nn::Module& m, torch::optim::Adam& o, const CheckpointState& s) {
  save_checkpoint(best_path(), m, o, s, fence_, *env_);
  copy_file_atomically(best_path(), best_copy_path(), fence_, *env_);
}

std::string CheckpointSeries::best_path() const { return (fs::path(dir_) / kBestCheckpoint).string(); }
std::string CheckpointSeries::best_copy_path() const { return (fs::path(dir_) / kBestCheckpointCopy).string(); }

std::optional<std::string> CheckpointSeries::verified_best(std::vector<std::string>* warnings) const {
  std::string why, why_copy;
  if (verify_checkpoint(best_path(), &why)) return best_path();
  const bool missing = !fs::exists(best_path());
  if (verify_checkpoint(best_copy_path(), &why_copy)) {
    copy_file_atomically(best_copy_path(), best_path(), fence_, *env_);
    if (warnings)
      warnings->push_back(best_path() + (missing ? " was missing" : " was damaged (" + why + ")") + "; restored from " +
                          best_copy_path());
    return best_path();
  }
  if (warnings)
    warnings->push_back(best_path() + (missing ? ": missing" : ": " + why) + "; its copy " + best_copy_path() +
                        (fs::exists(best_copy_path()) ? ": " + why_copy : ": missing"));
  return std::nullopt;
}

std::optional<std::string> CheckpointSeries::newest_valid(std::vector<std::string>* warnings) const {
  auto all = list();
  for (auto it = all.rbegin(); it != all.rend(); ++it) {
    std::string why;
    if (verify_checkpoint(*it, &why)) return *it;
    if (warnings) warnings->push_back(*it + ": skipped (" + why + ")");
  }
  return std::nullopt;
}

}  // namespace orch::runner
