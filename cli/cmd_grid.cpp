// plan, submit, status, resume, cancel: an experiment's grid against the store and a backend, through the
// control plane's one sequence (scheduler/submission.h).
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <iostream>
#include <map>
#include <sstream>
#include <thread>
#include <unordered_map>

#include "cli/grid_ops.h"
#include "cli/options.h"
#include "core/control.h"
#include "models/model_config.h"
#include "report/report.h"
#include "scheduler/estimate.h"
#include "scheduler/resources.h"
#include "storage/claims_table.h"
#include "storage/layout.h"
#include "storage/run_state.h"
#include "storage/workspace.h"

namespace orch::cli {

namespace fs = std::filesystem;

GridContext load_grid(const std::string& exp_path, const std::vector<std::string>& sets,
                      const std::vector<std::string>& only, const std::string& workspace) {
  GridContext g;
  g.exp = load_experiment(exp_path, sets);
  models::validate_experiment_networks(g.exp);
  scheduler::validate_resources(g.exp);
  report::report_options_from(g.exp);  // the "report" block, validated when the experiment loads
  g.workspace = workspace.empty() ? g.exp.workspace : workspace;
  g.grid = scheduler::expand(g.exp);
  g.points = g.exp.sweep_points();
  g.only = scheduler::parse_filter(only, g.exp);
  g.only.check_against(g.grid);
  return g;
}

scheduler::GridRequest GridContext::request(const std::string& command) const {
  scheduler::GridRequest r;
  r.exp = &exp;
  r.grid = &grid;
  r.only = only;
  r.workspace = workspace;
  r.command = command;
  return r;
}

namespace {

std::string comma_list(const std::vector<std::string>& ids) {
  std::string s;
  for (const auto& id : ids) s += (s.empty() ? "" : ", ") + id;
  return s;
}

void tell_skipped(const scheduler::DispatchResult& r, const std::string& verb) {
  if (!r.skipped.empty())
    std::printf("%s: %zu run(s) changed state while being dispatched and were left alone: %s\n", verb.c_str(),
                r.skipped.size(), comma_list(r.skipped).c_str());
}

}  // namespace

int tell_outcome(const scheduler::SubmitOutcome& out, const std::string& verb, const std::string& exp_path) {
  const auto& r = out.result;
  const auto& p = out.trained;
  tell_skipped(r, verb);
  if (out.backend == BackendKind::kSlurm) {
    std::printf("%s: %d run(s) in %zu Slurm array job(s)", verb.c_str(), r.dispatched, r.jobs.size());
    for (const auto& j : r.jobs) std::printf(" %s", j.c_str());
    std::printf("; %zu already done or queued\n", out.plan.size() - static_cast<size_t>(out.to_submit + out.held_back));
    if (out.held_back)
      std::printf("%s: %d run(s) held back by the queue limit (at most %d of the grid's runs queued or running: "
                  "resources.max_queued, Slurm's MaxJobCount or your MaxSubmitJobs); `orchestrator submit %s --follow` submits them as "
                  "jobs end, as does each later submit (and resume, with resources.max_queued)\n",
                  verb.c_str(), out.held_back, out.queue_limit, exp_path.c_str());
    return kExitOk;
  }
  if (p.interrupted_by) {
    std::printf("%s: interrupted by %s: %d done, %d failed; stopped %zu run(s) at a checkpoint%s%s; %zu never started.\n"
                "Continue with `orchestrator resume %s` (the stopped runs) or `orchestrator submit %s` (everything "
                "not done).\n",
                verb.c_str(), p.interrupted_by == 2 ? "SIGINT" : "SIGTERM", p.done, p.failed, p.stopped_ids.size(),
                p.stopped_ids.empty() ? "" : ": ", comma_list(p.stopped_ids).c_str(), p.not_started_ids.size(),
                exp_path.c_str(), exp_path.c_str());
    return exit_for_signal(p.interrupted_by);
  }
  std::printf("%s: %d done, %d failed, %zu not started", verb.c_str(), p.done, p.failed, p.not_started_ids.size());
  if (p.cancelled) std::printf(", %d cancelled", p.cancelled);
  if (p.elsewhere) std::printf(", %d held by another process", p.elsewhere);
  std::printf("\n");
  return p.failed ? kExitFailure : kExitOk;
}

void add_common(po::options_description& d, CommonOptions& c, po::positional_options_description& pos) {
  d.add_options()("experiment", po::value(&c.exp_path)->required(), "experiment file (experiments/*.json)")(
      "workspace", po::value(&c.workspace), "workspace folder (default: the experiment's)")(
      "set", po::value(&c.sets)->composing(), "override a setting: key.path=value (repeatable)")(
      "only", po::value(&c.only)->composing(), "narrow to key=value[,value] (dataset, model, seed, stage; repeatable)");
  pos.add("experiment", 1);
}

namespace {

// Every attempt of every run in the workspace's store (status --json), read once, by run id.
std::unordered_map<std::string, std::vector<AttemptRow>> attempt_histories(const std::string& workspace) {
  std::unordered_map<std::string, std::vector<AttemptRow>> out;
  const std::string path = WorkspaceLayout(workspace).store();
  if (!fs::exists(path)) return out;
  Store store(path, Store::Mode::kRead);
  for (auto& a : ClaimsTable(store).attempts()) out[a.run_id].push_back(std::move(a));
  return out;
}

// A run's attempts: number, host, pid, start, end, exit status and cause.
nlohmann::json attempt_history_json(const std::vector<AttemptRow>& attempts) {
  nlohmann::json list = nlohmann::json::array();
  for (const auto& a : attempts)
    list.push_back({{"attempt", a.attempt_id}, {"host", a.host}, {"pid", a.pid}, {"started", a.started_at},
                    {"ended", a.ended_at}, {"exit_status", a.exit_status}, {"cause", a.reason}});
  return list;
}

// The labels of the sweep points a run belongs to ([] without a sweep).
nlohmann::json sweep_labels(const GridContext& g, const scheduler::PlannedRun& r) {
  nlohmann::json out = nlohmann::json::array();
  for (uint32_t p : r.sweep_points) out.push_back(g.points.at(p).label());
  return out;
}

// With a sweep: per point, its runs and how many are done (a run shared by several points counts in each).
void print_sweep_points(const GridContext& g, const std::vector<scheduler::RunStatus>& plan) {
  if (g.exp.sweep.empty()) return;
  std::vector<std::pair<int, int>> count(g.points.size());  // (done, runs)
  for (const auto& st : plan)
    for (uint32_t p : st.run.sweep_points) {
      ++count[p].second;
      count[p].first += st.state == run_state::kDone;
    }
  std::printf("sweep: %zu point(s)\n", g.points.size());
  for (size_t p = 0; p < g.points.size(); ++p)
    std::printf("  %2zu  %-60s %d/%d done\n", p + 1, g.points[p].label().c_str(), count[p].first, count[p].second);
}

nlohmann::json status_json(const GridContext& g, const scheduler::RunStatus& st) {
  nlohmann::json deps = nlohmann::json::array();
  for (const auto& d : st.run.depends_on) deps.push_back(d);
  const bool running = st.state == run_state::kRunning && !st.progress.claim_job.empty();
  const auto& res = *st.run.resources;
  return {{"id", st.run.id},
          {"dataset", st.run.settings.dataset},
          {"model", st.run.settings.model},
          {"seed", st.run.settings.seed},
          {"stage", choice_name(st.run.settings.stage)},
          {"depends_on", deps},
          {"sweep_points", sweep_labels(g, st.run)},
          {"state", st.state},
          {"recorded_state", st.recorded_state},
          {"action", st.submit ? "submit" : "skip"},
          {"why", st.why},
          {"attempts", st.progress.attempts},
          {"epochs_done", st.progress.epochs_done},
          {"epochs", st.run.settings.training.epochs},
          {"job", running ? st.progress.claim_job : st.progress.job},
          {"worker", st.state == run_state::kRunning ? st.progress.claim_holder : ""},
          {"resources", {{"gpus", res.gpus}, {"cpus", res.cpus}, {"ranks", res.ranks}, {"runs_per_gpu", res.runs_per_gpu},
                         {"mem", res.mem}, {"time", res.time}, {"partition", res.partition}, {"constraint", res.constraint}}},
          {"last_error", st.state == run_state::kFailed || st.state == run_state::kLost ? st.progress.last_reason : ""}};
}

void print_plan(const GridContext& g, const std::vector<scheduler::RunStatus>& plan) {
  int submit = 0;
  std::printf("%-44s %-9s %-11s %-7s %s\n", "run", "stage", "state", "action", "why / depends on");
  std::map<std::string, std::string> shapes;  // resources -> networks/data sets
  for (const auto& st : plan) {
    submit += st.submit;
    std::string deps;
    for (const auto& d : st.run.depends_on) deps += " " + d;
    std::printf("%-44s %-9s %-11s %-7s %s%s\n", st.run.id.c_str(), choice_name(st.run.settings.stage), st.state.c_str(),
                st.submit ? "submit" : "skip", st.why.c_str(), deps.empty() ? "" : ("; after" + deps).c_str());
    const std::string who = st.run.settings.model + "/" + st.run.settings.dataset;
    std::string& w = shapes[st.run.resources->describe()];
    if (w.find(who) == std::string::npos) w += (w.empty() ? "" : " ") + who;
  }
  std::printf("%zu run(s); submit would start %d\n", plan.size(), submit);
  print_sweep_points(g, plan);
  std::printf("resources per run:\n");
  for (const auto& [shape, who] : shapes) std::printf("  %s: %s\n", shape.c_str(), who.c_str());
}

void print_status(const GridContext& g, const std::vector<scheduler::RunStatus>& plan) {
  std::map<std::string, int> per_state;
  std::map<std::string, std::map<std::string, std::pair<int, int>>> grid;  // model -> dataset -> (done, total)
  for (const auto& st : plan) {
    per_state[st.state]++;
    auto& cell = grid[st.run.settings.model + (st.run.settings.stage == Stage::kPretrain ? " (pretrain)" : "")][st.run.settings.dataset];
    cell.second++;
    cell.first += st.state == run_state::kDone;
  }
  std::printf("%s: %zu run(s):", g.exp.name.c_str(), plan.size());
  for (auto& [s, n] : per_state) std::printf(" %s %d", s.c_str(), n);
  std::printf("\n\n%-26s", "network");
  for (const auto& d : g.exp.datasets) std::printf(" %18s", d.name.c_str());
  std::printf("\n");
  for (auto& [m, row] : grid) {
    std::printf("%-26s", m.c_str());
    for (const auto& d : g.exp.datasets) {
      auto it = row.find(d.name);
      if (it == row.end()) std::printf(" %18s", "-");
      else std::printf(" %13d/%d done", it->second.first, it->second.second);
    }
    std::printf("\n");
  }
  std::printf("\n");
  print_sweep_points(g, plan);
  for (const auto& st : plan) {
    if (st.state == run_state::kDone || st.state == run_state::kNew) continue;
    const bool running = st.state == run_state::kRunning;
    const std::string job = running && !st.progress.claim_job.empty() ? st.progress.claim_job : st.progress.job;
    std::printf("%-44s %-11s attempts %lld, epoch %lld/%d%s%s\n", st.run.id.c_str(), st.state.c_str(),
                static_cast<long long>(st.progress.attempts), static_cast<long long>(st.progress.epochs_done),
                st.run.settings.training.epochs, job.empty() ? "" : (", job " + job).c_str(),
                running && !st.progress.claim_holder.empty() ? (", worker " + st.progress.claim_holder).c_str() : "");
    if (!run_state::is_active(st.state) && !st.progress.last_reason.empty())
      std::printf("    %s: %s\n", st.state == run_state::kFailed ? "last error" : "why", st.progress.last_reason.c_str());
  }
}

// --gpus 8,16,68 -> {8, 16, 68}
std::vector<int> parse_gpu_counts(const std::string& text) {
  std::vector<int> out;
  std::string item;
  std::stringstream in(text);
  while (std::getline(in, item, ',')) {
    int n = 0;
    size_t used = 0;
    try {
      n = std::stoi(item, &used);
    } catch (const std::exception&) {
      used = 0;
    }
    if (used != item.size() || n < 1 || n > 100000)
      throw InputError("--gpus", "", text, "expected a comma-separated list of GPU counts, 1 to 100000 each");
    out.push_back(n);
  }
  return out;
}

void print_estimate(const scheduler::GridEstimate& e, bool per_run) {
  using scheduler::hours_text;
  if (per_run) {
    std::printf("\n%-44s %10s  %s\n", "run (what is left of it)", "estimate", "basis");
    for (const auto& r : e.runs)
      std::printf("%-44s %10s  %s\n", r.run_id.c_str(), r.seconds > 0 ? hours_text(r.seconds).c_str() : "-", r.basis.c_str());
  }
  std::printf("\n%-38s %4s %10s %12s %12s\n", "network/data set (runs left)", "runs", "one run", "auto limit",
              "configured");
  for (const auto& n : e.networks)
    std::printf("%-38s %4d %10s %12s %12s%s\n", (n.model + "/" + n.dataset).c_str(), n.runs,
                n.seconds > 0 ? hours_text(n.seconds).c_str() : "-", n.time_limit.empty() ? "-" : n.time_limit.c_str(),
                n.configured.empty() ? "none" : n.configured.c_str(), n.seconds > 0 ? "" : ("  (" + n.basis + ")").c_str());
  std::printf("\nleft: %zu run(s), %.1f GPU-hours, %s of run time", e.runs.size(), e.gpu_seconds / 3600,
              hours_text(e.run_seconds).c_str());
  if (e.without_estimate) std::printf(" (%d run(s) without an estimate count as 0)", e.without_estimate);
  std::printf("; auto time limits are the estimate x %.2f\n", e.margin);
  for (const auto& m : e.makespans)
    std::printf("makespan on %d GPU(s) or workers: %s with per-run dependencies, %s with one array per level\n", m.gpus,
                hours_text(m.per_run).c_str(), hours_text(m.per_level).c_str());
}

// What `--follow` watches after a round: the listed runs done, queued or running (or dispatched by the round),
// held back by the queue limit, and those that ended without a retry (left for a person).
struct FollowTally {
  int done = 0, active = 0, held = 0, left = 0;
  std::vector<std::string> left_ids;
  bool operator==(const FollowTally& o) const {
    return done == o.done && active == o.active && held == o.held && left == o.left;
  }
};

FollowTally follow_tally(const scheduler::SubmitOutcome& out) {
  FollowTally t;
  for (const auto& st : out.plan) {
    if (st.state == run_state::kDone) ++t.done;
    else if (run_state::is_active(st.state) || st.submit) ++t.active;
    else t.left_ids.push_back(st.run.id + " (" + st.why + ")");
  }
  t.held = out.held_back;
  t.active -= out.held_back + static_cast<int>(out.result.skipped.size());
  t.left = static_cast<int>(t.left_ids.size());
  return t;
}

// --follow: stays until the grid has ended. Each round (every ORCH_FOLLOW_POLL_S) tops the queue up as jobs end
// and dispatches again what the retry policy allows (a run lost with its node, a job ended by the cluster), as a
// resume would; quiet but for a line when the counts change. A round that fails (the lock held too long, Slurm's
// controller not answering) is said and tried again, up to kFollowFailures rounds in a row. Killed, it leaves the
// rest in the store, where the next submit or resume finds it. Exit 0 when every run is done, 1 when some ended
// otherwise.
constexpr int kFollowFailures = 10;

int follow_grid(const GridContext& g, scheduler::SubmitOptions o, scheduler::SubmitOutcome out, const std::string& verb,
                const std::string& exp_path) {
  o.unattended = true;
  FollowTally last = follow_tally(out);
  for (int failures = 0; last.active > 0 || last.held > 0;) {
    std::fflush(stdout);
    std::this_thread::sleep_for(std::chrono::duration<double>(control_timeouts().follow_poll_s));
    try {
      out = scheduler::submit_grid(g.request("orchestrator " + verb + " --follow " + exp_path), o);
      failures = 0;
    } catch (const Error& e) {
      if (++failures == kFollowFailures) throw;
      std::printf("%s --follow: this round failed (%d of %d in a row before giving up): %s\n", verb.c_str(), failures,
                  kFollowFailures, e.what());
      continue;
    }
    tell_skipped(out.result, verb);
    const FollowTally now = follow_tally(out);
    if (!(now == last) || out.result.dispatched > 0) {
      std::string jobs;
      for (const auto& j : out.result.jobs) jobs += " " + j;
      std::printf("%s --follow: %s%d done, %d queued or running, %d held back, %d ended without a retry\n", verb.c_str(),
                  out.result.dispatched > 0 ? ("dispatched " + std::to_string(out.result.dispatched) + " run(s) (job(s)" +
                                               jobs + "); ").c_str()
                                            : "",
                  now.done, now.active, now.held, now.left);
    }
    last = now;
  }
  if (last.left == 0) return kExitOk;
  std::printf("%s --follow: the grid has ended with %d run(s) not done (submit or resume them):\n", verb.c_str(), last.left);
  for (const auto& l : last.left_ids) std::printf("  %s\n", l.c_str());
  return kExitFailure;
}

// submit and resume differ only in the plan mode: submit starts what is new, resume what failed, was cancelled,
// timed out, was lost or interrupted.
int submit_or_resume(const Args& args, scheduler::PlanMode mode, const std::string& verb) {
  po::options_description desc("orchestrator " + verb);
  CommonOptions c;
  po::positional_options_description pos;
  add_common(desc, c, pos);
  std::string backend;
  int workers = 0;
  bool rebuild_damaged = false, follow = false;
  desc.add_options()("follow", po::bool_switch(&follow),
                     "stay until the grid has ended: submit held-back runs as jobs end (resources.max_queued or "
                     "MaxJobCount) and dispatch again runs the retry policy allows (lost with a node, ended by the "
                     "cluster); exit 0 when every run is done")("backend", po::value(&backend), "local or slurm (default: the experiment's backend, else local)")(
      "workers", po::value(&workers)->default_value(0), "local: worker processes (0: resources.local_workers, else cores)");
  if (mode == scheduler::PlanMode::kResume)
    desc.add_options()("rebuild-damaged", po::bool_switch(&rebuild_damaged),
                       "retrain done runs whose best checkpoint or predictions are missing (and, when a best checkpoint "
                       "is lost, the done runs that depend on it)");
  po::variables_map vm;
  if (!parse_options(args, desc, vm,
                     "orchestrator " + verb + " EXP [--backend local|slurm] [--workers N] [--follow] [--only key=value]..." +
                         (mode == scheduler::PlanMode::kResume ? " [--rebuild-damaged]" : ""),
                     &pos))
    return 0;
  if (workers < 0 || workers > 1024) throw InputError("--workers", "", std::to_string(workers), "expected 0 to 1024");
  GridContext g = load_grid(c.exp_path, c.sets, c.only, c.workspace);
  scheduler::SubmitOptions o;
  o.mode = mode;
  o.backend = scheduler::backend_for(g.exp, backend);
  o.workers = workers;
  o.rebuild_damaged = rebuild_damaged;
  o.on_event = [](const std::string& l) { std::fprintf(stderr, "%s\n", l.c_str()); };
  const BackendKind b = *o.backend;
  if (b == BackendKind::kSlurm) o.on_event = [](const std::string& l) { std::printf("%s: %s\n", "submit", l.c_str()); };
  std::printf("%s: experiment '%s', workspace %s, backend %s\n", verb.c_str(), g.exp.name.c_str(), g.workspace.c_str(), choice_name(b));
  std::fflush(stdout);
  auto out = scheduler::submit_grid(g.request("orchestrator " + verb + " " + c.exp_path), o);
  if (out.backend == BackendKind::kLocal)
    std::printf("%s: %d run(s) to the local pool (%d worker(s)), %zu already done or queued\n", verb.c_str(),
                out.result.dispatched, out.workers, out.plan.size() - static_cast<size_t>(out.to_submit));
  const int code = tell_outcome(out, verb, c.exp_path);
  // The local pool has trained (and retried) everything before it returns: there is nothing to follow.
  if (!follow || code != kExitOk || out.backend == BackendKind::kLocal) return code;
  return follow_grid(g, o, std::move(out), verb, c.exp_path);
}

}  // namespace

int cmd_plan(const Args& args) {
  po::options_description desc("orchestrator plan");
  CommonOptions c;
  po::positional_options_description pos;
  add_common(desc, c, pos);
  bool estimate = false;
  std::string gpus = "1";
  desc.add_options()("json", po::bool_switch(&c.json), "a JSON list, one object per run")(
      "estimate", po::bool_switch(&estimate), "per run and network: expected duration, GPU-hours, makespan, time limits")(
      "gpus", po::value(&gpus)->default_value("1"), "with --estimate: GPU counts to give the makespan on (8,16,68)");
  po::variables_map vm;
  if (!parse_options(args, desc, vm, "orchestrator plan EXP [--json] [--estimate [--gpus N,...]] [--only key=value]...", &pos))
    return 0;
  const std::vector<int> gpu_counts = parse_gpu_counts(gpus);
  GridContext g = load_grid(c.exp_path, c.sets, c.only, c.workspace);
  for (const auto& m : missing_dataset_sources(g.exp))
    std::fprintf(stderr, "plan: warning: %s: missing, so the data set cannot be prepared yet (data/README.md)\n", m.c_str());
  auto plan = scheduler::view_grid(g.request("orchestrator plan"), scheduler::PlanMode::kSubmit);
  if (c.json) {
    std::map<std::string, scheduler::RunEstimate> est;
    if (estimate)
      for (auto& e : scheduler::estimate_grid(g.request("orchestrator plan"), plan, gpu_counts).runs) est[e.run_id] = e;
    nlohmann::json out = nlohmann::json::array();
    for (const auto& st : plan) {
      out.push_back(status_json(g, st));
      if (auto e = est.find(st.run.id); e != est.end())
        out.back()["estimate"] = {{"seconds", e->second.seconds}, {"basis", e->second.basis}, {"time_limit", e->second.time_limit}};
    }
    std::cout << out.dump(1) << "\n";
    return 0;
  }
  print_plan(g, plan);
  if (estimate) print_estimate(scheduler::estimate_grid(g.request("orchestrator plan"), plan, gpu_counts), true);
  return 0;
}

int cmd_submit(const Args& args) { return submit_or_resume(args, scheduler::PlanMode::kSubmit, "submit"); }

int cmd_resume(const Args& args) { return submit_or_resume(args, scheduler::PlanMode::kResume, "resume"); }

namespace {

// Whether a run a queue limit held back could be submitted now: one is ready (nothing it depends on is still to
// come), the workspace can be written, and the backend's queue has room.
bool room_for_held_back(const GridContext& g, const std::vector<scheduler::RunStatus>& plan) {
  if (std::none_of(plan.begin(), plan.end(), scheduler::is_held_back)) return false;
  std::unordered_map<std::string, const std::string*> state_of;  // the listed runs (a run not listed is done)
  int active = 0;
  for (const auto& st : plan) {
    state_of[st.run.id] = &st.state;
    active += run_state::is_active(st.state);
  }
  auto settled = [&](const std::string& dep) {
    auto it = state_of.find(dep);
    return it == state_of.end() || *it->second == run_state::kDone || run_state::is_active(*it->second);
  };
  auto ready = [&](const scheduler::RunStatus& st) {
    return scheduler::is_held_back(st) && std::all_of(st.run.depends_on.begin(), st.run.depends_on.end(), settled);
  };
  const WorkspaceLayout layout(g.workspace);
  if (std::none_of(plan.begin(), plan.end(), ready) || ::access(layout.store().c_str(), W_OK) != 0 ||
      ::access(g.workspace.c_str(), W_OK) != 0)
    return false;
  scheduler::DispatchOptions d;
  d.workspace = g.workspace;
  return scheduler::queue_limit_of(*scheduler::make_backend(g.exp.backend, d), g.exp, plan).room(active) > 0;
}

// One object per run, as one array: written a run at a time (the whole document at 100,000 runs took a
// gigabyte), in the layout of nlohmann::json::dump(1).
void print_status_json(const GridContext& g, const std::vector<scheduler::RunStatus>& plan) {
  const auto histories = attempt_histories(g.workspace);
  static const std::vector<AttemptRow> kNone;
  std::string out = plan.empty() ? "[]" : "[\n";
  for (size_t i = 0; i < plan.size(); ++i) {
    nlohmann::json run = status_json(g, plan[i]);
    auto h = histories.find(plan[i].run.id);
    run["attempt_history"] = attempt_history_json(h == histories.end() ? kNone : h->second);
    const std::string text = run.dump(1);  // one level deeper: every line gains a space (strings hold no newline)
    out += ' ';
    for (char ch : text) {
      out += ch;
      if (ch == '\n') out += ' ';
    }
    out += i + 1 < plan.size() ? ",\n" : "\n]";
    if (out.size() > (1u << 20)) {
      std::fwrite(out.data(), 1, out.size(), stdout);
      out.clear();
    }
  }
  out += "\n";
  std::fwrite(out.data(), 1, out.size(), stdout);
}

// `status` tops the queue up as `submit --follow` does: when room_for_held_back, it submits the held-back runs
// (only them: nothing is retried), on a backend that queues jobs elsewhere, when the workspace lock is free within
// 2 s. A failure to top up (the lock busy, sbatch refusing) is said on stderr and the grid still shown. Returns
// whether it submitted any.
bool top_up(const GridContext& g, const std::vector<scheduler::RunStatus>& plan) {
  if (g.exp.backend == BackendKind::kLocal || !room_for_held_back(g, plan)) return false;  // local: the pool trains here
  scheduler::SubmitOptions o;
  o.mode = scheduler::PlanMode::kResume;
  o.top_up_only = true;
  o.lock_wait_s = 2;
  o.quiet = true;
  try {
    auto out = scheduler::submit_grid(g.request("orchestrator status"), o);
    if (out.result.dispatched)
      std::fprintf(stderr, "status: submitted %d run(s) the queue limit held back, in %zu job(s); %d still held back "
                           "(status --no-top-up only reads)\n", out.result.dispatched, out.result.jobs.size(), out.held_back);
    return out.result.dispatched > 0;
  } catch (const std::exception& e) {  // busy, or sbatch refused: status still shows the grid
    std::fprintf(stderr, "status: the queue was not topped up: %s\n", brief_reason(e.what()).c_str());
    return false;
  }
}

}  // namespace

int cmd_status(const Args& args) {
  po::options_description desc("orchestrator status");
  CommonOptions c;
  po::positional_options_description pos;
  add_common(desc, c, pos);
  bool watch = false, no_top_up = false;
  desc.add_options()("json", po::bool_switch(&c.json), "one object per run")("watch", po::bool_switch(&watch),
                                                                             "refresh every 5 s until nothing is active")
      ("no-top-up", po::bool_switch(&no_top_up), "only read: do not submit the runs a queue limit held back");
  po::variables_map vm;
  if (!parse_options(args, desc, vm, "orchestrator status EXP [--watch] [--json] [--no-top-up] [--only key=value]...", &pos))
    return 0;
  GridContext g = load_grid(c.exp_path, c.sets, c.only, c.workspace);
  for (;;) {
    auto plan = scheduler::view_grid(g.request("orchestrator status"), scheduler::PlanMode::kSubmit);
    if (!no_top_up && top_up(g, plan))  // shown as it is now
      plan = scheduler::view_grid(g.request("orchestrator status"), scheduler::PlanMode::kSubmit);
    if (c.json) {
      print_status_json(g, plan);
    } else {
      print_status(g, plan);
      // What is left, on the local pool's workers and on as many GPUs as there are runs left (the critical path).
      int left = 0;
      for (const auto& st : plan) left += st.state != run_state::kDone;
      auto e = scheduler::estimate_grid(g.request("orchestrator status"), plan,
                                        {scheduler::local_workers_for(g.exp, 0), std::max(1, left)});
      if (!e.runs.empty()) print_estimate(e, false);
    }
    bool active = false;
    for (const auto& st : plan) active |= run_state::is_active(st.state);
    if (!watch || !active) return 0;
    std::fflush(stdout);
    std::this_thread::sleep_for(std::chrono::seconds(5));
  }
}

int cmd_cancel(const Args& args) {
  po::options_description desc("orchestrator cancel");
  CommonOptions c;
  po::positional_options_description pos;
  add_common(desc, c, pos);
  po::variables_map vm;
  if (!parse_options(args, desc, vm, "orchestrator cancel EXP [--only key=value]...", &pos)) return 0;
  GridContext g = load_grid(c.exp_path, c.sets, c.only, c.workspace);
  auto cancelled = scheduler::cancel_grid(g.request("orchestrator cancel " + c.exp_path));
  std::printf("cancel: %zu run(s) cancelled (running workers checkpoint and stop; `orchestrator resume %s` continues them)\n",
              cancelled.size(), c.exp_path.c_str());
  for (const auto& id : cancelled) std::printf("  %s\n", id.c_str());
  return 0;
}

}  // namespace orch::cli
