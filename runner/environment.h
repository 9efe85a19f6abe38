// What this build of the worker is and what it finds on this machine: the build (commit, type), LibTorch and its
// build configuration (CUDA, cuDNN, BLAS as LibTorch reports them), the GPUs it sees, NCCL and MPI, the BLAS
// actually loaded, and the HDF5, SQLite and OpenCV versions. `orchestrator doctor` prints it all; each run's
// provenance records the build and library rows. Read-only; thread-safe after LibTorch is initialised.
#pragma once

#include <string>
#include <utility>
#include <vector>

namespace orch::runner {

// (name, value) rows, in a fixed order: git_commit, build_type, torch, hdf5, sqlite, opencv, mpi_built,
// nccl_built, blas (the library loaded), cuda_available, gpus, then gpu<i> per visible GPU (name, memory) where
// the build can ask CUDA.
std::vector<std::pair<std::string, std::string>> environment_facts();

// What calibration rows record as the device model: the GPU's name for "cuda:<i>" (where the build can ask CUDA,
// else "unknown GPU"), the CPU's model name (/proc/cpuinfo) for "cpu".
std::string device_model(const std::string& device);

// LibTorch's own build configuration (at::show_config(): compiler, CUDA and cuDNN versions, BLAS, ...).
std::string torch_build_config();

}  // namespace orch::runner
