// The Env seam (core/env.h): faults and a clock given to the code that publishes files, takes locks and judges
// heartbeats, and what survives them.
#include <gtest/gtest.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "core/atomic_file.h"
#include "core/env.h"
#include "core/errors.h"
#include "storage/claims_table.h"
#include "storage/runs_table.h"
#include "storage/store.h"
#include "storage/workspace_lock.h"
#include "test_util.h"

namespace orch {
namespace {

namespace fs = std::filesystem;
using test::TempDir;

std::string read(const std::string& path) {
  std::ifstream in(path);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

bool has_temporary(const std::string& dir) {
  for (const auto& e : fs::directory_iterator(dir))
    if (e.path().filename().string().find(".tmp-") != std::string::npos) return true;
  return false;
}

// A rename that fails as one across file systems does (a workspace on a bind mount, a moved folder).
class CrossDeviceRename : public Env {
 public:
  void rename(const std::string& from, const std::string& to) override {
    ++renames;
    throw Error(to + ": cannot rename " + from + " into place: " + std::strerror(EXDEV));
  }
  int renames = 0;
};

TEST(Env, AFailedRenameLeavesTheTargetAsItWasAndNoTemporary) {
  TempDir t;
  const std::string target = t / "report.md";
  write_file_atomically(target, "old");
  CrossDeviceRename env;
  try {
    write_file_atomically(target, "new", nullptr, env);
    FAIL() << "the rename's failure was not reported";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find(target), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("cross-device"), std::string::npos) << e.what();
  }
  EXPECT_EQ(env.renames, 1);
  EXPECT_EQ(read(target), "old");
  EXPECT_FALSE(has_temporary(t.path.string()));
}

// A clock the test sets: the store's heartbeats, claims and the takeover of a silent holder follow it.
class ManualClock : public Env {
 public:
  double now() override { return t; }
  double t = 1'000'000;
};

TEST(Env, AHolderSilentForLongerThanTheBoundIsTakenOverOnTheStoresClock) {
  TempDir d;
  ManualClock clock;
  Store s(d / "orchestrator.db", Store::Mode::kReadWrite, -1, clock);
  RunRecord r;
  r.run_id = "r1";
  r.experiment = "demo";
  r.dataset = "synth_lh";
  r.model = "unet";
  r.seed = 1;
  r.stage = "train";
  RunsTable(s).upsert_run(r);
  ClaimRequest q;
  q.run_id = "r1";
  q.holder = ProcessIdentity::self();
  q.holder.host = "gpu-node-9";  // another host: only its heartbeat tells whether it lives
  q.backend = "slurm";
  q.lost_after_s = 600;
  ClaimResult first = ClaimsTable(s).claim_run(q);
  ASSERT_EQ(first.outcome, ClaimResult::kClaimed);
  EXPECT_EQ(ClaimsTable(s).attempts("r1").at(0).heartbeat_unix, clock.t);

  q.holder.host = "gpu-node-4";
  clock.t += 500;  // within the bound
  ClaimResult held = ClaimsTable(s).claim_run(q);
  EXPECT_EQ(held.outcome, ClaimResult::kHeld) << held.detail;
  EXPECT_EQ(ClaimsTable(s).heartbeat("r1", first.attempt_id), ClaimStanding::kHeld);  // beats at +500

  clock.t += 599;  // 599 s after the last beat: still held
  EXPECT_EQ(ClaimsTable(s).claim_run(q).outcome, ClaimResult::kHeld);
  clock.t += 101;  // 700 s of silence
  ClaimResult taken = ClaimsTable(s).claim_run(q);
  ASSERT_EQ(taken.outcome, ClaimResult::kClaimed) << taken.detail;
  EXPECT_NE(taken.detail.find("no heartbeat for 700 s (bound 600 s)"), std::string::npos) << taken.detail;
  const auto attempts = ClaimsTable(s).attempts("r1");
  ASSERT_EQ(attempts.size(), 2u);
  EXPECT_EQ(attempts[0].ended_unix, clock.t);
  EXPECT_EQ(ClaimsTable(s).heartbeat("r1", first.attempt_id), ClaimStanding::kLost);
}

// A lock the Env says another process holds, or cannot take at all.
class LockAnswers : public Env {
 public:
  explicit LockAnswers(int err) : err_(err) {}
  int try_lock(int) override {
    ++tries;
    return err_;
  }
  int tries = 0;

 private:
  int err_;
};

TEST(Env, ALockHeldElsewhereEndsInABusyErrorNamingTheFileAndALockErrorInAnError) {
  TempDir d;
  const std::string path = d / "workspace.lock";
  LockAnswers held(EWOULDBLOCK);
  std::string told;
  try {
    FileLock lock(path, "test", 0.2, [&](const std::string& holder) { told = "waited"; }, held);
    FAIL() << "a held lock was taken";
  } catch (const BusyError& e) {
    EXPECT_NE(std::string(e.what()).find(path + ": busy"), std::string::npos) << e.what();
  }
  EXPECT_EQ(told, "waited");
  EXPECT_GE(held.tries, 2);
  LockAnswers broken(ENOLCK);
  try {
    FileLock lock(path, "test", 5, nullptr, broken);
    FAIL() << "a lock that cannot be taken was taken";
  } catch (const BusyError& e) {
    FAIL() << "ENOLCK is not a busy lock: " << e.what();
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("cannot lock"), std::string::npos) << e.what();
  }
  EXPECT_EQ(broken.tries, 1);
  FileLock free_now(path, "test", 0);  // the system's Env: nobody holds it
}

}  // namespace
}  // namespace orch
