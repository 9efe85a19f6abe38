// doctor: what this orchestrator is built with and what it finds here (runner/environment.h), and whether a run
// can use this machine's GPUs: the first command to run on a new cluster node (docs/gpu-clusters.md).
#include <cstdio>

#include "cli/options.h"
#include "runner/environment.h"

namespace orch::cli {

int cmd_doctor(const Args& args) {
  po::options_description desc("orchestrator doctor");
  bool config = false;
  desc.add_options()("torch-config", po::bool_switch(&config), "also print LibTorch's own build configuration");
  po::variables_map vm;
  if (!parse_options(args, desc, vm, "orchestrator doctor [--torch-config]")) return 0;
  std::string cuda, gpus, nccl;
  for (const auto& [k, v] : runner::environment_facts()) {
    std::printf("%-16s %s\n", k.c_str(), v.c_str());
    if (k == "cuda_available") cuda = v;
    if (k == "nccl_built") nccl = v;
  }
  if (cuda != "yes")
    std::printf("\nNo CUDA device is usable by this build: runs with training.device \"auto\" train on the CPU, and \"cuda\" "
                "fails. A GPU build needs a CUDA LibTorch (docs/gpu-clusters.md).\n");
  else if (nccl != "yes")
    std::printf("\nCUDA is usable; NCCL was not found at build time, so a run on several GPUs uses MPI (CPU tensors).\n");
  if (config) std::printf("\n%s", runner::torch_build_config().c_str());
  return 0;
}

}  // namespace orch::cli
