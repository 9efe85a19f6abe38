#include "storage/claims_table.h"

#include <cstdio>

#include "core/errors.h"
#include "core/exit_codes.h"
#include "storage/metrics_table.h"
#include "storage/run_state.h"
#include "storage/sqlite.h"
#include "storage/store.h"

namespace orch {

using Stmt = sqlite::Statement;

namespace {

AttemptRow read_attempt(Stmt& s) {
  AttemptRow a;
  a.attempt_id = s.integer(0);
  a.run_id = s.text(1);
  a.started_at = s.text(2);
  a.ended_at = s.text(3);
  a.host = s.text(4);
  a.holder = s.text(5);
  a.job_id = s.text(6);
  a.backend = s.text(7);
  a.reason = s.text(8);
  a.pid = s.integer_or(9, 0);
  a.exit_status = s.integer_or(10, -1);
  a.started_unix = s.real_or(11, 0);
  a.ended_unix = s.real_or(12, 0);
  a.heartbeat_unix = s.real_or(13, 0);
  a.start_epoch = s.integer_or(14, -1);
  a.start_batch = s.integer_or(15, -1);
  a.end_epoch = s.integer_or(16, -1);
  a.end_batch = s.integer_or(17, -1);
  a.gpus = s.real_or(18, 0);
  return a;
}

// Whether a claim's holder still lives: its process on this host, or a recent heartbeat from another.
bool holder_alive(const std::string& holder, double heartbeat, double now, double lost_after_s, std::string* why) {
  auto id = ProcessIdentity::parse(holder);
  Liveness l = id ? liveness(*id) : Liveness::kUnknown;
  if (l == Liveness::kGone) {
    *why = "its process " + holder + " is gone";
    return false;
  }
  // The heartbeat decides whatever the pid says: a live process that stopped beating is hung (SIGSTOP, a dead
  // file system), and holding the run forever would stall the grid.
  const double age = heartbeat > 0 ? now - heartbeat : 1e18;
  if (age <= lost_after_s) return true;
  char b[160];
  std::snprintf(b, sizeof b, "no heartbeat for %.0f s (bound %.0f s)", age, lost_after_s);
  *why = b;
  if (l == Liveness::kAlive) *why += " (pid " + std::to_string(id->pid) + " alive but not progressing)";
  return false;
}

}  // namespace

ClaimResult ClaimsTable::claim_run(const ClaimRequest& q) {
  ClaimResult r;
  const double now = store_.env().now();
  store_.write([&] {
    Stmt get(store_.database(), "SELECT state, claim_attempt FROM runs WHERE run_id = ?");
    get.bind(1, q.run_id);
    if (!get.row()) {
      r.outcome = ClaimResult::kMissing;
      return;
    }
    const std::string state = get.text(0);
    const int64_t claim = get.integer_or(1, 0);
    if (state == run_state::kDone) {
      r.outcome = ClaimResult::kAlreadyDone;
      return;
    }
    if (state == run_state::kCancelled) {
      r.outcome = ClaimResult::kCancelled;
      r.detail = "the run was cancelled (orchestrator resume restarts it)";
      return;
    }
    if (claim) {
      Stmt a(store_.database(), "SELECT holder, heartbeat_at, ended_at IS NULL, job_id FROM attempts WHERE attempt_id = ?");
      a.bind(1, claim);
      if (a.row() && a.integer(2) != 0) {
        std::string why;
        const std::string holder = a.text(0), job = a.text(3);
        const double hb = a.real_or(1, 0);
        if (holder_alive(holder, hb, now, q.lost_after_s, &why)) {
          char b[64];
          std::snprintf(b, sizeof b, "%.0f s ago", hb > 0 ? now - hb : 0.0);
          r.outcome = ClaimResult::kHeld;
          r.detail = "attempt " + std::to_string(claim) + " holds it: process " + holder +
                     (job.empty() ? "" : ", job " + job) + ", last heartbeat " + b;
          return;
        }
        Stmt close(store_.database(), "UPDATE attempts SET ended_at = " + std::string(sqlite::kNowUtc) +
                                   ", ended_unix = ?, reason = ? WHERE attempt_id = ?");
        close.bind(1, now).bind(2, "lost: " + why + "; taken over by a new claim").bind(3, claim);
        close.run();
        r.detail = "took over from attempt " + std::to_string(claim) + " (" + why + ")";
      }
    }
    Stmt ins(store_.database(), "INSERT INTO attempts(run_id, host, pid, job_id, holder, backend, heartbeat_at, started_unix, gpus) "
             "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)");
    ins.bind(1, q.run_id).bind(2, q.holder.host).bind(3, q.holder.pid).bind(4, q.job_id).bind(5, q.holder.str())
        .bind(6, q.backend).bind(7, now).bind(8, now).bind(9, q.gpus);
    ins.run();
    r.attempt_id = store_.database().last_insert_rowid();
    Stmt set(store_.database(), "UPDATE runs SET state = 'running', claim_attempt = ?, updated_at = " + std::string(sqlite::kNowUtc) +
                             " WHERE run_id = ?");
    set.bind(1, r.attempt_id).bind(2, q.run_id);
    set.run();
    r.outcome = ClaimResult::kClaimed;
  });
  return r;
}

ClaimStanding ClaimsTable::heartbeat(const std::string& run_id, int64_t attempt_id) {
  ClaimStanding standing = ClaimStanding::kLost;
  store_.write([&] {
    Stmt get(store_.database(), "SELECT state, claim_attempt FROM runs WHERE run_id = ?");
    get.bind(1, run_id);
    if (!get.row() || get.integer_or(1, 0) != attempt_id) return;
    standing = get.text(0) == run_state::kCancelled ? ClaimStanding::kCancelled : ClaimStanding::kHeld;
    Stmt set(store_.database(), "UPDATE attempts SET heartbeat_at = ? WHERE attempt_id = ?");
    set.bind(1, store_.env().now()).bind(2, attempt_id);
    set.run();
  });
  return standing;
}

bool ClaimsTable::held_by(const std::string& run_id, int64_t attempt_id) {
  Stmt get(store_.database(), "SELECT claim_attempt FROM runs WHERE run_id = ?");
  get.bind(1, run_id);
  return get.row() && get.integer_or(0, 0) == attempt_id;
}

bool ClaimsTable::publish_if_claim_held(const std::string& run_id, int64_t attempt_id, const std::function<void()>& publish) {
  bool held = false;
  store_.write([&] {
    held = held_by(run_id, attempt_id);
    if (held) publish();
  });
  return held;
}

void ClaimsTable::set_attempt_start(int64_t attempt_id, int64_t epoch, int64_t batch) {
  store_.write([&] {
    Stmt s(store_.database(), "UPDATE attempts SET start_epoch = ?, start_batch = ? WHERE attempt_id = ?");
    s.bind(1, epoch).bind(2, batch).bind(3, attempt_id);
    s.run();
  });
}

namespace {

void close_attempt(Store& store, int64_t attempt, int exit_status, const std::string& reason,
                   int64_t end_epoch, int64_t end_batch) {
  Stmt s(store.database(), "UPDATE attempts SET ended_at = " + std::string(sqlite::kNowUtc) +
                       ", ended_unix = ?, exit_status = ?, reason = ?, end_epoch = ?, end_batch = ? WHERE attempt_id = ?");
  s.bind(1, store.env().now()).bind(2, static_cast<int64_t>(exit_status)).bind(3, reason);
  if (end_epoch >= 0) s.bind(4, end_epoch); else s.bind_null(4);
  if (end_batch >= 0) s.bind(5, end_batch); else s.bind_null(5);
  s.bind(6, attempt);
  s.run();
}

}  // namespace

std::string ClaimsTable::finish_attempt(const std::string& run_id, int64_t attempt_id, const std::string& state,
                                  int exit_status, const std::string& reason, int64_t end_epoch, int64_t end_batch) {
  std::string final_state;
  store_.write([&] {
    Stmt get(store_.database(), "SELECT state, claim_attempt FROM runs WHERE run_id = ?");
    get.bind(1, run_id);
    if (!get.row() || get.integer_or(1, 0) != attempt_id) return;
    // A cancel that came while the worker ran wins over its requeue or failure (but not over a finished run).
    const bool cancelled = get.text(0) == run_state::kCancelled && state != run_state::kDone;
    final_state = cancelled ? run_state::kCancelled : state;
    Stmt set(store_.database(), "UPDATE runs SET state = ?, claim_attempt = NULL, updated_at = " + std::string(sqlite::kNowUtc) +
                             " WHERE run_id = ?");
    set.bind(1, final_state).bind(2, run_id);
    set.run();
    close_attempt(store_, attempt_id, cancelled ? kExitNotClaimed : exit_status,
                  cancelled ? reason + "; the run was cancelled" : reason, end_epoch, end_batch);
  });
  return final_state;
}

bool ClaimsTable::finish_done(const std::string& run_id, int64_t attempt_id, const std::vector<TestMetric>& metrics_rows,
                        const std::vector<InferenceRow>& times, int64_t end_epoch) {
  bool held = false;
  store_.write([&] {
    if (!held_by(run_id, attempt_id)) return;
    held = true;
    MetricsTable metrics(store_);
    metrics.put_test_metrics(run_id, metrics_rows);
    metrics.put_inference_times(run_id, times);
    Stmt set(store_.database(), "UPDATE runs SET state = 'done', claim_attempt = NULL, updated_at = " + std::string(sqlite::kNowUtc) +
                             " WHERE run_id = ?");
    set.bind(1, run_id);
    set.run();
    close_attempt(store_, attempt_id, 0, "done", end_epoch, 0);
  });
  return held;
}

bool ClaimsTable::abandon_claim(const std::string& run_id, const std::string& holder, const std::string& state,
                          int exit_status, const std::string& reason) {
  bool done = false;
  store_.write([&] {
    Stmt get(store_.database(), "SELECT r.claim_attempt, r.state FROM runs r JOIN attempts a ON a.attempt_id = r.claim_attempt "
             "WHERE r.run_id = ? AND a.holder = ? AND a.ended_at IS NULL");
    get.bind(1, run_id).bind(2, holder);
    if (!get.row()) return;
    const int64_t attempt = get.integer(0);
    const std::string final_state = get.text(1) == run_state::kCancelled ? run_state::kCancelled : state;
    Stmt set(store_.database(), "UPDATE runs SET state = ?, claim_attempt = NULL, updated_at = " + std::string(sqlite::kNowUtc) +
                             " WHERE run_id = ?");
    set.bind(1, final_state).bind(2, run_id);
    set.run();
    close_attempt(store_, attempt, exit_status, reason, -1, -1);
    done = true;
  });
  return done;
}

void ClaimsTable::end_attempt(int64_t attempt_id, int exit_status, const std::string& reason) {
  store_.write([&] { close_attempt(store_, attempt_id, exit_status, reason, -1, -1); });
}

std::vector<AttemptRow> ClaimsTable::attempts(const std::string& run_id) {
  Stmt s(store_.database(), "SELECT attempt_id, run_id, started_at, ended_at, host, holder, job_id, backend, reason, pid, exit_status, "
         "started_unix, ended_unix, heartbeat_at, start_epoch, start_batch, end_epoch, end_batch, gpus FROM attempts "
         "WHERE ? = '' OR run_id = ? ORDER BY attempt_id");
  s.bind(1, run_id).bind(2, run_id);
  std::vector<AttemptRow> out;
  while (s.row()) out.push_back(read_attempt(s));
  return out;
}

}  // namespace orch
