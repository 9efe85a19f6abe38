// The control plane's pieces that need no backend: process identities, the workspace lock, how a run's shown
// state is judged from its job and heartbeat, what an unattended round dispatches again, the Slurm state mapping,
// and the shapes of resources.
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <thread>

#include "core/env.h"
#include "core/errors.h"
#include "core/experiment.h"
#include "core/process_identity.h"
#include "scheduler/grid.h"
#include "scheduler/plan.h"
#include "scheduler/resources.h"
#include "scheduler/retry.h"
#include "scheduler/slurm_backend.h"
#include "storage/claims_table.h"
#include "storage/runs_table.h"
#include "storage/store.h"
#include "storage/workspace_lock.h"
#include "test_util.h"

using namespace orch;
using scheduler::JobPhase;
using scheduler::JobState;

TEST(ProcessIdentity, NamesOneProcessAndSurvivesPidReuse) {
  ProcessIdentity me = ProcessIdentity::self();
  EXPECT_GT(me.start_ticks, 0u);
  EXPECT_EQ(liveness(me), Liveness::kAlive);
  auto parsed = ProcessIdentity::parse(me.str());
  ASSERT_TRUE(parsed);
  EXPECT_EQ(parsed->str(), me.str());

  ProcessIdentity reused = me;  // the same pid with another start time: a new process got the old one's pid
  reused.start_ticks += 1;
  EXPECT_EQ(liveness(reused), Liveness::kGone);
  ProcessIdentity elsewhere = me;
  elsewhere.host = "some-other-host";
  EXPECT_EQ(liveness(elsewhere), Liveness::kUnknown);

  int go[2];
  ASSERT_EQ(pipe(go), 0);
  pid_t child = fork();
  if (child == 0) {
    close(go[1]);  // or the read below never sees the end of the pipe
    char c;
    (void)!read(go[0], &c, 1);
    _exit(0);
  }
  auto id = ProcessIdentity::of(child);
  ASSERT_TRUE(id);
  EXPECT_EQ(liveness(*id), Liveness::kAlive);
  close(go[1]);  // the child exits
  waitpid(child, nullptr, 0);
  EXPECT_EQ(liveness(*id), Liveness::kGone) << "a process that exited is gone";

  auto old = ProcessIdentity::parse("local:123@node7");  // the previous version's job ids
  ASSERT_TRUE(old);
  EXPECT_EQ(old->pid, 123);
  EXPECT_EQ(old->host, "node7");
  EXPECT_FALSE(ProcessIdentity::parse("12_3"));
  EXPECT_FALSE(ProcessIdentity::parse("host:x:1:b"));
}

TEST(FileLock, ASecondHolderWaitsThenIsToldWhoHoldsIt) {
  test::TempDir d;
  const std::string path = d / ".orchestrator.lock";
  int ready[2], done[2];
  ASSERT_EQ(pipe(ready), 0);
  ASSERT_EQ(pipe(done), 0);
  pid_t holder = fork();
  if (holder == 0) {
    FileLock lock(path, "orchestrator submit exp.json", 5);
    char c = 1;
    (void)!write(ready[1], &c, 1);
    (void)!read(done[0], &c, 1);
    _exit(0);
  }
  char c;
  ASSERT_EQ(read(ready[0], &c, 1), 1);
  std::string told;
  try {
    FileLock second(path, "orchestrator cancel exp.json", 0.3, [&](const std::string& h) { told = h; });
    ADD_FAILURE() << "took a lock another process holds";
  } catch (const BusyError& e) {
    const std::string m = e.what();
    EXPECT_NE(m.find(path), std::string::npos) << m;
    EXPECT_NE(m.find("orchestrator submit exp.json"), std::string::npos) << m;
    EXPECT_NE(m.find("pid " + std::to_string(holder)), std::string::npos) << m;
  }
  EXPECT_NE(told.find("orchestrator submit"), std::string::npos);
  // Killed with -9, the holder leaves nothing stuck.
  kill(holder, SIGKILL);
  waitpid(holder, nullptr, 0);
  FileLock third(path, "orchestrator resume", 2);
  EXPECT_NE(lock_holder(path).find("orchestrator resume"), std::string::npos);
}

namespace {

RunProgress queued_on(const std::string& job, const std::string& backend, double heartbeat) {
  RunProgress p;
  p.job = job;
  p.backend = backend;
  p.job_heartbeat = heartbeat;
  return p;
}

RunProgress running_by(const ProcessIdentity& holder, double heartbeat, const std::string& job = "", const std::string& backend = "local") {
  RunProgress p;
  p.claim_attempt = 7;
  p.claim_open = true;
  p.claim_holder = holder.str();
  p.claim_heartbeat = heartbeat;
  p.claim_job = job;
  p.claim_backend = backend;
  return p;
}

}  // namespace

TEST(Judge, WhatARunReallyIsFollowsItsJobAndItsHeartbeat) {
  const double now = Env::system().now(), bound = 600;
  const std::map<std::string, JobState> none;
  ProcessIdentity me = ProcessIdentity::self(), reused = me, remote = me;
  reused.start_ticks += 1;
  remote.host = "gpu-node-3";

  // Not active: as recorded.
  EXPECT_EQ(scheduler::judge("failed", {}, none, now, bound).state, "failed");
  // Queued in a local pool: queued while the pool lives, lost once it is gone (kill -9 of the pool).
  EXPECT_EQ(scheduler::judge("queued", queued_on(me.str(), "local", now), {{me.str(), {JobPhase::kRunning, ""}}}, now, bound).state,
            "queued");
  auto j = scheduler::judge("queued", queued_on(reused.str(), "local", now), {{reused.str(), {JobPhase::kGone, ""}}}, now, bound);
  EXPECT_EQ(j.state, "lost");
  EXPECT_NE(j.why.find("gone"), std::string::npos);
  EXPECT_EQ(scheduler::judge("queued", {}, none, now, bound).state, "lost") << "queued with no job at all";
  // A pool on another host: lost once its heartbeat is older than the bound.
  EXPECT_EQ(scheduler::judge("queued", queued_on(remote.str(), "local", now - 10), {{remote.str(), {JobPhase::kUnknown, ""}}}, now, bound).state,
            "queued");
  EXPECT_EQ(scheduler::judge("queued", queued_on(remote.str(), "local", now - 900), {{remote.str(), {JobPhase::kUnknown, ""}}}, now, bound).state,
            "lost");

  // Running: the claim's holder decides; a reused pid is not alive.
  EXPECT_EQ(scheduler::judge("running", running_by(me, now), none, now, bound).state, "running");
  EXPECT_EQ(scheduler::judge("running", running_by(reused, now), none, now, bound).state, "lost");
  EXPECT_EQ(scheduler::judge("running", running_by(remote, now - 30), none, now, bound).state, "running");
  EXPECT_EQ(scheduler::judge("running", running_by(remote, now - 900), none, now, bound).state, "lost");
  // A live process on this host whose heartbeat stopped is hung: lost whatever its pid says (it used to win).
  j = scheduler::judge("running", running_by(me, now - 900), none, now, bound);
  EXPECT_EQ(j.state, "lost");
  EXPECT_NE(j.why.find("no heartbeat for 900 s (pid " + std::to_string(me.pid) + " alive but not progressing)"),
            std::string::npos) << j.why;
  // On Slurm: the task's final state wins.
  EXPECT_EQ(scheduler::judge("running", running_by(remote, now, "12_3", "slurm"), {{"12_3", {JobPhase::kTimeout, "Slurm: TIMEOUT"}}}, now, bound).state,
            "timeout");
  EXPECT_EQ(scheduler::judge("queued", queued_on("12_4", "slurm", now), {{"12_4", {JobPhase::kPending, ""}}}, now, bound).state, "queued");
  EXPECT_EQ(scheduler::judge("queued", queued_on("12_4", "slurm", now), {{"12_4", {JobPhase::kCancelled, ""}}}, now, bound).state, "cancelled");
  EXPECT_EQ(scheduler::judge("queued", queued_on("12_4", "slurm", now - 900), {{"12_4", {JobPhase::kUnknown, ""}}}, now, bound).state,
            "lost")
      << "a job Slurm has no record of long after its submission";
}

// The retry policy: transient ends only, up to max_attempts.
TEST(Retry, OnlyTransientEndsAreRetriedUpToTheBound) {
  auto killed = [](int sig) { return sig & 0x7f; };  // a waitpid status for "killed by sig"
  auto exited = [](int code) { return (code & 0xff) << 8; };
  std::string note;
  auto oom = scheduler::classify_worker_end(killed(SIGKILL), false);
  EXPECT_TRUE(oom.retryable);
  EXPECT_TRUE(scheduler::should_retry(oom, 1, 3, &note));
  EXPECT_EQ(note, "retried (attempt 2 of 3)");
  EXPECT_FALSE(scheduler::should_retry(oom, 3, 3, &note));
  EXPECT_NE(note.find("resources.max_attempts is 3"), std::string::npos) << note;
  EXPECT_TRUE(scheduler::classify_worker_end(exited(0), true, 700).retryable) << "hung";
  EXPECT_NE(scheduler::classify_worker_end(exited(0), true, 700).cause.find("no heartbeat for 700 s"), std::string::npos);
  EXPECT_TRUE(scheduler::classify_worker_end(exited(137), false).retryable);
  for (int status : {exited(1), exited(2), killed(SIGSEGV), killed(SIGABRT), exited(5)}) {
    auto e = scheduler::classify_worker_end(status, false);
    EXPECT_FALSE(e.retryable) << e.cause;
    EXPECT_FALSE(scheduler::should_retry(e, 1, 3, &note));
    EXPECT_NE(note.find("not retried"), std::string::npos);
  }
}

TEST(Retry, MemoryIsRaisedByTheFactorPerOutOfMemoryEnd) {
  EXPECT_EQ(scheduler::raised_mem("4G", 1.5, 1), "6144M");
  EXPECT_EQ(scheduler::raised_mem("4G", 1.5, 2), "9216M");
  EXPECT_EQ(scheduler::raised_mem("1000", 2, 1), "2000M");
  EXPECT_EQ(scheduler::raised_mem("1000K", 2, 1), "2M");
  EXPECT_EQ(scheduler::raised_mem("4G", 1.5, 0), "4G");
  EXPECT_EQ(scheduler::raised_mem("", 1.5, 3), "") << "no memory asked: Slurm's default stays";
  EXPECT_THROW(scheduler::raised_mem("4GB", 1.5, 1), InputError);
}

TEST(Slurm, StatesMapToJobPhases) {
  EXPECT_EQ(scheduler::job_phase_from_slurm("PENDING"), JobPhase::kPending);
  EXPECT_EQ(scheduler::job_phase_from_slurm("REQUEUED"), JobPhase::kPending);
  EXPECT_EQ(scheduler::job_phase_from_slurm("RUNNING"), JobPhase::kRunning);
  EXPECT_EQ(scheduler::job_phase_from_slurm("CANCELLED by 0"), JobPhase::kCancelled);
  EXPECT_EQ(scheduler::job_phase_from_slurm("OUT_OF_MEMORY"), JobPhase::kFailed);
  EXPECT_EQ(scheduler::job_phase_from_slurm("TIMEOUT"), JobPhase::kTimeout);
  EXPECT_EQ(scheduler::job_phase_from_slurm("COMPLETED"), JobPhase::kCompleted);
  EXPECT_THROW(scheduler::check_slurm_path("/data/100%/ws", "--workspace"), InputError);
  EXPECT_THROW(scheduler::check_slurm_path("/data/a\\b", "--workspace"), InputError);
  EXPECT_NO_THROW(scheduler::check_slurm_path("/data/with space/$(touch x)/`y`/'q'", "--workspace"));
}

TEST(Resources, MergeExperimentDataSetAndNetworkLevelsAndValidate) {
  nlohmann::json j = {
      {"name", "r"},
      {"datasets",
       {{"a", {{"kind", "lh"}, {"size", 64}, {"synthetic", {{"count", 20}}}, {"resources", {{"mem", "32G"}}}}},
        {"b", {{"kind", "l"}, {"size", 64}, {"synthetic", {{"count", 20}}}}}}},
      {"networks",
       {{"unet", {{"resources", {{"time", "12:00:00"}, {"gpus", 1}}},
                  {"datasets", {{"b", {{"resources", {{"time", "6:00:00"}}}, {"training", {{"epochs", 7}}}}}}}}},
        {"hybridgnet", nlohmann::json::object()}}},
      {"resources", {{"cpus", 4}, {"time", "1:00:00"}, {"partition", "gpu"}}}};
  Experiment e = parse_experiment(j, "r.json");
  scheduler::validate_resources(e);
  auto ua = scheduler::resources_for(e, "a", "unet"), ub = scheduler::resources_for(e, "b", "unet"),
       ha = scheduler::resources_for(e, "a", "hybridgnet");
  EXPECT_EQ(ua.time, "12:00:00");
  EXPECT_EQ(ua.mem, "32G");
  EXPECT_EQ(ua.gpus, 1);
  EXPECT_EQ(ub.time, "6:00:00");
  EXPECT_EQ(ub.mem, "");
  EXPECT_EQ(ha.time, "1:00:00");
  EXPECT_EQ(ha.cpus, 4);
  EXPECT_EQ(ha.partition, "gpu");
  EXPECT_NE(ua.key(), ha.key());
  const NetworkSpec& unet = *std::find_if(e.networks.begin(), e.networks.end(), [](auto& n) { return n.id == "unet"; });
  EXPECT_EQ(unet.training_for(e.training, e.path, "b").epochs, 7);
  EXPECT_EQ(unet.training_for(e.training, e.path, "a").epochs, 2500);

  auto bad = [&](const char* where, nlohmann::json value) {
    nlohmann::json k = j;
    k["resources"][where] = value;
    try {
      scheduler::validate_resources(parse_experiment(k, "r.json"));
      ADD_FAILURE() << where << " = " << value.dump() << " accepted";
    } catch (const InputError& err) {
      EXPECT_NE(std::string(err.what()).find(std::string("resources.") + where), std::string::npos) << err.what();
    }
  };
  bad("gpus", 4294967297LL);  // narrowed to 1 before it was range-checked, once
  bad("cpus", 0);
  bad("mem", "lots");
  bad("time", "tomorrow; rm -rf /");
  bad("partition", "a b");
  bad("constraint", "x$(y)");
  bad("runs_per_gpu", 2);  // needs gpus 1
  bad("color", "red");
}

// The rounds of `submit --follow` after the first (PlanOptions::unattended): of the runs that ended, only those the
// retry policy allows are dispatched again: lost, or ended by the cluster (Slurm NODE_FAIL), with attempts left. A
// failure the run reported, or a job that failed by itself, waits for a person; a person's submit takes them all.
TEST(Plan, UnattendedRoundsRetryOnlyLostOrClusterEndedRunsWithAttemptsLeft) {
  nlohmann::json doc = {{"name", "un"},
                        {"workspace", "ws"},
                        {"datasets", {{"a", {{"kind", "l"}, {"size", 64}, {"synthetic", {{"count", 10}}}}}}},
                        {"networks", {"hybridgnet"}},
                        {"seeds", {1, 2, 3, 4, 5}}};
  const Experiment exp = parse_experiment(doc, "un.json");
  const auto grid = scheduler::expand(exp);
  ASSERT_EQ(grid.size(), 5u);
  Store store(":memory:");
  scheduler::record_runs(store, grid);
  RunsTable runs(store);
  ClaimsTable claims(store);
  auto attempts = [&](const std::string& id, int n, const std::string& state, int exit_status) {
    for (int i = 0; i < n; ++i) {
      runs.set_run_state(id, "queued");
      auto c = claims.claim_run({id, ProcessIdentity::self(), "j", "local"});
      ASSERT_EQ(c.outcome, ClaimResult::kClaimed);
      claims.finish_attempt(id, c.attempt_id, state, exit_status, state, 0, 0);
    }
  };
  attempts(grid[0].id, 1, "failed", 1);  // a failure the worker reported (a non-finite loss)
  attempts(grid[1].id, 1, "lost", 137);  // lost with its node, once
  attempts(grid[2].id, 3, "lost", 137);  // lost three times: the bound
  runs.add_jobs({{grid[3].id, "7_3"}, {grid[4].id, "7_4"}}, "slurm");
  runs.set_runs_state({grid[3].id, grid[4].id}, "queued");
  const std::map<std::string, JobState> jobs = {
      {"7_3", {JobPhase::kFailed, "Slurm: NODE_FAIL", scheduler::slurm_state_is_transient("NODE_FAIL")}},
      {"7_4", {JobPhase::kFailed, "Slurm: FAILED", scheduler::slurm_state_is_transient("FAILED")}}};
  scheduler::PlanOptions unattended;
  unattended.unattended = true;
  unattended.max_attempts = 3;
  const auto follow = scheduler::plan(grid, store, {}, scheduler::PlanMode::kSubmit, jobs, unattended);
  std::vector<bool> submitted;
  for (const auto& st : follow) submitted.push_back(st.submit);
  EXPECT_EQ(submitted, (std::vector<bool>{false, true, false, true, false}));
  EXPECT_NE(follow[1].why.find("retried (attempt 2 of 3)"), std::string::npos) << follow[1].why;
  EXPECT_NE(follow[2].why.find("3 attempt(s) made, resources.max_attempts is 3"), std::string::npos) << follow[2].why;
  EXPECT_NE(follow[3].why.find("retried (attempt 1 of 3)"), std::string::npos) << follow[3].why;
  EXPECT_NE(follow[0].why.find("not retried unattended"), std::string::npos) << follow[0].why;
  for (const auto& st : scheduler::plan(grid, store, {}, scheduler::PlanMode::kSubmit, jobs))
    EXPECT_TRUE(st.submit) << st.run.id << ": a person's submit dispatches every run that ended";
}

// A run recorded by an earlier version of the experiment (other settings, so another id) is named by the plan of
// the new version as the one it replaces; runs of the grid itself are read without their settings.
TEST(Plan, ARunWhoseSettingsChangedNamesTheRunItReplaces) {
  nlohmann::json doc = {{"name", "ch"},
                        {"workspace", "ws"},
                        {"datasets", {{"a", {{"kind", "l"}, {"size", 64}, {"synthetic", {{"count", 10}}}}}}},
                        {"networks", {"hybridgnet"}},
                        {"seeds", {1, 2}}};
  const auto before = scheduler::expand(parse_experiment(doc, "ch.json"));
  Store store(":memory:");
  scheduler::record_runs(store, before);
  doc["training"] = {{"epochs", 7}};
  const auto after = scheduler::expand(parse_experiment(doc, "ch.json"));
  ASSERT_NE(after[0].id, before[0].id);
  const auto p = scheduler::plan(after, store, {}, scheduler::PlanMode::kSubmit, {});
  ASSERT_EQ(p.size(), 2u);
  for (size_t i = 0; i < 2; ++i) {
    EXPECT_TRUE(p[i].submit);
    EXPECT_EQ(p[i].why, "settings changed (replaces " + before[i].id + ")");
  }
  // The same grid again: every run recorded, nothing replaced.
  const auto same = scheduler::plan(before, store, {}, scheduler::PlanMode::kSubmit, {});
  for (const auto& st : same) EXPECT_TRUE(st.recorded && st.why == "new") << st.run.id << ": " << st.why;
}
