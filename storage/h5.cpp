#include "storage/h5.h"

#include <cstring>

#include "core/errors.h"

namespace orch::h5 {

namespace {
[[noreturn]] void fail(const std::string& where, const std::string& what) {
  throw Error((where.empty() ? std::string("HDF5") : where) + ": " + what);
}
void check(herr_t rc, const std::string& where, const std::string& what) {
  if (rc < 0) fail(where, what);
}
Handle utf8_string_type() {
  hid_t t = H5Tcopy(H5T_C_S1);
  H5Tset_size(t, H5T_VARIABLE);
  H5Tset_cset(t, H5T_CSET_UTF8);
  return Handle(t, H5Tclose);
}
}  // namespace

void quiet_errors() { H5Eset_auto2(H5E_DEFAULT, nullptr, nullptr); }

Handle create_file(const std::string& path) {
  quiet_errors();
  hid_t f = H5Fcreate(path.c_str(), H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT);
  if (f < 0) fail(path, "cannot create HDF5 file");
  return Handle(f, H5Fclose);
}

Handle open_file(const std::string& path, bool write) {
  quiet_errors();
  htri_t ok = H5Fis_hdf5(path.c_str());
  if (ok <= 0) throw InputError(path, "", "", ok == 0 ? "not an HDF5 file" : "cannot open HDF5 file");
  hid_t f = H5Fopen(path.c_str(), write ? H5F_ACC_RDWR : H5F_ACC_RDONLY, H5P_DEFAULT);
  if (f < 0) throw InputError(path, "", "", "cannot open HDF5 file (locked by a writer, or damaged)");
  return Handle(f, H5Fclose);
}

Handle create_dataset(hid_t file, const std::string& name, hid_t type, const std::vector<hsize_t>& dims,
                      const std::vector<hsize_t>& chunk, int deflate, const std::string& where) {
  Handle space(H5Screate_simple(static_cast<int>(dims.size()), dims.data(), nullptr), H5Sclose);
  Handle plist(H5Pcreate(H5P_DATASET_CREATE), H5Pclose);
  if (!chunk.empty()) {
    check(H5Pset_chunk(plist, static_cast<int>(chunk.size()), chunk.data()), where, "chunk " + name);
    if (deflate > 0) check(H5Pset_deflate(plist, static_cast<unsigned>(deflate)), where, "deflate " + name);
  }
  hid_t d = H5Dcreate2(file, name.c_str(), type, space, H5P_DEFAULT, plist, H5P_DEFAULT);
  if (d < 0) fail(where, "cannot create dataset " + name);
  return Handle(d, H5Dclose);
}

Handle open_dataset(hid_t file, const std::string& name, const std::string& where) {
  if (H5Lexists(file, name.c_str(), H5P_DEFAULT) <= 0) throw InputError(where, name, "", "dataset missing");
  hid_t d = H5Dopen2(file, name.c_str(), H5P_DEFAULT);
  if (d < 0) fail(where, "cannot open dataset " + name);
  return Handle(d, H5Dclose);
}

std::vector<hsize_t> dataset_dims(hid_t dset) {
  Handle space(H5Dget_space(dset), H5Sclose);
  int nd = H5Sget_simple_extent_ndims(space);
  std::vector<hsize_t> dims(static_cast<size_t>(std::max(0, nd)));
  H5Sget_simple_extent_dims(space, dims.data(), nullptr);
  return dims;
}

static void row_io(hid_t dset, hid_t mem_type, hsize_t index, void* data, bool write, const std::string& where) {
  auto dims = dataset_dims(dset);
  if (dims.empty() || index >= dims[0]) fail(where, "row " + std::to_string(index) + " out of range");
  Handle fspace(H5Dget_space(dset), H5Sclose);
  std::vector<hsize_t> start(dims.size(), 0), count = dims;
  start[0] = index;
  count[0] = 1;
  check(H5Sselect_hyperslab(fspace, H5S_SELECT_SET, start.data(), nullptr, count.data(), nullptr), where, "select");
  Handle mspace(H5Screate_simple(static_cast<int>(count.size()), count.data(), nullptr), H5Sclose);
  herr_t rc = write ? H5Dwrite(dset, mem_type, mspace, fspace, H5P_DEFAULT, data)
                    : H5Dread(dset, mem_type, mspace, fspace, H5P_DEFAULT, data);
  check(rc, where, std::string(write ? "write" : "read") + " of row " + std::to_string(index) + " failed");
}

void write_row(hid_t dset, hid_t mem_type, hsize_t index, const void* data, const std::string& where) {
  row_io(dset, mem_type, index, const_cast<void*>(data), true, where);
}
void read_row(hid_t dset, hid_t mem_type, hsize_t index, void* data, const std::string& where) {
  row_io(dset, mem_type, index, data, false, where);
}
void write_all(hid_t dset, hid_t mem_type, const void* data, const std::string& where) {
  check(H5Dwrite(dset, mem_type, H5S_ALL, H5S_ALL, H5P_DEFAULT, data), where, "write failed");
}
void read_all(hid_t dset, hid_t mem_type, void* data, const std::string& where) {
  check(H5Dread(dset, mem_type, H5S_ALL, H5S_ALL, H5P_DEFAULT, data), where, "read failed");
}

void write_strings(hid_t file, const std::string& name, const std::vector<std::string>& values,
                   const std::string& where) {
  Handle type = utf8_string_type();
  hsize_t n = values.size();
  Handle space(H5Screate_simple(1, &n, nullptr), H5Sclose);
  hid_t d = H5Dcreate2(file, name.c_str(), type, space, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
  if (d < 0) fail(where, "cannot create dataset " + name);
  Handle dset(d, H5Dclose);
  std::vector<const char*> ptrs;
  for (const auto& v : values) ptrs.push_back(v.c_str());
  if (n) check(H5Dwrite(dset, type, H5S_ALL, H5S_ALL, H5P_DEFAULT, ptrs.data()), where, "write " + name);
}

std::vector<std::string> read_strings(hid_t file, const std::string& name, const std::string& where) {
  Handle dset = open_dataset(file, name, where);
  auto dims = dataset_dims(dset);
  size_t n = dims.empty() ? 0 : dims[0];
  Handle type = utf8_string_type();
  std::vector<char*> ptrs(n, nullptr);
  if (n) check(H5Dread(dset, type, H5S_ALL, H5S_ALL, H5P_DEFAULT, ptrs.data()), where, "read " + name);
  std::vector<std::string> out;
  for (char* p : ptrs) out.emplace_back(p ? p : "");
  Handle space(H5Dget_space(dset), H5Sclose);
  if (n) H5Dvlen_reclaim(type, space, H5P_DEFAULT, ptrs.data());
  return out;
}

static void write_attr(hid_t obj, const std::string& name, hid_t type, hid_t space, const void* data) {
  if (H5Aexists(obj, name.c_str()) > 0) H5Adelete(obj, name.c_str());
  Handle a(H5Acreate2(obj, name.c_str(), type, space, H5P_DEFAULT, H5P_DEFAULT), H5Aclose);
  if (!a.valid() || H5Awrite(a, type, data) < 0) throw Error("HDF5: cannot write attribute " + name);
}

void set_attr(hid_t obj, const std::string& name, const std::string& value) {
  Handle type = utf8_string_type();
  Handle space(H5Screate(H5S_SCALAR), H5Sclose);
  const char* p = value.c_str();
  write_attr(obj, name, type, space, &p);
}
void set_attr(hid_t obj, const std::string& name, int64_t value) {
  Handle space(H5Screate(H5S_SCALAR), H5Sclose);
  write_attr(obj, name, H5T_NATIVE_INT64, space, &value);
}
void set_attr(hid_t obj, const std::string& name, const std::vector<int64_t>& values) {
  hsize_t n = values.size();
  Handle space(H5Screate_simple(1, &n, nullptr), H5Sclose);
  write_attr(obj, name, H5T_NATIVE_INT64, space, values.data());
}
void set_attr(hid_t obj, const std::string& name, const std::vector<std::string>& values) {
  Handle type = utf8_string_type();
  hsize_t n = values.size();
  Handle space(H5Screate_simple(1, &n, nullptr), H5Sclose);
  std::vector<const char*> ptrs;
  for (const auto& v : values) ptrs.push_back(v.c_str());
  write_attr(obj, name, type, space, ptrs.data());
}

bool has_attr(hid_t obj, const std::string& name) { return H5Aexists(obj, name.c_str()) > 0; }

static Handle open_attr(hid_t obj, const std::string& name, const std::string& where) {
  if (!has_attr(obj, name)) throw InputError(where, "attribute " + name, "", "missing");
  return Handle(H5Aopen(obj, name.c_str(), H5P_DEFAULT), H5Aclose);
}

std::string get_attr_string(hid_t obj, const std::string& name, const std::string& where) {
  Handle a = open_attr(obj, name, where);
  Handle ftype(H5Aget_type(a), H5Tclose);
  if (H5Tget_class(ftype) != H5T_STRING) throw InputError(where, "attribute " + name, "", "expected a string");
  if (H5Tis_variable_str(ftype) > 0) {
    Handle type = utf8_string_type();
    char* p = nullptr;
    if (H5Aread(a, type, &p) < 0) fail(where, "read attribute " + name);
    std::string s = p ? p : "";
    H5free_memory(p);
    return s;
  }
  size_t n = H5Tget_size(ftype);
  std::string s(n, '\0');
  if (H5Aread(a, ftype, s.data()) < 0) fail(where, "read attribute " + name);
  s.resize(std::strlen(s.c_str()));
  return s;
}

int64_t get_attr_int(hid_t obj, const std::string& name, const std::string& where) {
  Handle a = open_attr(obj, name, where);
  int64_t v = 0;
  if (H5Aread(a, H5T_NATIVE_INT64, &v) < 0) fail(where, "read attribute " + name);
  return v;
}

std::vector<int64_t> get_attr_ints(hid_t obj, const std::string& name, const std::string& where) {
  Handle a = open_attr(obj, name, where);
  Handle space(H5Aget_space(a), H5Sclose);
  std::vector<int64_t> v(static_cast<size_t>(H5Sget_simple_extent_npoints(space)));
  if (!v.empty() && H5Aread(a, H5T_NATIVE_INT64, v.data()) < 0) fail(where, "read attribute " + name);
  return v;
}

std::vector<std::string> get_attr_strings(hid_t obj, const std::string& name, const std::string& where) {
  Handle a = open_attr(obj, name, where);
  Handle space(H5Aget_space(a), H5Sclose);
  size_t n = static_cast<size_t>(H5Sget_simple_extent_npoints(space));
  Handle type = utf8_string_type();
  std::vector<char*> ptrs(n, nullptr);
  if (n && H5Aread(a, type, ptrs.data()) < 0) fail(where, "read attribute " + name);
  std::vector<std::string> out;
  for (char* p : ptrs) out.emplace_back(p ? p : "");
  if (n) H5Dvlen_reclaim(type, space, H5P_DEFAULT, ptrs.data());
  return out;
}

}  // namespace orch::h5
