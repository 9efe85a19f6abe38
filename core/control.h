// The bounds of the control plane's waits, read once from the environment (docs/control-plane.md, "Timeouts"):
//
//   ORCH_STORE_WAIT_S   60   longest wait on a run store that another process has locked, then BusyError
//   ORCH_LOCK_WAIT_S    30   longest wait for the workspace lock (another run/submit/resume/cancel), then BusyError
//   ORCH_HEARTBEAT_S    30   how often a worker (and a local pool) records that it is alive
//   ORCH_LOST_AFTER_S   600  a run whose last heartbeat is older than this is lost, whatever its state says
//   ORCH_FOLLOW_POLL_S  30   how often `submit --follow` looks for room under the queue limit
//
// A value that is not a positive number of seconds (at most 10^7) is an InputError naming the variable.
// Read once, then immutable; thread-safe.
#pragma once

namespace orch {

struct ControlTimeouts {
  double store_wait_s = 60;
  double lock_wait_s = 30;
  double heartbeat_s = 30;
  double lost_after_s = 600;
  double follow_poll_s = 30;
};

const ControlTimeouts& control_timeouts();

}  // namespace orch
