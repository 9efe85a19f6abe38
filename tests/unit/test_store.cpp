#include <gtest/gtest.h>
#include <sqlite3.h>  // a second connection from outside the store, as another process (or a damaging tool) has
#include <sys/wait.h>
#include <unistd.h>

#include <cmath>
#include <fstream>

#include "core/errors.h"
#include "core/process_identity.h"
#include "storage/calibration_table.h"
#include "storage/claims_table.h"
#include "storage/metrics_table.h"
#include "storage/provenance_table.h"
#include "storage/run_ledger.h"
#include "storage/run_state.h"
#include "storage/runs_table.h"
#include "storage/store.h"
#include "test_util.h"

using namespace orch;

namespace {
RunRecord run(const std::string& id) {
  RunRecord r;
  r.run_id = id;
  r.experiment = "demo";
  r.dataset = "synth_lh";
  r.model = "ours";
  r.seed = 1;
  r.stage = "train";
  return r;
}

ClaimRequest claim_by(const std::string& id, const ProcessIdentity& who, double lost_after = 600) {
  ClaimRequest q;
  q.run_id = id;
  q.holder = who;
  q.job_id = "job-1";
  q.backend = "local";
  q.lost_after_s = lost_after;
  return q;
}

// A process identity that cannot be alive: this process's pid with another start time (a reused pid).
ProcessIdentity reused_pid() {
  ProcessIdentity p = ProcessIdentity::self();
  p.start_ticks += 12345;
  return p;
}

ProcessIdentity other_host() {
  ProcessIdentity p = ProcessIdentity::self();
  p.host = "another-host-" + p.host;
  return p;
}
}  // namespace

TEST(Store, RunsAttemptsMetricsAndProvenance) {
  test::TempDir d;
  Store s(d / "orchestrator.db");
  RunsTable(s).upsert_run(run("r1"));
  ClaimResult c = ClaimsTable(s).claim_run(claim_by("r1", ProcessIdentity::self()));
  ASSERT_EQ(c.outcome, ClaimResult::kClaimed);
  EXPECT_EQ(RunsTable(s).run("r1")->state, "running");
  EXPECT_TRUE(MetricsTable(s).add_epoch_metrics({"r1", c.attempt_id, 1, 1.5, 0.9, 1e-4, 2.0}));
  EXPECT_TRUE(MetricsTable(s).add_epoch_metrics({"r1", c.attempt_id, 2, 1.2, 0.8, 1e-4, 2.1}));
  ProvenanceTable(s).set("r1", {{"git_commit", "abc"}, {"host", "node1"}});
  ASSERT_TRUE(ClaimsTable(s).finish_done("r1", c.attempt_id,
                            {{"r1", "img1", "lungs", 0.9, 0.8, 3.5}, {"r1", "img1", "heart", 0.0, 0.0, std::nan("")}},
                            {{"img1", 0.12, 0.01, true, "cpu"}}, 2));
  EXPECT_EQ(RunsTable(s).run("r1")->state, "done");
  EXPECT_EQ(MetricsTable(s).epoch_metrics("r1").size(), 2u);
  auto tm = MetricsTable(s).test_metrics("r1");
  ASSERT_EQ(tm.size(), 2u);
  EXPECT_TRUE(std::isnan(tm[0].hausdorff_mm));  // heart sorts first; NaN stored as NULL
  EXPECT_EQ(ProvenanceTable(s).of("r1").at("git_commit"), "abc");
  auto attempts = ClaimsTable(s).attempts("r1");
  ASSERT_EQ(attempts.size(), 1u);
  EXPECT_EQ(attempts[0].exit_status, 0);
  EXPECT_EQ(attempts[0].end_epoch, 2);
  EXPECT_EQ(attempts[0].holder, ProcessIdentity::self().str());
  // Re-running the evaluation replaces, never duplicates.
  MetricsTable(s).replace_test_metrics("r1", {{"r1", "img1", "lungs", 0.95, 0.9, 2.0}});
  EXPECT_EQ(s.count("test_metrics"), 1);
  EXPECT_THROW(MetricsTable(s).replace_test_metrics("r1", {{"r1", "img1", "liver", 1, 1, 0}}), InputError);
  EXPECT_EQ(s.count("test_metrics"), 1) << "a failed transaction left rows behind";
  EXPECT_THROW(RunsTable(s).set_run_state("nope", "done"), InputError);
}

TEST(Store, SchemaVersionIsCheckedAndKept) {
  test::TempDir d;
  { Store s(d / "a.db"); RunsTable(s).upsert_run(run("r1")); }
  {
    Store again(d / "a.db");
    EXPECT_EQ(RunsTable(again).runs().size(), 1u);
  }
  {
    sqlite3* db;
    sqlite3_open((d / "a.db").c_str(), &db);
    sqlite3_exec(db, "PRAGMA user_version=99", nullptr, nullptr, nullptr);
    sqlite3_close(db);
  }
  try {
    Store newer(d / "a.db");
    FAIL();
  } catch (const InputError& e) {
    EXPECT_NE(std::string(e.what()).find("99"), std::string::npos);
  }
}

// A store written by the previous version (schema 2) is upgraded in place: its rows stay, the new columns appear.
TEST(Store, AVersionTwoStoreIsUpgradedKeepingItsRows) {
  test::TempDir d;
  const std::string path = d / "old.db";
  {
    sqlite3* db;
    ASSERT_EQ(sqlite3_open(path.c_str(), &db), SQLITE_OK);
    const char* v2 = R"SQL(
      CREATE TABLE runs (run_id TEXT PRIMARY KEY, experiment TEXT NOT NULL, dataset TEXT NOT NULL, model TEXT NOT NULL,
        seed INTEGER NOT NULL, stage TEXT NOT NULL DEFAULT '', state TEXT NOT NULL DEFAULT 'new',
        settings_json TEXT NOT NULL DEFAULT '{}', depends_on TEXT NOT NULL DEFAULT '',
        created_at TEXT NOT NULL DEFAULT '', updated_at TEXT NOT NULL DEFAULT '');
      CREATE TABLE attempts (attempt_id INTEGER PRIMARY KEY AUTOINCREMENT, run_id TEXT NOT NULL, started_at TEXT NOT NULL
        DEFAULT '', ended_at TEXT, host TEXT NOT NULL DEFAULT '', pid INTEGER, job_id TEXT NOT NULL DEFAULT '',
        exit_status INTEGER, reason TEXT NOT NULL DEFAULT '');
      CREATE TABLE inference_times (run_id TEXT NOT NULL, image_id TEXT NOT NULL, seconds REAL NOT NULL,
        cold INTEGER NOT NULL DEFAULT 0, device TEXT NOT NULL DEFAULT 'cpu');
      CREATE TABLE jobs (run_id TEXT NOT NULL, backend TEXT NOT NULL, job_id TEXT NOT NULL,
        submitted_at TEXT NOT NULL DEFAULT '', PRIMARY KEY (run_id, job_id));
      INSERT INTO runs(run_id, experiment, dataset, model, seed, state) VALUES ('old-run', 'demo', 'd', 'unet', 1, 'done');
      INSERT INTO attempts(run_id, host, pid, job_id, exit_status, reason) VALUES ('old-run', 'h', 7, 'local:7@h', 0, 'done');
      INSERT INTO jobs(run_id, backend, job_id) VALUES ('old-run', 'local', 'local:7@h');
      PRAGMA user_version=2;)SQL";
    ASSERT_EQ(sqlite3_exec(db, v2, nullptr, nullptr, nullptr), SQLITE_OK);
    sqlite3_close(db);
  }
  Store s(path);
  ASSERT_EQ(RunsTable(s).runs().size(), 1u);
  EXPECT_EQ(RunsTable(s).run("old-run")->state, "done");
  auto a = ClaimsTable(s).attempts("old-run");
  ASSERT_EQ(a.size(), 1u);
  EXPECT_EQ(a[0].reason, "done");
  EXPECT_EQ(a[0].holder, "");
  EXPECT_EQ(RunsTable(s).progress()["old-run"].job, "local:7@h");
  RunsTable(s).upsert_run(run("new-run"));
  EXPECT_EQ(ClaimsTable(s).claim_run(claim_by("new-run", ProcessIdentity::self())).outcome, ClaimResult::kClaimed);
}

// A version-3 store's calibration table (keyed without precision, device model and packing) is rebuilt with its
// rows marked "not recorded"; rows of two precisions then live side by side.
TEST(Store, AVersionThreeStoreKeepsItsCalibrationUnderTheWiderKey) {
  test::TempDir d;
  const std::string path = d / "v3.db";
  { Store fresh(path); }
  {
    sqlite3* db;
    ASSERT_EQ(sqlite3_open(path.c_str(), &db), SQLITE_OK);
    const char* v3 = R"SQL(
      DROP TABLE calibration;
      CREATE TABLE calibration (model TEXT NOT NULL, kind TEXT NOT NULL, size INTEGER NOT NULL, device TEXT NOT NULL,
        batch INTEGER NOT NULL, threads INTEGER NOT NULL, step_s REAL NOT NULL, validation_image_s REAL NOT NULL,
        evaluation_image_s REAL NOT NULL, host TEXT NOT NULL DEFAULT '', measured_at TEXT NOT NULL DEFAULT '',
        PRIMARY KEY (model, kind, size, device, batch, threads));
      INSERT INTO calibration VALUES ('ours', 'lh', 1024, 'cuda:0', 4, 8, 0.5, 0.1, 0.2, 'h100', '2026-11-27');
      PRAGMA user_version=3;)SQL";
    ASSERT_EQ(sqlite3_exec(db, v3, nullptr, nullptr, nullptr), SQLITE_OK);
    sqlite3_close(db);
  }
  Store s(path);
  auto rows = CalibrationTable(s).all();
  ASSERT_EQ(rows.size(), 1u);
  EXPECT_EQ(rows[0].host, "h100");
  EXPECT_EQ(rows[0].step_s, 0.5);
  EXPECT_EQ(rows[0].precision, "");
  EXPECT_EQ(rows[0].runs_per_gpu, 1);
  Calibration c = rows[0];
  c.precision = "bf16";
  c.step_s = 0.2;
  CalibrationTable(s).upsert(c);
  c.precision = "tf32";
  CalibrationTable(s).upsert(c);
  EXPECT_EQ(CalibrationTable(s).all().size(), 3u);
}

// Each run's means over its images are kept beside its rows: a rewrite replaces them (an organ no longer measured
// leaves no stale row), NULL Hausdorff distances are not averaged, and inference is its own row (organ "").
TEST(Store, MetricAggregatesFollowEachRewriteOfARunsRows) {
  test::TempDir d;
  Store s(d / "orchestrator.db");
  RunsTable(s).upsert_run(run("r1"));
  MetricsTable m(s);
  m.replace_test_metrics("r1", {{"r1", "a", "lungs", 0.9, 0.8, 4}, {"r1", "b", "lungs", 0.7, 0.6, NAN},
                                {"r1", "a", "heart", 0.5, 0.4, 9}});
  m.replace_test_metrics("r1", {{"r1", "a", "lungs", 0.8, 0.7, 2}, {"r1", "b", "lungs", 0.6, 0.5, NAN}});
  for (int64_t e = 1; e <= 3; ++e) m.add_epoch_metrics({"r1", 0, e, 1, 1, 1e-4, e == 2 ? NAN : 2.0 * e});
  m.replace_inference_times("r1", {{"a", 0.5, 0.1, true, "cpu"}, {"b", 0.2, 0.1, false, "cpu"}, {"c", 0.4, 0.1, false, "cpu"}});
  auto rows = m.metric_aggregates({"r1"});
  ASSERT_EQ(rows.size(), 2u);
  const MetricAggregate& lungs = rows[0].organ == "lungs" ? rows[0] : rows[1];
  const MetricAggregate& times = rows[0].organ.empty() ? rows[0] : rows[1];
  EXPECT_EQ(lungs.organ, "lungs");
  EXPECT_DOUBLE_EQ(lungs.dice, 0.7);
  EXPECT_DOUBLE_EQ(lungs.jaccard, 0.6);
  EXPECT_DOUBLE_EQ(lungs.hausdorff_mm, 2);
  EXPECT_EQ(lungs.images, 2);
  EXPECT_EQ(lungs.hausdorff_defined, 1);
  EXPECT_DOUBLE_EQ(times.inference_s, 0.3);  // warm passes only
  EXPECT_DOUBLE_EQ(times.inference_cold_s, 0.5);
  EXPECT_DOUBLE_EQ(times.epoch_seconds, 8.0);  // epochs 1 and 3: an epoch without a time is not counted
  EXPECT_EQ(times.epochs_timed, 2);
  EXPECT_TRUE(m.metric_aggregates({"other"}).empty());
}

// A version-4 store (no aggregates) gets them from its rows when a writing command upgrades it.
TEST(Store, AVersionFourStoreGetsTheAggregatesOfItsRows) {
  test::TempDir d;
  const std::string path = d / "v4.db";
  {
    Store fresh(path);
    RunsTable(fresh).upsert_run(run("r1"));
    MetricsTable(fresh).replace_test_metrics("r1", {{"r1", "a", "lungs", 0.9, 0.8, 4}, {"r1", "b", "lungs", 0.5, 0.4, 6}});
    MetricsTable(fresh).replace_inference_times("r1", {{"a", 0.25, 0.1, false, "cuda:0"}});
  }
  {
    sqlite3* db;
    ASSERT_EQ(sqlite3_open(path.c_str(), &db), SQLITE_OK);
    ASSERT_EQ(sqlite3_exec(db, "DROP TABLE metric_aggregates; PRAGMA user_version=4;", nullptr, nullptr, nullptr), SQLITE_OK);
    sqlite3_close(db);
  }
  EXPECT_THROW(Store(path, Store::Mode::kRead), InputError) << "read-only: not upgraded";
  Store s(path);
  auto rows = MetricsTable(s).metric_aggregates({"r1"});
  ASSERT_EQ(rows.size(), 2u);
  for (const auto& a : rows) {
    if (a.organ == "lungs") {
      EXPECT_DOUBLE_EQ(a.dice, 0.7);
      EXPECT_DOUBLE_EQ(a.hausdorff_mm, 5);
      EXPECT_EQ(a.images, 2);
    } else {
      EXPECT_EQ(a.organ, "");
      EXPECT_DOUBLE_EQ(a.inference_s, 0.25);
      EXPECT_EQ(a.device, "cuda:0");
    }
  }
}

// The compare-and-set that starts a run: one holder at a time; a dead holder (a reused pid, a silent host) is taken
// over; done and cancelled runs are never started.
TEST(Store, AClaimIsHeldOnceAndTakenOverOnlyFromTheDead) {
  test::TempDir d;
  Store s(d / "orchestrator.db");
  for (const char* id : {"a", "b", "c", "d"}) RunsTable(s).upsert_run(run(id));

  ClaimResult first = ClaimsTable(s).claim_run(claim_by("a", ProcessIdentity::self()));
  ASSERT_EQ(first.outcome, ClaimResult::kClaimed);
  ClaimResult second = ClaimsTable(s).claim_run(claim_by("a", ProcessIdentity::self()));
  EXPECT_EQ(second.outcome, ClaimResult::kHeld);
  EXPECT_NE(second.detail.find(ProcessIdentity::self().str()), std::string::npos) << second.detail;
  EXPECT_EQ(ClaimsTable(s).attempts("a").size(), 1u) << "a refused claim opens no attempt";

  // Held by a process whose pid now belongs to someone else: dead, taken over; its attempt is closed as lost.
  ASSERT_EQ(ClaimsTable(s).claim_run(claim_by("b", reused_pid())).outcome, ClaimResult::kClaimed);
  ClaimResult over = ClaimsTable(s).claim_run(claim_by("b", ProcessIdentity::self()));
  ASSERT_EQ(over.outcome, ClaimResult::kClaimed);
  EXPECT_NE(over.detail.find("is gone"), std::string::npos) << over.detail;
  auto ab = ClaimsTable(s).attempts("b");
  ASSERT_EQ(ab.size(), 2u);
  EXPECT_NE(ab[0].reason.find("lost"), std::string::npos);
  EXPECT_FALSE(ab[0].ended_at.empty());

  // Held from another host: alive while its heartbeat is fresh, dead once it is older than the bound.
  ASSERT_EQ(ClaimsTable(s).claim_run(claim_by("c", other_host())).outcome, ClaimResult::kClaimed);
  EXPECT_EQ(ClaimsTable(s).claim_run(claim_by("c", ProcessIdentity::self(), 600)).outcome, ClaimResult::kHeld);
  std::this_thread::sleep_for(std::chrono::milliseconds(300));
  EXPECT_EQ(ClaimsTable(s).claim_run(claim_by("c", ProcessIdentity::self(), 0.1)).outcome, ClaimResult::kClaimed);

  // Cancelled and done runs are not started.
  RunsTable(s).set_run_state("d", "cancelled");
  EXPECT_EQ(ClaimsTable(s).claim_run(claim_by("d", ProcessIdentity::self())).outcome, ClaimResult::kCancelled);
  RunsTable(s).set_run_state("d", "done");
  EXPECT_EQ(ClaimsTable(s).claim_run(claim_by("d", ProcessIdentity::self())).outcome, ClaimResult::kAlreadyDone);
  EXPECT_EQ(ClaimsTable(s).claim_run(claim_by("nope", ProcessIdentity::self())).outcome, ClaimResult::kMissing);
}

// After a takeover the old holder's writes change nothing: epochs, heartbeats, its final word.
TEST(Store, WritesOfAnAttemptThatLostItsClaimAreFencedOff) {
  test::TempDir d;
  Store s(d / "orchestrator.db");
  RunsTable(s).upsert_run(run("r"));
  ClaimResult old = ClaimsTable(s).claim_run(claim_by("r", reused_pid()));
  ClaimResult now = ClaimsTable(s).claim_run(claim_by("r", ProcessIdentity::self()));
  ASSERT_EQ(now.outcome, ClaimResult::kClaimed);
  EXPECT_FALSE(MetricsTable(s).add_epoch_metrics({"r", old.attempt_id, 1, 9.0, 9.0, 1e-4, 1.0}));
  EXPECT_EQ(ClaimsTable(s).heartbeat("r", old.attempt_id), ClaimStanding::kLost);
  EXPECT_EQ(ClaimsTable(s).finish_attempt("r", old.attempt_id, "queued", 75, "stopped", 1, 0), "");
  EXPECT_FALSE(ClaimsTable(s).finish_done("r", old.attempt_id, {}, {}, 1));
  EXPECT_EQ(RunsTable(s).run("r")->state, "running");
  EXPECT_EQ(s.count("epoch_metrics"), 0);
  EXPECT_EQ(ClaimsTable(s).heartbeat("r", now.attempt_id), ClaimStanding::kHeld);
  // A cancel while it runs: the heartbeat says so, and a requeue becomes "cancelled" (exit kExitNotClaimed).
  EXPECT_EQ(RunsTable(s).cancel_runs({"r"}), std::vector<std::string>{"r"});
  EXPECT_EQ(ClaimsTable(s).heartbeat("r", now.attempt_id), ClaimStanding::kCancelled);
  EXPECT_EQ(ClaimsTable(s).finish_attempt("r", now.attempt_id, "queued", 75, "stopped by SIGTERM", 1, 3), "cancelled");
  auto a = ClaimsTable(s).attempts("r");
  EXPECT_EQ(a.back().exit_status, kExitNotClaimed);
  EXPECT_NE(a.back().reason.find("cancelled"), std::string::npos);
}

// overview() reads each run's record and progress in one query: its claim, its attempts and the last of them, the
// last epoch recorded, its latest job. A run with nothing of these has the defaults (no attempt is not open).
TEST(Store, OverviewReadsEveryRunsRecordAndProgressInOnePass) {
  test::TempDir d;
  Store s(d / "orchestrator.db");
  for (const char* id : {"c", "a", "b"}) {
    RunRecord r = run(id);
    r.settings_json = R"({"seed":1})";
    RunsTable(s).upsert_run(r);
  }
  RunsTable(s).dispatch_runs({{"b", "new", "job-7"}}, "slurm");
  RunsTable(s).dispatch_runs({{"c", "new", "job-8"}}, "slurm");
  RunsTable(s).add_jobs({{"c", "job-9"}}, "slurm");
  ClaimResult first = ClaimsTable(s).claim_run(claim_by("b", ProcessIdentity::self()));
  ASSERT_EQ(first.outcome, ClaimResult::kClaimed);
  EXPECT_EQ(ClaimsTable(s).finish_attempt("b", first.attempt_id, "failed", 1, "out of memory", 2, 0), "failed");
  RunsTable(s).dispatch_runs({{"b", "failed", "job-10"}}, "slurm");
  ClaimResult second = ClaimsTable(s).claim_run(claim_by("b", ProcessIdentity::self()));
  ASSERT_EQ(second.outcome, ClaimResult::kClaimed);
  for (int64_t epoch : {1, 3, 2}) EXPECT_TRUE(MetricsTable(s).add_epoch_metrics({"b", second.attempt_id, epoch, 1, 1, 1e-4, 1}));
  EXPECT_TRUE(MetricsTable(s).add_epoch_metrics({"b", second.attempt_id, 3, 0.5, 0.5, 1e-4, 1}));  // replaced

  auto rows = RunsTable(s).overview();
  ASSERT_EQ(rows.size(), 3u);
  EXPECT_EQ(rows[0].record.run_id, "a");  // by run id
  EXPECT_EQ(rows[1].record.run_id, "b");
  EXPECT_EQ(rows[2].record.run_id, "c");
  EXPECT_EQ(rows[1].record.settings_json, "") << "settings are left out";
  EXPECT_EQ(rows[1].record.state, "running");
  const RunProgress& a = rows[0].progress;
  EXPECT_EQ(a.attempts, 0);
  EXPECT_FALSE(a.last_open);
  EXPECT_EQ(a.last_exit, -1);
  EXPECT_EQ(a.epochs_done, 0);
  EXPECT_EQ(a.claim_attempt, 0);
  EXPECT_EQ(a.job, "");
  const RunProgress& b = rows[1].progress;
  EXPECT_EQ(b.attempts, 2);
  EXPECT_TRUE(b.last_open);
  EXPECT_EQ(b.last_exit, -1);
  EXPECT_EQ(b.claim_attempt, second.attempt_id);
  EXPECT_TRUE(b.claim_open);
  EXPECT_EQ(b.claim_holder, ProcessIdentity::self().str());
  EXPECT_EQ(b.claim_job, "job-1");
  EXPECT_EQ(b.epochs_done, 3);
  EXPECT_EQ(b.job, "job-10");
  EXPECT_EQ(b.backend, "slurm");
  EXPECT_EQ(rows[2].progress.job, "job-9") << "the latest job";
  EXPECT_EQ(RunsTable(s).progress()["b"].epochs_done, 3);
  EXPECT_EQ(RunsTable(s).progress("other").size(), 0u);
  const auto states = RunsTable(s).states();
  EXPECT_EQ(states.size(), 3u);
  EXPECT_EQ(states.at("a"), "new");
  EXPECT_EQ(states.at("b"), "running");
  EXPECT_EQ(states.at("c"), "queued");
}

// A version-5 store (no epochs_done on its runs) gets it from its epoch rows when a writing command upgrades it,
// and the trigger keeps it from then on.
TEST(Store, AVersionFiveStoreGetsEachRunsLastEpoch) {
  test::TempDir d;
  const std::string path = d / "v5.db";
  {
    Store fresh(path);
    RunsTable(fresh).upsert_run(run("r1"));
    RunsTable(fresh).upsert_run(run("r2"));
    for (int64_t epoch : {1, 2, 4}) MetricsTable(fresh).add_epoch_metrics({"r1", 0, epoch, 1, 1, 1e-4, 1});
  }
  {
    sqlite3* db;
    ASSERT_EQ(sqlite3_open(path.c_str(), &db), SQLITE_OK);
    ASSERT_EQ(sqlite3_exec(db, "DROP TRIGGER runs_epochs_done; ALTER TABLE runs DROP COLUMN epochs_done; PRAGMA user_version=5;",
                           nullptr, nullptr, nullptr),
              SQLITE_OK);
    sqlite3_close(db);
  }
  EXPECT_THROW(Store(path, Store::Mode::kRead), InputError) << "read-only: not upgraded";
  Store s(path);
  auto p = RunsTable(s).progress();
  EXPECT_EQ(p["r1"].epochs_done, 4);
  EXPECT_EQ(p["r2"].epochs_done, 0);
  MetricsTable(s).add_epoch_metrics({"r2", 0, 1, 1, 1, 1e-4, 1});
  MetricsTable(s).add_epoch_metrics({"r1", 0, 3, 1, 1, 1e-4, 1});  // an earlier epoch again: the last stays
  p = RunsTable(s).progress();
  EXPECT_EQ(p["r1"].epochs_done, 4);
  EXPECT_EQ(p["r2"].epochs_done, 1);
}

// Dispatch is a compare-and-set on the state a plan saw.
TEST(Store, DispatchLeavesRunsWhoseStateChangedAlone) {
  test::TempDir d;
  Store s(d / "orchestrator.db");
  RunsTable(s).upsert_run(run("x"));
  RunsTable(s).upsert_run(run("y"));
  RunsTable(s).set_run_state("y", "failed");
  auto done = RunsTable(s).dispatch_runs({{"x", "new", "pool-1"}, {"y", "new", "pool-1"}}, "local");
  EXPECT_EQ(done, std::vector<std::string>{"x"});
  EXPECT_EQ(RunsTable(s).run("x")->state, "queued");
  EXPECT_EQ(RunsTable(s).run("y")->state, "failed");
  EXPECT_EQ(RunsTable(s).progress()["x"].job, "pool-1");
  EXPECT_GT(RunsTable(s).progress()["x"].job_heartbeat, 0);
}

TEST(Store, ADamagedStoreIsAnErrorNamingTheFileNeverAnEmptyView) {
  test::TempDir d;
  const std::string path = d / "orchestrator.db";
  { Store s(path); RunsTable(s).upsert_run(run("r1")); }
  {
    std::fstream f(path, std::ios::in | std::ios::out | std::ios::binary);
    f.seekp(0);
    f << "this is not an SQLite header, just damage";
  }
  try {
    Store s(path);
    auto runs = RunsTable(s).runs();
    FAIL() << "read " << runs.size() << " runs from a damaged store";
  } catch (const InputError&) {
    FAIL() << "a damaged store is not bad input";
  } catch (const Error& e) {
    const std::string m = e.what();
    EXPECT_NE(m.find(path), std::string::npos) << m;
    EXPECT_NE(m.find("damaged"), std::string::npos) << m;
    EXPECT_NE(m.find("integrity_check"), std::string::npos) << m;
  }
}

// Another process holds the store's write lock: a bounded wait, then a BusyError naming the store.
TEST(Store, ALockedStoreIsABusyErrorAfterABoundedWait) {
  test::TempDir d;
  const std::string path = d / "orchestrator.db";
  { Store s(path); RunsTable(s).upsert_run(run("r1")); }
  int ready[2];
  ASSERT_EQ(pipe(ready), 0);
  pid_t holder = fork();
  if (holder == 0) {
    sqlite3* db;
    sqlite3_open(path.c_str(), &db);
    sqlite3_exec(db, "PRAGMA locking_mode=EXCLUSIVE; BEGIN EXCLUSIVE; UPDATE runs SET state = 'x';", nullptr, nullptr, nullptr);
    char c = 1;
    (void)!write(ready[1], &c, 1);
    sleep(30);
    _exit(0);
  }
  char c;
  ASSERT_EQ(read(ready[0], &c, 1), 1);
  auto t0 = std::chrono::steady_clock::now();
  try {
    Store s(path, Store::Mode::kReadWrite, 0.5);
    RunsTable(s).set_run_state("r1", "done");
    ADD_FAILURE() << "wrote through another process's exclusive lock";
  } catch (const BusyError& e) {
    EXPECT_NE(std::string(e.what()).find(path), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("locked"), std::string::npos) << e.what();
  }
  EXPECT_LT(std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count(), 10.0);
  kill(holder, SIGKILL);
  waitpid(holder, nullptr, 0);
  Store s(path);
  EXPECT_EQ(RunsTable(s).run("r1")->state, "new") << "the holder's transaction died with it";
}

TEST(Store, SixteenProcessesWritingAtOnceLoseNothing) {
  test::TempDir d;
  const std::string path = d / "orchestrator.db";
  {
    Store s(path);
    for (int p = 0; p < 16; ++p) RunsTable(s).upsert_run(run("run" + std::to_string(p)));
  }
  constexpr int kProcs = 16, kEpochs = 60, kImages = 20;
  std::vector<pid_t> kids;
  for (int p = 0; p < kProcs; ++p) {
    pid_t pid = fork();
    ASSERT_GE(pid, 0);
    if (pid == 0) {
      int code = 0;
      try {
        std::string id = "run" + std::to_string(p);
        RunLedger ledger(path, id);
        if (ledger.claim(ProcessIdentity::self(), "", "local", 0, 600).outcome != ClaimResult::kClaimed) _exit(2);
        ledger.start_heartbeat(0.01, [](ClaimStanding) {});
        for (int e = 1; e <= kEpochs; ++e)
          if (!ledger.epoch(e, 1.0 / e, 0.5, 1e-4, 0.01)) _exit(3);
        std::vector<TestMetric> rows;
        for (int i = 0; i < kImages; ++i) {
          rows.push_back({id, "img" + std::to_string(i), "lungs", 0.9, 0.8, 1.0});
          rows.push_back({id, "img" + std::to_string(i), "heart", 0.8, 0.7, 2.0});
        }
        ledger.stop_heartbeat();
        if (!ledger.done(rows, {}, kEpochs)) _exit(4);
      } catch (const std::exception& e) {
        std::fprintf(stderr, "child %d: %s\n", p, e.what());
        code = 1;
      }
      _exit(code);
    }
    kids.push_back(pid);
  }
  for (pid_t k : kids) {
    int status = 0;
    waitpid(k, &status, 0);
    EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << "a writer failed: " << WEXITSTATUS(status);
  }
  Store s(path);
  EXPECT_EQ(s.count("epoch_metrics"), kProcs * kEpochs);
  EXPECT_EQ(s.count("test_metrics"), kProcs * kImages * 2);
  EXPECT_EQ(s.count("attempts"), kProcs);
  for (const auto& r : RunsTable(s).runs("demo")) EXPECT_EQ(r.state, "done") << r.run_id;
}
