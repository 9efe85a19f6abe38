#include <gtest/gtest.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmath>

#include "core/errors.h"
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
  r.stage = "joint";
  return r;
}
}  // namespace

TEST(Store, RunsAttemptsMetricsAndProvenance) {
  test::TempDir d;
  Store s(d / "orchestrator.db");
  s.upsert_run(run("r1"));
  s.set_run_state("r1", "running");
  auto a = s.begin_attempt("r1", "node1", 42, "123_4");
  s.add_epoch_metrics({"r1", a, 0, 1.5, 0.9, 1e-4, 2.0});
  s.add_epoch_metrics({"r1", a, 1, 1.2, 0.8, 1e-4, 2.1});
  s.end_attempt(a, 0, "completed");
  s.replace_test_metrics("r1", {{"r1", "img1", "lungs", 0.9, 0.8, 3.5}, {"r1", "img1", "heart", 0.0, 0.0, std::nan("")}});
  s.set_provenance("r1", {{"git_commit", "abc"}, {"host", "node1"}});
  s.add_inference_time("r1", "img1", 0.12, true, "cpu");
  EXPECT_EQ(s.run("r1")->state, "running");
  EXPECT_EQ(s.epoch_metrics("r1").size(), 2u);
  auto tm = s.test_metrics("r1");
  ASSERT_EQ(tm.size(), 2u);
  EXPECT_TRUE(std::isnan(tm[0].hausdorff_mm));  // heart sorts first; NaN stored as NULL
  EXPECT_EQ(s.provenance("r1").at("git_commit"), "abc");
  // Re-running the evaluation replaces, never duplicates.
  s.replace_test_metrics("r1", {{"r1", "img1", "lungs", 0.95, 0.9, 2.0}});
  EXPECT_EQ(s.count("test_metrics"), 1);
  EXPECT_THROW(s.replace_test_metrics("r1", {{"r1", "img1", "liver", 1, 1, 0}}), InputError);
  EXPECT_EQ(s.count("test_metrics"), 1) << "a failed transaction left rows behind";
  EXPECT_THROW(s.set_run_state("nope", "done"), InputError);
}

TEST(Store, SchemaVersionIsCheckedAndKept) {
  test::TempDir d;
  { Store s(d / "a.db"); s.upsert_run(run("r1")); }
  {
    Store again(d / "a.db");
    EXPECT_EQ(again.runs().size(), 1u);
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

TEST(Store, SixteenProcessesWritingAtOnceLoseNothing) {
  test::TempDir d;
  const std::string path = d / "orchestrator.db";
  {
    Store s(path);
    for (int p = 0; p < 16; ++p) s.upsert_run(run("run" + std::to_string(p)));
  }
  constexpr int kProcs = 16, kEpochs = 60, kImages = 20;
  std::vector<pid_t> kids;
  for (int p = 0; p < kProcs; ++p) {
    pid_t pid = fork();
    ASSERT_GE(pid, 0);
    if (pid == 0) {
      int code = 0;
      try {
        Store s(path);
        std::string id = "run" + std::to_string(p);
        auto a = s.begin_attempt(id, "host", getpid(), "");
        for (int e = 0; e < kEpochs; ++e) s.add_epoch_metrics({id, a, e, 1.0 / (e + 1), 0.5, 1e-4, 0.01});
        std::vector<TestMetric> rows;
        for (int i = 0; i < kImages; ++i) {
          rows.push_back({id, "img" + std::to_string(i), "lungs", 0.9, 0.8, 1.0});
          rows.push_back({id, "img" + std::to_string(i), "heart", 0.8, 0.7, 2.0});
        }
        s.replace_test_metrics(id, rows);
        s.set_run_state(id, "done");
        s.end_attempt(a, 0, "completed");
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
    EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << "a writer failed";
  }
  Store s(path);
  EXPECT_EQ(s.count("epoch_metrics"), kProcs * kEpochs);
  EXPECT_EQ(s.count("test_metrics"), kProcs * kImages * 2);
  EXPECT_EQ(s.count("attempts"), kProcs);
  for (const auto& r : s.runs("demo")) EXPECT_EQ(r.state, "done") << r.run_id;
}
