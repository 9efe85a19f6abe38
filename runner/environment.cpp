#include "runner/environment.h"

#include <ATen/Context.h>
#include <ATen/Version.h>
#include <H5public.h>
#include <opencv2/core/version.hpp>
#include <torch/cuda.h>

#include <cstdlib>
#include <fstream>

#include "core/blas.h"
#include "runner/communicator.h"
#include "runner/trainer.h"
#include "storage/sqlite.h"

#ifdef ORCH_HAVE_NCCL
#include <cuda_runtime_api.h>
#endif

#ifndef ORCH_GIT_COMMIT
#define ORCH_GIT_COMMIT "unknown"
#endif
#ifndef ORCH_BUILD_TYPE
#define ORCH_BUILD_TYPE "unknown"
#endif

namespace orch::runner {

std::vector<std::pair<std::string, std::string>> environment_facts() {
  std::vector<std::pair<std::string, std::string>> f = {
      {"git_commit", ORCH_GIT_COMMIT},
      {"build_type", ORCH_BUILD_TYPE},
      {"torch", torch_version()},
      {"hdf5", std::to_string(H5_VERS_MAJOR) + "." + std::to_string(H5_VERS_MINOR) + "." + std::to_string(H5_VERS_RELEASE)},
      {"sqlite", sqlite::library_version()},
      {"opencv", CV_VERSION},
      {"mpi_built", built_with_mpi() ? "yes" : "no"},
      {"nccl_built", built_with_nccl() ? "yes" : "no"},
      {"blas", loaded_blas()},
  };
  const bool cuda = torch::cuda::is_available();
  f.push_back({"cuda_available", cuda ? "yes" : "no"});
  f.push_back({"gpus", std::to_string(cuda ? torch::cuda::device_count() : 0)});
#ifdef ORCH_HAVE_NCCL
  int n = 0;
  if (cuda && cudaGetDeviceCount(&n) == cudaSuccess)
    for (int i = 0; i < n; ++i) {
      cudaDeviceProp p{};
      if (cudaGetDeviceProperties(&p, i) != cudaSuccess) continue;
      f.push_back({"gpu" + std::to_string(i), std::string(p.name) + ", " + std::to_string(p.totalGlobalMem >> 20) + " MiB, sm_" +
                                                   std::to_string(p.major) + std::to_string(p.minor)});
    }
#endif
  return f;
}

std::string device_model(const std::string& device) {
  if (device.rfind("cuda", 0) == 0) {
#ifdef ORCH_HAVE_NCCL
    const auto colon = device.find(':');
    const int index = colon == std::string::npos ? 0 : std::atoi(device.c_str() + colon + 1);
    cudaDeviceProp p{};
    if (cudaGetDeviceProperties(&p, index) == cudaSuccess) return p.name;
#endif
    return "unknown GPU";
  }
  std::ifstream in("/proc/cpuinfo");
  for (std::string line; std::getline(in, line);)
    if (line.rfind("model name", 0) == 0) {
      const auto colon = line.find(':');
      if (colon != std::string::npos) {
        const auto start = line.find_first_not_of(' ', colon + 1);
        if (start != std::string::npos) return line.substr(start);
      }
    }
  return "unknown CPU";
}

std::string torch_build_config() { return at::show_config(); }

}  // namespace orch::runner
