#include "scheduler/submission.h"

#include <algorithm>
#include <csignal>
#include <filesystem>
#include <functional>
#include <map>
#include <set>

#include "core/control.h"
#include "core/env.h"
#include "core/errors.h"
#include "core/process_identity.h"
#include "core/progress.h"
#include "scheduler/estimate.h"
#include "scheduler/local_backend.h"
#include "scheduler/resources.h"
#include "scheduler/slurm_backend.h"
#include "storage/claims_table.h"
#include "storage/layout.h"
#include "storage/run_state.h"
#include "storage/runs_table.h"
#include "storage/workspace.h"
#include "storage/workspace_lock.h"

namespace orch::scheduler {

namespace fs = std::filesystem;

BackendKind backend_for(const Experiment& exp, const std::string& flag) {
  if (flag.empty()) return exp.backend;
  auto b = choice_from<BackendKind>(flag);
  if (!b) throw InputError("--backend", "", flag, choice_expectation<BackendKind>());
  return *b;
}

int local_workers_for(const Experiment& exp, int flag) {
  if (flag > 0) return flag;
  const ExperimentResources r = experiment_resources(exp);
  if (r.local_workers > 0) return r.local_workers;
  if (!r.local_gpus.empty())  // runs_per_gpu workers per GPU
    return static_cast<int>(r.local_gpus.size()) * std::max(1, resources_for(exp, "", "").runs_per_gpu);
  return default_threads();
}

namespace {

// Opens the store for reading: as usual when possible, read-only when the workspace cannot be written.
std::unique_ptr<Store> open_for_reading(const std::string& path) {
  try {
    return std::make_unique<Store>(path);
  } catch (const BusyError&) {
    throw;
  } catch (const Error&) {
    return std::make_unique<Store>(path, Store::Mode::kRead);
  }
}

void ensure_datasets(const Experiment& exp, const std::vector<RunStatus>& plan, const std::string& workspace, bool quiet) {
  std::set<std::string> names;
  for (const auto& st : plan)
    if (st.submit) names.insert(st.run.settings.dataset);
  for (const auto& d : names) ensure_dataset(exp, exp.dataset(d), workspace, 0, quiet);
}

// Time limits for the runs whose resources say time "auto": each run's estimate times resources.time_margin.
// InputError, before anything is dispatched, naming a run without an estimate.
std::map<std::string, std::string> auto_time_limits(const Experiment& exp, const std::vector<DispatchItem>& items,
                                                    Store& store, const std::string& workspace) {
  std::vector<PlannedRun> wanted;
  for (const auto& it : items)
    if (it.run.resources->time_from_estimate()) wanted.push_back(it.run);
  std::map<std::string, std::string> limits;
  if (wanted.empty()) return limits;
  for (const auto& e : estimate_runs(exp, wanted, store, workspace, experiment_resources(exp).time_margin)) {
    if (e.time_limit.empty())
      throw InputError(exp.path, "resources.time", "auto", e.run_id + " has " + e.basis);
    limits[e.run_id] = e.time_limit;
  }
  return limits;
}

// A run judged lost whose worker process still runs on this host is hung (its heartbeat stopped: SIGSTOP, a dead
// file system). Its attempt is closed as lost and the process killed (SIGKILL, which a stopped process also
// takes) before the run is dispatched again, so two workers never train it at once; its pool then counts it as
// taken over, not failed.
// A lost run's scheduler job that the scheduler still counts as alive (a task whose node crashed and came back
// without it, or whose worker hangs) is cancelled too, so it does not hold its resources until a timeout.
void stop_hung_workers(Store& store, std::vector<RunStatus>& plan, const std::string& command,
                       const DispatchOptions& d, const std::function<void(const std::string&)>& event) {
  std::map<BackendKind, std::vector<std::string>> stale_jobs;
  for (auto& st : plan) {
    if (!st.submit || st.state != run_state::kLost || st.recorded_state != run_state::kRunning) continue;
    const auto claim_backend = choice_from<BackendKind>(st.progress.claim_backend);
    if (!st.progress.claim_job.empty() && claim_backend && *claim_backend != BackendKind::kLocal)
      stale_jobs[*claim_backend].push_back(st.progress.claim_job);
    auto holder = ProcessIdentity::parse(st.progress.claim_holder);
    if (!holder || liveness(*holder) != Liveness::kAlive) continue;
    if (ClaimsTable(store).abandon_claim(st.run.id, st.progress.claim_holder, run_state::kLost, 128 + SIGKILL,
                            "lost: " + st.progress.last_reason + "; killed by " + command))
      st.recorded_state = run_state::kLost;
    if (signal_process(*holder, SIGKILL))
      event("killed the hung worker of " + st.run.id + " (pid " + std::to_string(holder->pid) + "): " +
            st.progress.last_reason);
  }
  for (const auto& [backend, jobs] : stale_jobs) {
    std::string list;
    for (const auto& j : jobs) list += (list.empty() ? "" : " ") + j;
    event("cancelling the job(s) of lost run(s): " + list);
    try {
      make_backend(backend, d)->cancel(jobs);
    } catch (const std::exception& e) {  // most have ended already: nothing to cancel
      event(std::string("(") + brief_reason(e.what()) + ")");
    }
  }
}

// Done runs retrained from scratch (their dependency's best checkpoint is rebuilt): their checkpoints are moved
// aside (kept, never deleted) so that the worker starts afresh instead of resuming at their last epoch.
void set_aside_checkpoints(const WorkspaceLayout& layout, const std::vector<RunStatus>& plan,
                           const std::function<void(const std::string&)>& event) {
  const auto stamp = static_cast<long long>(Env::system().now());
  for (const auto& st : plan) {
    if (!st.submit || !st.retrain_from_scratch || !fs::exists(layout.checkpoints(st.run.id))) continue;
    const std::string aside = layout.replaced_checkpoints(st.run.id, stamp);
    fs::rename(layout.checkpoints(st.run.id), aside);
    event("retraining " + st.run.id + " from scratch: its checkpoints moved to " + aside);
  }
}

}  // namespace

std::vector<RunStatus> view_grid(const GridRequest& g, PlanMode mode) {
  const WorkspaceLayout layout(g.workspace);
  if (!fs::exists(layout.store())) {
    Store empty(":memory:");
    return plan(*g.grid, empty, g.only, mode, {});
  }
  auto store = open_for_reading(layout.store());
  PlanOptions po;
  po.workspace = g.workspace;
  return plan(*g.grid, *store, g.only, mode, live_job_states(*store, g.workspace), po);
}

QueueLimit queue_limit_of(Backend& backend, const Experiment& exp, const std::vector<RunStatus>& plan) {
  std::vector<std::string> jobs;
  for (const auto& st : plan)
    if (st.progress.backend == backend.name() && !st.progress.job.empty()) jobs.push_back(st.progress.job);
  return backend.queue_limit(exp, jobs);
}

// Keeps, in plan order, the runs that fit under the queue limit (the grid's runs queued or running, and its tasks
// the backend still lists, take room), each only when what it depends on is done, active or kept (Slurm's
// dependencies need a job to point at). `grid`: every run of the grid, not only those --only lists. Returns how
// many were left out.
static int hold_back(std::vector<DispatchItem>& items, const std::vector<RunStatus>& grid, const QueueLimit& limit) {
  if (!limit.most) return 0;
  std::set<std::string> ready, submitting;
  for (const auto& it : items) submitting.insert(it.run.id);
  int active = 0;
  for (const auto& st : grid)
    if (st.state == run_state::kDone || (run_state::is_active(st.state) && !submitting.count(st.run.id))) {
      ready.insert(st.run.id);
      active += st.state != run_state::kDone;
    }
  std::vector<DispatchItem> kept;
  int room = limit.room(active);
  for (auto& it : items) {
    const bool deps_ready = std::all_of(it.run.depends_on.begin(), it.run.depends_on.end(),
                                        [&](const std::string& d) { return ready.count(d) > 0; });
    if (room == 0 || !deps_ready) continue;
    ready.insert(it.run.id);
    kept.push_back(std::move(it));
    --room;
  }
  const int held = static_cast<int>(items.size() - kept.size());
  items = std::move(kept);
  return held;
}

// For `train`: a run it would train that another process has is an error (it would wait on the claim forever).
static void refuse_active_runs(const std::vector<RunStatus>& plan) {
  for (const auto& st : plan)
    if (st.state != run_state::kDone && run_state::is_active(st.state))
      throw BusyError("run " + st.run.id + " is " + st.why + "; wait for it (orchestrator status), or cancel it first");
}

SubmitOutcome submit_grid(const GridRequest& g, const SubmitOptions& o) {
  SubmitOutcome out;
  out.backend = o.in_this_process ? BackendKind::kLocal : o.backend.value_or(g.exp->backend);
  out.workers = local_workers_for(*g.exp, o.workers);
  const WorkspaceLayout layout(g.workspace);
  fs::create_directories(g.workspace);
  auto event = [&](const std::string& line) {
    if (o.on_event) o.on_event(line);
  };
  // 1. The data sets the runs to submit need, built before the lock is taken (they take long; each has a lock).
  if (!o.top_up_only) ensure_datasets(*g.exp, view_grid(g, o.mode), g.workspace, o.quiet);

  // 2-3. Under the workspace lock: reconcile, plan with live states, record, dispatch.
  FileLock lock(layout.lock(), g.command, o.lock_wait_s.value_or(control_timeouts().lock_wait_s),
                [&](const std::string& holder) { event("waiting for the workspace lock, held by " + holder); });
  Store store(layout.store());
  DispatchOptions d;
  d.workspace = g.workspace;
  d.binary = o.binary;
  d.workers = out.workers;
  d.quiet = o.quiet;
  d.on_event = o.on_event;
  for (BackendKind kind : all_backends()) {
    int n = make_backend(kind, d)->reconcile(store);
    if (n) event(std::to_string(n) + " run(s) of an interrupted " + choice_name(kind) + " submission reconciled");
  }
  PlanOptions po;
  po.workspace = g.workspace;
  po.rebuild_damaged = o.rebuild_damaged && o.mode == PlanMode::kResume;
  po.unattended = o.unattended;
  po.max_attempts = experiment_resources(*g.exp).max_attempts;
  // A resume tops up what the user's own limit held back, whichever backend it now uses (with Slurm's limits
  // alone, submit does).
  po.submit_recorded_new = o.top_up_only || (!o.in_this_process && experiment_resources(*g.exp).max_queued > 0);
  const auto jobs = live_job_states(store, g.workspace);
  out.plan = plan(*g.grid, store, g.only, o.mode, jobs, po);
  // What takes room in the queue, and what a run to submit may depend on, is the whole grid's, whatever --only
  // lists: a narrowed plan leaves out the grid's other queued runs and the dependencies already done.
  const bool narrowed = !o.in_this_process && !g.only.terms.empty();  // train's own runs have no queue limit
  const std::vector<RunStatus> whole = narrowed ? plan(*g.grid, store, Filter{}, o.mode, jobs, po) : std::vector<RunStatus>{};
  const std::vector<RunStatus>& grid_view = narrowed ? whole : out.plan;
  const QueueLimit limit = o.in_this_process ? QueueLimit{} : queue_limit_of(*make_backend(out.backend, d), *g.exp, grid_view);
  out.queue_limit = limit.most.value_or(0);
  if (o.top_up_only)
    for (auto& st : out.plan) st.submit = st.submit && is_held_back(st);
  if (o.in_this_process) refuse_active_runs(out.plan);
  stop_hung_workers(store, out.plan, g.command, d, event);
  set_aside_checkpoints(layout, out.plan, event);
  ensure_datasets(*g.exp, out.plan, g.workspace, o.quiet);  // quick: up to date unless the spec changed meanwhile
  std::vector<PlannedRun> all;
  std::vector<DispatchItem> items;
  for (const auto& st : out.plan) {
    all.push_back(st.run);
    if (st.submit) items.push_back({st.run, st.recorded_state});
  }
  out.held_back = hold_back(items, grid_view, limit);
  out.to_submit = static_cast<int>(items.size());
  const auto limits = out.backend == BackendKind::kSlurm ? auto_time_limits(*g.exp, items, store, g.workspace)
                                              : std::map<std::string, std::string>{};
  d.estimated_time_limit = [&limits](const PlannedRun& r) {
    auto it = limits.find(r.id);
    return it == limits.end() ? std::string() : it->second;
  };
  std::unique_ptr<Backend> backend = make_backend(out.backend, d);
  if (!o.top_up_only) record_runs(store, all);
  out.result = backend->dispatch(items, store, *g.exp);
  lock.release();

  // 4. What the backend trains here (the local pool); Slurm's jobs are already queued; train trains its own.
  if (!o.in_this_process) out.trained = backend->run(store);
  return out;
}

std::vector<std::string> cancel_grid(const GridRequest& g) {
  const WorkspaceLayout layout(g.workspace);
  if (!fs::exists(layout.store())) return {};
  FileLock lock(layout.lock(), g.command, control_timeouts().lock_wait_s);
  Store store(layout.store());
  DispatchOptions d;
  d.workspace = g.workspace;
  for (BackendKind kind : all_backends()) make_backend(kind, d)->reconcile(store);
  auto view = plan(*g.grid, store, g.only, PlanMode::kSubmit, live_job_states(store, g.workspace));
  std::vector<std::string> ids;
  std::map<BackendKind, std::vector<std::string>> jobs;  // jobs to stop
  for (const auto& st : view) {
    if (!run_state::is_active(st.state)) continue;
    ids.push_back(st.run.id);
    const RunProgress& p = st.progress;
    const auto claimed_by = choice_from<BackendKind>(p.claim_backend), queued_on = choice_from<BackendKind>(p.backend);
    if (st.state == run_state::kRunning && claimed_by == BackendKind::kLocal) jobs[*claimed_by].push_back(p.claim_holder);
    else if (st.state == run_state::kRunning && !p.claim_job.empty() && claimed_by) jobs[*claimed_by].push_back(p.claim_job);
    else if (queued_on == BackendKind::kSlurm) jobs[*queued_on].push_back(p.job);
    // A local pool's pending run needs no signal: the pool sees the state before it starts it.
  }
  std::vector<std::string> cancelled = RunsTable(store).cancel_runs(ids);
  for (auto& [kind, list] : jobs) make_backend(kind, d)->cancel(list);
  return cancelled;
}

}  // namespace orch::scheduler
