// The run store's claims and attempts (docs/control-plane.md, "The control plane: claims, heartbeats, the lock"). A run starts only through
// claim_run(), a compare-and-set that, in one transaction, checks the run's state and its current claim, closes a
// dead holder's attempt (its process gone, or no heartbeat within the bound), opens a new attempt and makes it the
// run's claim. Writes the worker makes afterwards are fenced by that attempt (storage/run_ledger.h holds the
// worker's side): once another attempt has taken the claim, they change nothing. A part of the store
// (storage/store.h): its SQL and its row mapper live here. Shares the Store's connection: use it from the thread
// that uses that Store.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "core/process_identity.h"
#include "storage/metrics_table.h"

namespace orch {

class Store;

struct AttemptRow {
  int64_t attempt_id = 0;
  std::string run_id, started_at, ended_at, host, holder, job_id, backend, reason;
  int64_t pid = 0, exit_status = -1;  // -1: open
  double started_unix = 0, ended_unix = 0, heartbeat_unix = 0;
  int64_t start_epoch = -1, start_batch = -1, end_epoch = -1, end_batch = -1;
  double gpus = 0;  // the attempt's GPUs; a share when several runs use one GPU (0.25 for 4)
};

// What claim_run() is asked and what it answers.
struct ClaimRequest {
  std::string run_id;
  ProcessIdentity holder;
  std::string job_id, backend;
  double gpus = 0;  // a share when several runs use one GPU
  double lost_after_s = 600;  // a holder on another host whose heartbeat is older than this is dead
};
struct ClaimResult {
  enum Outcome { kClaimed, kAlreadyDone, kCancelled, kHeld, kMissing } outcome = kMissing;
  int64_t attempt_id = 0;   // kClaimed: the new attempt
  std::string detail;       // kHeld: who holds it; kClaimed: the dead holder it took over from, if any
};

// What a fenced heartbeat learns: the attempt still holds the run, the run was cancelled meanwhile, or another
// attempt took the claim (this worker must stop without writing anything more).
enum class ClaimStanding { kHeld, kCancelled, kLost };

class ClaimsTable {
 public:
  explicit ClaimsTable(Store& store) : store_(store) {}

  ClaimResult claim_run(const ClaimRequest& request);
  ClaimStanding heartbeat(const std::string& run_id, int64_t attempt_id);
  // Runs `publish` (a file's rename into place) only while `attempt_id` holds the run's claim, inside the write
  // transaction that checked it, so no takeover can come between the check and the rename. False (and `publish`
  // not run) when the claim is gone.
  bool publish_if_claim_held(const std::string& run_id, int64_t attempt_id, const std::function<void()>& publish);
  // Whether `attempt_id` holds the run's claim now: the fence's check, for a write transaction the caller already
  // holds (Store::write), so that nothing can take the claim between the check and the write.
  bool held_by(const std::string& run_id, int64_t attempt_id);
  void set_attempt_start(int64_t attempt_id, int64_t epoch, int64_t batch);
  // The run's final word, fenced: only while `attempt_id` holds the claim. `state` is the run's new state and the
  // attempt is closed with `exit_status` and `reason`, except that a run cancelled meanwhile stays cancelled (its
  // attempt then ends with kExitNotClaimed). Returns the run's state afterwards, or "" (nothing changed) when the
  // attempt no longer holds the claim.
  std::string finish_attempt(const std::string& run_id, int64_t attempt_id, const std::string& state, int exit_status,
                             const std::string& reason, int64_t end_epoch, int64_t end_batch);
  // Test metrics, inference times and the done state in one transaction, fenced likewise.
  bool finish_done(const std::string& run_id, int64_t attempt_id, const std::vector<TestMetric>& metrics,
                   const std::vector<InferenceRow>& times, int64_t end_epoch);
  // For a worker that died without its final word (killed, crashed): when the run's claim is still held by an open
  // attempt of `holder` (a process identity), ends it as `state` with `reason`. Returns whether it did.
  bool abandon_claim(const std::string& run_id, const std::string& holder, const std::string& state, int exit_status,
                     const std::string& reason);
  // Closes an attempt that has no claim (a worker that failed before or without claiming).
  void end_attempt(int64_t attempt_id, int exit_status, const std::string& reason);
  std::vector<AttemptRow> attempts(const std::string& run_id = "");

 private:
  Store& store_;
};

}  // namespace orch
