#include "scheduler/local_pool.h"

#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <filesystem>
#include <map>
#include <set>
#include <thread>

#include "core/errors.h"
#include "core/progress.h"

extern char** environ;

namespace orch::scheduler {

namespace fs = std::filesystem;

namespace {

std::atomic<int> g_pool_signal{0};
extern "C" void on_pool_signal(int sig) { g_pool_signal.store(sig); }

std::string host() {
  char buf[256] = {0};
  gethostname(buf, sizeof buf - 1);
  return buf;
}

pid_t spawn_worker(const LocalPoolOptions& o, const std::string& run_id, int threads, const std::string& log) {
  std::vector<std::string> args{o.binary, "worker", "--workspace", o.workspace, "--run", run_id, "--communicator",
                                "single", "--threads", std::to_string(threads)};
  std::vector<char*> argv;
  for (auto& a : args) argv.push_back(a.data());
  argv.push_back(nullptr);
  posix_spawn_file_actions_t fa;
  posix_spawn_file_actions_init(&fa);
  posix_spawn_file_actions_addopen(&fa, 1, log.c_str(), O_WRONLY | O_CREAT | O_APPEND, 0644);
  posix_spawn_file_actions_adddup2(&fa, 1, 2);
  posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
  pid_t pid = 0;
  int rc = posix_spawn(&pid, o.binary.c_str(), &fa, nullptr, argv.data(), environ);
  posix_spawn_file_actions_destroy(&fa);
  if (rc != 0) throw Error("local pool: cannot start " + o.binary + ": " + std::strerror(rc));
  return pid;
}

}  // namespace

PoolResult run_local_pool(const std::vector<PlannedRun>& runs, Store& store, const LocalPoolOptions& opt_in) {
  LocalPoolOptions o = opt_in;
  if (o.binary.empty()) o.binary = fs::read_symlink("/proc/self/exe").string();
  if (o.workers < 1) o.workers = 1;
  const int threads = o.threads_per_worker > 0 ? o.threads_per_worker : std::max(1, default_threads() / o.workers);
  const std::string logs = (fs::path(o.workspace) / "logs" / "local").string();
  fs::create_directories(logs);
  auto event = [&](const std::string& line) {
    if (o.on_event) o.on_event(line);
  };

  std::map<std::string, const PlannedRun*> pending;
  for (const auto& r : runs) pending[r.id] = &r;
  // Start order: runs others wait for first (the pretrained UNets, HybridGNet+IGSC), then the grid's order.
  std::map<std::string, int> dependents;
  for (const auto& r : runs)
    for (const auto& d : r.depends_on) ++dependents[d];
  std::vector<std::string> order;
  for (const auto& r : runs) order.push_back(r.id);
  std::stable_sort(order.begin(), order.end(), [&](const std::string& a, const std::string& b) {
    return dependents[a] > dependents[b];
  });
  std::vector<std::string> ids;
  for (const auto& r : runs) ids.push_back(r.id);
  std::map<std::string, std::string> prior_state;
  for (const auto& id : ids) prior_state[id] = store.run(id) ? store.run(id)->state : "new";
  store.set_runs_state(ids, "queued");

  struct Running {
    std::string id;
    std::chrono::steady_clock::time_point start;
    int requeues = 0;
  };
  std::map<pid_t, Running> running;
  std::map<std::string, int> requeues;
  std::set<std::string> failed;
  PoolResult result;
  const size_t total = runs.size();

  struct sigaction sa {}, old_int {}, old_term {};
  sa.sa_handler = on_pool_signal;
  sigemptyset(&sa.sa_mask);
  sigaction(SIGINT, &sa, &old_int);
  sigaction(SIGTERM, &sa, &old_term);
  g_pool_signal.store(0);
  bool stopping = false;

  auto state_of = [&](const std::string& id) {
    auto r = store.run(id);
    return r ? r->state : std::string("new");
  };
  for (;;) {
    if (!stopping && g_pool_signal.load() != 0) {
      stopping = true;
      event("stopping: asking " + std::to_string(running.size()) + " worker(s) to checkpoint");
      for (auto& [pid, r] : running) ::kill(pid, SIGTERM);
    }
    // Start what is ready.
    for (auto oit = order.begin(); !stopping && oit != order.end() && static_cast<int>(running.size()) < o.workers;) {
      auto it = pending.find(*oit);
      if (it == pending.end()) {
        oit = order.erase(oit);
        continue;
      }
      const PlannedRun& r = *it->second;
      bool ready = true, doomed = false;
      for (const auto& d : r.depends_on) {
        if (pending.count(d) || std::any_of(running.begin(), running.end(), [&](auto& x) { return x.second.id == d; })) {
          ready = false;
        } else if (state_of(d) != "done") {
          ready = false;
          doomed = true;
        }
      }
      if (doomed) {
        event("not started: " + r.id + " (a run it needs did not finish)");
        store.set_run_state(r.id, prior_state[r.id] == "new" ? "new" : prior_state[r.id]);
        ++result.not_started;
        pending.erase(it);
        oit = order.erase(oit);
        continue;
      }
      if (!ready) {
        ++oit;
        continue;
      }
      const std::string log = (fs::path(logs) / (r.id + ".log")).string();
      pid_t pid = spawn_worker(o, r.id, threads, log);
      store.add_jobs({{r.id, "local:" + std::to_string(pid) + "@" + host()}}, "local");
      running[pid] = {r.id, std::chrono::steady_clock::now(), requeues[r.id]};
      event("start " + r.id + " (pid " + std::to_string(pid) + ", log " + log + ")");
      pending.erase(it);
      oit = order.erase(oit);
    }
    if (running.empty()) {
      if (pending.empty() || stopping) break;
      continue;  // everything pending was doomed this round; loop once more to drain
    }
    int status = 0;
    pid_t pid = ::waitpid(-1, &status, 0);
    if (pid < 0) {
      if (errno == EINTR) continue;
      throw Error(std::string("local pool: waitpid: ") + std::strerror(errno));
    }
    auto it = running.find(pid);
    if (it == running.end()) continue;
    Running r = it->second;
    running.erase(it);
    double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - r.start).count();
    const int code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
    const size_t finished = result.done + result.failed + 1;
    char head[64];
    std::snprintf(head, sizeof head, "[%zu/%zu] ", finished, total);
    if (code == 0) {
      ++result.done;
      event(std::string(head) + "done " + r.id + " in " + std::to_string(static_cast<int>(secs)) + " s");
    } else if (code == 75 && !stopping && requeues[r.id] < o.max_requeues) {
      ++requeues[r.id];
      event("requeue " + r.id + " (checkpointed; attempt " + std::to_string(requeues[r.id] + 1) + ")");
      for (const auto& pr : runs)
        if (pr.id == r.id) pending[r.id] = &pr;
      order.insert(order.begin(), r.id);  // continue it first
    } else if (code == 75) {
      event("stopped " + r.id + " (checkpointed; resume continues it)");
    } else {
      ++result.failed;
      result.failed_ids.push_back(r.id);
      if (WIFSIGNALED(status) || state_of(r.id) == "running" || state_of(r.id) == "queued")
        store.set_run_state(r.id, "failed");  // died without recording it
      event(std::string(head) + "FAILED " + r.id + " (exit " + std::to_string(code) + "; log " +
            (fs::path(logs) / (r.id + ".log")).string() + ")");
    }
  }
  for (auto& [id, pr] : pending) {
    (void)pr;
    store.set_run_state(id, prior_state[id]);
    ++result.not_started;
  }
  sigaction(SIGINT, &old_int, nullptr);
  sigaction(SIGTERM, &old_term, nullptr);
  return result;
}

}  // namespace orch::scheduler
