// calibrate: times a few training steps, validation images and test images of every network of an experiment on
// this machine, and stores them (the calibration table) for `plan --estimate`, `status` and resources.time "auto".
#include <unistd.h>

#include <cstdio>
#include <cmath>
#include <ctime>
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
#include "runner/trainer.h"
#include "scheduler/estimate.h"
#include "scheduler/resources.h"
#include "scheduler/submission.h"
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
    out.push_back(c);
  }
  return out;
}

}  // namespace

int cmd_calibrate(const Args& args) {
  po::options_description desc("orchestrator calibrate");
  CommonOptions c;
  po::positional_options_description pos;
  add_common(desc, c, pos);
  int steps = 5, warmup = 2, images = 3, threads = 0;
  std::string import_path;
  desc.add_options()(
      "steps", po::value(&steps)->default_value(5), "training steps timed per network")(
      "warmup", po::value(&warmup)->default_value(2), "steps run first and not timed")(
      "images", po::value(&images)->default_value(3), "validation and test images timed per network")(
      "threads", po::value(&threads)->default_value(0), "torch threads (0: what a worker of this experiment gets)")(
      "import", po::value(&import_path), "store the rows of this JSON file (measured elsewhere) instead of timing here");
  po::variables_map vm;
  if (!parse_options(args, desc, vm, "orchestrator calibrate EXP [--steps N] [--warmup N] [--images N] [--only key=value]...", &pos))
    return 0;
  if (steps < 1 || steps > 10000) throw InputError("--steps", "", std::to_string(steps), "expected 1 to 10000");
  if (warmup < 0 || warmup > 10000) throw InputError("--warmup", "", std::to_string(warmup), "expected 0 to 10000");
  if (images < 1 || images > 10000) throw InputError("--images", "", std::to_string(images), "expected 1 to 10000");
  if (threads < 0 || threads > 1024) throw InputError("--threads", "", std::to_string(threads), "expected 0 to 1024");
  GridContext g = load_grid(c.exp_path, c.sets, c.only, c.workspace);
  const WorkspaceLayout layout(g.workspace);
  if (!import_path.empty()) {
    const auto rows = read_calibration_file(import_path);
    fs::create_directories(g.workspace);
    Store store(layout.store());
    for (const auto& c : rows) store.upsert_calibration(c);
    std::printf("calibrate: %zu timing(s) from %s stored in %s\n", rows.size(), import_path.c_str(), layout.store().c_str());
    return 0;
  }
  fs::create_directories(g.workspace);
  // One timing per network, data set kind, size, batch and thread count: the first run of each.
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
  std::map<std::string, bool> prepared;
  Store store(layout.store());
  ScratchDir scratch;
  std::printf("%-20s %-4s %5s %5s %7s %-10s %12s %14s %14s\n", "network", "kind", "size", "batch", "threads", "device",
              "step", "val. image", "test image");
  for (const auto& [key, run] : first) {
    RunSettings s = run->settings;
    if (!prepared[s.dataset]) ensure_dataset(g.exp, g.exp.dataset(s.dataset), g.workspace, 0, true);
    prepared[s.dataset] = true;
    s.training.threads = threads > 0 ? threads : scheduler::expected_threads(g.exp, s);
    auto comm = runner::make_communicator("single", runner::use_cuda(s.training));
    runner::TrainerOptions to;
    to.settings = s;
    to.run_id = run->id;
    to.checkpoints_dir = scratch.path + "/" + run->id;
    to.predictions_path = scratch.path + "/" + run->id + ".predictions.h5";
    to.dataset_path = layout.dataset(s.dataset);
    to.comm = comm.get();
    to.progress_bar = false;
    to.calibration = true;
    runner::Trainer trainer(to);
    const runner::StepTiming t = trainer.time_steps(warmup, steps, images);
    Calibration c;
    c.model = s.model;
    c.kind = kind_name(s.kind);
    c.device = trainer.device();
    c.size = s.size;
    c.batch = s.training.batch_size;
    c.threads = s.training.threads;
    c.step_s = t.step_s;
    c.validation_image_s = t.validation_image_s;
    c.evaluation_image_s = t.evaluation_image_s;
    c.host = ProcessIdentity::self().host;
    c.measured_at = utc_now_text();
    store.upsert_calibration(c);
    std::printf("%-20s %-4s %5lld %5lld %7lld %-10s %10.1f ms %12.1f ms %12.1f ms\n", c.model.c_str(), c.kind.c_str(),
                static_cast<long long>(c.size), static_cast<long long>(c.batch), static_cast<long long>(c.threads),
                c.device.c_str(), 1000 * c.step_s, 1000 * c.validation_image_s, 1000 * c.evaluation_image_s);
    std::fflush(stdout);
  }
  std::printf("calibrate: %zu timing(s) stored in %s; orchestrator plan %s --estimate uses them\n", first.size(),
              layout.store().c_str(), c.exp_path.c_str());
  return 0;
}

}  // namespace orch::cli
