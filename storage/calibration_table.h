// The run store's calibration table (docs/control-plane.md, "Estimates"): what `orchestrator calibrate` measured,
// or imported, per network, data set kind, size, device, batch, threads, precision, device model and runs per GPU.
// A part of the store (storage/store.h): its SQL and its one row mapper live here, and callers that need only
// calibrations (calibrate, the estimates) hold this part. Shares the Store's connection: use it from the thread
// that uses that Store.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace orch {

class Store;

// One timing: keyed by network, data set kind, size, device, batch, threads, precision ("tf32", "fp32", "bf16" on a
// GPU; "fp32" on a CPU; "" not recorded), device model (the GPU's name, or the CPU's) and runs sharing the GPU while
// it was measured.
struct Calibration {
  std::string model, kind, device;
  int64_t size = 0, batch = 0, threads = 0;
  std::string precision, device_model;
  int64_t runs_per_gpu = 1;
  double step_s = 0, validation_image_s = 0, evaluation_image_s = 0;
  std::string host, measured_at;
};

class CalibrationTable {
 public:
  explicit CalibrationTable(Store& store) : store_(store) {}
  void upsert(const Calibration& c);  // replaces a row of the same key
  std::vector<Calibration> all();

 private:
  Store& store_;
};

}  // namespace orch
