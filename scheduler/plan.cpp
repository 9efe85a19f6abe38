#include "scheduler/plan.h"

#include <sys/stat.h>

#include <algorithm>
#include <filesystem>
#include <functional>
#include <future>
#include <set>
#include <unordered_map>
#include <unordered_set>

#include "core/control.h"
#include "core/errors.h"
#include "core/process_identity.h"
#include "core/thread_pool.h"
#include "scheduler/retry.h"
#include "storage/accounting_table.h"
#include "storage/layout.h"
#include "storage/run_state.h"
#include "storage/runs_table.h"

namespace orch::scheduler {

namespace rs = run_state;
namespace fs = std::filesystem;

namespace {

std::string key_of(const RunSettings& s) {
  return s.dataset + "/" + s.model + "/" + std::to_string(s.seed) + "/" + choice_name(s.stage);
}

std::string seconds_text(double s) {
  char b[32];
  std::snprintf(b, sizeof b, "%.0f s", s);
  return b;
}

// A final or vanished job, as the run's state; "" when the job is still on its way.
Judgement from_job(const std::string& job, const JobState& js, const std::string& recorded) {
  switch (js.phase) {
    case JobPhase::kPending:
    case JobPhase::kRunning:
    case JobPhase::kUnknown:
      return {"", ""};
    case JobPhase::kGone:
      return {rs::kLost, "its job " + job + " is gone" + (js.detail.empty() ? "" : " (" + js.detail + ")"), true};
    case JobPhase::kCompleted:
      return {rs::kLost, "its job " + job + " ended while the store says " + recorded, true};
    case JobPhase::kFailed:
      return {rs::kFailed, js.detail.empty() ? "its job " + job + " failed" : js.detail, js.transient};
    case JobPhase::kCancelled:
      return {rs::kCancelled, js.detail.empty() ? "its job " + job + " was cancelled" : js.detail};
    case JobPhase::kTimeout:
      return {rs::kTimeout, js.detail.empty() ? "its job " + job + " reached its time limit" : js.detail};
  }
  return {"", ""};
}

}  // namespace

std::string stale_heartbeat(double heartbeat, double now, double lost_after_s, const std::optional<ProcessIdentity>& holder,
                            Liveness l) {
  const double age = heartbeat > 0 ? now - heartbeat : 1e18;
  if (age <= lost_after_s) return "";
  std::string why = heartbeat > 0 ? "no heartbeat for " + seconds_text(age) : "no heartbeat recorded";
  if (l == Liveness::kAlive && holder)
    why += " (pid " + std::to_string(holder->pid) + " alive but not progressing)";
  return why + " (ORCH_LOST_AFTER_S " + seconds_text(lost_after_s) + ")";
}

Judgement judge(const std::string& recorded, const RunProgress& p, const std::map<std::string, JobState>& jobs,
                double now, double lost_after_s) {
  if (!rs::is_active(recorded)) return {recorded, ""};
  auto job_of = [&](const std::string& id) {
    auto it = jobs.find(id);
    return it == jobs.end() ? JobState{} : it->second;
  };
  if (recorded == rs::kRunning && p.claim_attempt && p.claim_open) {
    auto holder = ProcessIdentity::parse(p.claim_holder);
    const Liveness l = holder ? liveness(*holder) : Liveness::kUnknown;
    if (l == Liveness::kGone) return {rs::kLost, "its worker process " + p.claim_holder + " is gone", true};
    if (l != Liveness::kAlive && !p.claim_job.empty()) {  // what its job's end says first (failed, timeout...)
      Judgement j = from_job(p.claim_job, job_of(p.claim_job), recorded);
      if (!j.state.empty()) return j;
    }
    // The heartbeat decides whatever the pid says: a stopped or hung worker (SIGSTOP, a dead file system) is
    // alive and would hold its run forever otherwise.
    if (std::string why = stale_heartbeat(p.claim_heartbeat, now, lost_after_s, holder, l); !why.empty())
      return {rs::kLost, why, true};
    return {recorded, ""};
  }
  // Queued (or running without a claim, as an older orchestrator recorded it): the job that will start it.
  if (p.job.empty()) return {rs::kLost, "it is " + recorded + " but no job was recorded for it", true};
  Judgement j = from_job(p.job, job_of(p.job), recorded);
  if (!j.state.empty()) return j;
  const JobState js = job_of(p.job);
  // A job nobody can vouch for: a pool on another host that stopped beating, or a Slurm job Slurm has no record of
  // long after it was submitted.
  if (js.phase == JobPhase::kUnknown && p.job_heartbeat > 0 && now - p.job_heartbeat > lost_after_s)
    return {rs::kLost, "nothing was heard of its job " + p.job + " for " + seconds_text(now - p.job_heartbeat) +
                           (js.detail.empty() ? "" : " (" + js.detail + ")"),
            true};
  return {recorded, ""};
}

namespace {

// Jobs whose accounting each backend says is not final yet (no row, or the newest row still open).
std::vector<std::pair<std::string, BackendKind>> jobs_to_account(Store& store,
                                                                 const std::map<BackendKind, std::unique_ptr<Backend>>& backends) {
  std::map<std::string, JobAccount> newest;
  for (auto& a : AccountingTable(store).of())
    if (!newest.count(a.job_id) || a.started >= newest[a.job_id].started) newest[a.job_id] = a;
  std::vector<std::pair<std::string, BackendKind>> out;
  for (const auto& j : RunsTable(store).jobs()) {
    auto kind = choice_from<BackendKind>(j.backend);
    if (!kind || j.job_id.empty()) continue;  // a backend this build does not know
    auto it = newest.find(j.job_id);
    if (backends.at(*kind)->accounting_open(j.job_id, it == newest.end() ? nullptr : &it->second))
      out.emplace_back(j.job_id, *kind);
  }
  return out;
}

}  // namespace

std::map<std::string, JobState> live_job_states(Store& store, const std::string& workspace) {
  DispatchOptions o;
  o.workspace = workspace;
  std::map<BackendKind, std::unique_ptr<Backend>> backends;
  for (BackendKind kind : all_backends()) backends[kind] = make_backend(kind, o);
  std::map<BackendKind, std::vector<std::string>> by_backend;
  auto add = [&](const std::string& backend, const std::string& job) {
    if (auto kind = choice_from<BackendKind>(backend)) by_backend[*kind].push_back(job);  // else unknown here
  };
  for (const auto& [backend, job] : RunsTable(store).active_jobs()) add(backend, job);
  // Jobs whose accounting is not final yet (a run may finish between two looks): asked once more, for the rows.
  for (const auto& [job, kind] : jobs_to_account(store, backends)) by_backend[kind].push_back(job);
  std::map<std::string, JobState> out;
  std::vector<JobAccount> accounts;
  for (auto& [kind, jobs] : by_backend) {
    Backend& b = *backends.at(kind);
    for (auto& [job, st] : b.job_states(jobs)) out[job] = st;
    for (auto& a : b.accounts()) accounts.push_back(std::move(a));
  }
  if (!accounts.empty()) {
    std::multimap<std::string, std::string> runs_of;  // job -> its runs, from every job recorded
    for (const auto& j : RunsTable(store).jobs()) runs_of.emplace(j.job_id, j.run_id);
    std::vector<JobAccount> known;
    for (const auto& a : accounts)
      for (auto [it, end] = runs_of.equal_range(a.job_id); it != end; ++it) {
        known.push_back(a);
        known.back().run_id = it->second;
      }
    try {
      AccountingTable(store).upsert(known);
    } catch (const Error&) {  // a read-only or full workspace: status still shows the states
    }
  }
  return out;
}

void record_runs(Store& store, const std::vector<PlannedRun>& runs) {
  std::vector<RunRecord> recs;
  for (const auto& r : runs) {
    RunRecord rec;
    rec.run_id = r.id;
    rec.experiment = r.settings.experiment;
    rec.dataset = r.settings.dataset;
    rec.model = r.settings.model;
    rec.seed = r.settings.seed;
    rec.stage = choice_name(r.settings.stage);
    rec.settings_json = r.settings.to_json().dump();
    for (const auto& d : r.depends_on) rec.depends_on += (rec.depends_on.empty() ? "" : " ") + d;
    recs.push_back(rec);
  }
  RunsTable(store).upsert_runs(recs);
}

namespace {

bool file_exists(const std::string& path) {
  struct stat st;
  return ::stat(path.c_str(), &st) == 0;
}

}  // namespace

std::string missing_artefacts(const std::string& workspace, const std::string& run_id) {
  const WorkspaceLayout layout(workspace);
  const std::string ckpt = layout.checkpoints(run_id) + "/";
  std::string missing;
  if (!file_exists(ckpt + kBestCheckpoint) && !file_exists(ckpt + kBestCheckpointCopy))
    missing = "best checkpoint (" + ckpt + kBestCheckpoint + " and its copy)";
  if (const std::string predictions = layout.predictions(run_id); !file_exists(predictions))
    missing += (missing.empty() ? "" : ", ") + std::string("predictions (") + predictions + ")";
  return missing;
}

namespace {

using RunIndex = std::unordered_map<std::string, const PlannedRun*>;

// What the store and the jobs say of the grid's runs, read once for a plan.
struct StoreView {
  // Hashed by run id: a plan looks each run up several times, and in sorted maps the comparisons of 100,000 ids
  // sharing long prefixes were a tenth of a status's time.
  std::unordered_map<std::string, RunRecord> recorded;
  std::unordered_map<std::string, RunProgress> progress;
  std::unordered_map<std::string, Judgement> shown;        // recorded id -> what it is
  std::map<std::string, std::vector<std::string>> by_key;  // recorded ids not in the grid, by dataset/model/seed/stage
  std::unordered_map<std::string, bool> lost_best;         // damaged id -> its best checkpoint is among what is missing

  std::string state(const std::string& id) const {
    auto it = shown.find(id);
    return it == shown.end() ? rs::kNew : it->second.state;
  }
};

// Done runs of this grid whose artefacts are gone: shown as damaged (what is missing in `why`). Two `stat` calls
// per done run, on a pool of threads: on a network file system (Lustre, NFS) each takes a round trip.
void mark_damaged(const std::vector<PlannedRun>& grid, const std::string& workspace, StoreView& v) {
  std::vector<std::string> done;
  for (const auto& r : grid)
    if (auto it = v.shown.find(r.id); it != v.shown.end() && it->second.state == rs::kDone) done.push_back(r.id);
  if (done.empty()) return;  // nothing to check: no pool
  std::vector<std::string> missing(done.size());
  const size_t chunk = 256;
  {
    ThreadPool pool(static_cast<int>(std::min<size_t>(8, (done.size() + chunk - 1) / chunk)));
    std::vector<std::future<void>> parts;
    for (size_t lo = 0; lo < done.size(); lo += chunk)
      parts.push_back(pool.submit([&, lo] {
        for (size_t i = lo; i < std::min(done.size(), lo + chunk); ++i) missing[i] = missing_artefacts(workspace, done[i]);
      }));
    for (auto& p : parts) p.get();  // in order: the first error (a path too long to build) reaches the caller
  }
  for (size_t i = 0; i < done.size(); ++i) {
    if (missing[i].empty()) continue;
    v.shown[done[i]] = {rs::kDamaged, "missing: " + missing[i]};
    v.lost_best[done[i]] = missing[i].rfind("best checkpoint", 0) == 0;
  }
}

StoreView read_view(const std::vector<PlannedRun>& grid, const RunIndex& by_id, Store& store,
                    const std::map<std::string, JobState>& jobs, const PlanOptions& options) {
  StoreView v;
  std::vector<RunRecord> runs = RunsTable(store).runs_without_settings();  // by run id
  const bool all_in_grid = std::all_of(runs.begin(), runs.end(), [&](const RunRecord& r) { return by_id.count(r.run_id) > 0; });
  for (const auto& rec : all_in_grid ? std::vector<RunRecord>{} : RunsTable(store).runs()) {
    if (by_id.count(rec.run_id)) continue;  // runs an earlier version of the experiment recorded: their settings
    nlohmann::json j = nlohmann::json::parse(rec.settings_json, nullptr, false);
    if (!j.is_object()) continue;
    try {
      v.by_key[key_of(RunSettings::from_json(j, rec.run_id))].push_back(rec.run_id);
    } catch (const std::exception&) {
    }
  }
  v.recorded.reserve(runs.size());
  for (auto& r : runs) v.recorded.emplace(r.run_id, std::move(r));
  v.progress = RunsTable(store).progress();
  const double now = store.env().now();
  const double lost_after = control_timeouts().lost_after_s;
  v.shown.reserve(v.recorded.size());
  for (const auto& [id, rec] : v.recorded) v.shown[id] = judge(rec.state, v.progress[id], jobs, now, lost_after);
  if (!options.workspace.empty()) mark_damaged(grid, options.workspace, v);
  return v;
}

// The runs a plan lists: those the filter keeps, plus their unfinished dependencies.
std::unordered_set<std::string> listed_runs(const std::vector<PlannedRun>& grid, const RunIndex& by_id, const Filter& only,
                                            const StoreView& v) {
  std::unordered_set<std::string> listed;
  std::function<void(const std::string&)> add = [&](const std::string& id) {
    if (!listed.insert(id).second) return;
    for (const auto& d : by_id.at(id)->depends_on)
      if (v.state(d) != rs::kDone) add(d);
  };
  for (const auto& r : grid)
    if (only.matches(r)) add(r.id);
  return listed;
}

// A run's state as recorded and as shown, with why it is what it is (a job's end, a failed dependency).
RunStatus status_of(const PlannedRun& r, const StoreView& v) {
  RunStatus st;
  st.run = r;
  auto it = v.recorded.find(r.id);
  st.recorded = it != v.recorded.end();
  st.recorded_state = st.recorded ? it->second.state : rs::kNew;
  st.state = v.state(r.id);
  if (auto p = v.progress.find(r.id); p != v.progress.end()) st.progress = p->second;
  const std::string inferred = it == v.recorded.end() ? "" : v.shown.at(r.id).why;
  if (!inferred.empty()) st.progress.last_reason = inferred + (st.progress.last_reason.empty() ? "" : "; " + st.progress.last_reason);
  if (st.recorded_state == rs::kQueued && !inferred.empty() && st.progress.attempts == 0)
    for (const auto& d : r.depends_on)  // Slurm cancels the job of a run whose dependency failed (afterok)
      if (const std::string ds = v.state(d); ds != rs::kDone && !rs::is_active(ds) && ds != rs::kNew) {
        st.progress.last_reason = "its dependency " + d + " ended " + ds + ", so it never started (" + inferred + ")";
        break;
      }
  return st;
}

// What to do with the run, by its state: submit it or not, and why. `changed_input`: a dependency rebuilt without
// its best checkpoint ("" when none).
void decide(RunStatus& st, const StoreView& v, PlanMode mode, const PlanOptions& options, const std::string& changed_input) {
  const PlannedRun& r = st.run;
  if (st.state == rs::kDone && !changed_input.empty()) {
    st.submit = st.retrain_from_scratch = true;
    st.why = "done, but " + changed_input + " is rebuilt without its best checkpoint: retrained from scratch";
  } else if (st.state == rs::kDone) {
    st.why = "already done";
  } else if (st.state == rs::kDamaged) {
    st.submit = options.rebuild_damaged && mode == PlanMode::kResume;
    st.why = "damaged: " + v.shown.at(r.id).why.substr(std::string("missing: ").size()) +
             (st.submit ? "; rebuilt (--rebuild-damaged)" : " (resume --rebuild-damaged rebuilds it)");
  } else if (rs::is_active(st.state)) {
    std::string job = st.state == rs::kRunning && !st.progress.claim_job.empty() ? st.progress.claim_job : st.progress.job;
    st.why = "already " + st.state + (job.empty() ? "" : " (job " + job + ")");
  } else if (st.state == rs::kNew) {
    const bool recorded = v.recorded.count(r.id) > 0;
    if (mode == PlanMode::kResume && options.submit_recorded_new && recorded) {
      st.submit = true;
      st.why = "held back by the queue limit";
    } else if (mode == PlanMode::kResume) {
      st.why = "never submitted (use submit)";
    } else {
      st.submit = true;
      auto old = v.by_key.find(key_of(r.settings));
      st.why = old == v.by_key.end() ? "new" : "settings changed (replaces " + old->second.back() + ")";
    }
  } else {  // failed, cancelled, timeout, lost, interrupted
    st.submit = true;
    st.why = st.state + (st.progress.last_reason.empty() ? "" : ": " + st.progress.last_reason);
    if (options.unattended) {
      std::string note;
      const AttemptEnd end{st.state == rs::kLost || v.shown.at(r.id).transient, st.state};
      st.submit = should_retry(end, static_cast<int>(st.progress.attempts), options.max_attempts, &note);
      st.why += "; " + (end.retryable ? note : std::string("not retried unattended: submit or resume it"));
    }
  }
}

// A run to submit whose dependency will neither be done nor run waits for it instead.
void wait_for_dependencies(RunStatus& st, const StoreView& v, const std::unordered_map<std::string, bool>& will_be_done) {
  for (const auto& d : st.run.depends_on) {
    auto w = will_be_done.find(d);
    const bool dep_ok = (w != will_be_done.end() && w->second) || v.state(d) == rs::kDone;
    if (st.submit && !dep_ok && !rs::is_active(v.state(d))) {
      st.submit = false;
      st.why = "waits for " + d + ", which " +
               (v.state(d) == rs::kDamaged ? "is damaged (resume --rebuild-damaged rebuilds it)" : "will not run");
    }
  }
}

}  // namespace

std::vector<RunStatus> plan(const std::vector<PlannedRun>& grid, Store& store, const Filter& only, PlanMode mode,
                            const std::map<std::string, JobState>& jobs, const PlanOptions& options) {
  RunIndex by_id(grid.size());
  for (const auto& r : grid) by_id[r.id] = &r;
  const StoreView v = read_view(grid, by_id, store, jobs, options);
  const std::unordered_set<std::string> listed = listed_runs(grid, by_id, only, v);
  std::vector<RunStatus> out;
  out.reserve(listed.size());
  std::unordered_map<std::string, bool> will_be_done(listed.size());  // id -> done now, active, or submitted by this plan
  std::unordered_set<std::string> retrained;  // submitted runs whose best checkpoint changes (rebuilt or retrained)
  for (const auto& r : grid) {
    if (!listed.count(r.id)) continue;
    RunStatus st = status_of(r, v);
    std::string changed_input;
    if (options.rebuild_damaged)
      for (const auto& d : r.depends_on)
        if (retrained.count(d)) changed_input = changed_input.empty() ? d : changed_input;
    decide(st, v, mode, options, changed_input);
    wait_for_dependencies(st, v, will_be_done);
    will_be_done[r.id] = st.state == rs::kDone || st.submit || rs::is_active(st.state);
    auto lost = v.lost_best.find(r.id);
    if (st.submit && ((lost != v.lost_best.end() && lost->second) || st.retrain_from_scratch)) retrained.insert(r.id);
    out.push_back(std::move(st));
  }
  return out;
}

}  // namespace orch::scheduler
