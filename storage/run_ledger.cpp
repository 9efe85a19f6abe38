#include "storage/metrics_table.h"
#include "storage/run_ledger.h"

#include <chrono>

#include "core/errors.h"
#include "storage/claims_table.h"
#include "storage/run_state.h"

namespace orch {

RunLedger::RunLedger(std::string store_path, std::string run_id)
    : store_path_(std::move(store_path)), run_id_(std::move(run_id)), store_(std::make_unique<Store>(store_path_)) {}

RunLedger::~RunLedger() { stop_heartbeat(); }

ClaimResult RunLedger::claim(const ProcessIdentity& holder, const std::string& job_id, const std::string& backend,
                             double gpus, double lost_after_s) {
  ClaimRequest q;
  q.run_id = run_id_;
  q.holder = holder;
  q.job_id = job_id;
  q.backend = backend;
  q.gpus = gpus;
  q.lost_after_s = lost_after_s;
  ClaimResult r = ClaimsTable(*store_).claim_run(q);
  if (r.outcome == ClaimResult::kClaimed) attempt_ = r.attempt_id;
  return r;
}

void RunLedger::start_heartbeat(double interval_s, std::function<void(ClaimStanding)> on_change) {
  if (!attempt_ || beat_.joinable()) return;
  stopping_ = false;
  beat_ = std::thread([this, interval_s, on_change] {
    std::unique_ptr<Store> own;
    bool told_cancel = false, told_lost = false;
    std::unique_lock<std::mutex> lock(mu_);
    while (!cv_.wait_for(lock, std::chrono::duration<double>(interval_s), [this] { return stopping_; })) {
      lock.unlock();
      try {
        if (!own) own = std::make_unique<Store>(store_path_);
        ClaimStanding s = ClaimsTable(*own).heartbeat(run_id_, attempt_);
        if (s == ClaimStanding::kCancelled && !told_cancel) {
          told_cancel = true;
          on_change(s);
        } else if (s == ClaimStanding::kLost && !told_lost) {
          told_lost = true;
          on_change(s);
        }
      } catch (const std::exception&) {
        own.reset();  // a busy or briefly unavailable store: try again at the next beat
      }
      lock.lock();
    }
  });
}

void RunLedger::stop_heartbeat() {
  {
    std::lock_guard<std::mutex> l(mu_);
    stopping_ = true;
  }
  cv_.notify_all();
  if (beat_.joinable()) beat_.join();
}

PublishFence RunLedger::fence() {
  return [this](const std::function<void()>& publish) {
    return attempt_ != 0 && ClaimsTable(*store_).publish_if_claim_held(run_id_, attempt_, publish);
  };
}

void RunLedger::started_at(int64_t epoch, int64_t batch) {
  if (attempt_) ClaimsTable(*store_).set_attempt_start(attempt_, epoch, batch);
}

bool RunLedger::epoch(int64_t epoch, double train_loss, double val_criterion, double learning_rate, double seconds) {
  return MetricsTable(*store_).add_epoch_metrics(EpochMetrics{run_id_, attempt_, epoch, train_loss, val_criterion, learning_rate, seconds});
}

bool RunLedger::done(const std::vector<TestMetric>& metrics, const std::vector<InferenceRow>& times, int64_t end_epoch) {
  return ClaimsTable(*store_).finish_done(run_id_, attempt_, metrics, times, end_epoch);
}

std::string RunLedger::stopped(int exit_status, const std::string& reason, int64_t end_epoch, int64_t end_batch) {
  return ClaimsTable(*store_).finish_attempt(run_id_, attempt_, run_state::kQueued, exit_status, reason, end_epoch, end_batch);
}

void RunLedger::failed(const std::string& reason, int64_t end_epoch, int64_t end_batch) {
  if (attempt_) ClaimsTable(*store_).finish_attempt(run_id_, attempt_, run_state::kFailed, kExitFailure, reason, end_epoch, end_batch);
}

}  // namespace orch
