#include "scheduler/slurm_backend.h"

#include <unistd.h>

#include <algorithm>
#include <csignal>
#include <ctime>
#include <filesystem>
#include <fstream>
#include <functional>
#include <map>
#include <set>
#include <sstream>

#include "core/atomic_file.h"
#include "core/errors.h"
#include "scheduler/process.h"
#include "scheduler/retry.h"
#include "scheduler/slurm_template.h"
#include "storage/layout.h"
#include "storage/run_state.h"

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

void replace_all(std::string& s, const std::string& from, const std::string& to) {
  for (size_t p = 0; (p = s.find(from, p)) != std::string::npos; p += to.size()) s.replace(p, from.size(), to);
}

std::string stamp() {
  std::time_t t = std::time(nullptr);
  char b[32];
  std::strftime(b, sizeof b, "%Y%m%dT%H%M%S", std::gmtime(&t));
  return std::string(b) + "-" + std::to_string(getpid());
}

std::string array_of(const std::string& job) { return job.substr(0, job.find('_')); }

// One array to submit: runs with the same dependencies (in this submission and outside it) and resources.
struct Group {
  std::vector<const DispatchItem*> items;
  std::vector<std::string> deps_inside;    // run ids submitted earlier in this dispatch
  std::vector<std::string> deps_outside;   // Slurm jobs of active runs ("<array>_<task>")
  RunResources res;
};

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

std::map<std::string, JobState> SlurmBackend::job_states(const std::vector<std::string>& jobs) {
  std::map<std::string, JobState> out;
  std::set<std::string> arrays;
  for (const auto& j : jobs) {
    if (j.rfind(kPendingSubmission, 0) == 0) {
      out[j] = {JobPhase::kUnknown, "submission in progress or interrupted (reconciled by the next submit)"};
      continue;
    }
    if (j.rfind(kFailedSubmission, 0) == 0 || j.rfind(kNeverSubmitted, 0) == 0) {
      out[j] = {JobPhase::kGone, j.rfind(kFailedSubmission, 0) == 0 ? "sbatch failed" : "its submission never reached Slurm"};
      continue;
    }
    if (safe_word(array_of(j))) arrays.insert(array_of(j));
  }
  if (arrays.empty()) return out;
  std::string list;
  for (const auto& a : arrays) list += (list.empty() ? "" : ",") + a;
  auto put = [&](const std::string& id, const std::string& state) {
    auto us = id.find('_');
    if (us == std::string::npos) return;
    std::string a = id.substr(0, us), rest = id.substr(us + 1);
    JobState js{job_phase_from_slurm(state), "Slurm: " + state};
    if (!rest.empty() && rest[0] == '[') {  // a pending range: 12_[3-5%2]
      std::stringstream ss(rest.substr(1, rest.find_first_of("%]") - 1));
      std::string part;
      while (std::getline(ss, part, ',')) {
        auto dash = part.find('-');
        int lo = std::atoi(part.c_str()), hi = dash == std::string::npos ? lo : std::atoi(part.c_str() + dash + 1);
        for (int i = lo; i <= hi && i - lo < 100000; ++i) out[a + "_" + std::to_string(i)] = js;
      }
    } else {
      out[id] = js;
    }
  };
  // -D: requeued runs too (their history rows come first, the current row last), for the accounting.
  CommandResult r = run_command({"sacct", "-D", "-X", "-P", "-n", "-j", list, "-o", "JobID,State,ElapsedRaw,Start,End,AllocTRES"});
  if (r.rc == 0) {
    std::stringstream ss(r.out);
    std::string line;
    while (std::getline(ss, line)) {
      std::vector<std::string> f;
      std::stringstream ls(line);
      std::string part;
      while (std::getline(ls, part, '|')) f.push_back(part);
      if (f.size() < 2) continue;
      put(f[0], f[1]);
      if (f.size() >= 6 && f[0].find('[') == std::string::npos && f[3] != "Unknown" && f[3] != "None")
        accounts_.push_back({f[0], "", "slurm", f[1].substr(0, f[1].find(' ')), std::atof(f[2].c_str()), static_cast<double>(gpus_from_tres(f[5])),
                             f[3], f[4]});
    }
  } else {
    r = run_command({"squeue", "-h", "-r", "-t", "all", "-j", list, "-o", "%i %T"});
    std::stringstream ss(r.out);
    std::string id, state;
    while (ss >> id >> state) put(id, state);
  }
  // Jobs of arrays Slurm no longer knows at all (purged, or another cluster's): gone.
  for (const auto& j : jobs)
    if (!out.count(j) && arrays.count(array_of(j)) && r.rc == 0) out[j] = {JobPhase::kUnknown, "Slurm has no record of it yet"};
  return out;
}

std::vector<JobAccount> SlurmBackend::accounts() {
  auto out = std::move(accounts_);
  accounts_.clear();
  return out;
}

DispatchResult SlurmBackend::dispatch(const std::vector<DispatchItem>& items, Store& store, const Experiment& exp) {
  DispatchResult out;
  if (items.empty()) return out;
  const ExperimentResources xres = experiment_resources(exp);
  const std::string ws = fs::absolute(o_.workspace).lexically_normal().string();
  check_slurm_path(ws, "--workspace");
  const std::string bin = fs::absolute(o_.binary.empty() ? fs::read_symlink("/proc/self/exe").string() : o_.binary).string();
  const WorkspaceLayout layout(ws);
  fs::create_directories(layout.slurm_dir());
  fs::create_directories(layout.logs_dir());
  std::string tmpl = slurm_job_template();
  if (!xres.template_path.empty()) {
    std::ifstream in(xres.template_path);
    if (!in) throw InputError(exp.path, "resources.template", xres.template_path, "cannot read the job template");
    std::stringstream ss;
    ss << in.rdbuf();
    tmpl = ss.str();
  }

  // Groups by exact dependencies and resources, in an order where what a group needs was submitted before it.
  std::map<std::string, const DispatchItem*> in_set;
  for (const auto& it : items) in_set[it.run.id] = &it;
  auto progress = store.progress();
  std::map<std::string, Group> groups;
  std::vector<std::string> group_order;
  std::map<std::string, int> depth;
  std::function<int(const std::string&)> depth_of = [&](const std::string& id) -> int {
    if (auto d = depth.find(id); d != depth.end()) return d->second;
    int d = 0;
    for (const auto& dep : in_set.at(id)->run.depends_on)
      if (in_set.count(dep)) d = std::max(d, depth_of(dep) + 1);
    return depth[id] = d;
  };
  // Runs that ended OUT_OF_MEMORY before (sacct's state, recorded as accounting rows) ask for more memory.
  std::map<std::string, int> oom_ends;
  for (const auto& a : store.job_accounts())
    if (choice_from<BackendKind>(a.backend) == BackendKind::kSlurm && a.state.rfind("OUT_OF_MEMORY", 0) == 0) ++oom_ends[a.run_id];
  for (const auto& it : items) {
    Group g;
    g.res = *it.run.resources;
    if (auto o = oom_ends.find(it.run.id); o != oom_ends.end())
      g.res.mem = raised_mem(g.res.mem, xres.oom_mem_factor, o->second);
    for (const auto& dep : it.run.depends_on) {
      if (in_set.count(dep)) {
        g.deps_inside.push_back(dep);
        continue;
      }
      auto rec = store.run(dep);
      const RunProgress& p = progress[dep];
      if (rec && run_state::is_active(rec->state) && choice_from<BackendKind>(p.backend) == BackendKind::kSlurm && p.job.rfind(kPendingSubmission, 0) != 0)
        g.deps_outside.push_back(p.job);
    }
    std::sort(g.deps_inside.begin(), g.deps_inside.end());
    std::sort(g.deps_outside.begin(), g.deps_outside.end());
    std::string key = std::to_string(depth_of(it.run.id)) + "#" + g.res.key() + "#";
    for (const auto& d : g.deps_inside) key += d + ",";
    key += "#";
    for (const auto& d : g.deps_outside) key += d + ",";
    auto [gi, fresh] = groups.emplace(key, g);
    if (fresh) group_order.push_back(key);
    gi->second.items.push_back(&it);
  }
  std::stable_sort(group_order.begin(), group_order.end(),
                   [&](const std::string& a, const std::string& b) { return std::stoi(a) < std::stoi(b); });

  const std::string st = stamp();
  std::map<std::string, std::string> task_of;  // run id -> "<job>_<task>" submitted in this dispatch
  int group_no = 0;
  for (const auto& key : group_order) {
    Group& g = groups[key];
    const std::string base = st + "-g" + std::to_string(group_no++);
    const std::string manifest = fs::path(layout.slurm_dir()) / (base + ".manifest");
    const std::string job_name = "orch-" + sanitize(exp.name) + "-" + base;
    // What this group waits for: tasks of this dispatch (a dependency left out of it leaves its dependents out too).
    std::set<std::string> after(g.deps_outside.begin(), g.deps_outside.end());
    bool missing = false;
    for (const auto& d : g.deps_inside) {
      auto t = task_of.find(d);
      if (t == task_of.end()) missing = true; else after.insert(t->second);
    }
    std::vector<Store::Dispatch> cas;
    for (const auto* it : g.items) {
      if (!safe_word(it->run.id)) throw InputError(exp.path, "run id", it->run.id, "not safe for a job script");
      if (missing) out.skipped.push_back(it->run.id); else cas.push_back({it->run.id, it->recorded_state, kPendingSubmission + base});
    }
    if (cas.empty()) continue;
    const auto accepted = store.dispatch_runs(cas, "slurm");
    std::set<std::string> ok(accepted.begin(), accepted.end());
    std::vector<std::string> ids;
    for (const auto& c : cas) (ok.count(c.run_id) ? ids : out.skipped).push_back(c.run_id);
    if (ids.empty()) continue;
    const int per_task = std::max(1, g.res.runs_per_gpu);
    std::string text;
    std::vector<int> task_index;  // per id
    for (size_t i = 0; i < ids.size(); ++i) {
      text += ids[i] + ((i + 1) % per_task == 0 || i + 1 == ids.size() ? "\n" : " ");
      task_index.push_back(static_cast<int>(i) / per_task);
    }
    const int tasks = task_index.back() + 1;
    write_file_atomically(manifest, text);
    write_file_atomically(manifest + ".jobname", job_name + "\n");
    const RunResources& res = g.res;
    std::string opt;
    if (!res.partition.empty()) opt += "#SBATCH --partition=" + res.partition + "\n";
    if (!res.mem.empty()) opt += "#SBATCH --mem=" + res.mem + "\n";
    std::string time = res.time;
    if (time == "auto") {
      for (const auto* it : g.items) {  // the longest estimate of the group
        const std::string t = o_.estimated_time_limit ? o_.estimated_time_limit(it->run) : "";
        if (t.empty())
          throw InputError(exp.path, "resources.time", "auto",
                           it->run.id + " has no estimate yet: finish a run of its network or run orchestrator calibrate EXP");
        time = time == "auto" || t.size() > time.size() || (t.size() == time.size() && t > time) ? t : time;
      }
    }
    if (!time.empty()) opt += "#SBATCH --time=" + time + "\n";
    if (res.gpus > 0) opt += "#SBATCH --gres=gpu:" + std::to_string(res.gpus) + "\n";
    if (!res.constraint.empty()) opt += "#SBATCH --constraint=" + res.constraint + "\n";
    std::string script = tmpl;
    replace_all(script, "@JOB_NAME@", job_name);
    replace_all(script, "@COMMENT@", base);
    replace_all(script, "@ARRAY@", "0-" + std::to_string(tasks - 1) + "%" + std::to_string(xres.array_throttle));
    replace_all(script, "@SIGNAL@", std::string(res.ranks == 1 ? "B:USR1@" : "USR1@") + std::to_string(xres.signal_seconds));
    replace_all(script, "@RANKS@", std::to_string(res.ranks));
    replace_all(script, "@CPUS@", std::to_string(res.cpus * per_task));
    replace_all(script, "@OPTIONAL_LINES@\n", opt);
    replace_all(script, "@LAUNCH@", res.ranks == 1 ? "exec" : "exec srun");  // user templates of earlier versions
    replace_all(script, "@MAX_ATTEMPTS@", std::to_string(xres.max_attempts));
    replace_all(script, "@WORKER_ARGS@", " --threads " + std::to_string(res.cpus));
    const std::string script_path = fs::path(layout.slurm_dir()) / (base + ".sbatch");
    write_file_atomically(script_path, script);
    std::vector<std::string> args{"sbatch", "--parsable", "--output=" + layout.slurm_output_pattern()};
    if (!after.empty()) {
      std::string d = "--dependency=afterok";
      for (const auto& a : after) d += ":" + a;
      args.push_back(d);
    }
    args.insert(args.end(), {script_path, bin, ws, manifest});
    CommandResult r = run_command(args);
    std::string job = r.out.substr(0, r.out.find_first_of(";\n"));
    if (r.rc != 0 || !safe_word(job)) {
      store.transition_runs(ids, {run_state::kQueued}, run_state::kFailed);  // nothing was queued for them
      for (const auto& id : ids) store.replace_jobs({{id, kFailedSubmission + base}}, kPendingSubmission + base, "slurm");
      throw Error("sbatch " + script_path + " failed (exit " + std::to_string(r.rc) + "): " + r.err + r.out);
    }
    std::vector<std::pair<std::string, std::string>> jobs;
    for (size_t i = 0; i < ids.size(); ++i) {
      const std::string task = job + "_" + std::to_string(task_index[i]);
      jobs.push_back({ids[i], task});
      task_of[ids[i]] = task;
    }
    store.replace_jobs(jobs, kPendingSubmission + base, "slurm");
    out.jobs.push_back(job);
    out.dispatched += static_cast<int>(ids.size());
  }
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
  auto progress = store.progress();
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
    store.replace_jobs(jobs, placeholder, "slurm");
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
