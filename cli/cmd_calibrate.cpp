// calibrate: times a few training steps, validation images and test images of every network of an experiment on
// this machine, and stores them (the calibration table) for `plan --estimate`, `status` and resources.time "auto".
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <cerrno>
#include <cmath>
#include <cstring>
#include <ctime>
#include <algorithm>
#include <fstream>
#include <filesystem>
#include <map>

#include "cli/grid_ops.h"
#include "cli/options.h"
#include "core/json_input.h"
#include "core/process_identity.h"
#include "core/progress.h"
#include "core/utc_time.h"
#include "models/catalogue.h"
#include "runner/communicator.h"
#include "runner/environment.h"
#include "runner/trainer.h"
#include "scheduler/estimate.h"
#include "scheduler/resources.h"
#include "scheduler/submission.h"
#include "storage/calibration_table.h"
#include "storage/layout.h"
#include "storage/store.h"
#include "storage/workspace.h"

namespace orch::cli {

namespace fs = std::filesystem;

namespace {

// A scratch folder for the trainer's checkpoints (calibration writes none; the trainer wants the folder).
struct ScratchDir {
  std::string path;
  ScratchDir() {
    path = (fs::temp_directory_path() / ("orchestrator-calibrate-" + std::to_string(::getpid()))).string();
    fs::create_directories(path);
  }
  ~ScratchDir() {
    std::error_code ec;
    fs::remove_all(path, ec);
  }
};

// Calibration rows measured elsewhere (a GPU machine's bench/gpu script writes them): a JSON list of objects with
// model, kind, size, batch, threads, device, step_s, validation_image_s, evaluation_image_s, host. Validated
// field by field; InputError names the file, the row and the field.
std::vector<Calibration> read_calibration_file(const std::string& path) {
  nlohmann::json doc = read_json_input(path, "the calibration file");
  if (doc.is_object() && doc.contains("calibration")) doc = doc["calibration"];
  if (!doc.is_array()) throw InputError(path, "", "", "expected a list of calibration rows (or {\"calibration\": [...]})");
  std::vector<Calibration> out;
  for (size_t i = 0; i < doc.size(); ++i) {
    const auto& r = doc[i];
    const std::string at = "[" + std::to_string(i) + "]";
    if (!r.is_object()) throw InputError(path, at, r.dump(), "expected an object");
    auto text = [&](const char* k) {
      if (!r.contains(k) || !r[k].is_string() || r[k].get<std::string>().empty())
        throw InputError(path, at + "." + k, r.contains(k) ? r[k].dump() : "missing", "expected a non-empty string");
      return r[k].get<std::string>();
    };
    auto integer = [&](const char* k, int64_t lo, int64_t hi) {
      int64_t v = 0;
      if (!r.contains(k) || !json_int64(r[k], &v) || v < lo || v > hi)
        throw InputError(path, at + "." + k, r.contains(k) ? r[k].dump() : "missing",
                         "expected an integer from " + std::to_string(lo) + " to " + std::to_string(hi));
      return v;
    };
    auto seconds = [&](const char* k) {
      if (!r.contains(k) || !r[k].is_number() || !std::isfinite(r[k].get<double>()) || r[k].get<double>() < 0 ||
          r[k].get<double>() > 86400)
        throw InputError(path, at + "." + k, r.contains(k) ? r[k].dump() : "missing", "expected seconds from 0 to 86400");
      return r[k].get<double>();
    };
    Calibration c;
    c.model = text("model");
    if (!models::find_network(c.model)) throw InputError(path, at + ".model", c.model, "not a network of the catalogue");
    c.kind = text("kind");
    if (c.kind != "lh" && c.kind != "l") throw InputError(path, at + ".kind", c.kind, "expected 'lh' or 'l'");
    c.size = integer("size", 64, 16384);
    c.batch = integer("batch", 1, 4096);
    c.threads = integer("threads", 1, 1024);
    c.device = text("device");
    c.step_s = seconds("step_s");
    c.validation_image_s = seconds("validation_image_s");
    c.evaluation_image_s = seconds("evaluation_image_s");
    c.host = r.contains("host") && r["host"].is_string() ? r["host"].get<std::string>() : path;
    // Optional: rows from before these were recorded leave them out ("not recorded", one run per GPU).
    if (r.contains("precision")) {
      c.precision = text("precision");
      if (!choice_from<Precision>(c.precision))
        throw InputError(path, at + ".precision", c.precision, choice_expectation<Precision>());
    }
    if (r.contains("device_model")) c.device_model = text("device_model");
    if (r.contains("runs_per_gpu")) c.runs_per_gpu = integer("runs_per_gpu", 1, 64);
    out.push_back(c);
  }
  return out;
}

// Times one network of the grid here: a Trainer in calibration mode over the run's prepared data set.
runner::StepTiming time_network(RunSettings s, const std::string& run_id, const WorkspaceLayout& layout,
                                const std::string& scratch, int warmup, int steps, int images, std::string* device) {
  auto comm = runner::make_communicator(CommunicatorKind::kSingle, runner::use_cuda(s.training));
  runner::TrainerOptions to;
  to.settings = s;
  to.run_id = run_id;
  to.checkpoints_dir = scratch + "/" + run_id;
  to.predictions_path = scratch + "/" + run_id + ".predictions.h5";
  to.dataset_path = layout.dataset(s.dataset);
  to.comm = comm.get();
  to.progress_bar = false;
  to.calibration = true;
  runner::Trainer trainer(to);
  *device = trainer.device();
  return trainer.time_steps(warmup, steps, images);
}

// --runs-per-gpu N: N copies of this command, each timing the one network at once on the same device (as N packed
// workers share a GPU), each writing its timing to a file; their mean is the packed timing.
runner::StepTiming time_packed(const Args& args, const scheduler::PlannedRun& run, int n, const std::string& scratch,
                               std::string* device) {
  const std::string self = fs::read_symlink("/proc/self/exe").string();
  std::vector<pid_t> pids;
  for (int k = 0; k < n; ++k) {
    std::vector<std::string> a{self, "calibrate"};
    for (const auto& x : args) a.push_back(x);
    for (const std::string& x : {std::string("--packed-run"), run.id, std::string("--packed-child"),
                                 scratch + "/packed" + std::to_string(k) + ".json"})
      a.push_back(x);
    std::vector<char*> argv;
    for (auto& x : a) argv.push_back(x.data());
    argv.push_back(nullptr);
    pid_t pid = 0;
    if (posix_spawn(&pid, self.c_str(), nullptr, nullptr, argv.data(), environ) != 0)
      throw Error("calibrate: cannot start " + self + ": " + std::strerror(errno));
    pids.push_back(pid);
  }
  int failed = 0;
  for (pid_t pid : pids) {
    int status = 0;
    if (waitpid(pid, &status, 0) < 0 || !WIFEXITED(status) || WEXITSTATUS(status) != 0) ++failed;
  }
  if (failed) throw Error("calibrate: " + std::to_string(failed) + " of " + std::to_string(n) + " packed timings of " +
                          run.settings.model + " failed (their messages are above)");
  runner::StepTiming mean;
  for (int k = 0; k < n; ++k) {
    const auto j = read_json_input(scratch + "/packed" + std::to_string(k) + ".json", "a packed timing");
    mean.step_s += j.at("step_s").get<double>() / n;
    mean.validation_image_s += j.at("validation_image_s").get<double>() / n;
    mean.evaluation_image_s += j.at("evaluation_image_s").get<double>() / n;
    *device = j.at("device").get<std::string>();
  }
  return mean;
}

// What `calibrate` was asked (its options, checked).
struct CalibrateOptions {
  int steps = 5, warmup = 2, images = 3, threads = 0, runs_per_gpu = 1;
  std::string import_path, packed_child, packed_run;
  void validate() const {
    auto within = [](const char* flag, int v, int lo, int hi) {
      if (v < lo || v > hi)
        throw InputError(flag, "", std::to_string(v), "expected " + std::to_string(lo) + " to " + std::to_string(hi));
    };
    within("--steps", steps, 1, 10000);
    within("--warmup", warmup, 0, 10000);
    within("--images", images, 1, 10000);
    within("--threads", threads, 0, 1024);
    within("--runs-per-gpu", runs_per_gpu, 1, 64);
  }
};

// One run per network, data set kind, size, batch and thread count: the first of each that --only keeps.
std::map<std::string, const scheduler::PlannedRun*> runs_to_time(const GridContext& g, int threads) {
  std::map<std::string, const scheduler::PlannedRun*> first;
  for (const auto& r : g.grid) {
    if (!g.only.matches(r)) continue;
    const RunSettings& s = r.settings;
    const int t = threads > 0 ? threads : scheduler::expected_threads(g.exp, s);
    first.emplace(s.model + "|" + kind_name(s.kind) + "|" + std::to_string(s.size) + "|" +
                      std::to_string(s.training.batch_size) + "|" + std::to_string(t),
                  &r);
  }
  if (first.empty()) throw InputError("--only", "", "", "no run of the experiment matches");
  return first;
}

// One of time_packed()'s copies: times --packed-run's network and writes the timing to --packed-child.
void time_packed_child(const GridContext& g, const WorkspaceLayout& layout, const CalibrateOptions& o) {
  auto it = std::find_if(g.grid.begin(), g.grid.end(), [&](const auto& r) { return r.id == o.packed_run; });
  if (it == g.grid.end()) throw InputError("--packed-run", "", o.packed_run, "not a run of the experiment");
  RunSettings s = it->settings;
  s.training.threads = o.threads > 0 ? o.threads : scheduler::expected_threads(g.exp, s);
  ScratchDir scratch;
  std::string device;
  const runner::StepTiming t = time_network(s, it->id, layout, scratch.path, o.warmup, o.steps, o.images, &device);
  std::ofstream(o.packed_child) << nlohmann::json{{"step_s", t.step_s}, {"validation_image_s", t.validation_image_s},
                                                  {"evaluation_image_s", t.evaluation_image_s}, {"device", device}};
}

// The row a timing makes: the run's key, what was measured, where, in which precision and packing.
Calibration calibration_row(const RunSettings& s, const runner::StepTiming& t, const std::string& device, int runs_per_gpu) {
  Calibration c;
  c.model = s.model;
  c.kind = kind_name(s.kind);
  c.size = s.size;
  c.batch = s.training.batch_size;
  c.threads = s.training.threads;
  c.device = device;
  c.step_s = t.step_s;
  c.validation_image_s = t.validation_image_s;
  c.evaluation_image_s = t.evaluation_image_s;
  c.host = ProcessIdentity::self().host;
  c.measured_at = utc_now_text();
  c.precision = scheduler::measured_precision(scheduler::device_class(device), s.training.precision);
  c.device_model = runner::device_model(device);
  c.runs_per_gpu = runs_per_gpu;
  return c;
}

void print_row(const Calibration& c) {
  std::printf("%-20s %-4s %5lld %5lld %7lld %-10s %5s %4lld %10.1f ms %12.1f ms %12.1f ms\n", c.model.c_str(),
              c.kind.c_str(), static_cast<long long>(c.size), static_cast<long long>(c.batch),
              static_cast<long long>(c.threads), c.device.c_str(), c.precision.c_str(),
              static_cast<long long>(c.runs_per_gpu), 1000 * c.step_s, 1000 * c.validation_image_s,
              1000 * c.evaluation_image_s);
  std::fflush(stdout);
}

}  // namespace

int cmd_calibrate(const Args& args) {
  po::options_description desc("orchestrator calibrate");
  CommonOptions c;
  po::positional_options_description pos;
  add_common(desc, c, pos);
  CalibrateOptions o;
  desc.add_options()(
      "steps", po::value(&o.steps)->default_value(5), "training steps timed per network")(
      "warmup", po::value(&o.warmup)->default_value(2), "steps run first and not timed")(
      "images", po::value(&o.images)->default_value(3), "validation and test images timed per network")(
      "threads", po::value(&o.threads)->default_value(0), "torch threads (0: what a worker of this experiment gets)")(
      "runs-per-gpu", po::value(&o.runs_per_gpu)->default_value(1),
      "time this many copies of each network at once on one device (the step time of runs packed on a GPU)")(
      "packed-child", po::value(&o.packed_child), "(internal) time --packed-run and write the timing to this file")(
      "packed-run", po::value(&o.packed_run), "(internal) the run whose network --packed-child times")(
      "import", po::value(&o.import_path), "store the rows of this JSON file (measured elsewhere) instead of timing here");
  po::variables_map vm;
  if (!parse_options(args, desc, vm, "orchestrator calibrate EXP [--steps N] [--warmup N] [--images N] [--runs-per-gpu N] [--only key=value]...", &pos))
    return 0;
  o.validate();
  GridContext g = load_grid(c.exp_path, c.sets, c.only, c.workspace);
  const WorkspaceLayout layout(g.workspace);
  fs::create_directories(g.workspace);
  if (!o.import_path.empty()) {
    const auto rows = read_calibration_file(o.import_path);
    Store store(layout.store());
    CalibrationTable table(store);
    for (const auto& row : rows) table.upsert(row);
    std::printf("calibrate: %zu timing(s) from %s stored in %s\n", rows.size(), o.import_path.c_str(), layout.store().c_str());
    return 0;
  }
  if (!o.packed_child.empty()) {
    time_packed_child(g, layout, o);
    return 0;
  }
  const auto first = runs_to_time(g, o.threads);
  std::map<std::string, bool> prepared;
  Store store(layout.store());
  ScratchDir scratch;
  std::printf("%-20s %-4s %5s %5s %7s %-10s %5s %4s %12s %14s %14s\n", "network", "kind", "size", "batch", "threads",
              "device", "prec.", "runs", "step", "val. image", "test image");
  for (const auto& [key, run] : first) {
    RunSettings s = run->settings;
    if (!prepared[s.dataset]) ensure_dataset(g.exp, g.exp.dataset(s.dataset), g.workspace, 0, true);
    prepared[s.dataset] = true;
    s.training.threads = o.threads > 0 ? o.threads : scheduler::expected_threads(g.exp, s);
    std::string device;
    const runner::StepTiming t =
        o.runs_per_gpu > 1 ? time_packed(args, *run, o.runs_per_gpu, scratch.path, &device)
                           : time_network(s, run->id, layout, scratch.path, o.warmup, o.steps, o.images, &device);
    const Calibration row = calibration_row(s, t, device, o.runs_per_gpu);
    CalibrationTable(store).upsert(row);
    print_row(row);
  }
  std::printf("calibrate: %zu timing(s) stored in %s; orchestrator plan %s --estimate uses them\n", first.size(),
              layout.store().c_str(), c.exp_path.c_str());
  return 0;
}

}  // namespace orch::cli
