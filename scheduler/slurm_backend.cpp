#include "scheduler/slurm_backend.h"

#include <pwd.h>
#include <unistd.h>

#include <algorithm>
#include <csignal>
#include <ctime>
#include <filesystem>
#include <fstream>
#include <functional>
#include <map>
#include <optional>
#include <set>
#include <sstream>
#include <unordered_set>

#include "core/atomic_file.h"
#include "core/errors.h"
#include "scheduler/process.h"
#include "scheduler/retry.h"
#include "scheduler/slurm_arrays.h"
#include "scheduler/slurm_template.h"
#include "storage/accounting_table.h"
#include "storage/layout.h"
#include "storage/run_state.h"
#include "storage/runs_table.h"

namespace orch::scheduler {

namespace fs = std::filesystem;

namespace {

bool safe_word(const std::string& s) {
  if (s.empty() || s.size() > 200) return false;
  return std::all_of(s.begin(), s.end(), [](char c) { return std::isalnum(static_cast<unsigned char>(c)) || c == '_' || c == '.' || c == '-'; });
}

std::string sanitize(const std::string& s) {
  std::string o;
  for (char c : s) o += (std::isalnum(static_cast<unsigned char>(c)) || c == '_' || c == '.' || c == '-') ? c : '_';
  return o.substr(0, 40);
}

// A dispatch's name, unique on the workspace: its second, this process, and how many dispatches this process made
// before (`--follow` dispatches again within one second; a manifest must never replace one a pending array reads).
std::string stamp() {
  static int dispatches = 0;
  std::time_t t = std::time(nullptr);
  char b[32];
  std::strftime(b, sizeof b, "%Y%m%dT%H%M%S", std::gmtime(&t));
  return std::string(b) + "-" + std::to_string(getpid()) + (dispatches++ ? "." + std::to_string(dispatches - 1) : "");
}

std::string array_of(const std::string& job) { return job.substr(0, job.find('_')); }

int gpus_from_tres(const std::string& tres) {
  auto p = tres.find("gres/gpu=");
  if (p == std::string::npos) return 0;
  return std::atoi(tres.c_str() + p + 9);
}

}  // namespace

JobPhase job_phase_from_slurm(const std::string& full) {
  const std::string s = full.substr(0, full.find(' '));  // "CANCELLED by 0"
  if (s == "PENDING" || s == "REQUEUED" || s == "REQUEUE_HOLD" || s == "REQUEUE_FED" || s == "PREEMPTED" ||
      s == "SUSPENDED" || s == "RESIZING")
    return JobPhase::kPending;
  if (s == "RUNNING" || s == "COMPLETING" || s == "CONFIGURING" || s == "STAGE_OUT" || s == "SIGNALING") return JobPhase::kRunning;
  if (s == "COMPLETED") return JobPhase::kCompleted;
  if (s == "CANCELLED") return JobPhase::kCancelled;
  if (s == "TIMEOUT") return JobPhase::kTimeout;
  if (s == "FAILED" || s == "NODE_FAIL" || s == "OUT_OF_MEMORY" || s == "BOOT_FAIL" || s == "DEADLINE") return JobPhase::kFailed;
  return JobPhase::kUnknown;
}

bool slurm_state_is_transient(const std::string& full) {
  const std::string s = full.substr(0, full.find(' '));
  return s == "NODE_FAIL" || s == "OUT_OF_MEMORY" || s == "BOOT_FAIL";
}

void check_slurm_path(const std::string& path, const std::string& what) {
  for (char c : path)
    if (c == '%' || c == '\\' || c == '\n' || c == '\r')
      throw InputError(what, "", path,
                       std::string("Slurm cannot take this path literally (") + (c == '%' ? "'%'" : c == '\\' ? "'\\'" : "a newline") +
                           " is part of its file-name patterns or breaks its scripts); use a workspace path without it");
}

SlurmBackend::SlurmBackend(DispatchOptions options) : o_(std::move(options)) {}

bool SlurmBackend::accounting_open(const std::string& job, const JobAccount* newest) const {
  if (job.rfind(kPendingSubmission, 0) == 0) return false;  // no job yet
  if (!newest || newest->ended.empty() || newest->ended == "Unknown") return true;
  const JobPhase phase = job_phase_from_slurm(newest->state);
  return phase == JobPhase::kPending || phase == JobPhase::kRunning;  // a state the job leaves again
}

namespace {

// The state of a job id that never reached Slurm (a placeholder recorded before or instead of sbatch's answer).
std::optional<JobState> placeholder_state(const std::string& j) {
  if (j.rfind(kPendingSubmission, 0) == 0)
    return JobState{JobPhase::kUnknown, "submission in progress or interrupted (reconciled by the next submit)"};
  if (j.rfind(kFailedSubmission, 0) == 0) return JobState{JobPhase::kGone, "sbatch failed"};
  if (j.rfind(kNeverSubmitted, 0) == 0) return JobState{JobPhase::kGone, "its submission never reached Slurm"};
  return std::nullopt;
}

// One sacct or squeue row's state on every array task it names: "12_3", or a pending range "12_[3-5%2]".
void put_task_state(std::map<std::string, JobState>& out, const std::string& id, const std::string& state) {
  auto us = id.find('_');
  if (us == std::string::npos) return;
  std::string a = id.substr(0, us), rest = id.substr(us + 1);
  JobState js{job_phase_from_slurm(state), "Slurm: " + state, slurm_state_is_transient(state)};
  if (rest.empty() || rest[0] != '[') {
    out[id] = js;
    return;
  }
  std::stringstream ss(rest.substr(1, rest.find_first_of("%]") - 1));
  std::string part;
  while (std::getline(ss, part, ',')) {
    auto dash = part.find('-');
    int lo = std::atoi(part.c_str()), hi = dash == std::string::npos ? lo : std::atoi(part.c_str() + dash + 1);
    for (int i = lo; i <= hi && i - lo < 100000; ++i) out[a + "_" + std::to_string(i)] = js;
  }
}

// sacct's rows for the arrays in `list`: each task's state, and an accounting row for each task that started.
// -D: requeued runs too (their history rows come first, the current row last). False when sacct failed.
bool states_from_sacct(const std::string& list, std::map<std::string, JobState>& out, std::vector<JobAccount>& accounts) {
  CommandResult r = run_command({"sacct", "-D", "-X", "-P", "-n", "-j", list, "-o", "JobID,State,ElapsedRaw,Start,End,AllocTRES"});
  if (r.rc != 0) return false;
  for (const auto& f : pipe_rows(r.out)) {
    if (f.size() < 2) continue;
    put_task_state(out, f[0], f[1]);
    if (f.size() >= 6 && f[0].find('[') == std::string::npos && f[3] != "Unknown" && f[3] != "None")
      accounts.push_back({f[0], "", "slurm", f[1].substr(0, f[1].find(' ')), std::atof(f[2].c_str()),
                          static_cast<double>(gpus_from_tres(f[5])), f[3], f[4]});
  }
  return true;
}

// squeue's view when sacct cannot answer (no accounting storage): the tasks it still knows. False when it failed.
bool states_from_squeue(const std::string& list, std::map<std::string, JobState>& out) {
  CommandResult r = run_command({"squeue", "-h", "-r", "-t", "all", "-j", list, "-o", "%i %T"});
  std::stringstream ss(r.out);
  std::string id, state;
  while (ss >> id >> state) put_task_state(out, id, state);
  return r.rc == 0;
}

}  // namespace

std::map<std::string, JobState> SlurmBackend::job_states(const std::vector<std::string>& jobs) {
  std::map<std::string, JobState> out;
  std::set<std::string> arrays;
  for (const auto& j : jobs) {
    if (auto p = placeholder_state(j)) out[j] = *p;
    else if (safe_word(array_of(j))) arrays.insert(array_of(j));
  }
  if (arrays.empty()) return out;
  std::string list;
  for (const auto& a : arrays) list += (list.empty() ? "" : ",") + a;
  const bool answered = states_from_sacct(list, out, accounts_) || states_from_squeue(list, out);
  // Jobs of arrays Slurm no longer knows at all (purged, or another cluster's): gone.
  for (const auto& j : jobs)
    if (!out.count(j) && arrays.count(array_of(j)) && answered) out[j] = {JobPhase::kUnknown, "Slurm has no record of it yet"};
  return out;
}

std::vector<JobAccount> SlurmBackend::accounts() {
  auto out = std::move(accounts_);
  accounts_.clear();
  return out;
}

// What every array of one dispatch shares: where things go and the template.
struct SubmitContext {
  std::string workspace, binary, slurm_dir, output_pattern, tmpl, exp_path, exp_name;
  ExperimentResources xres;
};

namespace {

SubmitContext submit_context(const DispatchOptions& o, const Experiment& exp) {
  SubmitContext c;
  c.xres = experiment_resources(exp);
  c.exp_path = exp.path;
  c.exp_name = exp.name;
  c.workspace = fs::absolute(o.workspace).lexically_normal().string();
  check_slurm_path(c.workspace, "--workspace");
  c.binary = fs::absolute(o.binary.empty() ? fs::read_symlink("/proc/self/exe").string() : o.binary).string();
  const WorkspaceLayout layout(c.workspace);
  c.slurm_dir = layout.slurm_dir();
  c.output_pattern = layout.slurm_output_pattern();
  fs::create_directories(layout.slurm_dir());
  fs::create_directories(layout.logs_dir());
  c.tmpl = slurm_job_template();
  if (!c.xres.template_path.empty()) {
    std::ifstream in(c.xres.template_path);
    if (!in) throw InputError(exp.path, "resources.template", c.xres.template_path, "cannot read the job template");
    std::stringstream ss;
    ss << in.rdbuf();
    c.tmpl = ss.str();
  }
  return c;
}

// From the store: the Slurm tasks of dependencies outside the dispatch, and the runs that ran out of memory.
GroupingInput grouping_input(const std::vector<DispatchItem>& items, Store& store, const ExperimentResources& xres) {
  GroupingInput in;
  in.oom_mem_factor = xres.oom_mem_factor;
  for (const auto& a : AccountingTable(store).of())  // sacct's state, recorded as accounting rows
    if (choice_from<BackendKind>(a.backend) == BackendKind::kSlurm && a.state.rfind("OUT_OF_MEMORY", 0) == 0) ++in.oom_ends[a.run_id];
  std::set<std::string> in_set;
  for (const auto& it : items) in_set.insert(it.run.id);
  auto progress = RunsTable(store).progress();
  for (const auto& it : items)
    for (const auto& dep : it.run.depends_on) {
      if (in_set.count(dep) || in.outside_tasks.count(dep)) continue;
      auto rec = RunsTable(store).run(dep);
      const RunProgress& p = progress[dep];
      if (rec && run_state::is_active(rec->state) && choice_from<BackendKind>(p.backend) == BackendKind::kSlurm &&
          p.job.rfind(kPendingSubmission, 0) != 0)
        in.outside_tasks[dep] = p.job;
    }
  return in;
}

// The compare-and-set of an array's runs to queued under the placeholder job `kPendingSubmission + base`. Runs whose
// dependency inside this dispatch was not submitted, or whose state changed meanwhile, go to `skipped`. Returns the
// runs now the array's.
std::vector<std::string> take_runs(const ArrayGroup& g, const std::string& base, const std::map<std::string, std::string>& task_of,
                                   Store& store, const std::string& exp_path, std::vector<std::string>& skipped) {
  const bool missing = std::any_of(g.deps_inside.begin(), g.deps_inside.end(),
                                   [&](const std::string& d) { return !task_of.count(d); });
  std::vector<RunsTable::Dispatch> cas;
  for (const auto* it : g.items) {
    if (!safe_word(it->run.id)) throw InputError(exp_path, "run id", it->run.id, "not safe for a job script");
    if (missing) skipped.push_back(it->run.id); else cas.push_back({it->run.id, it->recorded_state, kPendingSubmission + base});
  }
  if (cas.empty()) return {};
  const auto accepted = RunsTable(store).dispatch_runs(cas, choice_name(BackendKind::kSlurm));
  std::set<std::string> ok(accepted.begin(), accepted.end());
  std::vector<std::string> ids;
  for (const auto& c : cas) (ok.count(c.run_id) ? ids : skipped).push_back(c.run_id);
  return ids;
}

// The sbatch arguments of an array: its dependencies (afterok on every task it waits for), script and arguments.
std::vector<std::string> sbatch_args(const ArrayGroup& g, const std::map<std::string, std::string>& task_of,
                                     const SubmitContext& c, const std::string& script, const std::string& manifest) {
  std::set<std::string> after(g.deps_outside.begin(), g.deps_outside.end());
  for (const auto& d : g.deps_inside) after.insert(task_of.at(d));
  std::vector<std::string> args{"sbatch", "--parsable", "--output=" + c.output_pattern};
  if (!after.empty()) {
    std::string d = "--dependency=afterok";
    for (const auto& a : after) d += ":" + a;
    args.push_back(d);
  }
  args.insert(args.end(), {script, c.binary, c.workspace, manifest});
  return args;
}

}  // namespace

void SlurmBackend::read_config() {
  if (max_job_count_ >= 0) return;
  max_array_size_ = 1001;  // Slurm's defaults
  max_job_count_ = 0;
  bool enforced = false;
  CommandResult r = run_command({"scontrol", "show", "config"});
  std::stringstream ss(r.out);
  for (std::string line; r.rc == 0 && std::getline(ss, line);) {
    const auto eq = line.find('=');
    if (line.rfind("AccountingStorageEnforce", 0) == 0 && eq != std::string::npos)
      enforced = line.find("limits", eq) != std::string::npos || line.find("qos", eq) != std::string::npos ||
                 line.find("safe", eq) != std::string::npos;
    const long v = eq == std::string::npos ? 0 : std::atol(line.c_str() + eq + 1);
    if (v <= 0 || v > 100000000) continue;
    if (line.rfind("MaxArraySize", 0) == 0) max_array_size_ = static_cast<int>(v);
    if (line.rfind("MaxJobCount", 0) == 0) max_job_count_ = static_cast<int>(v);
  }
  if (const passwd* pw = getpwuid(geteuid())) user_ = pw->pw_name;
  if (enforced) read_submit_limit();
}

// The user's MaxSubmitJobs / GrpSubmitJobs (association and QOS), read only where Slurm enforces them.
void SlurmBackend::read_submit_limit() {
  if (user_.empty()) return;
  CommandResult assoc = run_command({"sacctmgr", "-nP", "show", "assoc", "where", "user=" + user_,
                                     "format=MaxSubmit,GrpSubmit,QOS,DefaultQOS"});
  if (assoc.rc != 0) return;
  std::string qos_rows;
  const auto names = submit_qos_names(assoc.out);
  if (!names.empty()) {
    std::string list;
    for (const auto& n : names) list += (list.empty() ? "" : ",") + n;
    CommandResult q = run_command({"sacctmgr", "-nP", "show", "qos", "where", "name=" + list, "format=Name,MaxSubmitPU,GrpSubmit"});
    if (q.rc == 0) qos_rows = q.out;
  }
  submit_limit_ = submit_limit_from_sacctmgr(assoc.out, qos_rows);
}

std::pair<int, int> SlurmBackend::queued_tasks(const std::vector<std::string>& grid_jobs) {
  if (user_.empty()) return {0, 0};
  std::unordered_set<std::string> arrays;
  for (const auto& j : grid_jobs) arrays.insert(array_of(j));
  CommandResult r = run_command({"squeue", "-h", "-r", "-u", user_, "-t", "PENDING,RUNNING,CONFIGURING,COMPLETING,SUSPENDED",
                                 "-o", "%F"});
  if (r.rc != 0) return {0, 0};
  std::stringstream ss(r.out);
  int grid = 0, others = 0;
  for (std::string array; ss >> array;) (arrays.count(array) ? grid : others) += 1;
  return {grid, others};
}

int SlurmBackend::max_array_size() {
  read_config();
  return max_array_size_;
}

QueueLimit SlurmBackend::queue_limit(const Experiment& exp, const std::vector<std::string>& grid_jobs) {
  read_config();
  int limit = 0;
  auto tighten = [&](int v) { limit = limit == 0 ? v : std::min(limit, v); };
  const int max_queued = experiment_resources(exp).max_queued;  // validates the resources block: read once
  if (max_queued > 0) tighten(max_queued);
  if (max_job_count_ > 0) tighten(max_job_count_);
  if (limit == 0 && submit_limit_ == 0) return {};
  QueueLimit q;
  const auto [grid, others] = queued_tasks(grid_jobs);
  q.listed = grid;
  if (submit_limit_ > 0) tighten(std::max(0, submit_limit_ - others));  // 0: the user's other jobs fill it
  q.most = limit;
  return q;
}

void SlurmBackend::submit_array(const ArrayGroup& g, const std::string& base, const SubmitContext& c, Store& store,
                                std::map<std::string, std::string>& task_of, DispatchResult& out) {
  const std::vector<std::string> ids = take_runs(g, base, task_of, store, c.exp_path, out.skipped);
  if (ids.empty()) return;
  const std::string manifest = fs::path(c.slurm_dir) / (base + ".manifest");
  const std::string job_name = "orch-" + sanitize(c.exp_name) + "-" + base;
  JobScriptSpec spec;
  spec.runs_per_task = std::max(1, g.res.runs_per_gpu);
  std::string text;
  for (size_t i = 0; i < ids.size(); ++i)
    text += ids[i] + ((i + 1) % spec.runs_per_task == 0 || i + 1 == ids.size() ? "\n" : " ");
  write_file_atomically(manifest, text);
  write_file_atomically(manifest + ".jobname", job_name + "\n");
  spec.job_name = job_name;
  spec.comment = base;
  spec.time = array_time_limit(g, o_.estimated_time_limit, c.exp_path);
  spec.tasks = static_cast<int>((ids.size() + spec.runs_per_task - 1) / spec.runs_per_task);
  spec.res = g.res;
  spec.array_throttle = c.xres.array_throttle;
  spec.signal_seconds = c.xres.signal_seconds;
  spec.max_attempts = c.xres.max_attempts;
  const std::string script_path = fs::path(c.slurm_dir) / (base + ".sbatch");
  write_file_atomically(script_path, render_job_script(c.tmpl, spec));
  CommandResult r = run_command(sbatch_args(g, task_of, c, script_path, manifest));
  std::string job = r.out.substr(0, r.out.find_first_of(";\n"));
  const std::string slurm = choice_name(BackendKind::kSlurm);
  if (r.rc != 0 || !safe_word(job)) {
    RunsTable(store).transition_runs(ids, {run_state::kQueued}, run_state::kFailed);  // nothing was queued for them
    for (const auto& id : ids) RunsTable(store).replace_jobs({{id, kFailedSubmission + base}}, kPendingSubmission + base, slurm);
    throw Error("sbatch " + script_path + " failed (exit " + std::to_string(r.rc) + "): " + r.err + r.out);
  }
  std::vector<std::pair<std::string, std::string>> jobs;
  for (size_t i = 0; i < ids.size(); ++i) {
    const std::string task = job + "_" + std::to_string(static_cast<int>(i) / spec.runs_per_task);
    jobs.push_back({ids[i], task});
    task_of[ids[i]] = task;
  }
  RunsTable(store).replace_jobs(jobs, kPendingSubmission + base, slurm);
  out.jobs.push_back(job);
  out.dispatched += static_cast<int>(ids.size());
}

DispatchResult SlurmBackend::dispatch(const std::vector<DispatchItem>& items, Store& store, const Experiment& exp) {
  DispatchResult out;
  if (items.empty()) return out;
  const SubmitContext c = submit_context(o_, exp);
  GroupingInput in = grouping_input(items, store, c.xres);
  in.max_array_size = max_array_size();
  const std::string st = stamp();
  std::map<std::string, std::string> task_of;  // run id -> "<job>_<task>" submitted in this dispatch
  int n = 0;
  for (const ArrayGroup& g : group_into_arrays(items, in)) submit_array(g, st + "-g" + std::to_string(n++), c, store, task_of, out);
  return out;
}

void SlurmBackend::cancel(const std::vector<std::string>& jobs) {
  std::vector<std::string> args{"scancel"};
  for (const auto& j : jobs)
    if (safe_word(j)) args.push_back(j);
  if (args.size() == 1) return;
  CommandResult r = run_command(args);
  if (r.rc != 0) throw Error("scancel failed (exit " + std::to_string(r.rc) + "): " + r.err);
}

int SlurmBackend::reconcile(Store& store) {
  const WorkspaceLayout layout(o_.workspace);
  auto progress = RunsTable(store).progress();
  std::map<std::string, std::vector<std::string>> waiting;  // placeholder -> runs
  for (const auto& [run, p] : progress)
    if (choice_from<BackendKind>(p.backend) == BackendKind::kSlurm && p.job.rfind(kPendingSubmission, 0) == 0) waiting[p.job].push_back(run);
  int n = 0;
  for (const auto& [placeholder, runs] : waiting) {
    const std::string base = placeholder.substr(std::string(kPendingSubmission).size());
    if (!safe_word(base)) continue;
    const std::string manifest = fs::path(layout.slurm_dir()) / (base + ".manifest");
    std::ifstream jn(manifest + ".jobname");
    std::string name;
    std::getline(jn, name);
    std::string job;
    if (safe_word(name)) {
      CommandResult r = run_command({"sacct", "-X", "-P", "-n", "--name=" + name, "-o", "JobID", "-S", "2000-01-01"});
      if (r.rc != 0 || r.out.empty()) r = run_command({"squeue", "-h", "--name=" + name, "-o", "%F"});
      job = r.out.substr(0, r.out.find_first_of("_\n|"));
    }
    // The manifest says which task each run is.
    std::map<std::string, int> task;
    {
      std::ifstream in(manifest);
      std::string line;
      for (int i = 0; std::getline(in, line); ++i) {
        std::stringstream ss(line);
        std::string id;
        while (ss >> id) task[id] = i;
      }
    }
    std::vector<std::pair<std::string, std::string>> jobs;
    for (const auto& run : runs)
      jobs.push_back({run, safe_word(job) && task.count(run) ? job + "_" + std::to_string(task[run]) : kNeverSubmitted + base});
    RunsTable(store).replace_jobs(jobs, placeholder, "slurm");
    n += static_cast<int>(runs.size());
  }
  return n;
}

bool SlurmJobEnvironment::present() { return std::getenv("SLURM_JOB_ID") != nullptr; }

SlurmJobEnvironment::SlurmJobEnvironment(bool self_requeue) : self_requeue_(self_requeue) {
  auto digits = [](const char* v) {
    if (!v || !*v) return std::string();
    for (const char* p = v; *p; ++p)
      if (*p < '0' || *p > '9') return std::string();
    return std::string(v);
  };
  std::string array = digits(std::getenv("SLURM_ARRAY_JOB_ID")), task = digits(std::getenv("SLURM_ARRAY_TASK_ID"));
  job_ = !array.empty() && !task.empty() ? array + "_" + task : digits(std::getenv("SLURM_JOB_ID"));
  cpus_ = std::atoi(digits(std::getenv("SLURM_CPUS_PER_TASK")).c_str());
  gpus_ = visible_gpus();
}

std::string SlurmJobEnvironment::request_requeue(int signal) {
  if (!self_requeue_ || job_.empty() || (signal != SIGUSR1 && signal != SIGUSR2)) return "";
  CommandResult r = run_command({"scontrol", "requeue", job_});
  return r.rc == 0 ? "requeued Slurm job " + job_ : "scontrol requeue " + job_ + " failed (" + std::to_string(r.rc) + ")";
}

}  // namespace orch::scheduler
