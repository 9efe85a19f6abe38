// plan, submit, status, resume, cancel: an experiment's grid against the store and a backend.
#include <signal.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <filesystem>
#include <iostream>
#include <map>
#include <set>
#include <thread>

#include "cli/grid_ops.h"
#include "scheduler/slurm_backend.h"
#include "cli/options.h"
#include "models/model_config.h"
#include "storage/workspace.h"

namespace orch::cli {

namespace fs = std::filesystem;

std::string store_file(const std::string& ws) { return (fs::path(ws) / "orchestrator.db").string(); }

GridContext load_grid(const std::string& exp_path, const std::vector<std::string>& sets,
                      const std::vector<std::string>& only, const std::string& workspace) {
  GridContext g;
  g.exp = load_experiment(exp_path, sets);
  models::validate_experiment_networks(g.exp);
  g.workspace = workspace.empty() ? g.exp.workspace : workspace;
  g.grid = scheduler::expand(g.exp);
  g.only = scheduler::parse_filter(only);
  return g;
}

scheduler::PoolResult submit_local(GridContext& g, scheduler::PlanMode mode, int workers, bool quiet) {
  fs::create_directories(g.workspace);
  Store store(store_file(g.workspace));
  auto plan = scheduler::plan(g.grid, store, g.only, mode);
  std::vector<scheduler::PlannedRun> todo;
  std::set<std::string> datasets;
  for (const auto& st : plan)
    if (st.submit) {
      todo.push_back(st.run);
      datasets.insert(st.run.settings.dataset);
    }
  for (const auto& d : datasets) ensure_dataset(g.exp, g.exp.dataset(d), g.workspace, 0, quiet);
  std::vector<scheduler::PlannedRun> all;
  for (const auto& st : plan) all.push_back(st.run);
  scheduler::record_runs(store, all);
  if (!quiet) std::printf("submit: %zu run(s) to the local pool (%d worker(s)), %zu already done or queued\n", todo.size(),
                          workers, plan.size() - todo.size());
  if (todo.empty()) return {};
  scheduler::LocalPoolOptions o;
  o.workspace = g.workspace;
  o.workers = workers;
  o.quiet = quiet;
  o.on_event = [quiet](const std::string& l) {
    if (!quiet) std::fprintf(stderr, "%s\n", l.c_str());
  };
  return scheduler::run_local_pool(todo, store, o);
}

namespace {

struct CommonOptions {
  std::string exp_path, workspace;
  std::vector<std::string> sets, only;
  bool json = false;
};

void add_common(po::options_description& d, CommonOptions& c, po::positional_options_description& pos) {
  d.add_options()("experiment", po::value(&c.exp_path)->required(), "experiment file (experiments/*.json)")(
      "workspace", po::value(&c.workspace), "workspace folder (default: the experiment's)")(
      "set", po::value(&c.sets)->composing(), "override a setting: key.path=value (repeatable)")(
      "only", po::value(&c.only)->composing(), "narrow to key=value[,value] (dataset, model, seed, stage; repeatable)");
  pos.add("experiment", 1);
}

std::string short_id(const std::string& id) { return id; }

nlohmann::json status_json(const scheduler::RunStatus& st) {
  nlohmann::json deps = nlohmann::json::array();
  for (const auto& d : st.run.depends_on) deps.push_back(d);
  return {{"id", st.run.id},
          {"dataset", st.run.settings.dataset},
          {"model", st.run.settings.model},
          {"seed", st.run.settings.seed},
          {"stage", st.run.settings.stage},
          {"depends_on", deps},
          {"state", st.state},
          {"action", st.submit ? "submit" : "skip"},
          {"why", st.why},
          {"attempts", st.progress.attempts},
          {"epochs_done", st.progress.epochs_done},
          {"epochs", st.run.settings.training.epochs},
          {"job", st.progress.job},
          {"last_error", st.state == "failed" ? st.progress.last_reason : ""}};
}

// Slurm's view of the runs the store thinks are queued or running on Slurm: one sacct call.
std::map<std::string, std::string> slurm_view(Store& store) {
  std::vector<std::string> jobs;
  auto progress = store.progress();
  for (const auto& r : store.runs())
    if ((r.state == "queued" || r.state == "running") && progress[r.run_id].backend == "slurm")
      jobs.push_back(progress[r.run_id].job);
  return scheduler::slurm_job_states(jobs);
}

std::vector<scheduler::RunStatus> current(GridContext& g, scheduler::PlanMode mode) {
  if (!fs::exists(store_file(g.workspace))) {
    Store empty(":memory:");
    return scheduler::plan(g.grid, empty, g.only, mode);
  }
  Store store(store_file(g.workspace));
  auto states = slurm_view(store);
  return scheduler::plan(g.grid, store, g.only, mode, &states);
}

std::string backend_of(const GridContext& g, const std::string& flag) {
  std::string b = flag.empty() ? g.exp.raw.value("backend", std::string("local")) : flag;
  if (b != "local" && b != "slurm") throw InputError("--backend", "", b, "expected local or slurm");
  return b;
}

// Slurm submission of what plan() says to submit (after reconciling jobs an earlier submit left unrecorded).
int submit_to_slurm(GridContext& g, scheduler::PlanMode mode) {
  fs::create_directories(g.workspace);
  Store store(store_file(g.workspace));
  int reconciled = scheduler::reconcile_slurm(store, g.workspace);
  if (reconciled) std::printf("submit: %d run(s) of an earlier submission found in Slurm and recorded\n", reconciled);
  auto states = slurm_view(store);
  auto plan = scheduler::plan(g.grid, store, g.only, mode, &states);
  std::vector<scheduler::PlannedRun> todo, all;
  std::set<std::string> datasets;
  for (const auto& st : plan) {
    all.push_back(st.run);
    if (st.submit) {
      todo.push_back(st.run);
      datasets.insert(st.run.settings.dataset);
    }
  }
  for (const auto& d : datasets) ensure_dataset(g.exp, g.exp.dataset(d), g.workspace, 0, false);
  scheduler::record_runs(store, all);
  auto sub = scheduler::submit_slurm(todo, store, g.exp, g.workspace, fs::read_symlink("/proc/self/exe").string());
  std::printf("submit: %d run(s) in %zu Slurm array job(s)", sub.runs, sub.array_jobs.size());
  for (const auto& j : sub.array_jobs) std::printf(" %s", j.c_str());
  std::printf("; %zu already done or queued. Logs: %s/logs/%%A_%%a.out\n", plan.size() - todo.size(), g.workspace.c_str());
  return 0;
}

}  // namespace

int cmd_plan(const Args& args) {
  po::options_description desc("orchestrator plan");
  CommonOptions c;
  po::positional_options_description pos;
  add_common(desc, c, pos);
  desc.add_options()("json", po::bool_switch(&c.json), "a JSON list, one object per run");
  po::variables_map vm;
  if (!parse_options(args, desc, vm, "orchestrator plan EXP [--json] [--only key=value]...", &pos)) return 0;
  GridContext g = load_grid(c.exp_path, c.sets, c.only, c.workspace);
  auto plan = current(g, scheduler::PlanMode::kSubmit);
  if (c.json) {
    nlohmann::json out = nlohmann::json::array();
    for (const auto& st : plan) out.push_back(status_json(st));
    std::cout << out.dump(1) << "\n";
    return 0;
  }
  int submit = 0;
  std::printf("%-44s %-9s %-9s %-7s %s\n", "run", "stage", "state", "action", "why / depends on");
  for (const auto& st : plan) {
    submit += st.submit;
    std::string deps;
    for (const auto& d : st.run.depends_on) deps += " " + d;
    std::printf("%-44s %-9s %-9s %-7s %s%s\n", short_id(st.run.id).c_str(), st.run.settings.stage.c_str(),
                st.state.c_str(), st.submit ? "submit" : "skip", st.why.c_str(),
                deps.empty() ? "" : ("; after" + deps).c_str());
  }
  std::printf("%zu run(s); submit would start %d\n", plan.size(), submit);
  return 0;
}

namespace {

// submit and resume differ only in the plan mode: submit starts what is new, resume also what failed, was
// cancelled, timed out or was lost. (The local pool itself treats fewer than one worker as one.)
int submit_or_resume(const Args& args, scheduler::PlanMode mode, const std::string& verb) {
  po::options_description desc("orchestrator " + verb);
  CommonOptions c;
  po::positional_options_description pos;
  add_common(desc, c, pos);
  std::string backend;
  int workers = 1;
  desc.add_options()("backend", po::value(&backend), "local or slurm (default: the experiment's backend, else local)")(
      "workers", po::value(&workers)->default_value(1), "local: worker processes");
  po::variables_map vm;
  if (!parse_options(args, desc, vm, "orchestrator " + verb + " EXP [--backend local|slurm] [--only key=value]...", &pos))
    return 0;
  GridContext g = load_grid(c.exp_path, c.sets, c.only, c.workspace);
  if (backend_of(g, backend) == "slurm") return submit_to_slurm(g, mode);
  auto r = submit_local(g, mode, workers, false);
  std::printf("%s: %d done, %d failed, %d not started\n", verb.c_str(), r.done, r.failed, r.not_started);
  return r.failed ? 1 : 0;
}

}  // namespace

int cmd_submit(const Args& args) { return submit_or_resume(args, scheduler::PlanMode::kSubmit, "submit"); }

int cmd_resume(const Args& args) { return submit_or_resume(args, scheduler::PlanMode::kResume, "resume"); }

int cmd_status(const Args& args) {
  po::options_description desc("orchestrator status");
  CommonOptions c;
  po::positional_options_description pos;
  add_common(desc, c, pos);
  bool watch = false;
  desc.add_options()("json", po::bool_switch(&c.json), "one object per run")("watch", po::bool_switch(&watch),
                                                                             "refresh every 5 s until nothing is active");
  po::variables_map vm;
  if (!parse_options(args, desc, vm, "orchestrator status EXP [--watch] [--json] [--only key=value]...", &pos)) return 0;
  GridContext g = load_grid(c.exp_path, c.sets, c.only, c.workspace);
  for (;;) {
    auto plan = current(g, scheduler::PlanMode::kSubmit);
    if (c.json) {
      nlohmann::json out = nlohmann::json::array();
      for (const auto& st : plan) out.push_back(status_json(st));
      std::cout << out.dump(1) << "\n";
    } else {
      std::map<std::string, int> per_state;
      std::map<std::string, std::map<std::string, std::pair<int, int>>> grid;  // model -> dataset -> (done, total)
      for (const auto& st : plan) {
        per_state[st.state]++;
        auto& cell = grid[st.run.settings.model + (st.run.settings.stage == "pretrain" ? " (pretrain)" : "")][st.run.settings.dataset];
        cell.second++;
        cell.first += st.state == "done";
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
      for (const auto& st : plan) {
        if (st.state == "done" || st.state == "new") continue;
        std::printf("%-44s %-9s attempts %lld, epoch %lld/%d%s%s\n", st.run.id.c_str(), st.state.c_str(),
                    static_cast<long long>(st.progress.attempts), static_cast<long long>(st.progress.epochs_done),
                    st.run.settings.training.epochs, st.progress.job.empty() ? "" : (", job " + st.progress.job).c_str(),
                    st.state == "failed" || st.state == "lost" ? ("\n    last error: " + st.progress.last_reason).c_str() : "");
      }
    }
    bool active = false;
    for (const auto& st : plan) active |= st.state == "queued" || st.state == "running";
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
  if (!fs::exists(store_file(g.workspace))) {
    std::printf("cancel: nothing submitted in %s\n", g.workspace.c_str());
    return 0;
  }
  Store store(store_file(g.workspace));
  auto states = slurm_view(store);
  auto plan = scheduler::plan(g.grid, store, g.only, scheduler::PlanMode::kSubmit, &states);
  int n = 0;
  std::vector<std::string> ids, slurm_jobs;
  for (const auto& st : plan) {
    if (st.state != "queued" && st.state != "running") continue;
    const std::string& job = st.progress.job;
    if (job.rfind("local:", 0) == 0) {
      long pid = std::strtol(job.c_str() + 6, nullptr, 10);
      if (pid > 0 && !scheduler::local_job_gone(job)) ::kill(static_cast<pid_t>(pid), SIGTERM);  // checkpoints, exits 75
    } else if (st.progress.backend == "slurm") {
      slurm_jobs.push_back(job);  // scancel sends SIGTERM: the worker checkpoints before it is killed
    }
    ids.push_back(st.run.id);
    ++n;
  }
  scheduler::cancel_slurm(slurm_jobs);
  store.set_runs_state(ids, "cancelled");
  std::printf("cancel: %d run(s) cancelled (their workers checkpoint and stop; resume continues them)\n", n);
  return 0;
}

}  // namespace orch::cli
