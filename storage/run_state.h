// The states of a run, written once (docs/control-plane.md, "Run states", draws their transitions):
//
//   new          recorded, never dispatched
//   queued       dispatched: a backend job will start it (a pool's pending run, a Slurm task, a requeue)
//   running      claimed by a worker (its attempt holds the run; heartbeats keep the claim)
//   done         trained and evaluated
//   failed       the worker failed (the attempt's reason says why)
//   cancelled    `cancel` stopped it (checkpointed first); not restarted until `resume`
//   timeout      its Slurm job reached the time limit without requeueing
//   lost         its job is gone, or its heartbeat is too old, while the store still said queued/running
//   interrupted  its pool or command was interrupted (SIGINT/SIGTERM): checkpointed and stopped
//   damaged      shown only (never recorded): done in the store, but an artefact it must have is missing (its
//                best checkpoint, its predictions); `resume --rebuild-damaged` rebuilds it
//
// `lost` is mostly inferred when a plan or status looks (scheduler/plan.h); the store records it when a claim
// takes a run over from a dead holder. Values only; thread-safe.
#pragma once

#include <string>
#include <vector>

namespace orch::run_state {

inline const std::string kNew = "new";
inline const std::string kQueued = "queued";
inline const std::string kRunning = "running";
inline const std::string kDone = "done";
inline const std::string kFailed = "failed";
inline const std::string kCancelled = "cancelled";
inline const std::string kTimeout = "timeout";
inline const std::string kLost = "lost";
inline const std::string kInterrupted = "interrupted";
inline const std::string kDamaged = "damaged";

const std::vector<std::string>& all();
// Queued or running: a job is (supposed to be) on it.
bool is_active(const std::string& state);
// What `resume` restarts: failed, cancelled, timeout, lost, interrupted.
bool is_resumable(const std::string& state);

}  // namespace orch::run_state
