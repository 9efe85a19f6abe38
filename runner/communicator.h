// Communicators: how the ranks of a data-parallel run add up their gradients and agree on small values.
//
// Three implementations behind this one interface, chosen at run time (make_communicator):
//   single  one process, every collective a no-op;
//   mpi     OpenMPI over CPU tensors (compiled when MPI is found);
//   nccl    NCCL over CUDA tensors, its unique id broadcast over MPI when launched by mpirun/srun (compiled when
//           the CUDA toolkit and NCCL are found; refused at run time without a GPU).
// Collectives are issued by every rank in the same order. The control plane (stop flags, epoch sums) uses the
// small blocking calls; the data plane (gradient buckets) uses allreduce_async, whose handle the caller waits on.
// A Communicator is used from the training thread and the autograd hooks it triggers; not otherwise thread-safe.
#pragma once

#include <ATen/core/Tensor.h>

#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "core/choices.h"

namespace orch::runner {

class Communicator {
 public:
  virtual ~Communicator() = default;
  virtual std::string name() const = 0;
  virtual int rank() const = 0;
  virtual int world() const = 0;
  virtual int local_rank() const { return rank(); }
  // Sums a contiguous float32 tensor (CPU for mpi, CUDA for nccl) in place across ranks, in the background.
  // The returned function blocks until the sum is in place; call it exactly once.
  virtual std::function<void()> allreduce_async(at::Tensor flat) = 0;
  // Blocking sums and maxima of a few doubles (control plane; always host memory).
  virtual void allreduce_sum(std::vector<double>& values) = 0;
  virtual void allreduce_max(std::vector<double>& values) = 0;
  // Copies `t` (any device the communicator serves) from `root` to every rank.
  virtual void broadcast(at::Tensor t, int root) = 0;
  virtual void barrier() = 0;
};

// kAuto: nccl when `cuda` and built with NCCL, mpi when launched by mpirun or srun with more than one task, else
// single. Throws orch::Error when the kind is not built in or cannot run.
std::unique_ptr<Communicator> make_communicator(CommunicatorKind kind, bool cuda);

// Rank and world size from the launcher's environment (OpenMPI, PMIx, Slurm), without initialising MPI.
struct LaunchInfo {
  int rank = 0, world = 1, local_rank = 0;
  std::string launcher = "none";  // "mpirun", "srun" or "none"
};
LaunchInfo launch_info();

bool built_with_mpi();
bool built_with_nccl();

}  // namespace orch::runner
