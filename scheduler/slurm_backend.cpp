#include "scheduler/slurm_backend.h"

#include <fcntl.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <ctime>
#include <filesystem>
#include <fstream>
#include <map>
#include <set>
#include <sstream>

#include "core/atomic_file.h"
#include "core/errors.h"
#include "scheduler/slurm_template.h"

extern char** environ;

namespace orch::scheduler {

namespace fs = std::filesystem;

namespace {

struct Result {
  int rc = -1;
  std::string out, err;
};

// Runs a command without a shell; stdout through a pipe, stderr through a temporary file.
Result run_command(const std::vector<std::string>& args) {
  Result r;
  int out_pipe[2];
  if (pipe(out_pipe) != 0) return r;
  char err_path[] = "/tmp/orch-cmd-XXXXXX";
  int err_fd = mkstemp(err_path);
  std::vector<std::string> a = args;
  std::vector<char*> argv;
  for (auto& s : a) argv.push_back(s.data());
  argv.push_back(nullptr);
  posix_spawn_file_actions_t fa;
  posix_spawn_file_actions_init(&fa);
  posix_spawn_file_actions_adddup2(&fa, out_pipe[1], 1);
  posix_spawn_file_actions_adddup2(&fa, err_fd, 2);
  posix_spawn_file_actions_addclose(&fa, out_pipe[0]);
  pid_t pid;
  int rc = posix_spawnp(&pid, argv[0], &fa, nullptr, argv.data(), environ);
  posix_spawn_file_actions_destroy(&fa);
  close(out_pipe[1]);
  if (rc == 0) {
    char buf[4096];
    ssize_t n;
    while ((n = read(out_pipe[0], buf, sizeof buf)) > 0) r.out.append(buf, static_cast<size_t>(n));
    int status = 0;
    waitpid(pid, &status, 0);
    r.rc = WIFEXITED(status) ? WEXITSTATUS(status) : 128;
  } else {
    r.err = std::string("cannot run ") + args[0] + ": " + std::strerror(rc);
  }
  close(out_pipe[0]);
  if (err_fd >= 0) {
    std::ifstream e(err_path);
    std::stringstream ss;
    ss << e.rdbuf();
    r.err += ss.str();
    close(err_fd);
    unlink(err_path);
  }
  return r;
}

bool safe_word(const std::string& s) {
  if (s.empty()) return false;
  return std::all_of(s.begin(), s.end(), [](char c) { return std::isalnum(static_cast<unsigned char>(c)) || c == '_' || c == '.' || c == '-'; });
}

std::string sanitize(const std::string& s) {
  std::string o;
  for (char c : s) o += (std::isalnum(static_cast<unsigned char>(c)) || c == '_' || c == '.' || c == '-') ? c : '_';
  return o.substr(0, 40);
}

std::string quoted_path(const std::string& p, const std::string& what) {
  if (p.find('\'') != std::string::npos || p.find('\n') != std::string::npos || p.find('\r') != std::string::npos)
    throw InputError(what, "", p, "a path placed in a job script may not contain quotes or newlines");
  return p;
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


}  // namespace

SlurmResources slurm_resources(const Experiment& exp) {
  SlurmResources r;
  const auto& j = exp.raw.value("resources", nlohmann::json::object());
  if (!j.is_object()) throw InputError(exp.path, "resources", j.dump(), "expected an object");
  auto str = [&](const char* k, std::string& v, const char* pattern_what, auto ok) {
    if (!j.contains(k)) return;
    if (!j[k].is_string() || !ok(j[k].get<std::string>()))
      throw InputError(exp.path, std::string("resources.") + k, j[k].dump(), pattern_what);
    v = j[k];
  };
  auto num = [&](const char* k, int& v, int lo, int hi) {
    if (!j.contains(k)) return;
    if (!j[k].is_number_integer() || j[k].get<int>() < lo || j[k].get<int>() > hi)
      throw InputError(exp.path, std::string("resources.") + k, j[k].dump(), "expected an integer " + std::to_string(lo) + " to " + std::to_string(hi));
    v = j[k];
  };
  str("partition", r.partition, "expected a partition name ([A-Za-z0-9_.-])", safe_word);
  str("mem", r.mem, "expected a size such as 16G or 4000M", [](const std::string& s) {
    return !s.empty() && std::isdigit(static_cast<unsigned char>(s[0])) &&
           std::all_of(s.begin(), s.end(), [](char c) { return std::isdigit(static_cast<unsigned char>(c)) || std::strchr("KMGT", c); });
  });
  str("time", r.time, "expected a time limit such as 2-00:00:00, 12:00:00 or 90", [](const std::string& s) {
    return !s.empty() && std::all_of(s.begin(), s.end(), [](char c) { return std::isdigit(static_cast<unsigned char>(c)) || c == ':' || c == '-'; });
  });
  str("template", r.template_path, "expected a path", [](const std::string& s) { return !s.empty(); });
  num("gpus", r.gpus, 0, 64);
  num("cpus", r.cpus, 1, 1024);
  num("ranks", r.ranks, 1, 1024);
  num("array_throttle", r.throttle, 1, 100000);
  num("signal_seconds", r.signal_seconds, 0, 86400);
  return r;
}

SlurmSubmission submit_slurm(const std::vector<PlannedRun>& runs, Store& store, const Experiment& exp,
                             const std::string& workspace, const std::string& binary) {
  SlurmResources res = slurm_resources(exp);
  SlurmSubmission out;
  if (runs.empty()) return out;
  const std::string ws = quoted_path(fs::absolute(workspace).lexically_normal().string(), "--workspace");
  const std::string bin = quoted_path(fs::absolute(binary).string(), "orchestrator binary");
  const std::string dir = (fs::path(ws) / "slurm").string(), logs = (fs::path(ws) / "logs").string();
  fs::create_directories(dir);
  fs::create_directories(logs);
  std::string tmpl = slurm_job_template();
  if (!res.template_path.empty()) {
    std::ifstream in(res.template_path);
    if (!in) throw InputError(exp.path, "resources.template", res.template_path, "cannot read the job template");
    std::stringstream ss;
    ss << in.rdbuf();
    tmpl = ss.str();
  }
  // Dependency levels within this submission; dependencies outside it that are still active add their jobs.
  std::map<std::string, int> level;
  std::map<std::string, const PlannedRun*> in_set;
  for (const auto& r : runs) in_set[r.id] = &r;
  auto progress = store.progress();
  std::function<int(const std::string&)> depth = [&](const std::string& id) -> int {
    auto it = level.find(id);
    if (it != level.end()) return it->second;
    int d = 0;
    for (const auto& dep : in_set.at(id)->depends_on)
      if (in_set.count(dep)) d = std::max(d, depth(dep) + 1);
    return level[id] = d;
  };
  int max_level = 0;
  for (const auto& r : runs) max_level = std::max(max_level, depth(r.id));
  const std::string st = stamp();
  std::string previous;
  for (int l = 0; l <= max_level; ++l) {
    std::vector<std::string> ids;
    std::set<std::string> after;
    if (!previous.empty()) after.insert(previous);
    for (const auto& r : runs) {
      if (level[r.id] != l) continue;
      ids.push_back(r.id);
      for (const auto& dep : r.depends_on) {
        if (in_set.count(dep)) continue;
        auto p = progress.find(dep);
        auto rec = store.run(dep);
        if (rec && (rec->state == "queued" || rec->state == "running") && p != progress.end() && p->second.backend == "slurm")
          after.insert(p->second.job.substr(0, p->second.job.find('_')));
      }
    }
    if (ids.empty()) continue;
    const std::string base = st + "-L" + std::to_string(l);
    const std::string manifest = (fs::path(dir) / (base + ".manifest")).string();
    const std::string job_name = "orch-" + sanitize(exp.name) + "-" + base;
    std::string text;
    for (const auto& id : ids) {
      if (!safe_word(id)) throw InputError(exp.path, "run id", id, "not safe for a job script");
      text += id + "\n";
    }
    write_file_atomically(manifest, text);
    write_file_atomically(manifest + ".jobname", job_name + "\n");
    std::string opt;
    if (!res.partition.empty()) opt += "#SBATCH --partition=" + res.partition + "\n";
    if (!res.mem.empty()) opt += "#SBATCH --mem=" + res.mem + "\n";
    if (!res.time.empty()) opt += "#SBATCH --time=" + res.time + "\n";
    if (res.gpus > 0) opt += "#SBATCH --gres=gpu:" + std::to_string(res.gpus) + "\n";
    std::string script = tmpl;
    replace_all(script, "@JOB_NAME@", job_name);
    replace_all(script, "@COMMENT@", base);
    replace_all(script, "@LAST_INDEX@", std::to_string(ids.size() - 1));
    replace_all(script, "@THROTTLE@", std::to_string(res.throttle));
    replace_all(script, "@LOG_DIR@", logs);
    replace_all(script, "@SIGNAL@", (res.ranks == 1 ? "B:USR1@" : "USR1@") + std::to_string(res.signal_seconds));
    replace_all(script, "@RANKS@", std::to_string(res.ranks));
    replace_all(script, "@CPUS@", std::to_string(res.cpus));
    replace_all(script, "@OPTIONAL_LINES@\n", opt);
    replace_all(script, "@MANIFEST@", quoted_path(manifest, "manifest"));
    replace_all(script, "@LAUNCH@", res.ranks == 1 ? "exec" : "exec srun");
    replace_all(script, "@ORCHESTRATOR@", bin);
    replace_all(script, "@WORKSPACE@", ws);
    replace_all(script, "@WORKER_ARGS@", " --threads " + std::to_string(res.cpus));
    const std::string script_path = (fs::path(dir) / (base + ".sbatch")).string();
    write_file_atomically(script_path, script);
    std::vector<std::string> args{"sbatch", "--parsable"};
    if (!after.empty()) {
      std::string d = "--dependency=afterok";
      for (const auto& a : after) d += ":" + a;
      args.push_back(d);
    }
    args.push_back(script_path);
    Result r = run_command(args);
    if (r.rc != 0) throw Error("sbatch " + script_path + " failed (" + std::to_string(r.rc) + "): " + r.err);
    std::string job = r.out.substr(0, r.out.find_first_of(";\n"));
    if (!safe_word(job)) throw Error("sbatch printed an unexpected job id: " + r.out);
    std::vector<std::pair<std::string, std::string>> jobs;
    for (size_t i = 0; i < ids.size(); ++i) jobs.push_back({ids[i], job + "_" + std::to_string(i)});
    store.add_jobs(jobs, "slurm");
    store.set_runs_state(ids, "queued");
    out.array_jobs.push_back(job);
    out.runs += static_cast<int>(ids.size());
    previous = job;
  }
  return out;
}

std::map<std::string, std::string> slurm_job_states(const std::vector<std::string>& jobs) {
  std::map<std::string, std::string> out;
  std::set<std::string> arrays;
  for (const auto& j : jobs) arrays.insert(j.substr(0, j.find('_')));
  if (arrays.empty()) return out;
  std::string list;
  for (const auto& a : arrays) list += (list.empty() ? "" : ",") + a;
  auto parse_line = [&](std::string id, std::string state) {
    state = state.substr(0, state.find(' '));  // "CANCELLED by 0"
    auto us = id.find('_');
    if (us == std::string::npos) return;
    std::string a = id.substr(0, us), rest = id.substr(us + 1);
    if (!rest.empty() && rest[0] == '[') {  // a pending range: 12_[3-5%2]
      std::string r = rest.substr(1, rest.find_first_of("%]") - 1);
      std::stringstream ss(r);
      std::string part;
      while (std::getline(ss, part, ',')) {
        auto dash = part.find('-');
        int lo = std::atoi(part.c_str()), hi = dash == std::string::npos ? lo : std::atoi(part.c_str() + dash + 1);
        for (int i = lo; i <= hi; ++i) out[a + "_" + std::to_string(i)] = state;
      }
    } else {
      out[id] = state;
    }
  };
  Result r = run_command({"sacct", "-X", "-P", "-n", "-j", list, "-o", "JobID,State"});
  if (r.rc == 0) {
    std::stringstream ss(r.out);
    std::string line;
    while (std::getline(ss, line)) {
      auto bar = line.find('|');
      if (bar != std::string::npos) parse_line(line.substr(0, bar), line.substr(bar + 1));
    }
    return out;
  }
  r = run_command({"squeue", "-h", "-r", "-t", "all", "-j", list, "-o", "%i %T"});
  std::stringstream ss(r.out);
  std::string id, state;
  while (ss >> id >> state) parse_line(id, state);
  return out;
}

std::string run_state_from_slurm(const std::string& s) {
  if (s == "PENDING" || s == "REQUEUED" || s == "REQUEUE_HOLD" || s == "REQUEUE_FED" || s == "PREEMPTED" ||
      s == "SUSPENDED" || s == "RESIZING")
    return "queued";
  if (s == "RUNNING" || s == "COMPLETING" || s == "CONFIGURING" || s == "STAGE_OUT" || s == "SIGNALING") return "running";
  if (s == "CANCELLED") return "cancelled";
  if (s == "TIMEOUT") return "timeout";
  if (s == "FAILED" || s == "NODE_FAIL" || s == "OUT_OF_MEMORY" || s == "BOOT_FAIL" || s == "DEADLINE") return "failed";
  return "";
}

void cancel_slurm(const std::vector<std::string>& jobs) {
  if (jobs.empty()) return;
  std::vector<std::string> args{"scancel"};
  for (const auto& j : jobs)
    if (safe_word(j)) args.push_back(j);
  Result r = run_command(args);
  if (r.rc != 0) throw Error("scancel failed: " + r.err);
}

int reconcile_slurm(Store& store, const std::string& workspace) {
  const fs::path dir = fs::path(workspace) / "slurm";
  if (!fs::exists(dir)) return 0;
  auto progress = store.progress();
  int n = 0;
  for (const auto& e : fs::directory_iterator(dir)) {
    if (e.path().extension() != ".manifest") continue;
    std::vector<std::string> ids;
    {
      std::ifstream in(e.path());
      std::string id;
      while (std::getline(in, id))
        if (!id.empty()) ids.push_back(id);
    }
    const std::string base = e.path().stem().string();
    bool recorded = false;
    for (const auto& id : ids) {
      auto p = progress.find(id);
      if (p != progress.end() && p->second.backend == "slurm") recorded = true;  // any job recorded for it
    }
    if (recorded || ids.empty()) continue;
    std::ifstream jn(e.path().string() + ".jobname");
    std::string name;
    std::getline(jn, name);
    if (!safe_word(name)) continue;
    Result r = run_command({"sacct", "-X", "-P", "-n", "--name=" + name, "-o", "JobID", "-S", "2000-01-01"});
    if (r.rc != 0) r = run_command({"squeue", "-h", "--name=" + name, "-o", "%F"});
    std::string job = r.out.substr(0, r.out.find_first_of("_\n|"));
    if (!safe_word(job)) continue;
    std::vector<std::pair<std::string, std::string>> jobs;
    for (size_t i = 0; i < ids.size(); ++i) jobs.push_back({ids[i], job + "_" + std::to_string(i)});
    store.add_jobs(jobs, "slurm");
    store.set_runs_state(ids, "queued");
    n += static_cast<int>(ids.size());
  }
  return n;
}

}  // namespace orch::scheduler
