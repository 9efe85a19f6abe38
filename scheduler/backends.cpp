// The backends by name, and the job environment of a worker: the one place a backend is selected.
#include <memory>

#include "core/errors.h"
#include "scheduler/backend.h"
#include "scheduler/local_backend.h"
#include "scheduler/slurm_backend.h"

namespace orch::scheduler {

const char* job_phase_name(JobPhase p) {
  switch (p) {
    case JobPhase::kPending: return "pending";
    case JobPhase::kRunning: return "running";
    case JobPhase::kGone: return "gone";
    case JobPhase::kUnknown: return "unknown";
    case JobPhase::kCompleted: return "completed";
    case JobPhase::kFailed: return "failed";
    case JobPhase::kCancelled: return "cancelled";
    case JobPhase::kTimeout: return "timeout";
  }
  return "?";
}

const std::vector<BackendKind>& all_backends() {
  static const std::vector<BackendKind> kinds = {BackendKind::kLocal, BackendKind::kSlurm};
  return kinds;
}

std::unique_ptr<Backend> make_backend(BackendKind kind, const DispatchOptions& options) {
  switch (kind) {
    case BackendKind::kLocal: return std::make_unique<LocalBackend>(options);
    case BackendKind::kSlurm: return std::make_unique<SlurmBackend>(options);
  }
  throw Error("unknown backend");
}

std::unique_ptr<JobEnvironment> detect_job_environment(bool slurm_self_requeue) {
  if (SlurmJobEnvironment::present()) return std::make_unique<SlurmJobEnvironment>(slurm_self_requeue);
  return std::make_unique<LocalJobEnvironment>();
}

}  // namespace orch::scheduler
