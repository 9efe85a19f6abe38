// Which BLAS the process runs on. Debian's libtorch calls the `libblas.so.3` alternative for matrix products
// (and im2col convolutions); with only the reference netlib BLAS installed a 64-px training step of the
// seven-prediction networks is about 2x slower than on OpenBLAS, inference 4-8x (bench/RESULTS.md, "BLAS and
// sparse graph operators"). The worker records
// the answer in each run's provenance and warns when it is the reference one. Thread-safe.
#pragma once

#include <string>

namespace orch {

// The resolved path of the BLAS shared object loaded in this process (libblas.so.3, libopenblas or MKL), or ""
// when none is loaded.
std::string loaded_blas();

// Whether `path` (from loaded_blas) is the slow reference BLAS: Debian installs it as .../blas/libblas.so.3.
bool is_reference_blas(const std::string& path);

}  // namespace orch
