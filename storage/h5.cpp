#include "storage/h5.h"

#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cstdint>
#include <cstring>
#include <fstream>

#include "core/digest.h"
#include "core/errors.h"
#include "core/env.h"

namespace orch::h5 {

namespace {
[[noreturn]] void fail(const std::string& where, const std::string& what) {
  throw Error((where.empty() ? std::string("HDF5") : where) + ": " + what);
}
// `rc` of a call made right after errno was cleared: the system's reason, when there is one, joins the message
// (a full disk: "No space left on device").
void check(herr_t rc, const std::string& where, const std::string& what) {
  if (rc >= 0) return;
  fail(where, errno ? what + " (" + std::strerror(errno) + ")" : what);
}
Handle utf8_string_type() {
  hid_t t = H5Tcopy(H5T_C_S1);
  H5Tset_size(t, H5T_VARIABLE);
  H5Tset_cset(t, H5T_CSET_UTF8);
  return Handle(t, H5Tclose);
}
}  // namespace

void quiet_errors() {
  // No cleanup at exit: every file the project writes is closed (or abandoned and removed) by its Handle before
  // then, and the library's own cleanup crashes on a file whose close failed (a full disk).
  static const bool once = [] {
    H5dont_atexit();
    return true;
  }();
  (void)once;
  H5Eset_auto2(H5E_DEFAULT, nullptr, nullptr);
}

Handle create_file(const std::string& path) {
  quiet_errors();
  // The latest format: the superblock, object headers and chunk indices carry checksums, so damaged metadata is
  // reported by the library instead of being followed (h5py reads these files as any other).
  Handle fapl(H5Pcreate(H5P_FILE_ACCESS), H5Pclose);
  H5Pset_libver_bounds(fapl, H5F_LIBVER_LATEST, H5F_LIBVER_LATEST);
  hid_t f = H5Fcreate(path.c_str(), H5F_ACC_TRUNC, H5P_DEFAULT, fapl);
  if (f < 0) fail(path, "cannot create HDF5 file (" + std::string(std::strerror(errno)) + ")");
  return Handle(f, H5Fclose);
}

namespace {

// The user block of a memory-built file: "ORCHSUM1", the length of the rest of the file and its FNV-1a digest,
// checked before the library parses anything (a damaged file is refused, never followed).
constexpr char kSumMagic[8] = {'O', 'R', 'C', 'H', 'S', 'U', 'M', '1'};
constexpr size_t kUserBlock = 512;
constexpr unsigned char kHdf5Signature[8] = {0x89, 'H', 'D', 'F', '\r', '\n', 0x1a, '\n'};

uint64_t digest_of(const char* data, size_t n) {
  Digest d;
  d.add(data, n);
  return d.value();
}

}  // namespace

Handle create_memory_file() {
  quiet_errors();
  static std::atomic<uint64_t> counter{0};
  // The earliest file format: HDF5 1.10's H5Fget_file_image gives checksummed (1.8+) superblocks a wrong
  // checksum. Our own checksum of the whole file sits in its user block instead (save_memory_file).
  Handle fapl(H5Pcreate(H5P_FILE_ACCESS), H5Pclose);
  H5Pset_fapl_core(fapl, size_t(1) << 22, 0);
  Handle fcpl(H5Pcreate(H5P_FILE_CREATE), H5Pclose);
  H5Pset_userblock(fcpl, kUserBlock);
  const std::string name = "orch-memory-" + std::to_string(::getpid()) + "-" + std::to_string(counter++);
  hid_t f = H5Fcreate(name.c_str(), H5F_ACC_TRUNC, fcpl, fapl);
  if (f < 0) fail(name, "cannot create an in-memory HDF5 file");
  return Handle(f, H5Fclose);
}

void save_memory_file(hid_t file, const std::string& path, Env& env) {
  if (H5Fflush(file, H5F_SCOPE_GLOBAL) < 0) fail(path, "flush failed");
  // The image starts at the superblock; the user block (the superblock's base address) goes in front of it.
  const ssize_t size = H5Fget_file_image(file, nullptr, 0);
  if (size <= 0) fail(path, "cannot take the file's image");
  std::vector<char> image(kUserBlock + static_cast<size_t>(size), '\0');
  if (H5Fget_file_image(file, image.data() + kUserBlock, static_cast<size_t>(size)) != size)
    fail(path, "cannot take the file's image");
  const uint64_t length = image.size() - kUserBlock, sum = digest_of(image.data() + kUserBlock, length);
  std::memcpy(image.data(), kSumMagic, 8);
  std::memcpy(image.data() + 8, &length, 8);
  std::memcpy(image.data() + 16, &sum, 8);
  env.write_file(path, image.data(), image.size());
}

void check_file_sum(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return;  // open_file reports it
  char head[24] = {0};
  in.read(head, sizeof head);
  if (in.gcount() < 8 || std::memcmp(head, kHdf5Signature, 8) == 0) return;  // no user block: an older file
  if (std::memcmp(head, kSumMagic, 8) != 0) {
    char sig[8] = {0};
    in.seekg(static_cast<std::streamoff>(kUserBlock));
    in.read(sig, 8);
    if (in.gcount() == 8 && std::memcmp(sig, kHdf5Signature, 8) == 0)
      throw InputError(path, "", "", "damaged: its checksum header is unreadable");
    return;  // not ours at all: the library says what it is
  }
  uint64_t length = 0, want = 0;
  std::memcpy(&length, head + 8, 8);
  std::memcpy(&want, head + 16, 8);
  in.seekg(0, std::ios::end);
  const uint64_t actual = static_cast<uint64_t>(in.tellg());
  if (actual != length + kUserBlock)
    throw InputError(path, "", "", "damaged: " + std::to_string(actual) + " bytes where its header says " +
                                       std::to_string(length + kUserBlock) + " (truncated?)");
  in.seekg(static_cast<std::streamoff>(kUserBlock));
  std::vector<char> rest(static_cast<size_t>(length));
  in.read(rest.data(), static_cast<std::streamsize>(length));
  if (static_cast<uint64_t>(in.gcount()) != length) throw InputError(path, "", "", "damaged: unreadable");
  if (digest_of(rest.data(), rest.size()) != want) throw InputError(path, "", "", "damaged: checksum mismatch");
}

Handle open_file(const std::string& path, bool write) {
  quiet_errors();
  check_file_sum(path);
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
  if (H5Lexists(file, name.c_str(), H5P_DEFAULT) <= 0) throw InputError(where, "/" + name, "", "dataset missing");
  H5O_info_t info;
  if (H5Oget_info_by_name(file, name.c_str(), &info, H5P_DEFAULT) < 0 || info.type != H5O_TYPE_DATASET)
    throw InputError(where, "/" + name, "", "is not a dataset");
  hid_t d = H5Dopen2(file, name.c_str(), H5P_DEFAULT);
  if (d < 0) throw InputError(where, "/" + name, "", "cannot open the dataset (damaged file?)");
  return Handle(d, H5Dclose);
}

Handle open_group(hid_t parent, const std::string& name, const std::string& where) {
  if (H5Lexists(parent, name.c_str(), H5P_DEFAULT) <= 0) throw InputError(where, "/" + name, "", "group missing");
  H5O_info_t info;
  if (H5Oget_info_by_name(parent, name.c_str(), &info, H5P_DEFAULT) < 0 || info.type != H5O_TYPE_GROUP)
    throw InputError(where, "/" + name, "", "is not a group");
  hid_t g = H5Gopen2(parent, name.c_str(), H5P_DEFAULT);
  if (g < 0) throw InputError(where, "/" + name, "", "cannot open the group (damaged file?)");
  return Handle(g, H5Gclose);
}

std::vector<hsize_t> dataset_dims(hid_t dset) {
  Handle space(H5Dget_space(dset), H5Sclose);
  int nd = space.valid() ? H5Sget_simple_extent_ndims(space) : -1;
  std::vector<hsize_t> dims(static_cast<size_t>(std::max(0, nd)));
  if (nd > 0) H5Sget_simple_extent_dims(space, dims.data(), nullptr);
  return dims;
}

namespace {

std::string dims_text(const std::vector<hsize_t>& d) {
  std::string t = "[";
  for (size_t i = 0; i < d.size(); ++i) t += (i ? ", " : "") + std::to_string(d[i]);
  return t + "]";
}

std::string want_text(const std::vector<int64_t>& w) {
  std::string t = "[";
  for (size_t i = 0; i < w.size(); ++i) t += (i ? ", " : "") + (w[i] < 0 ? std::string("any") : std::to_string(w[i]));
  return t + "]";
}

const char* class_name(ValueClass c) {
  switch (c) {
    case ValueClass::kInteger: return "integers";
    case ValueClass::kFloat: return "floating-point numbers";
    case ValueClass::kString: return "strings";
  }
  return "?";
}

}  // namespace

Handle open_checked(hid_t file, const std::string& name, ValueClass cls, size_t elem_size, const std::vector<int64_t>& want,
                    const std::string& where, std::vector<hsize_t>* dims_out) {
  Handle d = open_dataset(file, name, where);
  const std::string field = "/" + name;
  Handle space(H5Dget_space(d), H5Sclose);
  if (!space.valid() || H5Sget_simple_extent_type(space) != H5S_SIMPLE)
    throw InputError(where, field, "", "expected a " + std::to_string(want.size()) + "-dimensional array");
  auto dims = dataset_dims(d);
  if (dims.size() != want.size())
    throw InputError(where, field, "shape " + dims_text(dims), "expected " + std::to_string(want.size()) +
                                                                   " dimensions " + want_text(want));
  size_t elements = 1;
  for (size_t i = 0; i < dims.size(); ++i) {
    if ((want[i] >= 0 && dims[i] != static_cast<hsize_t>(want[i])) || dims[i] > kMaxExtent)
      throw InputError(where, field, "shape " + dims_text(dims), "expected " + want_text(want));
    elements = dims[i] == 0 ? 0 : (elements > SIZE_MAX / dims[i] ? SIZE_MAX : elements * dims[i]);
  }
  Handle type(H5Dget_type(d), H5Tclose);
  const H5T_class_t c = type.valid() ? H5Tget_class(type) : H5T_NO_CLASS;
  const bool ok = (cls == ValueClass::kInteger && c == H5T_INTEGER) || (cls == ValueClass::kFloat && c == H5T_FLOAT) ||
                  (cls == ValueClass::kString && c == H5T_STRING);
  if (!ok) throw InputError(where, field, "", std::string("expected ") + class_name(cls));
  const size_t size = H5Tget_size(type);
  if (elem_size && size != elem_size)
    throw InputError(where, field, std::to_string(size * 8) + "-bit values", "expected " + std::to_string(elem_size * 8) + "-bit " +
                                                                                  class_name(cls));
  if (cls != ValueClass::kString && elements > kMaxReadBytes / std::max<size_t>(1, size))
    throw InputError(where, field, "shape " + dims_text(dims), "too large to be real (damaged file?)");
  if (dims_out) *dims_out = dims;
  return d;
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
  errno = 0;
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
  errno = 0;
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

void write_fixed_strings(hid_t file, const std::string& name, const std::vector<std::string>& values,
                         const std::string& where) {
  size_t width = 1;
  for (const auto& v : values) width = std::max(width, v.size());
  Handle type(H5Tcopy(H5T_C_S1), H5Tclose);
  H5Tset_size(type, width);
  H5Tset_strpad(type, H5T_STR_NULLPAD);
  H5Tset_cset(type, H5T_CSET_UTF8);
  hsize_t n = values.size();
  Handle space(H5Screate_simple(1, &n, nullptr), H5Sclose);
  hid_t d = H5Dcreate2(file, name.c_str(), type, space, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
  if (d < 0) fail(where, "cannot create dataset " + name);
  Handle dset(d, H5Dclose);
  std::vector<char> buf(width * values.size(), '\0');
  for (size_t i = 0; i < values.size(); ++i) std::memcpy(buf.data() + i * width, values[i].data(), values[i].size());
  if (n) check(H5Dwrite(dset, type, H5S_ALL, H5S_ALL, H5P_DEFAULT, buf.data()), where, "write " + name);
}

std::vector<std::string> read_strings(hid_t file, const std::string& name, const std::string& where) {
  std::vector<hsize_t> dims;
  Handle dset = open_checked(file, name, ValueClass::kString, 0, {-1}, where, &dims);
  Handle ftype(H5Dget_type(dset), H5Tclose);
  if (H5Tis_variable_str(ftype) <= 0) {  // fixed-length strings (data sets since format 1.1)
    const size_t width = H5Tget_size(ftype);
    if (width == 0 || width > 4096) throw InputError(where, "/" + name, std::to_string(width) + "-byte strings", "implausible");
    std::vector<char> buf(width * dims[0] + 1, '\0');
    if (dims[0]) check(H5Dread(dset, ftype, H5S_ALL, H5S_ALL, H5P_DEFAULT, buf.data()), where, "read /" + name);
    std::vector<std::string> out;
    for (size_t i = 0; i < dims[0]; ++i) {
      const char* p = buf.data() + i * width;
      out.emplace_back(p, strnlen(p, width));
    }
    return out;
  }
  size_t n = dims[0];
  Handle type = utf8_string_type();
  std::vector<char*> ptrs(n, nullptr);
  if (n) check(H5Dread(dset, type, H5S_ALL, H5S_ALL, H5P_DEFAULT, ptrs.data()), where, "read /" + name);
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
void set_attr_fixed(hid_t obj, const std::string& name, const std::string& value) {
  Handle type(H5Tcopy(H5T_C_S1), H5Tclose);
  H5Tset_size(type, std::max<size_t>(1, value.size()));
  H5Tset_strpad(type, H5T_STR_NULLPAD);
  H5Tset_cset(type, H5T_CSET_UTF8);
  Handle space(H5Screate(H5S_SCALAR), H5Sclose);
  std::string padded = value.empty() ? std::string(1, '\0') : value;
  write_attr(obj, name, type, space, padded.data());
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
  Handle a(H5Aopen(obj, name.c_str(), H5P_DEFAULT), H5Aclose);
  if (!a.valid()) throw InputError(where, "attribute " + name, "", "cannot be opened (damaged file?)");
  return a;
}

// A single value: a scalar attribute, or one of exactly one element.
static void require_one(hid_t attr, const std::string& name, const std::string& where) {
  Handle space(H5Aget_space(attr), H5Sclose);
  const H5S_class_t c = space.valid() ? H5Sget_simple_extent_type(space) : H5S_NO_CLASS;
  const hssize_t n = space.valid() ? H5Sget_simple_extent_npoints(space) : -1;
  if (c == H5S_SCALAR || (c == H5S_SIMPLE && n == 1)) return;
  throw InputError(where, "attribute " + name, c == H5S_SIMPLE ? "an array of " + std::to_string(n) : "no value",
                   "expected a single value");
}

std::string get_attr_string(hid_t obj, const std::string& name, const std::string& where) {
  Handle a = open_attr(obj, name, where);
  require_one(a, name, where);
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
  if (n > (1u << 24)) throw InputError(where, "attribute " + name, std::to_string(n) + " bytes", "too long to be real (damaged file?)");
  std::string s(n, '\0');
  if (H5Aread(a, ftype, s.data()) < 0) fail(where, "read attribute " + name);
  s.resize(std::strlen(s.c_str()));
  return s;
}

int64_t get_attr_int(hid_t obj, const std::string& name, const std::string& where) {
  Handle a = open_attr(obj, name, where);
  require_one(a, name, where);
  {
    Handle ftype(H5Aget_type(a), H5Tclose);
    if (H5Tget_class(ftype) != H5T_INTEGER) throw InputError(where, "attribute " + name, "", "expected an integer");
  }
  int64_t v = 0;
  if (H5Aread(a, H5T_NATIVE_INT64, &v) < 0) fail(where, "read attribute " + name);
  return v;
}

std::vector<int64_t> get_attr_ints(hid_t obj, const std::string& name, const std::string& where) {
  Handle a = open_attr(obj, name, where);
  {
    Handle ftype(H5Aget_type(a), H5Tclose);
    if (H5Tget_class(ftype) != H5T_INTEGER) throw InputError(where, "attribute " + name, "", "expected integers");
  }
  Handle space(H5Aget_space(a), H5Sclose);
  std::vector<int64_t> v(static_cast<size_t>(H5Sget_simple_extent_npoints(space)));
  if (!v.empty() && H5Aread(a, H5T_NATIVE_INT64, v.data()) < 0) fail(where, "read attribute " + name);
  return v;
}

std::vector<std::string> get_attr_strings(hid_t obj, const std::string& name, const std::string& where) {
  Handle a = open_attr(obj, name, where);
  {
    Handle ftype(H5Aget_type(a), H5Tclose);
    if (H5Tget_class(ftype) != H5T_STRING || H5Tis_variable_str(ftype) <= 0)
      throw InputError(where, "attribute " + name, "", "expected variable-length strings");
  }
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
