// The pure half of Slurm dispatch (scheduler/slurm_arrays.h): grouping into arrays, Slurm's array size limit,
// time limits and the job script's text, without Slurm.
#include <gtest/gtest.h>

#include <memory>
#include <regex>

#include "core/errors.h"
#include "scheduler/slurm_arrays.h"
#include "scheduler/slurm_template.h"

using namespace orch;
using namespace orch::scheduler;

namespace {

std::shared_ptr<const RunResources> res(const std::string& mem = "8G", int runs_per_gpu = 1, const std::string& time = "") {
  RunResources r;
  r.mem = mem;
  r.gpus = 1;
  r.cpus = 4;
  r.runs_per_gpu = runs_per_gpu;
  r.time = time;
  return std::make_shared<const RunResources>(r);
}

DispatchItem item(const std::string& id, std::vector<std::string> deps, std::shared_ptr<const RunResources> r) {
  DispatchItem it;
  it.run.id = id;
  it.run.depends_on = std::move(deps);
  it.run.resources = std::move(r);
  it.recorded_state = "new";
  return it;
}

std::vector<std::string> ids(const ArrayGroup& g) {
  std::vector<std::string> out;
  for (const auto* it : g.items) out.push_back(it->run.id);
  return out;
}

}  // namespace

TEST(SlurmArrays, GroupedByDepthResourcesAndExactDependencies) {
  auto gpu = res(), big = res("64G");
  std::vector<DispatchItem> items{
      item("ours.a.s1", {"unet.a.s1"}, gpu),  // listed before what it needs
      item("unet.a.s1", {}, gpu),
      item("unet.b.s1", {}, gpu),
      item("hybrid.a.s1", {}, big),
      item("ours.a.s2", {"unet.a.s1"}, gpu),
      item("ours.b.s1", {"unet.b.s1"}, gpu),
      item("rasterize.a.s1", {"hybrid.outside"}, gpu),  // its dependency is queued from an earlier submit
      item("rasterize.a.s2", {"hybrid.done"}, gpu),     // done long ago: nothing to wait for
  };
  GroupingInput in;
  in.outside_tasks = {{"hybrid.outside", "77_3"}};
  const auto groups = group_into_arrays(items, in);
  ASSERT_EQ(groups.size(), 5u);
  // Depth 0 first, in the order first seen; then the runs that wait for them. A dependency that is done leaves
  // nothing to wait for: rasterize.a.s2 shares the UNets' array.
  EXPECT_EQ(ids(groups[0]), (std::vector<std::string>{"unet.a.s1", "unet.b.s1", "rasterize.a.s2"}));
  EXPECT_EQ(ids(groups[1]), (std::vector<std::string>{"hybrid.a.s1"}));
  EXPECT_EQ(groups[1].res.mem, "64G");
  EXPECT_EQ(ids(groups[2]), (std::vector<std::string>{"rasterize.a.s1"}));
  EXPECT_EQ(groups[2].deps_outside, (std::vector<std::string>{"77_3"}));
  EXPECT_EQ(ids(groups[3]), (std::vector<std::string>{"ours.a.s1", "ours.a.s2"}));
  EXPECT_EQ(groups[3].deps_inside, (std::vector<std::string>{"unet.a.s1"}));
  EXPECT_EQ(ids(groups[4]), (std::vector<std::string>{"ours.b.s1"}));
}

TEST(SlurmArrays, AGroupLargerThanMaxArraySizeIsCut) {
  for (int per_gpu : {1, 2}) {
    auto r = res("8G", per_gpu);
    std::vector<DispatchItem> items;
    for (int i = 0; i < 25; ++i) items.push_back(item("unet.a.s" + std::to_string(i), {}, r));
    GroupingInput in;
    in.max_array_size = 10;  // tasks 0-9; a task holds runs_per_gpu runs
    const auto groups = group_into_arrays(items, in);
    std::vector<size_t> sizes;
    for (const auto& g : groups) sizes.push_back(g.items.size());
    if (per_gpu == 1) EXPECT_EQ(sizes, (std::vector<size_t>{10, 10, 5}));
    else EXPECT_EQ(sizes, (std::vector<size_t>{20, 5}));
    EXPECT_EQ(groups.front().items.front()->run.id, "unet.a.s0");
    EXPECT_EQ(groups.back().items.back()->run.id, "unet.a.s24");
  }
}

TEST(SlurmArrays, ARunThatRanOutOfMemoryAsksForMoreInAnArrayOfItsOwn) {
  auto r = res("4G");
  std::vector<DispatchItem> items{item("a", {}, r), item("b", {}, r)};
  GroupingInput in;
  in.oom_ends = {{"b", 1}};
  in.oom_mem_factor = 1.5;
  const auto groups = group_into_arrays(items, in);
  ASSERT_EQ(groups.size(), 2u);
  EXPECT_EQ(groups[0].res.mem, "4G");
  EXPECT_EQ(groups[1].res.mem, "6144M");
  EXPECT_EQ(ids(groups[1]), (std::vector<std::string>{"b"}));
}

TEST(SlurmArrays, AutoTimeIsTheLongestEstimateAndNeedsOneForEveryRun) {
  auto r = res("8G", 1, "auto");
  std::vector<DispatchItem> items{item("a", {}, r), item("b", {}, r), item("c", {}, r)};
  const auto g = group_into_arrays(items, {}).at(0);
  std::map<std::string, std::string> est{{"a", "09:00:00"}, {"b", "1-02:00:00"}, {"c", "23:00:00"}};
  auto estimate = [&](const PlannedRun& run) { return est.count(run.id) ? est[run.id] : std::string(); };
  EXPECT_EQ(array_time_limit(g, estimate, "x.json"), "1-02:00:00");
  est.erase("c");
  try {
    array_time_limit(g, estimate, "x.json");
    ADD_FAILURE() << "a run without an estimate was given a limit";
  } catch (const InputError& e) {
    EXPECT_NE(std::string(e.what()).find("c has no estimate"), std::string::npos) << e.what();
  }
  auto fixed = res("8G", 1, "12:00:00");
  std::vector<DispatchItem> one{item("d", {}, fixed)};
  EXPECT_EQ(array_time_limit(group_into_arrays(one, {}).at(0), nullptr, "x.json"), "12:00:00");
}

TEST(SlurmArrays, TheJobScriptHasEveryPlaceholderFilled) {
  JobScriptSpec s;
  s.job_name = "orch-demo-20261203T000000-1-g0";
  s.comment = "20261203T000000-1-g0";
  s.time = "2-00:00:00";
  s.tasks = 3;
  s.runs_per_task = 2;
  s.res = *res("16G", 2);
  s.array_throttle = 5;
  s.signal_seconds = 90;
  s.max_attempts = 4;
  const std::string script = render_job_script(slurm_job_template(), s);
  EXPECT_FALSE(std::regex_search(script, std::regex("@[A-Z_]+@"))) << script;
  for (const char* line : {"#SBATCH --job-name=orch-demo-20261203T000000-1-g0", "#SBATCH --array=0-2%5",
                           "#SBATCH --mem=16G", "#SBATCH --time=2-00:00:00", "#SBATCH --gres=gpu:1",
                           "#SBATCH --cpus-per-task=8", "#SBATCH --signal=B:USR1@90"})
    EXPECT_NE(script.find(line), std::string::npos) << line << "\n" << script;
  EXPECT_EQ(script.find("--partition"), std::string::npos) << "no partition asked, none written";
  s.res.ranks = 2;
  EXPECT_NE(render_job_script(slurm_job_template(), s).find("--signal=USR1@90"), std::string::npos)
      << "several ranks: the signal goes to the steps (srun), not the batch shell";
}

// sacctmgr's rows as Slurm 22.05 prints them (-nP: no header, '|' between fields, a trailing '|' on assoc rows):
// the submission limit is the smallest set MaxSubmitJobs/GrpSubmitJobs of the associations and of the QOS jobs run
// under (the default QOS when set, else every allowed one); nothing set is no limit.
TEST(SlurmArrays, TheSubmitLimitIsTheTightestOfAssociationsAndTheirQos) {
  const std::string qos = "normal|||\nlong|50||\nhigh|||\n";
  EXPECT_EQ(submit_limit_from_sacctmgr("|||\n", qos), 0) << "nothing set";
  EXPECT_EQ(submit_limit_from_sacctmgr("300|||\n", qos), 300) << "the association's MaxSubmitJobs";
  EXPECT_EQ(submit_limit_from_sacctmgr("300|200|normal|\n", qos), 200) << "its GrpSubmitJobs is lower";
  EXPECT_EQ(submit_limit_from_sacctmgr("||normal,long|\n", qos), 50) << "no default QOS: every allowed one counts";
  EXPECT_EQ(submit_limit_from_sacctmgr("||normal,long|normal|\n", qos), 0) << "jobs run under the default QOS";
  EXPECT_EQ(submit_limit_from_sacctmgr("||high|long|\n", "long||40|\n"), 40) << "a QOS's GrpSubmitJobs";
  EXPECT_EQ(submit_qos_names("||normal,long|\n|||high|\n"), (std::vector<std::string>{"high", "long", "normal"}));
  EXPECT_EQ(submit_limit_from_sacctmgr("", ""), 0) << "sacctmgr said nothing";
}
