// What a worker knows of the job it runs in, and asks of it, whatever scheduled it: the backend's name and the
// job's id (recorded with the attempt), the cores and GPUs the job was given, and a request to be started
// again after it exits. The Slurm backend and the local pool each implement it (scheduler/); the CLI picks one
// (scheduler::detect_job_environment) and hands it to the worker, which never reads a scheduler's variables
// or runs its commands itself. Implementations are used by one thread.
#pragma once

#include <algorithm>
#include <cstdlib>
#include <string>

namespace orch {

class JobEnvironment {
 public:
  virtual ~JobEnvironment() = default;
  virtual std::string backend() const = 0;  // "local", "slurm"
  virtual std::string job_id() const = 0;   // "" when the worker runs in the foreground
  // Called after a stop signal the scheduler sends ahead of a time limit (SIGUSR1/SIGUSR2), before the worker
  // exits with kExitRequeue: asks the scheduler to start the job again. Returns a clause for the attempt's
  // reason ("requeued Slurm job 12_3", or "" when nothing needs asking, as under the local pool).
  virtual std::string request_requeue(int signal) = 0;
  virtual int cpus() const { return 0; }  // cores given to the job (0: not known)
  virtual int gpus() const { return 0; }  // GPUs given to the job
  // This worker's share of them: gpus() divided among the workers that share them (ORCH_GPU_SHARERS, set by the
  // local pool and the Slurm job script when runs_per_gpu packs several runs onto one GPU).
  double gpu_share() const;

 protected:
  // The GPUs this process may use, as the scheduler set them: the entries of CUDA_VISIBLE_DEVICES (0 when unset).
  static int visible_gpus();
};

inline int JobEnvironment::visible_gpus() {
  const char* g = std::getenv("CUDA_VISIBLE_DEVICES");
  if (!g || !*g) return 0;
  return 1 + static_cast<int>(std::count(g, g + std::char_traits<char>::length(g), ','));
}

inline double JobEnvironment::gpu_share() const {
  int sharers = 1;
  if (const char* s = std::getenv("ORCH_GPU_SHARERS")) sharers = std::clamp(std::atoi(s), 1, 1024);
  return static_cast<double>(gpus()) / sharers;
}

}  // namespace orch
