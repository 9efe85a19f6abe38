#include "runner/communicator.h"

#include <cstdlib>
#include <string>

#include "core/errors.h"

namespace orch::runner {

// Defined in communicator_mpi.cpp / communicator_nccl.cpp when built in.
#ifdef ORCH_HAVE_MPI
std::unique_ptr<Communicator> make_mpi_communicator();
#endif
#ifdef ORCH_HAVE_NCCL
std::unique_ptr<Communicator> make_nccl_communicator();
#endif

namespace {

class SingleCommunicator : public Communicator {
 public:
  std::string name() const override { return "single"; }
  int rank() const override { return 0; }
  int world() const override { return 1; }
  std::function<void()> allreduce_async(at::Tensor) override { return [] {}; }
  void allreduce_sum(std::vector<double>&) override {}
  void allreduce_max(std::vector<double>&) override {}
  void broadcast(at::Tensor, int) override {}
  void barrier() override {}
};

int env_int(const char* name, int fallback) {
  const char* v = std::getenv(name);
  if (!v || !*v) return fallback;
  char* end = nullptr;
  long x = std::strtol(v, &end, 10);
  return (end && *end == 0) ? static_cast<int>(x) : fallback;
}

}  // namespace

LaunchInfo launch_info() {
  LaunchInfo l;
  if (std::getenv("OMPI_COMM_WORLD_SIZE")) {
    l.launcher = "mpirun";
    l.world = env_int("OMPI_COMM_WORLD_SIZE", 1);
    l.rank = env_int("OMPI_COMM_WORLD_RANK", 0);
    l.local_rank = env_int("OMPI_COMM_WORLD_LOCAL_RANK", l.rank);
  } else if (std::getenv("PMIX_RANK") && std::getenv("SLURM_NTASKS")) {
    l.launcher = "srun";
    l.world = env_int("SLURM_NTASKS", 1);
    l.rank = env_int("PMIX_RANK", 0);
    l.local_rank = env_int("SLURM_LOCALID", l.rank);
  } else if (std::getenv("SLURM_STEP_ID") && std::getenv("SLURM_NTASKS") && std::getenv("SLURM_PROCID")) {
    l.launcher = "srun";
    l.world = env_int("SLURM_NTASKS", 1);
    l.rank = env_int("SLURM_PROCID", 0);
    l.local_rank = env_int("SLURM_LOCALID", l.rank);
  }
  return l;
}

bool built_with_mpi() {
#ifdef ORCH_HAVE_MPI
  return true;
#else
  return false;
#endif
}

bool built_with_nccl() {
#ifdef ORCH_HAVE_NCCL
  return true;
#else
  return false;
#endif
}

std::unique_ptr<Communicator> make_communicator(CommunicatorKind kind, bool cuda) {
  using K = CommunicatorKind;
  if (kind == K::kAuto) kind = cuda && built_with_nccl() ? K::kNccl : launch_info().world > 1 ? K::kMpi : K::kSingle;
  switch (kind) {
    case K::kSingle:
      if (launch_info().world > 1)
        throw Error("communicator single: launched as " + std::to_string(launch_info().world) +
                    " ranks; use mpi or nccl (or auto)");
      return std::make_unique<SingleCommunicator>();
    case K::kMpi:
#ifdef ORCH_HAVE_MPI
      if (cuda) throw Error("communicator mpi reduces CPU tensors; with a CUDA device use nccl (or auto)");
      return make_mpi_communicator();
#else
      throw Error("communicator mpi: this build has no MPI (CMake did not find it)");
#endif
    case K::kNccl:
#ifdef ORCH_HAVE_NCCL
      if (!cuda) throw Error("communicator nccl needs a CUDA device; none is in use (device cpu, or no GPU found)");
      return make_nccl_communicator();
#else
      throw Error("communicator nccl: this build has no NCCL (CMake found no CUDA toolkit with nccl.h)");
#endif
    case K::kAuto: break;
  }
  throw Error("communicator: no kind chosen");
}

}  // namespace orch::runner
