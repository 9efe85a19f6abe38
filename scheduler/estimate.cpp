#include "scheduler/estimate.h"

#include <algorithm>
#include <cctype>
#include <cmath>
#include <filesystem>
#include <functional>
#include <numeric>
#include <queue>
#include <set>
#include <tuple>
#include <unordered_map>

#include "core/errors.h"
#include "core/progress.h"
#include "core/synth/synth_dataset.h"
#include "scheduler/resources.h"
#include "storage/calibration_table.h"
#include "storage/dataset_file.h"
#include "storage/layout.h"
#include "storage/metrics_table.h"
#include "storage/provenance_table.h"
#include "storage/run_state.h"
#include "storage/runs_table.h"
#include "storage/splits.h"
#include "storage/workspace.h"

namespace orch::scheduler {

namespace fs = std::filesystem;

SplitCounts split_counts_for(const DatasetSpec& spec, const std::string& workspace) {
  SplitCounts c;
  const std::string path = dataset_path(workspace, spec.name);
  try {
    if (fs::exists(path)) {
      auto n = DatasetReader(path).info().split_counts();
      return {n[0], n[1], n[2], true};
    }
  } catch (const std::exception&) {
  }
  if (spec.synthetic) {
    const SynthSummary s = synthetic_split_sizes(spec.synthetic->count);
    return {s.train, s.val, s.test, true};
  }
  try {
    if (!spec.splits.empty() && std::all_of(spec.splits.begin(), spec.splits.end(), [](auto& d) { return fs::is_directory(d); })) {
      for (const auto& [id, s] : read_split_dirs(spec.splits)) (s == Split::kTrain ? c.train : s == Split::kVal ? c.val : c.test)++;
      c.known = true;
    }
  } catch (const std::exception&) {
  }
  return c;
}

namespace {

// The device kind a run's estimate should assume: its training.device, or for "auto" the GPU when calibrations
// from one exist.
DeviceChoice wanted_device(const RunSettings& s, const std::vector<Calibration>& cal) {
  if (s.training.device != DeviceChoice::kAuto) return s.training.device;
  for (const auto& c : cal)
    if (device_class(c.device) == DeviceChoice::kCuda) return DeviceChoice::kCuda;
  return DeviceChoice::kCpu;
}

struct Measured {
  double epoch_s = 0, inference_s = 0;
  int runs = 0;
};

// What finished runs are pooled by: network, data set kind, size, batch, device class and precision.
std::string measure_key(const RunSettings& s, DeviceChoice device) {
  return s.model + "|" + kind_name(s.kind) + "|" + std::to_string(s.size) + "|" + std::to_string(s.training.batch_size) +
         "|" + choice_name(device) + "|" + measured_precision(device, s.training.precision);
}

// Mean seconds per epoch of finished runs, per measure_key(): every epoch of every finished run of a key pooled.
// Three queries for the whole store, none per run.
std::map<std::string, Measured> finished_run_times(Store& store) {
  const auto devices = ProvenanceTable(store).key_of_all("device");
  struct Pool {
    double epoch_sum = 0;
    int64_t epochs = 0;
    std::vector<double> inference;
    int runs = 0;
  };
  std::map<std::string, Pool> pools;
  std::vector<std::string> done;
  std::unordered_map<std::string, std::string> key_of;
  for (const auto& r : RunsTable(store).runs()) {
    if (r.state != run_state::kDone) continue;
    auto j = nlohmann::json::parse(r.settings_json, nullptr, false);
    if (!j.is_object()) continue;
    try {
      RunSettings s = RunSettings::from_json(j, r.run_id);
      auto dev = devices.find(r.run_id);
      const std::string key = measure_key(s, device_class(dev == devices.end() ? "cpu" : dev->second));
      key_of[r.run_id] = key;
      done.push_back(r.run_id);
      ++pools[key].runs;
    } catch (const std::exception&) {
    }
  }
  // A done run's own row of aggregates: its epochs' seconds and its inference time (storage/metrics_table.h).
  for (const auto& a : MetricsTable(store).metric_aggregates(done)) {
    if (!a.organ.empty()) continue;
    Pool& p = pools[key_of[a.run_id]];
    p.epoch_sum += a.epoch_seconds;
    p.epochs += a.epochs_timed;
    if (std::isfinite(a.inference_s)) p.inference.push_back(a.inference_s);
  }
  std::map<std::string, Measured> out;
  for (auto& [key, p] : pools) {
    if (p.epochs == 0) continue;
    Measured m;
    m.epoch_s = p.epoch_sum / static_cast<double>(p.epochs);
    m.inference_s = p.inference.empty() ? 0 : std::accumulate(p.inference.begin(), p.inference.end(), 0.0) / p.inference.size();
    m.runs = p.runs;
    out[key] = m;
  }
  return out;
}

// Whether `text` contains `part`, ignoring case.
bool contains_nocase(const std::string& text, const std::string& part) {
  auto lower = [](std::string v) {
    for (auto& ch : v) ch = static_cast<char>(std::tolower(static_cast<unsigned char>(ch)));
    return v;
  };
  return lower(text).find(lower(part)) != std::string::npos;
}

// What a run's estimate asks of a calibration row beyond its network, kind, size, batch and device class.
struct CalibrationWant {
  DeviceChoice device = DeviceChoice::kCpu;       // the class: kCpu or kCuda
  std::string precision, device_model;            // measured_precision(); "" = any model
  int threads = 1, runs_per_gpu = 1;
};

// The calibration row for a run: its network, kind, size, batch and device class, of `want.device_model` when set,
// then, in this order of preference, of its precision (rather than one not recorded; a row of another precision is
// never used), of its runs per GPU (rather than a solo row), of the closest thread count, the latest measured.
const Calibration* find_calibration(const std::vector<Calibration>& cal, const RunSettings& s, const CalibrationWant& want) {
  const Calibration* best = nullptr;
  auto rank = [&](const Calibration& c) {
    return std::make_tuple(c.precision == want.precision, c.runs_per_gpu == want.runs_per_gpu,
                           -std::abs(c.threads - want.threads), c.measured_at);
  };
  for (const auto& c : cal) {
    if (c.model != s.model || c.kind != kind_name(s.kind) || c.size != s.size || c.batch != s.training.batch_size ||
        device_class(c.device) != want.device)
      continue;
    if (want.device == DeviceChoice::kCuda && !c.precision.empty() && c.precision != want.precision) continue;
    if (!want.device_model.empty() && !contains_nocase(c.device_model, want.device_model)) continue;
    if (c.runs_per_gpu != want.runs_per_gpu && c.runs_per_gpu != 1) continue;
    if (!best || rank(c) > rank(*best)) best = &c;
  }
  return best;
}

// "calibration (host, NVIDIA H200, cuda:0, bf16, 8 thread(s))", and what it could not match.
std::string calibration_basis(const Calibration& c, const CalibrationWant& want) {
  std::string b = "calibration (" + c.host + ", " + (c.device_model.empty() ? "" : c.device_model + ", ") + c.device +
                  (c.precision.empty() ? "" : ", " + c.precision) + ", " + std::to_string(c.threads) + " thread(s))";
  if (want.device == DeviceChoice::kCuda && c.precision.empty()) b += "; its precision was not recorded";
  if (c.runs_per_gpu != want.runs_per_gpu)
    b += "; a solo step time for a run sharing its GPU with " + std::to_string(want.runs_per_gpu - 1) +
         " other(s): it runs longer (orchestrator calibrate EXP --runs-per-gpu " + std::to_string(want.runs_per_gpu) + ")";
  return b;
}

}  // namespace

DeviceChoice device_class(const std::string& device) {
  return device.rfind("cuda", 0) == 0 ? DeviceChoice::kCuda : DeviceChoice::kCpu;
}

std::string measured_precision(DeviceChoice device_class, Precision p) {
  return device_class == DeviceChoice::kCuda ? choice_name(p) : "fp32";
}

std::vector<RunEstimate> estimate_runs(const Experiment& exp, const std::vector<PlannedRun>& runs, Store& store,
                                       const std::string& workspace, double margin) {
  if (runs.empty()) return {};  // a finished grid: nothing to pool finished runs for
  const auto cal = CalibrationTable(store).all();
  const auto finished = finished_run_times(store);
  std::map<std::string, SplitCounts> counts;
  for (const auto& d : exp.datasets) counts[d.name] = split_counts_for(d, workspace);
  ResourceCache resources(exp);
  const bool slurm = exp.backend == BackendKind::kSlurm;
  const std::string device_model = experiment_resources(exp).device_model;
  const int local_share = std::max(1, default_threads() / local_workers_for(exp, 0));
  std::vector<RunEstimate> out;
  out.reserve(runs.size());
  for (const auto& r : runs) {
    RunEstimate e;
    e.run_id = r.id;
    const RunSettings& s = r.settings;
    const RunResources& res = resources.of(s.dataset, s.model);
    e.gpus = res.gpus;
    const int threads = s.training.threads > 0 ? s.training.threads : slurm ? res.cpus : local_share;  // expected_threads
    const DeviceChoice device = wanted_device(s, cal);
    const SplitCounts& n = counts[s.dataset];
    const TrainingSpec& t = s.training;
    const CalibrationWant want{device, measured_precision(device, t.precision), device_model, threads, std::max(1, res.runs_per_gpu)};
    if (auto f = finished.find(measure_key(s, device)); f != finished.end() && n.known) {
      e.seconds = t.epochs * f->second.epoch_s + n.test * f->second.inference_s + kStartupSeconds;
      e.basis = std::to_string(f->second.runs) + " finished run(s) on " + choice_name(device);
    } else if (const Calibration* c = find_calibration(cal, s, want); c && n.known) {
      const double steps = std::ceil(static_cast<double>(n.train) / t.batch_size);
      const double validations = std::ceil(static_cast<double>(t.epochs) / t.validate_every);
      e.seconds = t.epochs * steps * c->step_s + validations * n.val * c->validation_image_s + n.test * c->evaluation_image_s +
                  kStartupSeconds;
      e.basis = calibration_basis(*c, want);
    } else {
      e.basis = !n.known ? "no estimate: the data set's size is unknown (prepare it first)"
                         : "no estimate: no finished run or calibration of " + s.model + " at " + std::to_string(s.size) +
                               " px on " + choice_name(device) + (device == DeviceChoice::kCuda ? " in " + want.precision : "") +
                               (device_model.empty() ? "" : " (" + device_model + ")") + " (orchestrator calibrate EXP)";
    }
    if (e.seconds > 0) e.time_limit = slurm_time(e.seconds * margin);
    out.push_back(e);
  }
  return out;
}

namespace {

// The runs as integer-indexed nodes: duration, GPUs needed (capped at the slots), dependencies left, dependents.
struct RunGraph {
  int n = 0;
  std::vector<double> dur;
  std::vector<int> need, deps_left;
  std::vector<std::vector<int>> dependents;
};

RunGraph run_graph(const std::vector<PlannedRun>& runs, const std::map<std::string, double>& seconds,
                   const std::map<std::string, int>& gpus, int slots) {
  RunGraph g;
  g.n = static_cast<int>(runs.size());
  const size_t n = runs.size();
  std::unordered_map<std::string, int> index;
  index.reserve(n);
  for (size_t i = 0; i < n; ++i) index.emplace(runs[i].id, static_cast<int>(i));
  g.dur.assign(n, 0.0);
  g.need.assign(n, 1);
  g.deps_left.assign(n, 0);
  g.dependents.resize(n);
  for (size_t i = 0; i < n; ++i) {
    const PlannedRun& r = runs[i];
    if (auto it = seconds.find(r.id); it != seconds.end()) g.dur[i] = it->second;
    if (auto it = gpus.find(r.id); it != gpus.end()) g.need[i] = std::min(slots, std::max(1, it->second));
    for (const auto& d : r.depends_on)
      if (auto it = index.find(d); it != index.end()) {
        g.dependents[static_cast<size_t>(it->second)].push_back(static_cast<int>(i));
        ++g.deps_left[i];
      }
  }
  return g;
}

// A topological order (Kahn) and each run's level (its depth in the dependency graph).
std::vector<int> topological_order(const RunGraph& g, std::vector<int>& level) {
  std::vector<int> order, indegree = g.deps_left;
  order.reserve(static_cast<size_t>(g.n));
  level.assign(static_cast<size_t>(g.n), 0);
  for (int i = 0; i < g.n; ++i)
    if (indegree[static_cast<size_t>(i)] == 0) order.push_back(i);
  for (size_t k = 0; k < order.size(); ++k) {
    const size_t u = static_cast<size_t>(order[k]);
    for (int c : g.dependents[u]) {
      level[static_cast<size_t>(c)] = std::max(level[static_cast<size_t>(c)], level[u] + 1);
      if (--indegree[static_cast<size_t>(c)] == 0) order.push_back(c);
    }
  }
  if (static_cast<int>(order.size()) != g.n) throw Error("makespan: the runs' dependencies form a cycle");
  return order;
}

// Each run's rank by its longest path to the end (0: the longest), ties in run order.
std::vector<int> priorities(const RunGraph& g, const std::vector<int>& order) {
  const size_t n = static_cast<size_t>(g.n);
  std::vector<double> tail(n, 0.0);
  for (auto it = order.rbegin(); it != order.rend(); ++it) {
    double t = 0;
    for (int c : g.dependents[static_cast<size_t>(*it)]) t = std::max(t, tail[static_cast<size_t>(c)]);
    tail[static_cast<size_t>(*it)] = t + g.dur[static_cast<size_t>(*it)];
  }
  std::vector<int> by_priority(n);
  std::iota(by_priority.begin(), by_priority.end(), 0);
  std::stable_sort(by_priority.begin(), by_priority.end(),
                   [&](int a, int b) { return tail[static_cast<size_t>(a)] > tail[static_cast<size_t>(b)]; });
  std::vector<int> priority(n);
  for (size_t k = 0; k < n; ++k) priority[static_cast<size_t>(by_priority[k])] = static_cast<int>(k);
  return priority;
}

// List scheduling: at each event, start the ready runs that fit, best priority first; a run becomes ready when its
// dependencies ended (kPerRun) or when the whole level before it did (kPerLevel).
double list_schedule(RunGraph g, const std::vector<int>& level, const std::vector<int>& priority, int slots,
                     SchedulePolicy policy) {
  const int levels = 1 + *std::max_element(level.begin(), level.end());
  std::vector<std::vector<int>> of_level(static_cast<size_t>(levels));
  std::vector<int> level_left(static_cast<size_t>(levels), 0);
  for (int i = 0; i < g.n; ++i) {
    of_level[static_cast<size_t>(level[static_cast<size_t>(i)])].push_back(i);
    ++level_left[static_cast<size_t>(level[static_cast<size_t>(i)])];
  }
  std::set<std::pair<int, int>> ready;  // (priority, run): startable now, best first
  auto make_ready = [&](int i) { ready.insert({priority[static_cast<size_t>(i)], i}); };
  for (int i = 0; i < g.n; ++i)
    if (policy == SchedulePolicy::kPerLevel ? level[static_cast<size_t>(i)] == 0 : g.deps_left[static_cast<size_t>(i)] == 0)
      make_ready(i);
  using Event = std::pair<double, int>;  // (end time, run)
  std::priority_queue<Event, std::vector<Event>, std::greater<Event>> running;
  double now = 0, makespan = 0;
  int free = slots, finished = 0;
  while (finished < g.n) {
    for (auto it = ready.begin(); it != ready.end() && free > 0;) {  // start what fits, best first
      const size_t i = static_cast<size_t>(it->second);
      if (g.need[i] > free) {
        ++it;
        continue;
      }
      running.push({now + g.dur[i], it->second});
      free -= g.need[i];
      makespan = std::max(makespan, now + g.dur[i]);
      it = ready.erase(it);
    }
    if (running.empty()) throw Error("makespan: a run can never start (it needs more GPUs than there are)");
    now = running.top().first;  // advance to the next end; every run ending then frees its slots
    while (!running.empty() && running.top().first <= now + 1e-9) {
      const size_t i = static_cast<size_t>(running.top().second);
      running.pop();
      free += g.need[i];
      ++finished;
      if (policy == SchedulePolicy::kPerLevel) {
        const int l = level[i];
        if (--level_left[static_cast<size_t>(l)] == 0 && l + 1 < levels)
          for (int c : of_level[static_cast<size_t>(l + 1)]) make_ready(c);
      } else {
        for (int c : g.dependents[i])
          if (--g.deps_left[static_cast<size_t>(c)] == 0) make_ready(c);
      }
    }
  }
  return makespan;
}

}  // namespace

// Event-driven list scheduling over integer run indices: O(n log n) in the runs (it rescanned every pending run at
// every event through string-keyed maps: 100k runs took minutes).
double simulate_makespan(const std::vector<PlannedRun>& runs, const std::map<std::string, double>& seconds,
                         const std::map<std::string, int>& gpus, int slots, SchedulePolicy policy) {
  if (runs.empty() || slots < 1) return 0;
  const RunGraph g = run_graph(runs, seconds, gpus, slots);
  std::vector<int> level;
  const std::vector<int> order = topological_order(g, level);
  return list_schedule(g, level, priorities(g, order), slots, policy);
}

int expected_threads(const Experiment& exp, const RunSettings& s) {
  if (s.training.threads > 0) return s.training.threads;
  if (exp.backend == BackendKind::kSlurm) return resources_for(exp, s.dataset, s.model).cpus;
  return std::max(1, default_threads() / local_workers_for(exp, 0));
}

GridEstimate estimate_grid(const GridRequest& g, const std::vector<RunStatus>& plan, const std::vector<int>& gpu_counts) {
  GridEstimate out;
  const Experiment& exp = *g.exp;
  out.margin = experiment_resources(exp).time_margin;
  const std::string path = WorkspaceLayout(g.workspace).store();
  std::unique_ptr<Store> store = fs::exists(path) ? std::make_unique<Store>(path, Store::Mode::kRead) : std::make_unique<Store>(":memory:");
  std::vector<PlannedRun> left;
  std::map<std::string, double> fraction;  // of the run still to go
  for (const auto& st : plan) {
    if (st.state == run_state::kDone) continue;
    left.push_back(st.run);
    const int epochs = std::max(1, st.run.settings.training.epochs);
    fraction[st.run.id] = 1.0 - std::clamp(static_cast<double>(st.progress.epochs_done) / epochs, 0.0, 1.0);
  }
  auto whole = estimate_runs(exp, left, *store, g.workspace, out.margin);
  std::map<std::string, double> seconds;
  std::map<std::string, int> units;
  std::map<std::string, NetworkEstimate> networks;
  ResourceCache resources(exp);
  int packing = 1;  // slots per GPU: the largest runs_per_gpu among the runs left
  for (const auto& r : left) packing = std::max(packing, resources.of(r.settings.dataset, r.settings.model).runs_per_gpu);
  for (size_t i = 0; i < left.size(); ++i) {
    const RunSettings& s = left[i].settings;
    const RunResources& res = resources.of(s.dataset, s.model);
    RunEstimate e = whole[i];
    NetworkEstimate& n = networks[s.model + "/" + s.dataset];
    if (!n.runs) n = {s.model, s.dataset, 0, e.seconds, e.time_limit, res.time, e.basis};
    n.runs++;
    e.seconds *= fraction[e.run_id];
    const int gpus = std::max(1, res.gpus);
    out.gpu_seconds += e.seconds * gpus / std::max(1, res.runs_per_gpu);
    out.run_seconds += e.seconds;
    out.without_estimate += whole[i].seconds <= 0;
    seconds[e.run_id] = e.seconds;
    units[e.run_id] = static_cast<int>(std::ceil(static_cast<double>(gpus * packing) / std::max(1, res.runs_per_gpu)));
    out.runs.push_back(e);
  }
  for (auto& [key, n] : networks) out.networks.push_back(n);
  for (int n : gpu_counts)
    out.makespans.push_back({n, simulate_makespan(left, seconds, units, n * packing, SchedulePolicy::kPerRun),
                             simulate_makespan(left, seconds, units, n * packing, SchedulePolicy::kPerLevel)});
  return out;
}

std::string slurm_time(double seconds) {
  const int64_t minutes = std::max<int64_t>(5, static_cast<int64_t>(std::ceil(seconds / 60)));
  const int64_t d = minutes / 1440, h = (minutes % 1440) / 60, m = minutes % 60;
  char b[32];
  if (d) std::snprintf(b, sizeof b, "%lld-%02lld:%02lld:00", static_cast<long long>(d), static_cast<long long>(h), static_cast<long long>(m));
  else std::snprintf(b, sizeof b, "%02lld:%02lld:00", static_cast<long long>(h), static_cast<long long>(m));
  return b;
}

std::string hours_text(double seconds) {
  char b[32];
  if (seconds < 120) std::snprintf(b, sizeof b, "%.0f s", seconds);
  else if (seconds < 3600) std::snprintf(b, sizeof b, "%.0f min", seconds / 60);
  else std::snprintf(b, sizeof b, "%.1f h", seconds / 3600);
  return b;
}

}  // namespace orch::scheduler
