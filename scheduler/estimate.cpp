#include "scheduler/estimate.h"

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <functional>
#include <numeric>
#include <set>

#include "core/errors.h"
#include "core/progress.h"
#include "core/synth/synth_dataset.h"
#include "scheduler/resources.h"
#include "storage/dataset_file.h"
#include "storage/layout.h"
#include "storage/run_state.h"
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

std::string device_class(const std::string& device) { return device.rfind("cuda", 0) == 0 ? "cuda" : "cpu"; }

// The device kind a run's estimate should assume: its training.device, or for "auto" the GPU when calibrations
// from one exist.
std::string wanted_device(const RunSettings& s, const std::vector<Calibration>& cal) {
  if (s.training.device != "auto") return s.training.device;
  for (const auto& c : cal)
    if (device_class(c.device) == "cuda") return "cuda";
  return "cpu";
}

struct Measured {
  double epoch_s = 0, inference_s = 0;
  int runs = 0;
};

// Mean seconds per epoch of finished runs, per (model, kind, size, batch, device class).
std::map<std::string, Measured> finished_run_times(Store& store) {
  std::map<std::string, std::vector<double>> epochs, inference;
  std::map<std::string, std::set<std::string>> runs;
  std::vector<std::string> done;
  std::map<std::string, std::string> key_of;
  for (const auto& r : store.runs()) {
    if (r.state != run_state::kDone) continue;
    auto j = nlohmann::json::parse(r.settings_json, nullptr, false);
    if (!j.is_object()) continue;
    try {
      RunSettings s = RunSettings::from_json(j, r.run_id);
      const auto prov = store.provenance(r.run_id);
      auto dev = prov.find("device");
      const std::string key = s.model + "|" + kind_name(s.kind) + "|" + std::to_string(s.size) + "|" +
                              std::to_string(s.training.batch_size) + "|" + device_class(dev == prov.end() ? "cpu" : dev->second);
      key_of[r.run_id] = key;
      done.push_back(r.run_id);
    } catch (const std::exception&) {
    }
  }
  for (const auto& id : done) {
    const std::string& key = key_of[id];
    for (const auto& e : store.epoch_metrics(id))
      if (e.seconds > 0 && std::isfinite(e.seconds)) epochs[key].push_back(e.seconds);
    runs[key].insert(id);
  }
  for (const auto& a : store.metric_aggregates(done))
    if (a.organ.empty() && std::isfinite(a.inference_s)) inference[key_of[a.run_id]].push_back(a.inference_s);
  std::map<std::string, Measured> out;
  for (auto& [key, v] : epochs) {
    Measured m;
    m.epoch_s = std::accumulate(v.begin(), v.end(), 0.0) / v.size();
    auto& inf = inference[key];
    m.inference_s = inf.empty() ? 0 : std::accumulate(inf.begin(), inf.end(), 0.0) / inf.size();
    m.runs = static_cast<int>(runs[key].size());
    out[key] = m;
  }
  return out;
}

// The calibration of the run's network, kind, size, batch and device class; of the run's thread count when there
// is one, else of the closest.
const Calibration* find_calibration(const std::vector<Calibration>& cal, const RunSettings& s, const std::string& device,
                                    int threads) {
  const Calibration* best = nullptr;
  for (const auto& c : cal) {
    if (c.model != s.model || c.kind != kind_name(s.kind) || c.size != s.size || c.batch != s.training.batch_size ||
        device_class(c.device) != device)
      continue;
    if (!best || std::abs(c.threads - threads) < std::abs(best->threads - threads)) best = &c;
  }
  return best;
}

}  // namespace

std::vector<RunEstimate> estimate_runs(const Experiment& exp, const std::vector<PlannedRun>& runs, Store& store,
                                       const std::string& workspace, double margin) {
  const auto cal = store.calibrations();
  const auto finished = finished_run_times(store);
  std::map<std::string, SplitCounts> counts;
  for (const auto& d : exp.datasets) counts[d.name] = split_counts_for(d, workspace);
  std::vector<RunEstimate> out;
  for (const auto& r : runs) {
    RunEstimate e;
    e.run_id = r.id;
    const RunSettings& s = r.settings;
    e.gpus = resources_for(exp, s.dataset, s.model).gpus;
    const std::string device = wanted_device(s, cal);
    const SplitCounts& n = counts[s.dataset];
    const TrainingSpec& t = s.training;
    const std::string key = s.model + "|" + kind_name(s.kind) + "|" + std::to_string(s.size) + "|" +
                            std::to_string(t.batch_size) + "|" + device;
    if (auto f = finished.find(key); f != finished.end() && n.known) {
      e.seconds = t.epochs * f->second.epoch_s + n.test * f->second.inference_s + kStartupSeconds;
      e.basis = std::to_string(f->second.runs) + " finished run(s) on " + device;
    } else if (const Calibration* c = find_calibration(cal, s, device, expected_threads(exp, s)); c && n.known) {
      const double steps = std::ceil(static_cast<double>(n.train) / t.batch_size);
      const double validations = std::ceil(static_cast<double>(t.epochs) / t.validate_every);
      e.seconds = t.epochs * steps * c->step_s + validations * n.val * c->validation_image_s + n.test * c->evaluation_image_s +
                  kStartupSeconds;
      e.basis = "calibration (" + c->host + ", " + c->device + ", " + std::to_string(c->threads) + " thread(s))";
    } else {
      e.basis = !n.known ? "no estimate: the data set's size is unknown (prepare it first)"
                         : "no estimate: no finished run or calibration of " + s.model + " at " + std::to_string(s.size) +
                               " px on " + device + " (orchestrator calibrate EXP)";
    }
    if (e.seconds > 0) e.time_limit = slurm_time(e.seconds * margin);
    out.push_back(e);
  }
  return out;
}

double simulate_makespan(const std::vector<PlannedRun>& runs, const std::map<std::string, double>& seconds,
                         const std::map<std::string, int>& gpus, int slots, SchedulePolicy policy) {
  if (runs.empty() || slots < 1) return 0;
  std::map<std::string, const PlannedRun*> by_id;
  for (const auto& r : runs) by_id[r.id] = &r;
  auto dur = [&](const std::string& id) {
    auto it = seconds.find(id);
    return it == seconds.end() ? 0.0 : it->second;
  };
  auto need = [&](const std::string& id) {
    auto it = gpus.find(id);
    return std::min(slots, std::max(1, it == gpus.end() ? 1 : it->second));
  };
  // Levels (for the per-level policy) and the longest path from each run to the end (its priority).
  std::map<std::string, int> level;
  std::function<int(const std::string&)> level_of = [&](const std::string& id) {
    if (auto it = level.find(id); it != level.end()) return it->second;
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
    if (auto it = tail.find(id); it != tail.end()) return it->second;
    double t = 0;
    for (const auto& c : dependents[id]) t = std::max(t, tail_of(c));
    return tail[id] = t + dur(id);
  };
  std::vector<std::string> pending;
  for (const auto& r : runs) pending.push_back(r.id);
  std::sort(pending.begin(), pending.end(), [&](auto& a, auto& b) { return tail_of(a) > tail_of(b); });
  std::map<std::string, double> finish;
  std::map<int, double> level_done;  // when every run of a level has finished
  std::map<int, int> level_left;
  for (const auto& r : runs) level_left[level[r.id]]++;
  std::vector<std::pair<double, int>> busy;  // (end time, slots) of running runs
  double now = 0, makespan = 0;
  int free = slots;
  while (!pending.empty()) {
    bool started = false;
    for (auto it = pending.begin(); it != pending.end();) {
      const std::string& id = *it;
      bool ready = true;
      if (policy == SchedulePolicy::kPerLevel) {
        const int l = level[id];
        ready = l == 0 || (level_left[l - 1] == 0 && level_done[l - 1] <= now + 1e-9);
      }
      for (const auto& d : by_id.at(id)->depends_on)
        if (by_id.count(d) && (!finish.count(d) || finish[d] > now + 1e-9)) ready = false;
      const int g = need(id);
      if (!ready || g > free) {
        ++it;
        continue;
      }
      const double end = now + dur(id);
      finish[id] = end;
      busy.push_back({end, g});
      free -= g;
      makespan = std::max(makespan, end);
      const int l = level[id];
      level_done[l] = std::max(level_done[l], end);
      --level_left[l];
      it = pending.erase(it);
      started = true;
    }
    if (pending.empty()) break;
    if (!started || free == 0) {  // advance to the next end
      if (busy.empty()) throw Error("makespan: a run can never start (a dependency outside the grid?)");
      auto next = std::min_element(busy.begin(), busy.end());
      now = next->first;
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

int expected_threads(const Experiment& exp, const RunSettings& s) {
  if (s.training.threads > 0) return s.training.threads;
  if (backend_for(exp, "") == "slurm") return resources_for(exp, s.dataset, s.model).cpus;
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
  int packing = 1;  // slots per GPU: the largest runs_per_gpu among the runs left
  for (const auto& r : left) packing = std::max(packing, resources_for(exp, r.settings.dataset, r.settings.model).runs_per_gpu);
  for (size_t i = 0; i < left.size(); ++i) {
    const RunSettings& s = left[i].settings;
    const RunResources res = resources_for(exp, s.dataset, s.model);
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
