#include "storage/runs_table.h"

#include <algorithm>

#include "core/errors.h"
#include "storage/run_state.h"
#include "storage/sqlite.h"
#include "storage/store.h"

namespace orch {

using Stmt = sqlite::Statement;

namespace {

// `s` selects kRunColumns, or kRunColumnsWithoutSettings (whose settings_json column is '').
RunRecord read_run(Stmt& s) {
  RunRecord r;
  r.run_id = s.text(0);
  r.experiment = s.text(1);
  r.dataset = s.text(2);
  r.model = s.text(3);
  r.seed = s.integer(4);
  r.stage = s.text(5);
  r.state = s.text(6);
  r.settings_json = s.text(7);
  r.depends_on = s.text(8);
  return r;
}

const char* kRunColumns = "run_id, experiment, dataset, model, seed, stage, state, settings_json, depends_on";
const char* kRunColumnsWithoutSettings = "r.run_id, r.experiment, r.dataset, r.model, r.seed, r.stage, r.state, '', r.depends_on";

}  // namespace

void RunsTable::upsert_runs(const std::vector<RunRecord>& runs) {
  store_.write([&] {
    Stmt s(store_.database(), "INSERT INTO runs(run_id, experiment, dataset, model, seed, stage, state, settings_json, depends_on) "
           "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT(run_id) DO UPDATE SET experiment = excluded.experiment, "
           "dataset = excluded.dataset, model = excluded.model, seed = excluded.seed, stage = excluded.stage, "
           "settings_json = excluded.settings_json, depends_on = excluded.depends_on, updated_at = " +
               std::string(sqlite::kNowUtc));
    for (const auto& r : runs) {
      s.reset();
      s.bind(1, r.run_id).bind(2, r.experiment).bind(3, r.dataset).bind(4, r.model).bind(5, r.seed).bind(6, r.stage)
          .bind(7, r.state).bind(8, r.settings_json.empty() ? std::string("{}") : r.settings_json).bind(9, r.depends_on);
      s.run();
    }
  });
}

void RunsTable::set_run_state(const std::string& run_id, const std::string& state) {
  store_.write([&] {
    Stmt s(store_.database(), "UPDATE runs SET state = ?, updated_at = " + std::string(sqlite::kNowUtc) + " WHERE run_id = ?");
    s.bind(1, state).bind(2, run_id);
    s.run();
    if (store_.database().changes() == 0) throw InputError(store_.path(), "run", run_id, "no such run in the store");
  });
}

void RunsTable::set_runs_state(const std::vector<std::string>& ids, const std::string& state) {
  store_.write([&] {
    Stmt s(store_.database(), "UPDATE runs SET state = ?, updated_at = " + std::string(sqlite::kNowUtc) + " WHERE run_id = ?");
    for (const auto& id : ids) {
      s.reset();
      s.bind(1, state).bind(2, id);
      s.run();
    }
  });
}

std::vector<std::string> RunsTable::transition_runs(const std::vector<std::string>& ids,
                                                const std::vector<std::string>& from, const std::string& to) {
  std::vector<std::string> changed;
  store_.write([&] {
    Stmt get(store_.database(), "SELECT state FROM runs WHERE run_id = ?");
    Stmt set(store_.database(), "UPDATE runs SET state = ?, updated_at = " + std::string(sqlite::kNowUtc) + " WHERE run_id = ?");
    for (const auto& id : ids) {
      get.reset();
      get.bind(1, id);
      if (!get.row()) continue;
      std::string now = get.text(0);
      if (std::find(from.begin(), from.end(), now) == from.end()) continue;
      set.reset();
      set.bind(1, to).bind(2, id);
      set.run();
      changed.push_back(id);
    }
  });
  return changed;
}

std::vector<std::string> RunsTable::cancel_runs(const std::vector<std::string>& ids) {
  return transition_runs(ids, {run_state::kQueued, run_state::kRunning}, run_state::kCancelled);
}

std::optional<RunRecord> RunsTable::run(const std::string& run_id) {
  Stmt s(store_.database(), std::string("SELECT ") + kRunColumns + " FROM runs WHERE run_id = ?");
  s.bind(1, run_id);
  if (s.row()) return read_run(s);
  return std::nullopt;
}

std::vector<RunRecord> RunsTable::runs(const std::string& experiment) {
  Stmt s(store_.database(), std::string("SELECT ") + kRunColumns + " FROM runs WHERE ? = '' OR experiment = ? ORDER BY run_id");
  s.bind(1, experiment).bind(2, experiment);
  std::vector<RunRecord> out;
  while (s.row()) out.push_back(read_run(s));
  return out;
}

std::vector<std::string> RunsTable::dispatch_runs(const std::vector<Dispatch>& runs, const std::string& backend) {
  std::vector<std::string> done;
  const double now = store_.env().now();
  store_.write([&] {
    Stmt get(store_.database(), "SELECT state, claim_attempt FROM runs WHERE run_id = ?");
    Stmt close(store_.database(), "UPDATE attempts SET ended_at = " + std::string(sqlite::kNowUtc) +
                               ", ended_unix = ?, reason = CASE WHEN reason = '' THEN 'lost: its holder was gone when the "
                               "run was dispatched again' ELSE reason END WHERE attempt_id = ? AND ended_at IS NULL");
    Stmt set(store_.database(), "UPDATE runs SET state = 'queued', claim_attempt = NULL, updated_at = " + std::string(sqlite::kNowUtc) +
                             " WHERE run_id = ?");
    Stmt job(store_.database(), "INSERT OR REPLACE INTO jobs(run_id, backend, job_id, heartbeat_at) VALUES (?, ?, ?, ?)");
    for (const auto& d : runs) {
      get.reset();
      get.bind(1, d.run_id);
      if (!get.row() || get.text(0) != d.expected_state) continue;
      if (!get.null(1)) {
        close.reset();
        close.bind(1, now).bind(2, get.integer(1));
        close.run();
      }
      set.reset();
      set.bind(1, d.run_id);
      set.run();
      job.reset();
      job.bind(1, d.run_id).bind(2, backend).bind(3, d.job_id).bind(4, now);
      job.run();
      done.push_back(d.run_id);
    }
  });
  return done;
}

void RunsTable::add_jobs(const std::vector<std::pair<std::string, std::string>>& run_and_job, const std::string& backend) {
  store_.write([&] {
    Stmt s(store_.database(), "INSERT OR REPLACE INTO jobs(run_id, backend, job_id, heartbeat_at) VALUES (?, ?, ?, ?)");
    for (const auto& [run, job] : run_and_job) {
      s.reset();
      s.bind(1, run).bind(2, backend).bind(3, job).bind(4, store_.env().now());
      s.run();
    }
  });
}

void RunsTable::replace_jobs(const std::vector<std::pair<std::string, std::string>>& run_and_job, const std::string& old_job,
                         const std::string& backend) {
  store_.write([&] {
    Stmt del(store_.database(), "DELETE FROM jobs WHERE run_id = ? AND job_id = ?");
    Stmt ins(store_.database(), "INSERT OR REPLACE INTO jobs(run_id, backend, job_id, heartbeat_at) VALUES (?, ?, ?, ?)");
    for (const auto& [run, job] : run_and_job) {
      del.reset();
      del.bind(1, run).bind(2, old_job);
      del.run();
      ins.reset();
      ins.bind(1, run).bind(2, backend).bind(3, job).bind(4, store_.env().now());
      ins.run();
    }
  });
}

void RunsTable::touch_job(const std::string& job_id) {
  store_.write([&] {
    Stmt s(store_.database(), "UPDATE jobs SET heartbeat_at = ? WHERE job_id = ?");
    s.bind(1, store_.env().now()).bind(2, job_id);
    s.run();
  });
}

std::vector<RunOverview> RunsTable::overview(const std::string& experiment) {
  // One row per run, each part an index seek: its claim's attempt, its number of attempts and last attempt, its
  // latest job; epochs_done is kept on the run by the store's trigger (storage/store.cpp).
  Stmt s(store_.database(), std::string("SELECT ") + kRunColumnsWithoutSettings +
         ", r.claim_attempt, c.holder, c.job_id, c.backend, c.heartbeat_at, c.ended_at IS NULL, r.epochs_done, "
         "(SELECT COUNT(*) FROM attempts WHERE run_id = r.run_id), l.exit_status, l.reason, l.host, l.pid, l.job_id, "
         "l.ended_at IS NULL, l.started_at, j.backend, j.job_id, j.heartbeat_at FROM runs r "
         "LEFT JOIN attempts c ON c.attempt_id = r.claim_attempt "
         "LEFT JOIN attempts l ON l.attempt_id = (SELECT MAX(attempt_id) FROM attempts WHERE run_id = r.run_id) "
         "LEFT JOIN jobs j ON j.rowid = (SELECT MAX(rowid) FROM jobs WHERE run_id = r.run_id) "
         "WHERE ? = '' OR r.experiment = ? ORDER BY r.run_id");
  s.bind(1, experiment).bind(2, experiment);
  std::vector<RunOverview> out;
  while (s.row()) {
    RunOverview o{read_run(s), {}};
    RunProgress& p = o.progress;
    p.claim_attempt = s.integer_or(9, 0);
    if (p.claim_attempt) {
      p.claim_holder = s.text(10);
      p.claim_job = s.text(11);
      p.claim_backend = s.text(12);
      p.claim_heartbeat = s.real_or(13, 0);
      p.claim_open = s.integer(14) != 0;
    }
    p.epochs_done = s.integer(15);
    p.attempts = s.integer(16);
    if (p.attempts) {
      p.last_exit = s.integer_or(17, -1);
      p.last_reason = s.text(18);
      p.last_host = s.text(19);
      p.last_pid = s.integer_or(20, 0);
      p.last_job = s.text(21);
      p.last_open = s.integer(22) != 0;
      p.last_started = s.text(23);
    }
    p.backend = s.text(24);
    p.job = s.text(25);
    p.job_heartbeat = s.real_or(26, 0);
    out.push_back(std::move(o));
  }
  return out;
}

std::unordered_map<std::string, std::string> RunsTable::states() {
  Stmt s(store_.database(), "SELECT run_id, state FROM runs");
  std::unordered_map<std::string, std::string> out;
  while (s.row()) out.emplace(s.text(0), s.text(1));
  return out;
}

std::unordered_map<std::string, RunProgress> RunsTable::progress(const std::string& experiment) {
  std::unordered_map<std::string, RunProgress> out;
  for (auto& o : overview(experiment)) out.emplace(std::move(o.record.run_id), std::move(o.progress));
  return out;
}

std::vector<std::pair<std::string, std::string>> RunsTable::active_jobs() {
  Stmt s(store_.database(),
         "SELECT j.backend, j.job_id FROM runs r JOIN jobs j ON j.rowid = (SELECT MAX(rowid) FROM jobs WHERE run_id = r.run_id) "
         "WHERE r.state IN (?, ?) "
         "UNION ALL SELECT a.backend, a.job_id FROM runs r JOIN attempts a ON a.attempt_id = r.claim_attempt "
         "WHERE r.state IN (?, ?) AND a.job_id <> '' AND a.backend <> ''");
  s.bind(1, run_state::kQueued).bind(2, run_state::kRunning).bind(3, run_state::kQueued).bind(4, run_state::kRunning);
  std::vector<std::pair<std::string, std::string>> out;
  while (s.row()) out.emplace_back(s.text(0), s.text(1));
  return out;
}

std::vector<JobRecord> RunsTable::jobs() {
  Stmt s(store_.database(), "SELECT run_id, backend, job_id FROM jobs ORDER BY submitted_at, job_id");
  std::vector<JobRecord> out;
  while (s.row()) out.push_back({s.text(0), s.text(1), s.text(2)});
  return out;
}

}  // namespace orch
