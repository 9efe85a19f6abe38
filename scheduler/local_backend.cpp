#include "scheduler/local_backend.h"

#include <fcntl.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstring>
#include <filesystem>
#include <mutex>
#include <set>
#include <thread>

#include "core/control.h"
#include "core/errors.h"
#include "core/exit_codes.h"
#include "core/process_identity.h"
#include "core/progress.h"
#include "core/utc_time.h"
#include "scheduler/resources.h"
#include "storage/layout.h"
#include "storage/run_state.h"

extern char** environ;

namespace orch::scheduler {

namespace fs = std::filesystem;
namespace rs = run_state;

namespace {

std::atomic<int> g_pool_signal{0};
extern "C" void on_pool_signal(int sig) { g_pool_signal.store(sig); }

// The pool's SIGINT/SIGTERM handlers for the duration of run().
class PoolSignals {
 public:
  PoolSignals() {
    struct sigaction sa {};
    sa.sa_handler = on_pool_signal;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, &old_int_);
    sigaction(SIGTERM, &sa, &old_term_);
    g_pool_signal.store(0);
  }
  ~PoolSignals() {
    sigaction(SIGINT, &old_int_, nullptr);
    sigaction(SIGTERM, &old_term_, nullptr);
  }
  int signal() const { return g_pool_signal.load(); }

 private:
  struct sigaction old_int_ {}, old_term_ {};
};

// Beats the pool's job rows on its own store connection until destroyed.
class PoolHeartbeat {
 public:
  PoolHeartbeat(const std::string& store_path, const std::string& job, double interval_s)
      : thread_([=] {
          std::unique_ptr<Store> s;
          std::unique_lock<std::mutex> l(mu_);
          while (!cv_.wait_for(l, std::chrono::duration<double>(interval_s), [this] { return stop_; })) {
            l.unlock();
            try {
              if (!s) s = std::make_unique<Store>(store_path);
              s->touch_job(job);
            } catch (const std::exception&) {
              s.reset();
            }
            l.lock();
          }
        }) {}
  ~PoolHeartbeat() {
    {
      std::lock_guard<std::mutex> l(mu_);
      stop_ = true;
    }
    cv_.notify_all();
    thread_.join();
  }

 private:
  std::mutex mu_;
  std::condition_variable cv_;
  bool stop_ = false;
  std::thread thread_;
};

struct Spawned {
  pid_t pid = -1;
  std::string identity;
};

// fork + exec of one worker, its output appended to `log`. The child asks for SIGTERM when the pool dies (and
// exits at once if the pool is already gone). Everything the child touches is prepared before fork, so it calls
// only async-signal-safe functions.
Spawned spawn_worker(const std::vector<std::string>& args, const std::vector<std::string>& env, const std::string& log) {
  std::vector<char*> argv, envp;
  std::vector<std::string> a = args, e = env;
  for (auto& s : a) argv.push_back(s.data());
  argv.push_back(nullptr);
  for (auto& s : e) envp.push_back(s.data());
  envp.push_back(nullptr);
  const pid_t parent = ::getpid();
  pid_t pid = ::fork();
  if (pid < 0) throw Error(std::string("local pool: cannot start a worker: ") + std::strerror(errno));
  if (pid == 0) {
    ::prctl(PR_SET_PDEATHSIG, SIGTERM);
    if (::getppid() != parent) _exit(kExitRequeue);
    int fd = ::open(log.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
    int in = ::open("/dev/null", O_RDONLY | O_CLOEXEC);
    if (fd >= 0) {
      ::dup2(fd, 1);
      ::dup2(fd, 2);
    }
    if (in >= 0) ::dup2(in, 0);
    ::execve(argv[0], argv.data(), envp.data());
    _exit(127);
  }
  Spawned s;
  s.pid = pid;
  auto id = ProcessIdentity::of(pid);
  s.identity = id ? id->str() : ProcessIdentity{this_host(), "", pid, 0}.str();
  return s;
}

std::vector<std::string> environment_with(const std::vector<std::pair<std::string, std::string>>& set) {
  std::vector<std::string> out;
  for (char** e = environ; *e; ++e) {
    std::string kv = *e;
    std::string key = kv.substr(0, kv.find('='));
    if (std::none_of(set.begin(), set.end(), [&](const auto& p) { return p.first == key; })) out.push_back(kv);
  }
  for (const auto& [k, v] : set) out.push_back(k + "=" + v);
  return out;
}

}  // namespace

LocalBackend::LocalBackend(DispatchOptions options, LocalPoolSettings settings)
    : o_(std::move(options)), settings_(std::move(settings)), identity_(ProcessIdentity::self().str()) {}

std::map<std::string, JobState> LocalBackend::job_states(const std::vector<std::string>& jobs) {
  std::map<std::string, JobState> out;
  for (const auto& j : jobs) {
    auto id = ProcessIdentity::parse(j);
    if (!id) {
      out[j] = {JobPhase::kUnknown, "not a local job id"};
      continue;
    }
    switch (liveness(*id)) {
      case Liveness::kAlive: out[j] = {JobPhase::kRunning, ""}; break;
      case Liveness::kGone: out[j] = {JobPhase::kGone, "no such process on " + id->host}; break;
      case Liveness::kUnknown: out[j] = {JobPhase::kUnknown, "a process of host " + id->host}; break;
    }
  }
  return out;
}

DispatchResult LocalBackend::dispatch(const std::vector<DispatchItem>& items, Store& store, const Experiment& exp) {
  DispatchResult r;
  if (settings_.gpus.empty()) {
    settings_.gpus = experiment_resources(exp).local_gpus;
    settings_.runs_per_gpu = resources_for(exp, "", "").runs_per_gpu;
  }
  std::vector<Store::Dispatch> d;
  for (const auto& it : items) d.push_back({it.run.id, it.recorded_state, identity_});
  auto accepted = store.dispatch_runs(d, "local");
  std::set<std::string> ok(accepted.begin(), accepted.end());
  for (const auto& it : items) {
    if (!ok.count(it.run.id)) {
      r.skipped.push_back(it.run.id);
      continue;
    }
    runs_.push_back(it.run);
    prior_[it.run.id] = it.recorded_state;
  }
  r.dispatched = static_cast<int>(runs_.size());
  return r;
}

void LocalBackend::cancel(const std::vector<std::string>& jobs) {
  for (const auto& j : jobs) {
    auto id = ProcessIdentity::parse(j);
    if (id && liveness(*id) == Liveness::kAlive) ::kill(static_cast<pid_t>(id->pid), SIGTERM);  // checkpoints, exits
  }
}

std::vector<JobAccount> LocalBackend::accounts() {
  auto out = std::move(accounts_);
  accounts_.clear();
  return out;
}

void LocalBackend::run(Store& store, DispatchResult& res) {
  if (runs_.empty()) return;
  if (o_.binary.empty()) o_.binary = fs::read_symlink("/proc/self/exe").string();
  const WorkspaceLayout layout(o_.workspace);
  fs::create_directories(layout.local_logs_dir());
  auto event = [&](const std::string& line) {
    if (o_.on_event) o_.on_event(line);
  };
  // Worker slots: one per worker, or runs_per_gpu per GPU.
  std::vector<int> slot_gpu;
  if (!settings_.gpus.empty()) {
    for (int g : settings_.gpus)
      for (int k = 0; k < std::max(1, settings_.runs_per_gpu); ++k) slot_gpu.push_back(g);
  } else {
    slot_gpu.assign(static_cast<size_t>(std::max(1, o_.workers)), -1);
  }
  const int workers = static_cast<int>(slot_gpu.size());
  const int threads = o_.threads_per_worker > 0 ? o_.threads_per_worker : std::max(1, default_threads() / workers);

  std::map<std::string, const PlannedRun*> pending;
  std::map<std::string, int> dependents;
  for (const auto& r : runs_) {
    pending[r.id] = &r;
    for (const auto& d : r.depends_on) ++dependents[d];
  }
  std::vector<std::string> order;  // runs others wait for first (the pretrained UNets), then dispatch order
  for (const auto& r : runs_) order.push_back(r.id);
  std::stable_sort(order.begin(), order.end(), [&](const std::string& a, const std::string& b) { return dependents[a] > dependents[b]; });

  struct Running {
    std::string run_id, identity;
    int slot = 0;
    std::chrono::steady_clock::time_point start;
    std::string started_at;
  };
  std::map<pid_t, Running> running;
  std::vector<char> slot_busy(slot_gpu.size(), 0);
  std::map<std::string, int> requeues;
  const size_t total = runs_.size();
  PoolSignals signals;
  PoolHeartbeat beat(store.path(), identity_, control_timeouts().heartbeat_s);
  bool stopping = false;
  auto state_of = [&](const std::string& id) {
    auto r = store.run(id);
    return r ? r->state : rs::kNew;
  };
  auto running_here = [&](const std::string& id) {
    return std::any_of(running.begin(), running.end(), [&](const auto& x) { return x.second.run_id == id; });
  };

  for (;;) {
    if (!stopping && signals.signal() != 0) {
      stopping = true;
      res.interrupted_by = signals.signal();
      event("stopping (" + std::string(signals.signal() == SIGINT ? "SIGINT" : "SIGTERM") + "): asking " +
            std::to_string(running.size()) + " worker(s) to checkpoint");
      for (auto& [pid, r] : running) ::kill(pid, SIGTERM);
    }
    // Start what is ready.
    for (auto oit = order.begin(); !stopping && oit != order.end() && static_cast<int>(running.size()) < workers;) {
      auto it = pending.find(*oit);
      if (it == pending.end()) {
        oit = order.erase(oit);
        continue;
      }
      const PlannedRun& r = *it->second;
      const std::string now_state = state_of(r.id);
      if (now_state != rs::kQueued) {  // cancelled meanwhile, or another worker took it
        if (now_state == rs::kCancelled) {
          ++res.cancelled;
          event("cancelled before it started: " + r.id);
        } else {
          ++res.elsewhere;
          event("not started here: " + r.id + " is " + now_state + " (another process has it)");
        }
        pending.erase(it);
        oit = order.erase(oit);
        continue;
      }
      bool ready = true, doomed = false;
      for (const auto& d : r.depends_on) {
        if (pending.count(d) || running_here(d)) {
          ready = false;
        } else {
          const std::string ds = state_of(d);
          if (ds == rs::kDone) continue;
          ready = false;
          if (!rs::is_active(ds)) doomed = true;  // active elsewhere: wait for it
        }
      }
      if (doomed) {
        event("not started: " + r.id + " (a run it needs did not finish)");
        store.transition_runs({r.id}, {rs::kQueued}, prior_[r.id]);
        res.not_started_ids.push_back(r.id);
        pending.erase(it);
        oit = order.erase(oit);
        continue;
      }
      if (!ready) {
        ++oit;
        continue;
      }
      int slot = static_cast<int>(std::find(slot_busy.begin(), slot_busy.end(), 0) - slot_busy.begin());
      std::vector<std::pair<std::string, std::string>> env{{"ORCH_POOL_JOB", identity_},
                                                           {"ORCH_POOL_CPUS", std::to_string(threads)}};
      if (slot_gpu[static_cast<size_t>(slot)] >= 0) {
        env.push_back({"CUDA_VISIBLE_DEVICES", std::to_string(slot_gpu[static_cast<size_t>(slot)])});
        env.push_back({"ORCH_GPU_SHARERS", std::to_string(std::max(1, settings_.runs_per_gpu))});
      }
      const std::string log = layout.local_log(r.id);
      Spawned w = spawn_worker({o_.binary, "worker", "--workspace", o_.workspace, "--run", r.id, "--communicator", "single",
                                "--threads", std::to_string(threads)},
                               environment_with(env), log);
      slot_busy[static_cast<size_t>(slot)] = 1;
      running[w.pid] = {r.id, w.identity, slot, std::chrono::steady_clock::now(), utc_now_text()};
      event("start " + r.id + " (pid " + std::to_string(w.pid) +
            (slot_gpu[static_cast<size_t>(slot)] >= 0 ? ", GPU " + std::to_string(slot_gpu[static_cast<size_t>(slot)]) : "") +
            ", log " + log + ")");
      pending.erase(it);
      oit = order.erase(oit);
    }
    if (running.empty() && (pending.empty() || stopping)) break;
    int status = 0;
    pid_t pid = ::waitpid(-1, &status, WNOHANG);
    if (pid == 0 || (pid < 0 && errno == EINTR)) {
      std::this_thread::sleep_for(std::chrono::milliseconds(running.empty() ? 1000 : 50));  // waiting on others
      continue;
    }
    if (pid < 0) throw Error(std::string("local pool: waitpid: ") + std::strerror(errno));
    auto it = running.find(pid);
    if (it == running.end()) continue;
    Running w = it->second;
    running.erase(it);
    slot_busy[static_cast<size_t>(w.slot)] = 0;
    const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - w.start).count();
    const int code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
    const std::string log = layout.local_log(w.run_id);
    char head[64];
    std::snprintf(head, sizeof head, "[%zu/%zu] ", static_cast<size_t>(res.done + res.failed + 1), total);
    std::string account_state;
    if (code == kExitOk) {
      ++res.done;
      account_state = "COMPLETED";
      event(std::string(head) + "done " + w.run_id + " in " + std::to_string(static_cast<int>(secs)) + " s");
    } else if (code == kExitRequeue) {
      account_state = "REQUEUED";
      const std::string st = state_of(w.run_id);
      if (st == rs::kCancelled) {
        ++res.cancelled;
        account_state = "CANCELLED";
        event("cancelled " + w.run_id + " (checkpointed)");
      } else if (stopping) {
        store.transition_runs({w.run_id}, {rs::kQueued}, rs::kInterrupted);
        res.stopped_ids.push_back(w.run_id);
        event("stopped " + w.run_id + " (checkpointed; resume continues it)");
      } else if (st == rs::kQueued && requeues[w.run_id] < settings_.max_requeues) {
        ++requeues[w.run_id];
        event("requeue " + w.run_id + " (checkpointed; attempt " + std::to_string(requeues[w.run_id] + 1) + ")");
        for (const auto& pr : runs_)
          if (pr.id == w.run_id) pending[w.run_id] = &pr;
        order.insert(order.begin(), w.run_id);  // continue it first
      } else {
        ++res.failed;
        res.failed_ids.push_back(w.run_id);
        store.transition_runs({w.run_id}, {rs::kQueued}, rs::kFailed);
        event(std::string(head) + "FAILED " + w.run_id + " (stopped " + std::to_string(requeues[w.run_id] + 1) +
              " times without finishing; log " + log + ")");
      }
    } else if (code == kExitNotClaimed) {
      const std::string st = state_of(w.run_id);
      account_state = st == rs::kCancelled ? "CANCELLED" : "NOT_CLAIMED";
      if (st == rs::kCancelled) ++res.cancelled; else ++res.elsewhere;
      event("not trained here: " + w.run_id + " is " + st + " (see " + log + ")");
    } else {
      ++res.failed;
      res.failed_ids.push_back(w.run_id);
      account_state = "FAILED";
      const std::string why = WIFSIGNALED(status) ? std::string("killed by signal ") + std::to_string(WTERMSIG(status))
                                                  : "exit " + std::to_string(code);
      // A worker that died without its final word: close its claim so the run does not look alive.
      store.abandon_claim(w.run_id, w.identity, rs::kFailed, code, "the worker died (" + why + "); see " + log);
      store.transition_runs({w.run_id}, {rs::kQueued}, rs::kFailed);  // failed before it claimed
      event(std::string(head) + "FAILED " + w.run_id + " (" + why + "; log " + log + ")");
    }
    accounts_.push_back({w.identity, w.run_id, "local", account_state, secs,
                         slot_gpu[static_cast<size_t>(w.slot)] >= 0 ? 1.0 / std::max(1, settings_.runs_per_gpu) : 0.0,
                         w.started_at, utc_now_text()});
  }
  for (auto& [id, pr] : pending) {
    (void)pr;
    store.transition_runs({id}, {rs::kQueued}, prior_[id]);
    res.not_started_ids.push_back(id);
  }
  try {
    store.upsert_job_accounts(accounts());
  } catch (const std::exception& e) {
    event(std::string("warning: could not record the pool's accounting: ") + e.what());
  }
}

LocalJobEnvironment::LocalJobEnvironment() {
  if (const char* j = std::getenv("ORCH_POOL_JOB"); j && ProcessIdentity::parse(j)) job_ = j;
  if (const char* c = std::getenv("ORCH_POOL_CPUS")) cpus_ = std::max(0, std::atoi(c));
  gpus_ = visible_gpus();
}

}  // namespace orch::scheduler
