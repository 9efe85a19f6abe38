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
#include "scheduler/retry.h"
#include "storage/accounting_table.h"
#include "storage/claims_table.h"
#include "storage/layout.h"
#include "storage/run_state.h"
#include "storage/runs_table.h"

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
              RunsTable(*s).touch_job(job);
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
  settings_.max_attempts = experiment_resources(exp).max_attempts;
  std::vector<RunsTable::Dispatch> d;
  for (const auto& it : items) d.push_back({it.run.id, it.recorded_state, identity_});
  auto accepted = RunsTable(store).dispatch_runs(d, "local");
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

namespace {

// One LocalBackend::run(): the runs still to start, the workers running in their slots, and what became of each
// worker (counted in the PoolOutcome, one accounting row each).
class PoolRun {
 public:
  PoolRun(const DispatchOptions& o, const LocalPoolSettings& settings, const std::string& identity,
          const std::vector<PlannedRun>& runs, const std::map<std::string, std::string>& prior, Store& store,
          PoolOutcome& res, std::vector<JobAccount>& accounts)
      : o_(o), settings_(settings), identity_(identity), runs_(runs), prior_(prior), store_(store), res_(res),
        accounts_(accounts), layout_(o.workspace) {
    fs::create_directories(layout_.local_logs_dir());
    // Worker slots: one per worker, or runs_per_gpu per GPU.
    if (!settings_.gpus.empty()) {
      for (int g : settings_.gpus)
        for (int k = 0; k < std::max(1, settings_.runs_per_gpu); ++k) slot_gpu_.push_back(g);
    } else {
      slot_gpu_.assign(static_cast<size_t>(std::max(1, o_.workers)), -1);
    }
    slot_busy_.assign(slot_gpu_.size(), 0);
    const int workers = static_cast<int>(slot_gpu_.size());
    threads_ = o_.threads_per_worker > 0 ? o_.threads_per_worker : std::max(1, default_threads() / workers);
    std::map<std::string, int> dependents;
    for (const auto& r : runs_) {
      pending_[r.id] = &r;
      for (const auto& d : r.depends_on) ++dependents[d];
    }
    for (const auto& r : runs_) order_.push_back(r.id);  // runs others wait for first (the pretrained UNets)
    std::stable_sort(order_.begin(), order_.end(),
                     [&](const std::string& a, const std::string& b) { return dependents[a] > dependents[b]; });
  }

  // Starts runs as slots free up and their dependencies finish, until every run is settled or, after SIGINT or
  // SIGTERM, every worker has checkpointed; runs never started go back to their state before the dispatch.
  void run() {
    PoolSignals signals;
    PoolHeartbeat beat(store_.path(), identity_, control_timeouts().heartbeat_s);
    for (;;) {
      if (!stopping_ && signals.signal() != 0) stop(signals.signal());
      if (!stopping_) start_ready();
      if (running_.empty() && (pending_.empty() || stopping_)) break;
      kill_hung_workers();
      int status = 0;
      const pid_t pid = ::waitpid(-1, &status, WNOHANG);
      if (pid == 0 || (pid < 0 && errno == EINTR)) {
        std::this_thread::sleep_for(std::chrono::milliseconds(running_.empty() ? 1000 : 50));  // waiting on others
        continue;
      }
      if (pid < 0) throw Error(std::string("local pool: waitpid: ") + std::strerror(errno));
      settle(pid, status);
    }
    for (const auto& entry : pending_) {
      RunsTable(store_).transition_runs({entry.first}, {rs::kQueued}, prior_.at(entry.first));
      res_.not_started_ids.push_back(entry.first);
    }
  }

 private:
  struct Running {
    std::string run_id, identity;
    int slot = 0;
    std::chrono::steady_clock::time_point start;
    std::string started_at;
  };
  enum class Readiness { kReady, kWaiting, kDropped };
  struct Hung {
    double age_s = 0;  // how old its heartbeat was when the pool killed it
  };

  void event(const std::string& line) const {
    if (o_.on_event) o_.on_event(line);
  }
  std::string state_of(const std::string& id) const {
    auto r = RunsTable(store_).run(id);
    return r ? r->state : rs::kNew;
  }
  bool running_here(const std::string& id) const {
    return std::any_of(running_.begin(), running_.end(), [&](const auto& x) { return x.second.run_id == id; });
  }
  int gpu_of(int slot) const { return slot_gpu_[static_cast<size_t>(slot)]; }

  void stop(int sig) {
    stopping_ = true;
    res_.interrupted_by = sig;
    event("stopping (" + std::string(sig == SIGINT ? "SIGINT" : "SIGTERM") + "): asking " +
          std::to_string(running_.size()) + " worker(s) to checkpoint");
    for (auto& entry : running_) ::kill(entry.first, SIGTERM);
  }

  void start_ready() {
    for (auto oit = order_.begin(); oit != order_.end() && running_.size() < slot_gpu_.size();) {
      auto it = pending_.find(*oit);
      const Readiness ready = it == pending_.end() ? Readiness::kDropped : readiness(*it->second);
      if (ready == Readiness::kWaiting) {
        ++oit;
        continue;
      }
      if (ready == Readiness::kReady) start(*it->second);
      if (it != pending_.end()) pending_.erase(it);
      oit = order_.erase(oit);
    }
  }

  // kDropped settles the run without starting it: cancelled meanwhile, taken by another process, or one of its
  // dependencies ended without finishing. kWaiting: a dependency is pending, running or active elsewhere.
  Readiness readiness(const PlannedRun& r) {
    const std::string now_state = state_of(r.id);
    if (now_state != rs::kQueued) {
      if (now_state == rs::kCancelled) {
        ++res_.cancelled;
        event("cancelled before it started: " + r.id);
      } else {
        ++res_.elsewhere;
        event("not started here: " + r.id + " is " + now_state + " (another process has it)");
      }
      return Readiness::kDropped;
    }
    bool ready = true;
    for (const auto& d : r.depends_on) {
      if (pending_.count(d) || running_here(d)) {
        ready = false;
        continue;
      }
      const std::string ds = state_of(d);
      if (ds == rs::kDone) continue;
      if (rs::is_active(ds)) {  // active elsewhere: wait for it
        ready = false;
        continue;
      }
      event("not started: " + r.id + " (a run it needs did not finish)");
      RunsTable(store_).transition_runs({r.id}, {rs::kQueued}, prior_.at(r.id));
      res_.not_started_ids.push_back(r.id);
      return Readiness::kDropped;
    }
    return ready ? Readiness::kReady : Readiness::kWaiting;
  }

  void start(const PlannedRun& r) {
    const int slot = static_cast<int>(std::find(slot_busy_.begin(), slot_busy_.end(), 0) - slot_busy_.begin());
    std::vector<std::pair<std::string, std::string>> env{{"ORCH_POOL_JOB", identity_},
                                                         {"ORCH_POOL_CPUS", std::to_string(threads_)}};
    if (gpu_of(slot) >= 0) {
      env.push_back({"CUDA_VISIBLE_DEVICES", std::to_string(gpu_of(slot))});
      env.push_back({"ORCH_GPU_SHARERS", std::to_string(std::max(1, settings_.runs_per_gpu))});
    }
    const std::string log = layout_.local_log(r.id);
    Spawned w = spawn_worker({o_.binary, "worker", "--workspace", o_.workspace, "--run", r.id, "--communicator", "single",
                              "--threads", std::to_string(threads_)},
                             environment_with(env), log);
    slot_busy_[static_cast<size_t>(slot)] = 1;
    running_[w.pid] = {r.id, w.identity, slot, std::chrono::steady_clock::now(), utc_now_text()};
    event("start " + r.id + " (pid " + std::to_string(w.pid) +
          (gpu_of(slot) >= 0 ? ", GPU " + std::to_string(gpu_of(slot)) : "") + ", log " + log + ")");
  }

  // A worker ended: what its exit means for its run, and its accounting row.
  void settle(pid_t pid, int status) {
    auto it = running_.find(pid);
    if (it == running_.end()) return;
    const Running w = it->second;
    running_.erase(it);
    slot_busy_[static_cast<size_t>(w.slot)] = 0;
    const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - w.start).count();
    const int code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
    std::string account_state;
    if (code == kExitOk) {
      event(progress_head() + "done " + w.run_id + " in " + std::to_string(static_cast<int>(secs)) + " s");
      ++res_.done;
      account_state = "COMPLETED";
    } else if (code == kExitRequeue) {
      account_state = settle_requeue(w);
    } else if (code == kExitNotClaimed) {
      const std::string st = state_of(w.run_id);
      account_state = st == rs::kCancelled ? "CANCELLED" : "NOT_CLAIMED";
      if (st == rs::kCancelled) ++res_.cancelled; else ++res_.elsewhere;
      event("not trained here: " + w.run_id + " is " + st + " (see " + layout_.local_log(w.run_id) + ")");
    } else {
      auto h = hung_.find(pid);
      account_state = settle_death(w, code, status, h == hung_.end() ? nullptr : &h->second);
    }
    hung_.erase(pid);
    accounts_.push_back({w.identity, w.run_id, "local", account_state, secs,
                         gpu_of(w.slot) >= 0 ? 1.0 / std::max(1, settings_.runs_per_gpu) : 0.0, w.started_at,
                         utc_now_text()});
  }

  // Exit 75, checkpointed: cancelled, stopped with the pool, restarted, or failed after max_requeues restarts.
  std::string settle_requeue(const Running& w) {
    const std::string st = state_of(w.run_id);
    if (st == rs::kCancelled) {
      ++res_.cancelled;
      event("cancelled " + w.run_id + " (checkpointed)");
      return "CANCELLED";
    }
    if (stopping_) {
      RunsTable(store_).transition_runs({w.run_id}, {rs::kQueued}, rs::kInterrupted);
      res_.stopped_ids.push_back(w.run_id);
      event("stopped " + w.run_id + " (checkpointed; resume continues it)");
    } else if (st == rs::kQueued && requeues_[w.run_id] < settings_.max_requeues) {
      ++requeues_[w.run_id];
      event("requeue " + w.run_id + " (checkpointed; attempt " + std::to_string(requeues_[w.run_id] + 1) + ")");
      for (const auto& pr : runs_)
        if (pr.id == w.run_id) pending_[w.run_id] = &pr;
      order_.insert(order_.begin(), w.run_id);  // continue it first
    } else {
      const std::string head = progress_head();
      ++res_.failed;
      res_.failed_ids.push_back(w.run_id);
      RunsTable(store_).transition_runs({w.run_id}, {rs::kQueued}, rs::kFailed);
      event(head + "FAILED " + w.run_id + " (stopped " + std::to_string(requeues_[w.run_id] + 1) +
            " times without finishing; log " + layout_.local_log(w.run_id) + ")");
    }
    return "REQUEUED";
  }

  // Any other exit, or a signal: the worker died, perhaps without its final word. A transient end (SIGKILL, hung)
  // is retried up to resources.max_attempts (scheduler/retry.h); otherwise the run failed. Its claim is closed
  // either way so the run does not look alive.
  std::string settle_death(const Running& w, int code, int status, const Hung* hung) {
    const std::string log = layout_.local_log(w.run_id);
    const AttemptEnd end = classify_worker_end(status, hung != nullptr, hung ? hung->age_s : 0);
    std::string note;
    const bool retry = should_retry(end, attempts_of(w.run_id), settings_.max_attempts, &note);
    const std::string reason = "the worker died (" + end.cause + "); " + note + "; see " + log;
    if (!ClaimsTable(store_).abandon_claim(w.run_id, w.identity, retry ? rs::kQueued : rs::kFailed, code, reason) && taken_over(w)) {
      // It had claimed the run and lost the claim before it died (judged hung, killed by a `resume` that took the
      // run over): the run is its new holder's, not a failure of this pool.
      ++res_.elsewhere;
      event("not trained here: " + w.run_id + " was taken over by another worker (this one " + end.cause + "; log " + log + ")");
      return "NOT_CLAIMED";
    }
    if (retry && !stopping_ && state_of(w.run_id) == rs::kQueued) {
      ++retries_[w.run_id];
      event("retry " + w.run_id + ": " + end.cause + "; " + note + " (log " + log + ")");
      for (const auto& pr : runs_)
        if (pr.id == w.run_id) pending_[w.run_id] = &pr;
      order_.insert(order_.begin(), w.run_id);
      return "FAILED";
    }
    const std::string head = progress_head();
    ++res_.failed;
    res_.failed_ids.push_back(w.run_id);
    RunsTable(store_).transition_runs({w.run_id}, {rs::kQueued}, rs::kFailed);  // failed before it claimed
    event(head + "FAILED " + w.run_id + " (" + end.cause + "; " + note + "; log " + log + ")");
    return "FAILED";
  }

  // Attempts made at a run: those the store recorded, or the pool's own count when workers died before claiming.
  int attempts_of(const std::string& id) {
    return std::max(static_cast<int>(ClaimsTable(store_).attempts(id).size()), retries_[id] + 1);
  }

  // Every ORCH_HEARTBEAT_S: a running worker whose claim has not beaten for ORCH_LOST_AFTER_S is hung (stopped, or
  // stuck on a dead file system): killed, and settled as a transient end when it is reaped.
  void kill_hung_workers() {
    const auto now_steady = std::chrono::steady_clock::now();
    if (now_steady < next_hang_check_) return;
    next_hang_check_ = now_steady + std::chrono::duration_cast<std::chrono::steady_clock::duration>(
                                        std::chrono::duration<double>(std::max(0.2, control_timeouts().heartbeat_s)));
    const double now = store_.env().now(), bound = control_timeouts().lost_after_s;
    for (const auto& [pid, w] : running_) {
      if (hung_.count(pid)) continue;
      for (const auto& a : ClaimsTable(store_).attempts(w.run_id)) {
        if (a.holder != w.identity || !a.ended_at.empty() || a.heartbeat_unix <= 0) continue;
        if (now - a.heartbeat_unix <= bound) continue;
        hung_[pid] = {now - a.heartbeat_unix};
        ::kill(pid, SIGKILL);
        event("hung: " + w.run_id + " (pid " + std::to_string(pid) + ") has not beaten for " +
              std::to_string(static_cast<long long>(now - a.heartbeat_unix)) + " s; killed");
      }
    }
  }

  // Whether the worker's claim was taken over before it died: its attempt was closed as lost by another process
  // (a claim that took the run over, or `resume` killing it as hung), not by its own final word.
  bool taken_over(const Running& w) const {
    for (const auto& a : ClaimsTable(store_).attempts(w.run_id))
      if (a.holder == w.identity && !a.ended_at.empty() && a.reason.rfind("lost:", 0) == 0) return true;
    return false;
  }

  // "[k/n] ": the run about to be counted done or failed, of all dispatched.
  std::string progress_head() const {
    return "[" + std::to_string(res_.done + res_.failed + 1) + "/" + std::to_string(runs_.size()) + "] ";
  }

  const DispatchOptions& o_;
  const LocalPoolSettings& settings_;
  const std::string& identity_;
  const std::vector<PlannedRun>& runs_;
  const std::map<std::string, std::string>& prior_;
  Store& store_;
  PoolOutcome& res_;
  std::vector<JobAccount>& accounts_;
  const WorkspaceLayout layout_;
  std::vector<int> slot_gpu_;       // per slot: its GPU index, or -1
  std::vector<char> slot_busy_;
  int threads_ = 1;                 // per worker
  std::map<std::string, const PlannedRun*> pending_;
  std::vector<std::string> order_;  // start order
  std::map<pid_t, Running> running_;
  std::map<std::string, int> requeues_;
  std::map<std::string, int> retries_;  // transient ends retried by this pool
  std::map<pid_t, Hung> hung_;          // workers killed for a stale heartbeat
  std::chrono::steady_clock::time_point next_hang_check_{};
  bool stopping_ = false;
};

}  // namespace

PoolOutcome LocalBackend::run(Store& store) {
  PoolOutcome res;
  if (runs_.empty()) return res;
  if (o_.binary.empty()) o_.binary = fs::read_symlink("/proc/self/exe").string();
  PoolRun(o_, settings_, identity_, runs_, prior_, store, res, accounts_).run();
  try {
    AccountingTable(store).upsert(accounts());
  } catch (const std::exception& e) {
    if (o_.on_event) o_.on_event(std::string("warning: could not record the pool's accounting: ") + e.what());
  }
  return res;
}

LocalJobEnvironment::LocalJobEnvironment() {
  if (const char* j = std::getenv("ORCH_POOL_JOB"); j && ProcessIdentity::parse(j)) job_ = j;
  if (const char* c = std::getenv("ORCH_POOL_CPUS")) cpus_ = std::max(0, std::atoi(c));
  gpus_ = visible_gpus();
}

}  // namespace orch::scheduler
