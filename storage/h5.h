// Thin RAII handles over the HDF5 C API (libhdf5 1.10, serial, thread-safe build) and the few helpers the
// project needs: typed datasets, chunking, string and numeric attributes that h5py reads as str and numbers.
//
// Every read validates before it allocates (data sets, predictions and checkpoints all read through here):
// open_checked() compares a dataset's rank, extents, type class and element size with what the caller expects,
// taken from the file's own dataspace; attribute readers check that the attribute is one value of the right
// class; string lists must be one-dimensional. A mismatch is an InputError naming the file, the dataset or
// attribute, what it is and what was expected. Files are written with HDF5's checksummed metadata (format 1.8
// and later), so damaged metadata is an error rather than undefined behaviour in the library.
// Handles are move-only; the library serialises calls.
#pragma once

#include <hdf5.h>

#include <cstdint>
#include <string>
#include <vector>

#include "core/env.h"

namespace orch::h5 {

class Handle {
 public:
  using Closer = herr_t (*)(hid_t);
  Handle() = default;
  Handle(hid_t id, Closer closer) : id_(id), closer_(closer) {}
  Handle(Handle&& o) noexcept : id_(o.id_), closer_(o.closer_) { o.id_ = -1; }
  Handle& operator=(Handle&& o) noexcept {
    if (this != &o) {
      reset();
      id_ = o.id_;
      closer_ = o.closer_;
      o.id_ = -1;
    }
    return *this;
  }
  ~Handle() { reset(); }
  void reset() {
    if (id_ >= 0 && closer_) closer_(id_);
    id_ = -1;
  }
  hid_t id() const { return id_; }
  operator hid_t() const { return id_; }
  bool valid() const { return id_ >= 0; }

 private:
  hid_t id_ = -1;
  Closer closer_ = nullptr;
};

// Silences HDF5's automatic error stack printing for the process (errors are reported through exceptions), and
// keeps the library from cleaning up at exit (see h5.cpp). Called before any other HDF5 call.
void quiet_errors();

// Truncates. Format 1.10 (H5F_LIBVER_LATEST at the time of writing): superblock, object headers and chunk indices
// all carry checksums.
Handle create_file(const std::string& path);
// A file built in memory (HDF5's core driver, no backing store), written out in one go by save_memory_file()
// through an Env (core/env.h): a full disk is then an ordinary Error of that write, never a half-written HDF5 file the
// library cannot close (which made it crash at exit). For files of bounded size: checkpoints, predictions. Its
// 512-byte user block holds a checksum of the rest, which open_file() verifies before the library parses a byte.
Handle create_memory_file();
void save_memory_file(hid_t file, const std::string& path, Env& env = Env::system());
Handle open_file(const std::string& path, bool write = false);

// Creates a chunked dataset of `type` with `dims`, chunk `chunk`, optional deflate level (0: none).
Handle create_dataset(hid_t file, const std::string& name, hid_t type, const std::vector<hsize_t>& dims,
                      const std::vector<hsize_t>& chunk, int deflate = 0, const std::string& where = "");
Handle open_dataset(hid_t file, const std::string& name, const std::string& where = "");
std::vector<hsize_t> dataset_dims(hid_t dset);
Handle open_group(hid_t parent, const std::string& name, const std::string& where = "");

// The class of values a dataset must hold.
enum class ValueClass { kInteger, kFloat, kString };
// Opens `name` and checks it against the caller's expectations before anything is read: its rank is want.size(),
// each extent equals want[i] where that is >= 0 (-1: any, but at most kMaxExtent), its values are of `cls` with
// `elem_size` bytes (0: any size). Returns the handle; `dims` (if given) receives the extents.
Handle open_checked(hid_t file, const std::string& name, ValueClass cls, size_t elem_size, const std::vector<int64_t>& want,
                    const std::string& where, std::vector<hsize_t>* dims = nullptr);
constexpr hsize_t kMaxExtent = hsize_t(1) << 31;
// The largest dataset read whole (bytes): larger ones are refused as damaged rather than allocated.
constexpr size_t kMaxReadBytes = size_t(8) << 30;

// Writes/reads the hyperslab [index, ...] of one leading-dimension entry.
void write_row(hid_t dset, hid_t mem_type, hsize_t index, const void* data, const std::string& where = "");
void read_row(hid_t dset, hid_t mem_type, hsize_t index, void* data, const std::string& where = "");
void write_all(hid_t dset, hid_t mem_type, const void* data, const std::string& where = "");
void read_all(hid_t dset, hid_t mem_type, void* data, const std::string& where = "");

// Variable-length UTF-8 strings (h5py: str).
void write_strings(hid_t file, const std::string& name, const std::vector<std::string>& values,
                   const std::string& where = "");
std::vector<std::string> read_strings(hid_t file, const std::string& name, const std::string& where = "");

void set_attr(hid_t obj, const std::string& name, const std::string& value);
// A fixed-length UTF-8 string: stored inside the object header (checksummed in the 1.8+ format), not in the
// unchecksummed global heap that variable-length strings use. h5py reads it as bytes.
void set_attr_fixed(hid_t obj, const std::string& name, const std::string& value);
// Strings as one fixed-length dataset (the same reason); read_strings() reads both kinds.
void write_fixed_strings(hid_t file, const std::string& name, const std::vector<std::string>& values,
                         const std::string& where = "");
void set_attr(hid_t obj, const std::string& name, int64_t value);
void set_attr(hid_t obj, const std::string& name, const std::vector<int64_t>& values);
void set_attr(hid_t obj, const std::string& name, const std::vector<std::string>& values);
bool has_attr(hid_t obj, const std::string& name);
// One string (scalar or one element), one integer: anything else is an InputError naming the attribute.
std::string get_attr_string(hid_t obj, const std::string& name, const std::string& where = "");
int64_t get_attr_int(hid_t obj, const std::string& name, const std::string& where = "");
std::vector<int64_t> get_attr_ints(hid_t obj, const std::string& name, const std::string& where = "");
std::vector<std::string> get_attr_strings(hid_t obj, const std::string& name, const std::string& where = "");

}  // namespace orch::h5
