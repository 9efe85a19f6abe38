// The estimate's arithmetic: Slurm time limits and the list-scheduling simulator under both policies.
#include <gtest/gtest.h>

#include <algorithm>
#include <functional>
#include <random>

#include "scheduler/estimate.h"
#include "scheduler/grid.h"
#include "scheduler/plan.h"
#include "storage/calibration_table.h"
#include "storage/metrics_table.h"
#include "storage/runs_table.h"
#include "test_util.h"

using namespace orch;
using namespace orch::scheduler;

namespace {

PlannedRun run(const std::string& id, std::vector<std::string> deps = {}) {
  PlannedRun r;
  r.id = id;
  r.depends_on = std::move(deps);
  return r;
}

}  // namespace

TEST(Estimate, SlurmTimeRoundsUpToWholeMinutesWithAFloor) {
  EXPECT_EQ(slurm_time(0), "00:05:00");
  EXPECT_EQ(slurm_time(301), "00:06:00");
  EXPECT_EQ(slurm_time(3600 * 25 + 1), "1-01:01:00");
  EXPECT_EQ(hours_text(45), "45 s");
  EXPECT_EQ(hours_text(3 * 3600), "3.0 h");
}

TEST(Estimate, PerRunDependenciesBeatOneArrayPerLevel) {
  // A (10) -> A2 (1); B (2) -> B2 (10). Per run, B2 starts when B ends (2); per level, when A ends too (10).
  std::vector<PlannedRun> runs{run("A"), run("B"), run("A2", {"A"}), run("B2", {"B"})};
  std::map<std::string, double> s{{"A", 10}, {"B", 2}, {"A2", 1}, {"B2", 10}};
  EXPECT_DOUBLE_EQ(simulate_makespan(runs, s, {}, 4, SchedulePolicy::kPerRun), 12);
  EXPECT_DOUBLE_EQ(simulate_makespan(runs, s, {}, 4, SchedulePolicy::kPerLevel), 20);
  // One slot: everything in sequence either way.
  EXPECT_DOUBLE_EQ(simulate_makespan(runs, s, {}, 1, SchedulePolicy::kPerRun), 23);
  EXPECT_DOUBLE_EQ(simulate_makespan(runs, s, {}, 1, SchedulePolicy::kPerLevel), 23);
}

TEST(Estimate, LongestRemainingPathStartsFirstAndWideRunsTakeTheirGpus) {
  // Two slots. X (5) -> Y (5) is the long chain; P, Q (4 each) are independent. X goes first with P; then Y with Q.
  std::vector<PlannedRun> runs{run("P"), run("Q"), run("X"), run("Y", {"X"})};
  std::map<std::string, double> s{{"P", 4}, {"Q", 4}, {"X", 5}, {"Y", 5}};
  EXPECT_DOUBLE_EQ(simulate_makespan(runs, s, {}, 2, SchedulePolicy::kPerRun), 10);
  // W needs both slots: nothing runs beside it.
  std::vector<PlannedRun> wide{run("W"), run("P")};
  EXPECT_DOUBLE_EQ(simulate_makespan(wide, {{"W", 3}, {"P", 4}}, {{"W", 2}}, 2, SchedulePolicy::kPerRun), 7);
}

TEST(Estimate, DependenciesOutsideTheListAreTakenAsDone) {
  std::vector<PlannedRun> runs{run("J", {"done-elsewhere"})};
  EXPECT_DOUBLE_EQ(simulate_makespan(runs, {{"J", 3}}, {}, 1, SchedulePolicy::kPerLevel), 3);
  EXPECT_DOUBLE_EQ(simulate_makespan({}, {}, {}, 1, SchedulePolicy::kPerRun), 0);
}

namespace {

// The simulator as it was written first (every pending run rescanned at every event, quadratic), with the same
// priority order (stable, longest remaining path first): the reference the event-driven one must agree with.
double reference_makespan(const std::vector<PlannedRun>& runs, const std::map<std::string, double>& seconds,
                          const std::map<std::string, int>& gpus, int slots, SchedulePolicy policy) {
  std::map<std::string, const PlannedRun*> by_id;
  for (const auto& r : runs) by_id[r.id] = &r;
  auto dur = [&](const std::string& id) { return seconds.count(id) ? seconds.at(id) : 0.0; };
  auto need = [&](const std::string& id) { return std::min(slots, std::max(1, gpus.count(id) ? gpus.at(id) : 1)); };
  std::map<std::string, int> level;
  std::function<int(const std::string&)> level_of = [&](const std::string& id) {
    if (level.count(id)) return level[id];
    int l = 0;
    for (const auto& d : by_id.at(id)->depends_on)
      if (by_id.count(d)) l = std::max(l, level_of(d) + 1);
    return level[id] = l;
  };
  std::map<std::string, std::vector<std::string>> dependents;
  for (const auto& r : runs) {
    level_of(r.id);
    for (const auto& d : r.depends_on)
      if (by_id.count(d)) dependents[d].push_back(r.id);
  }
  std::map<std::string, double> tail;
  std::function<double(const std::string&)> tail_of = [&](const std::string& id) {
    if (tail.count(id)) return tail[id];
    double t = 0;
    for (const auto& c : dependents[id]) t = std::max(t, tail_of(c));
    return tail[id] = t + dur(id);
  };
  std::vector<std::string> pending;
  for (const auto& r : runs) pending.push_back(r.id);
  std::stable_sort(pending.begin(), pending.end(), [&](auto& a, auto& b) { return tail_of(a) > tail_of(b); });
  std::map<std::string, double> finish;
  std::map<int, double> level_done;
  std::map<int, int> level_left;
  for (const auto& r : runs) level_left[level[r.id]]++;
  std::vector<std::pair<double, int>> busy;
  double now = 0, makespan = 0;
  int free = slots;
  while (!pending.empty()) {
    bool started = false;
    for (auto it = pending.begin(); it != pending.end();) {
      const std::string id = *it;
      bool ready = policy != SchedulePolicy::kPerLevel || level[id] == 0 ||
                   (level_left[level[id] - 1] == 0 && level_done[level[id] - 1] <= now + 1e-9);
      for (const auto& d : by_id.at(id)->depends_on)
        if (by_id.count(d) && (!finish.count(d) || finish[d] > now + 1e-9)) ready = false;
      if (!ready || need(id) > free) {
        ++it;
        continue;
      }
      finish[id] = now + dur(id);
      busy.push_back({finish[id], need(id)});
      free -= need(id);
      makespan = std::max(makespan, finish[id]);
      level_done[level[id]] = std::max(level_done[level[id]], finish[id]);
      --level_left[level[id]];
      it = pending.erase(it);
      started = true;
    }
    if (pending.empty()) break;
    if (!started || free == 0) {
      now = std::min_element(busy.begin(), busy.end())->first;
      for (auto it = busy.begin(); it != busy.end();)
        if (it->first <= now + 1e-9) {
          free += it->second;
          it = busy.erase(it);
        } else {
          ++it;
        }
    }
  }
  return makespan;
}

}  // namespace

// Random grids (dependency chains, wide runs, dependencies outside the list): the event-driven simulator gives
// exactly what the quadratic one gave, under both policies and any slot count. (With runs of 0 s, runs without an
// estimate, the two may differ slightly: the old one held a 0-s run's slot until the next event; the new one frees
// it at once, so such runs cost nothing.)
TEST(Estimate, EventDrivenSimulatorAgreesWithTheReferenceOnRandomGrids) {
  std::mt19937 rng(7);
  for (int trial = 0; trial < 200; ++trial) {
    const int n = 1 + static_cast<int>(rng() % 40);
    std::vector<PlannedRun> runs;
    std::map<std::string, double> s;
    std::map<std::string, int> g;
    for (int i = 0; i < n; ++i) {
      std::vector<std::string> deps;
      for (int k = 0; k < i; ++k)
        if (rng() % 8 == 0) deps.push_back("r" + std::to_string(k));
      if (rng() % 10 == 0) deps.push_back("elsewhere");
      runs.push_back(run("r" + std::to_string(i), deps));
      s["r" + std::to_string(i)] = static_cast<double>(1 + rng() % 20);
      if (rng() % 5 == 0) g["r" + std::to_string(i)] = 1 + static_cast<int>(rng() % 3);
    }
    std::shuffle(runs.begin(), runs.end(), rng);
    for (int slots : {1, 2, 3, 8})
      for (auto policy : {SchedulePolicy::kPerRun, SchedulePolicy::kPerLevel})
        ASSERT_DOUBLE_EQ(simulate_makespan(runs, s, g, slots, policy), reference_makespan(runs, s, g, slots, policy))
            << "trial " << trial << ", " << slots << " slots, policy " << static_cast<int>(policy);
  }
}

TEST(Estimate, RunsWithoutAnEstimateTakeNoTimeAndNoSlot) {
  // One slot: Z (no estimate) -> D (5), and B (5). Z ends as it starts; D and B then run one after the other.
  std::vector<PlannedRun> runs{run("Z"), run("D", {"Z"}), run("B")};
  EXPECT_DOUBLE_EQ(simulate_makespan(runs, {{"D", 5}, {"B", 5}}, {}, 1, SchedulePolicy::kPerRun), 10);
  EXPECT_DOUBLE_EQ(simulate_makespan(runs, {{"D", 5}, {"B", 5}}, {}, 2, SchedulePolicy::kPerRun), 5);
  EXPECT_DOUBLE_EQ(simulate_makespan(runs, {}, {}, 1, SchedulePolicy::kPerLevel), 0);
}

namespace {

// A one-network grid on a GPU at `precision`, packed `runs_per_gpu` to a GPU, with `device_model` asked for.
Experiment gpu_experiment(const std::string& precision, int runs_per_gpu, const std::string& device_model = "") {
  nlohmann::json j = {
      {"name", "est"},
      {"datasets", {{"d", {{"kind", "lh"}, {"size", 256}, {"synthetic", {{"count", 40}, {"seed", 1}, {"size", 256}}}}}}},
      {"networks", {"hybridgnet"}},
      {"seeds", {1}},
      {"training", {{"epochs", 10}, {"device", "cuda"}, {"precision", precision}}},
      {"resources", {{"gpus", 1}, {"runs_per_gpu", runs_per_gpu}}}};
  if (!device_model.empty()) j["resources"]["device_model"] = device_model;
  return parse_experiment(j, "est.json");
}

Calibration row(const std::string& precision, const std::string& model, int runs_per_gpu, double step_s) {
  Calibration c;
  c.model = "hybridgnet";
  c.kind = "lh";
  c.size = 256;
  c.batch = 4;
  c.threads = 1;
  c.device = "cuda:0";
  c.precision = precision;
  c.device_model = model;
  c.runs_per_gpu = runs_per_gpu;
  c.step_s = step_s;
  c.host = model + " " + precision;
  return c;
}

RunEstimate estimate_one(const Experiment& exp, Store& store, const std::string& ws) {
  const auto runs = expand(exp);
  return estimate_runs(exp, runs, store, ws, 1.0).at(0);
}

}  // namespace

// Calibration rows are kept per precision, device model and runs per GPU, and a run's estimate takes the row of its
// own precision, of the model asked for, measured with its packing.
TEST(Estimate, CalibrationRowsKnowPrecisionDeviceModelAndPacking) {
  test::TempDir d;
  Store store(d / "orchestrator.db");
  CalibrationTable(store).upsert(row("tf32", "NVIDIA H100 80GB HBM3", 1, 0.100));
  CalibrationTable(store).upsert(row("bf16", "NVIDIA H100 80GB HBM3", 1, 0.040));
  ASSERT_EQ(CalibrationTable(store).all().size(), 2u) << "timing bf16 after tf32 keeps both";

  const RunEstimate tf32 = estimate_one(gpu_experiment("tf32", 1), store, d.path.string());
  const RunEstimate bf16 = estimate_one(gpu_experiment("bf16", 1), store, d.path.string());
  EXPECT_NE(tf32.basis.find("tf32"), std::string::npos) << tf32.basis;
  EXPECT_NE(bf16.basis.find("bf16"), std::string::npos) << bf16.basis;
  EXPECT_NE(bf16.basis.find("H100"), std::string::npos) << bf16.basis;
  // 40 images: 28 training images, 7 steps per epoch, 10 epochs: the step time's share differs by 70 x 0.06 s.
  EXPECT_NEAR(tf32.seconds - bf16.seconds, 70 * 0.060, 1e-6);

  // No fp32 row: no estimate (a row of another precision is never used), and it says what is missing.
  const RunEstimate fp32 = estimate_one(gpu_experiment("fp32", 1), store, d.path.string());
  EXPECT_EQ(fp32.seconds, 0);
  EXPECT_NE(fp32.basis.find("fp32"), std::string::npos) << fp32.basis;
  // A row whose precision was not recorded (an older store) serves when there is none of its own, and says so.
  CalibrationTable(store).upsert(row("", "", 1, 0.2));
  const RunEstimate old = estimate_one(gpu_experiment("fp32", 1), store, d.path.string());
  EXPECT_GT(old.seconds, 0);
  EXPECT_NE(old.basis.find("not recorded"), std::string::npos) << old.basis;

  // An A100 grid does not use the H100's rows; with its own, it does.
  EXPECT_EQ(estimate_one(gpu_experiment("bf16", 1, "a100"), store, d.path.string()).seconds, 0);
  CalibrationTable(store).upsert(row("bf16", "NVIDIA A100-SXM4-80GB", 1, 0.080));
  const RunEstimate a100 = estimate_one(gpu_experiment("bf16", 1, "a100"), store, d.path.string());
  EXPECT_NE(a100.basis.find("A100"), std::string::npos) << a100.basis;
  EXPECT_NEAR(a100.seconds - bf16.seconds, 70 * 0.040, 1e-6);

  // Packed four to a GPU: the solo row, with a warning, until a packed timing exists; then that one.
  const RunEstimate solo = estimate_one(gpu_experiment("bf16", 4, "H100"), store, d.path.string());
  EXPECT_NEAR(solo.seconds, bf16.seconds, 1e-6);
  EXPECT_NE(solo.basis.find("--runs-per-gpu 4"), std::string::npos) << solo.basis;
  CalibrationTable(store).upsert(row("bf16", "NVIDIA H100 80GB HBM3", 4, 0.110));
  const RunEstimate packed = estimate_one(gpu_experiment("bf16", 4, "H100"), store, d.path.string());
  EXPECT_NEAR(packed.seconds - bf16.seconds, 70 * 0.070, 1e-6);
  EXPECT_EQ(packed.basis.find("--runs-per-gpu"), std::string::npos) << packed.basis;
}

// A run like a finished one (same network, data set, size, device) is estimated from the finished run's own epochs:
// their mean time (an epoch without a time left out) times the epochs to train, plus its inference time per test image.
TEST(Estimate, FinishedRunsGiveTheirMeanEpochTime) {
  nlohmann::json j = {{"name", "est"},
                      {"datasets", {{"d", {{"kind", "lh"}, {"size", 256}, {"synthetic", {{"count", 40}, {"seed", 1}, {"size", 256}}}}}}},
                      {"networks", {"hybridgnet"}},
                      {"seeds", {1, 2}},
                      {"training", {{"epochs", 10}}}};
  const Experiment exp = parse_experiment(j, "est.json");
  const auto runs = expand(exp);
  ASSERT_EQ(runs.size(), 2u);
  auto estimate_after = [&](double epoch_s) {
    test::TempDir d;
    Store store(d / "orchestrator.db");
    const PlannedRun& done = runs[0];
    record_runs(store, {done});
    RunsTable(store).set_run_state(done.id, "done");
    MetricsTable m(store);
    for (int64_t e = 1; e <= 4; ++e) m.add_epoch_metrics({done.id, 0, e, 1, 1, 1e-4, e == 4 ? NAN : epoch_s});
    m.replace_inference_times(done.id, {{"a", 0.0, 0.0, false, "cpu"}});
    return estimate_runs(exp, {runs[1]}, store, d.path.string(), 1.0).at(0);
  };
  const RunEstimate slow = estimate_after(6.0), fast = estimate_after(3.0);
  EXPECT_NE(fast.basis.find("1 finished run(s)"), std::string::npos) << fast.basis;
  EXPECT_NEAR(slow.seconds - fast.seconds, 10 * 3.0, 1e-9);
}
