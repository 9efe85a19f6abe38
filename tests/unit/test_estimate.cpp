// The estimate's arithmetic: Slurm time limits and the list-scheduling simulator under both policies.
#include <gtest/gtest.h>

#include "scheduler/estimate.h"

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
