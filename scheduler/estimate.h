// Estimates before submitting, and what is left while a grid runs: how long each run takes, the grid's GPU-hours,
// its makespan on a number of GPUs, and the time limit to ask for per run.
//
// A run's duration comes from measurements of the same network at the same data set kind, size and batch on the
// same kind of device, in this order:
//   1. finished runs in the store: their mean seconds per epoch (epoch_metrics.seconds: training and validation,
//      not the checkpoint write) times the run's epochs, plus its test images times their mean inference time;
//   2. calibration rows (`orchestrator calibrate EXP` times a few training steps, validation images and test images
//      of each network on the machine it runs on): steps per epoch x step time x epochs, plus the validation passes
//      and the evaluation.
// A fixed start-up of kStartupSeconds is added. A run with no measurement has no estimate (and says so).
//
// The makespan comes from list scheduling over the dependency graph on N GPUs (runs needing G GPUs take G), the
// longest remaining path first, under either policy: per run (a run starts when its own dependencies are done, as
// the Slurm backend submits) or per level (a level starts when the whole previous level is done, as one job array
// per level did). Values only; thread-safe.
#pragma once

#include <map>
#include <string>
#include <vector>

#include "core/experiment.h"
#include "scheduler/grid.h"
#include "scheduler/submission.h"
#include "storage/store.h"

namespace orch::scheduler {

constexpr double kStartupSeconds = 5;

struct SplitCounts {
  int train = 0, val = 0, test = 0;
  bool known = false;
};
// From the prepared data set when there is one, else from the synthetic spec or the split lists.
SplitCounts split_counts_for(const DatasetSpec& spec, const std::string& workspace);

struct RunEstimate {
  std::string run_id;
  double seconds = 0;          // 0: no estimate
  std::string basis;           // "3 finished runs", "calibration (host, cpu, 1 thread)", or why there is none
  int gpus = 0;                // GPUs the run asks for (its resources)
  std::string time_limit;      // Slurm time for seconds x margin, rounded up to a minute ("" when unknown)
};

// The torch threads a run's worker will get where the experiment runs: training.threads, else the Slurm task's
// cpus, else the local pool's share of this machine's cores (what calibrate times with, what estimates match).
int expected_threads(const Experiment& exp, const RunSettings& settings);

// The class of a device as timings and provenance record it ("cpu", "cuda", "cuda:0"): kCuda or kCpu.
DeviceChoice device_class(const std::string& device);
// The precision a timing on a device of `device_class` is measured in, as calibration rows record it: the setting
// on a GPU; "fp32" on a CPU, which computes in float32 whatever the setting says.
std::string measured_precision(DeviceChoice device_class, Precision p);

std::vector<RunEstimate> estimate_runs(const Experiment& exp, const std::vector<PlannedRun>& runs, Store& store,
                                       const std::string& workspace, double margin);

enum class SchedulePolicy { kPerRun, kPerLevel };
// Seconds from the first start to the last end of `runs` on `gpus` GPUs (a run with 0 GPUs takes one slot).
// Runs without an estimate count as 0 s (and free their slot at once). Event-driven over integer indices:
// O(n log n) in the runs (100k runs in well under a second).
double simulate_makespan(const std::vector<PlannedRun>& runs, const std::map<std::string, double>& seconds,
                         const std::map<std::string, int>& gpus, int slots, SchedulePolicy policy);

// What is left of a grid (the runs that are not done; a running run counts its epochs still to go), for `plan
// --estimate` and `status`: per run and per network, its GPU-hours, and its makespan on each of `gpu_counts`.
struct NetworkEstimate {
  std::string model, dataset;
  int runs = 0;
  double seconds = 0;       // one whole run
  std::string time_limit;   // what "auto" would request (the estimate x the margin); "" when unknown
  std::string configured;   // resources.time as configured
  std::string basis;
};
struct Makespan {
  int gpus = 0;
  double per_run = 0, per_level = 0;
};
struct GridEstimate {
  std::vector<RunEstimate> runs;  // the runs left, each with its remaining seconds
  std::vector<NetworkEstimate> networks;
  double gpu_seconds = 0;         // sum over runs left of seconds x GPUs / runs per GPU
  double run_seconds = 0;
  int without_estimate = 0;
  double margin = 1.3;
  std::vector<Makespan> makespans;
};
GridEstimate estimate_grid(const GridRequest& request, const std::vector<RunStatus>& plan, const std::vector<int>& gpu_counts);

// "D-HH:MM:SS" (or "HH:MM:SS"), rounded up to a whole minute, at least 5 minutes.
std::string slurm_time(double seconds);
std::string hours_text(double seconds);  // "3.2 h", "45 min", "50 s"

}  // namespace orch::scheduler
