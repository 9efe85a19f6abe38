#include "scheduler/plan.h"

#include <sys/stat.h>

#include <algorithm>
#include <filesystem>
#include <functional>
#include <future>
#include <optional>
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

// Grid position by run id: the view below keeps what it knows of each grid run at its position, so a plan hashes
// each id once (string-keyed maps of 100,000 ids, looked up several times a run, were a fifth of a status).
using RunIndex = std::unordered_map<std::string, size_t>;

// What the store and the jobs say of the grid's runs, read once for a plan; vectors by grid position.
struct StoreView {
  const RunIndex& index;
  std::vector<std::optional<RunRecord>> recorded;  // the store's row (settings left out), absent when never recorded
  std::vector<RunProgress> progress;
  std::vector<Judgement> shown;                    // what it is: "new" when never recorded
  std::vector<char> lost_best;                     // damaged, and its best checkpoint is among what is missing
  std::map<std::string, std::vector<std::string>> by_key;  // recorded ids not in the grid, by dataset/model/seed/stage

  explicit StoreView(const RunIndex& i) : index(i) {}
  const std::string& state(size_t at) const { return shown[at].state; }
  // A dependency's: "new" when the grid lacks it.
  std::string state(const std::string& id) const {
    auto it = index.find(id);
    return it == index.end() ? std::string(rs::kNew) : state(it->second);
  }
  bool at(const std::string& id, const std::vector<char>& flags) const {  // the flag at the run's position
    auto it = index.find(id);
    return it != index.end() && flags[it->second];
  }
};

// Done runs of this grid whose artefacts are gone: shown as damaged (what is missing in `why`). Two `stat` calls
// per done run, on a pool of threads: on a network file system (Lustre, NFS) each takes a round trip.
void mark_damaged(const std::vector<PlannedRun>& grid, const std::string& workspace, StoreView& v) {
  std::vector<size_t> done;
  for (size_t i = 0; i < grid.size(); ++i)
    if (v.shown[i].state == rs::kDone) done.push_back(i);
  if (done.empty()) return;  // nothing to check: no pool
  std::vector<std::string> missing(done.size());
  const size_t chunk = 256;
  {
    ThreadPool pool(static_cast<int>(std::min<size_t>(8, (done.size() + chunk - 1) / chunk)));
    std::vector<std::future<void>> parts;
    for (size_t lo = 0; lo < done.size(); lo += chunk)
      parts.push_back(pool.submit([&, lo] {
        for (size_t k = lo; k < std::min(done.size(), lo + chunk); ++k) missing[k] = missing_artefacts(workspace, grid[done[k]].id);
      }));
    for (auto& p : parts) p.get();  // in order: the first error (a path too long to build) reaches the caller
  }
  for (size_t k = 0; k < done.size(); ++k) {
    if (missing[k].empty()) continue;
    v.shown[done[k]] = {rs::kDamaged, "missing: " + missing[k]};
    v.lost_best[done[k]] = missing[k].rfind("best checkpoint", 0) == 0;
  }
}

// The settings of recorded runs the grid no longer has, by dataset/model/seed/stage: what a new run replaces.
void index_replaced(Store& store, const RunIndex& index, StoreView& v) {
  for (const auto& rec : RunsTable(store).runs()) {
    if (index.count(rec.run_id)) continue;  // runs an earlier version of the experiment recorded: their settings
    nlohmann::json j = nlohmann::json::parse(rec.settings_json, nullptr, false);
    if (!j.is_object()) continue;
    try {
      v.by_key[key_of(RunSettings::from_json(j, rec.run_id))].push_back(rec.run_id);
    } catch (const std::exception&) {
    }
  }
}

StoreView read_view(const std::vector<PlannedRun>& grid, const RunIndex& index, Store& store,
                    const std::map<std::string, JobState>& jobs, const PlanOptions& options) {
  StoreView v(index);
  v.recorded.resize(grid.size());
  v.progress.resize(grid.size());
  v.shown.assign(grid.size(), Judgement{rs::kNew, ""});
  v.lost_best.assign(grid.size(), 0);
  bool all_in_grid = true;
  const double now = store.env().now();
  const double lost_after = control_timeouts().lost_after_s;
  for (auto& o : RunsTable(store).overview()) {  // by run id
    auto it = index.find(o.record.run_id);
    if (it == index.end()) {
      all_in_grid = false;
      continue;
    }
    v.shown[it->second] = judge(o.record.state, o.progress, jobs, now, lost_after);
    v.progress[it->second] = std::move(o.progress);
    v.recorded[it->second] = std::move(o.record);
  }
  if (!all_in_grid) index_replaced(store, index, v);
  if (!options.workspace.empty()) mark_damaged(grid, options.workspace, v);
  return v;
}

// The runs a plan lists, by grid position: those the filter keeps, plus their unfinished dependencies.
std::vector<char> listed_runs(const std::vector<PlannedRun>& grid, const Filter& only, const StoreView& v) {
  std::vector<char> listed(grid.size(), 0);
  std::function<void(size_t)> add = [&](size_t at) {
    if (listed[at]) return;
    listed[at] = 1;
    for (const auto& d : grid[at].depends_on)
      if (v.state(d) != rs::kDone) add(v.index.at(d));
  };
  for (size_t i = 0; i < grid.size(); ++i)
    if (only.matches(grid[i])) add(i);
  return listed;
}

// A run's state as recorded and as shown, with why it is what it is (a job's end, a failed dependency). Takes the
// run's progress from the view (each run's status is made once).
RunStatus status_of(const PlannedRun& r, size_t at, StoreView& v) {
  RunStatus st;
  st.run = r;
  const std::optional<RunRecord>& rec = v.recorded[at];
  st.recorded = rec.has_value();
  st.recorded_state = st.recorded ? rec->state : rs::kNew;
  st.state = v.state(at);
  st.progress = std::move(v.progress[at]);
  const std::string& inferred = v.shown[at].why;
  if (st.recorded && !inferred.empty())
    st.progress.last_reason = inferred + (st.progress.last_reason.empty() ? "" : "; " + st.progress.last_reason);
  if (st.recorded_state == rs::kQueued && st.recorded && !inferred.empty() && st.progress.attempts == 0)
    for (const auto& d : r.depends_on)  // Slurm cancels the job of a run whose dependency failed (afterok)
      if (const std::string ds = v.state(d); ds != rs::kDone && !rs::is_active(ds) && ds != rs::kNew) {
        st.progress.last_reason = "its dependency " + d + " ended " + ds + ", so it never started (" + inferred + ")";
        break;
      }
  return st;
}

// What to do with the run, by its state: submit it or not, and why. `changed_input`: a dependency rebuilt without
// its best checkpoint ("" when none).
void decide(RunStatus& st, size_t at, const StoreView& v, PlanMode mode, const PlanOptions& options,
            const std::string& changed_input) {
  const PlannedRun& r = st.run;
  if (st.state == rs::kDone && !changed_input.empty()) {
    st.submit = st.retrain_from_scratch = true;
    st.why = "done, but " + changed_input + " is rebuilt without its best checkpoint: retrained from scratch";
  } else if (st.state == rs::kDone) {
    st.why = "already done";
  } else if (st.state == rs::kDamaged) {
    st.submit = options.rebuild_damaged && mode == PlanMode::kResume;
    st.why = "damaged: " + v.shown[at].why.substr(std::string("missing: ").size()) +
             (st.submit ? "; rebuilt (--rebuild-damaged)" : " (resume --rebuild-damaged rebuilds it)");
  } else if (rs::is_active(st.state)) {
    std::string job = st.state == rs::kRunning && !st.progress.claim_job.empty() ? st.progress.claim_job : st.progress.job;
    st.why = "already " + st.state + (job.empty() ? "" : " (job " + job + ")");
  } else if (st.state == rs::kNew) {
    if (mode == PlanMode::kResume && options.submit_recorded_new && st.recorded) {
      st.submit = true;
      st.why = "held back by the queue limit";
    } else if (mode == PlanMode::kResume) {
      st.why = "never submitted (use submit)";
    } else {
      st.submit = true;
      auto old = v.by_key.empty() ? v.by_key.end() : v.by_key.find(key_of(r.settings));
      st.why = old == v.by_key.end() ? "new" : "settings changed (replaces " + old->second.back() + ")";
    }
  } else {  // failed, cancelled, timeout, lost, interrupted
    st.submit = true;
    st.why = st.state + (st.progress.last_reason.empty() ? "" : ": " + st.progress.last_reason);
    if (options.unattended) {
      std::string note;
      const AttemptEnd end{st.state == rs::kLost || v.shown[at].transient, st.state};
      st.submit = should_retry(end, static_cast<int>(st.progress.attempts), options.max_attempts, &note);
      st.why += "; " + (end.retryable ? note : std::string("not retried unattended: submit or resume it"));
    }
  }
}

// A run to submit whose dependency will neither be done nor run waits for it instead.
void wait_for_dependencies(RunStatus& st, const StoreView& v, const std::vector<char>& will_be_done) {
  for (const auto& d : st.run.depends_on) {
    const std::string ds = v.state(d);
    const bool dep_ok = v.at(d, will_be_done) || ds == rs::kDone;
    if (st.submit && !dep_ok && !rs::is_active(ds)) {
      st.submit = false;
      st.why = "waits for " + d + ", which " +
               (ds == rs::kDamaged ? "is damaged (resume --rebuild-damaged rebuilds it)" : "will not run");
    }
  }
}

}  // namespace

std::vector<RunStatus> plan(const std::vector<PlannedRun>& grid, Store& store, const Filter& only, PlanMode mode,
                            const std::map<std::string, JobState>& jobs, const PlanOptions& options) {
  RunIndex index(grid.size());
  for (size_t i = 0; i < grid.size(); ++i) index[grid[i].id] = i;
  StoreView v = read_view(grid, index, store, jobs, options);
  const std::vector<char> listed = listed_runs(grid, only, v);
  std::vector<RunStatus> out;
  out.reserve(static_cast<size_t>(std::count(listed.begin(), listed.end(), 1)));
  std::vector<char> will_be_done(grid.size(), 0);  // done now, active, or submitted by this plan
  std::vector<char> retrained(grid.size(), 0);     // submitted runs whose best checkpoint changes (rebuilt or retrained)
  for (size_t i = 0; i < grid.size(); ++i) {
    if (!listed[i]) continue;
    const PlannedRun& r = grid[i];
    RunStatus st = status_of(r, i, v);
    std::string changed_input;
    if (options.rebuild_damaged)
      for (const auto& d : r.depends_on)
        if (v.at(d, retrained)) changed_input = changed_input.empty() ? d : changed_input;
    decide(st, i, v, mode, options, changed_input);
    wait_for_dependencies(st, v, will_be_done);
    will_be_done[i] = st.state == rs::kDone || st.submit || rs::is_active(st.state);
    if (st.submit && (v.lost_best[i] || st.retrain_from_scratch)) retrained[i] = 1;
    out.push_back(std::move(st));
  }
  return out;
}

}  // namespace orch::scheduler
