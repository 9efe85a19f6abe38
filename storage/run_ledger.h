// The worker's whole conversation with the run store about one run, in one object: the claim, the heartbeats,
// where the attempt started, the per-epoch metrics, and the final word (done with its test metrics, stopped for
// a requeue, or failed). Every write after the claim is fenced by the claim's attempt (storage/store.h): if
// another worker took the run over (this one was judged dead), they change nothing and the ledger reports the
// claim as lost.
//
// The heartbeat runs on its own thread with its own store connection, every ORCH_HEARTBEAT_S; it tells the
// worker when the run was cancelled (so it checkpoints and stops, even on a host `cancel` cannot signal) or its
// claim was lost (so it stops without writing). All other calls come from one thread (rank 0's main thread).
#pragma once

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "core/atomic_file.h"
#include "storage/claims_table.h"
#include "storage/store.h"

namespace orch {

class RunLedger {
 public:
  RunLedger(std::string store_path, std::string run_id);
  ~RunLedger();
  RunLedger(const RunLedger&) = delete;
  RunLedger& operator=(const RunLedger&) = delete;

  Store& store() { return *store_; }
  const std::string& run_id() const { return run_id_; }
  int64_t attempt() const { return attempt_; }

  // The compare-and-set that starts the run (ClaimsTable::claim_run). On kClaimed the ledger holds the attempt.
  ClaimResult claim(const ProcessIdentity& holder, const std::string& job_id, const std::string& backend, double gpus,
                    double lost_after_s);
  // Heartbeats every `interval_s` until stop_heartbeat(); calls `on_change` (from the heartbeat thread) once when
  // the run is cancelled and once when the claim is lost. Store errors in the thread are retried, not thrown.
  void start_heartbeat(double interval_s, std::function<void(ClaimStanding)> on_change);
  void stop_heartbeat();

  // The fence for this attempt's file publications (core/atomic_file.h): a rename runs only while the claim is
  // held (ClaimsTable::publish_if_claim_held). Call from the thread that owns the ledger.
  PublishFence fence();

  void started_at(int64_t epoch, int64_t batch);
  // False when the claim is lost (nothing written).
  bool epoch(int64_t epoch, double train_loss, double val_criterion, double learning_rate, double seconds);
  bool done(const std::vector<TestMetric>& metrics, const std::vector<InferenceRow>& times, int64_t end_epoch);
  // Checkpointed and stopped: the run goes back to queued (a requeue) unless it was cancelled meanwhile. Returns the
  // run's state afterwards ("" when the claim was lost).
  std::string stopped(int exit_status, const std::string& reason, int64_t end_epoch, int64_t end_batch);
  void failed(const std::string& reason, int64_t end_epoch, int64_t end_batch);

 private:
  std::string store_path_, run_id_;
  std::unique_ptr<Store> store_;
  int64_t attempt_ = 0;
  std::thread beat_;
  std::mutex mu_;
  std::condition_variable cv_;
  bool stopping_ = false;
};

}  // namespace orch
