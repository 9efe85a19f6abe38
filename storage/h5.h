// Thin RAII handles over the HDF5 C API (libhdf5 1.10, serial, thread-safe build) and the few helpers the
// project needs: typed datasets, chunking, string and numeric attributes that h5py reads as str and numbers.
// Errors become orch::Error with the file name. Handles are move-only; the library serialises calls.
#pragma once

#include <hdf5.h>

#include <cstdint>
#include <string>
#include <vector>

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

// Silences HDF5's automatic error stack printing for the process (errors are reported through exceptions).
void quiet_errors();

Handle create_file(const std::string& path);      // truncates
Handle open_file(const std::string& path, bool write = false);

// Creates a chunked dataset of `type` with `dims`, chunk `chunk`, optional deflate level (0: none).
Handle create_dataset(hid_t file, const std::string& name, hid_t type, const std::vector<hsize_t>& dims,
                      const std::vector<hsize_t>& chunk, int deflate = 0, const std::string& where = "");
Handle open_dataset(hid_t file, const std::string& name, const std::string& where = "");
std::vector<hsize_t> dataset_dims(hid_t dset);

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
void set_attr(hid_t obj, const std::string& name, int64_t value);
void set_attr(hid_t obj, const std::string& name, const std::vector<int64_t>& values);
void set_attr(hid_t obj, const std::string& name, const std::vector<std::string>& values);
bool has_attr(hid_t obj, const std::string& name);
std::string get_attr_string(hid_t obj, const std::string& name, const std::string& where = "");
int64_t get_attr_int(hid_t obj, const std::string& name, const std::string& where = "");
std::vector<int64_t> get_attr_ints(hid_t obj, const std::string& name, const std::string& where = "");
std::vector<std::string> get_attr_strings(hid_t obj, const std::string& name, const std::string& where = "");

}  // namespace orch::h5
