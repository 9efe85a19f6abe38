#include "runner/worker.h"

#include <H5public.h>
#include <opencv2/core/version.hpp>
#include <spawn.h>
#include <sqlite3.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <ctime>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <mutex>

#include "core/blas.h"
#include "core/errors.h"
#include "core/run_settings.h"
#include "runner/signals.h"
#include "runner/trainer.h"
#include "storage/dataset_file.h"
#include "storage/store.h"
#include "storage/workspace.h"

extern char** environ;

#ifndef ORCH_GIT_COMMIT
#define ORCH_GIT_COMMIT "unknown"
#endif
#ifndef ORCH_BUILD_TYPE
#define ORCH_BUILD_TYPE "unknown"
#endif

namespace orch::runner {

namespace fs = std::filesystem;

std::string run_dir(const std::string& ws, const std::string& id) { return (fs::path(ws) / "runs" / id).string(); }
std::string store_path(const std::string& ws) { return (fs::path(ws) / "orchestrator.db").string(); }

namespace {

std::string hostname() {
  char buf[256] = {0};
  gethostname(buf, sizeof buf - 1);
  return buf;
}

std::string now_utc() {
  std::time_t t = std::time(nullptr);
  char buf[32];
  std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", std::gmtime(&t));
  return buf;
}

// A digits-only job id from Slurm's environment ("123" or "123_4" for an array task), or "".
std::string slurm_job_id() {
  auto digits = [](const char* v) {
    if (!v || !*v) return std::string();
    for (const char* p = v; *p; ++p)
      if (*p < '0' || *p > '9') return std::string();
    return std::string(v);
  };
  std::string array = digits(std::getenv("SLURM_ARRAY_JOB_ID")), task = digits(std::getenv("SLURM_ARRAY_TASK_ID"));
  if (!array.empty() && !task.empty()) return array + "_" + task;
  return digits(std::getenv("SLURM_JOB_ID"));
}

// Runs `scontrol requeue JOB` without a shell. Returns its exit status (or -1).
int scontrol_requeue(const std::string& job) {
  std::vector<std::string> args{"scontrol", "requeue", job};
  std::vector<char*> argv;
  for (auto& a : args) argv.push_back(a.data());
  argv.push_back(nullptr);
  pid_t pid;
  if (posix_spawnp(&pid, "scontrol", nullptr, nullptr, argv.data(), environ) != 0) return -1;
  int status = 0;
  if (waitpid(pid, &status, 0) < 0) return -1;
  return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

class RunLog {
 public:
  RunLog(const std::string& path, bool to_stderr) : out_(path, std::ios::app), to_stderr_(to_stderr) {}
  void line(const std::string& text) {
    std::lock_guard<std::mutex> l(mu_);
    bool cr = !text.empty() && text[0] == '\r';
    std::string t = cr ? text.substr(1) : text;
    out_ << now_utc() << " " << t << "\n";
    out_.flush();
    if (to_stderr_) std::cerr << (cr ? "\r\033[K" : "") << t << "\n";
  }

 private:
  std::ofstream out_;
  bool to_stderr_;
  std::mutex mu_;
};

}  // namespace

static RunSettings load_settings(Store& store, const std::string& ws, const std::string& run_id, RunRecord* rec) {
  auto run = store.run(run_id);
  if (!run) throw InputError(store.path(), "run", run_id, "no such run in the store (plan or submit the experiment first)");
  *rec = *run;
  nlohmann::json j = nlohmann::json::parse(run->settings_json, nullptr, false);
  if (j.is_discarded()) throw InputError(store.path(), "runs.settings_json", run_id, "not valid JSON");
  return RunSettings::from_json(j, store.path() + ": run " + run_id);
}

bool run_uses_cuda(const std::string& ws, const std::string& run_id) {
  Store store(store_path(ws));
  RunRecord rec;
  return use_cuda(load_settings(store, ws, run_id, &rec).training);
}

int run_worker(const WorkerOptions& opt, Communicator& comm) {
  if (!is_safe_run_id(opt.run_id)) throw InputError("--run", "", opt.run_id, "not a run id ([A-Za-z0-9_.-])");
  const bool rank0 = comm.rank() == 0;
  Store store(store_path(opt.workspace));
  RunRecord rec;
  RunSettings s = load_settings(store, opt.workspace, opt.run_id, &rec);
  if (rec.state == "done") {
    if (rank0) std::cerr << "run " << opt.run_id << " is already done\n";
    return 0;
  }
  const std::string data = dataset_path(opt.workspace, s.dataset);
  if (!fs::exists(data)) throw InputError(data, "dataset", s.dataset, "the run's data set has not been prepared");
  std::string content_digest;
  {
    DatasetReader reader(data);
    auto src = nlohmann::json::parse(reader.info().sources, nullptr, false);
    std::string recorded = src.is_object() ? src.value("spec_digest", std::string()) : std::string();
    if (recorded != s.dataset_digest)
      throw InputError(data, "spec_digest", recorded,
                       "the data set was prepared from other settings than run " + opt.run_id + " was planned with (" +
                           s.dataset_digest + "); plan the experiment again");
    content_digest = reader.info().content_digest;
  }
  std::string dep_ckpt;
  if (!s.dependency.empty()) {
    auto dep = store.run(s.dependency);
    if (!dep || dep->state != "done")
      throw InputError(store.path(), "dependency", s.dependency,
                       "run " + opt.run_id + " needs it finished first (its state: " + (dep ? dep->state : "absent") + ")");
    dep_ckpt = (fs::path(run_dir(opt.workspace, s.dependency)) / "checkpoints" / "best.h5").string();
    if (!fs::exists(dep_ckpt)) throw InputError(dep_ckpt, "dependency", s.dependency, "its best checkpoint is missing");
  }

  const std::string dir = run_dir(opt.workspace, opt.run_id);
  fs::create_directories(dir);
  RunLog log((fs::path(dir) / "log.txt").string(), rank0);
  clear_stop();  // a request seen by an earlier run of this process (train runs dependencies first) is done with
  install_stop_signals();
  int64_t attempt = 0;
  const std::string job = slurm_job_id();
  if (rank0) {
    attempt = store.begin_attempt(opt.run_id, hostname(), static_cast<int64_t>(getpid()), job);
    store.set_run_state(opt.run_id, "running");
    log.line("run " + opt.run_id + ": attempt " + std::to_string(attempt) + " (store id) on " + hostname() +
             (job.empty() ? "" : " (Slurm job " + job + ")"));
  }
  try {
    TrainerOptions to;
    to.settings = s;
    if (opt.threads > 0) to.settings.training.threads = opt.threads;
    to.run_id = opt.run_id;
    to.run_dir = dir;
    to.dataset_path = data;
    to.dependency_checkpoint = dep_ckpt;
    to.comm = &comm;
    to.progress_bar = opt.progress_bar;
    to.stop_after_steps = opt.stop_after_steps;
    to.log = [&log](const std::string& l) { log.line(l); };
    to.on_epoch = [&](const EpochRecord& r) {
      store.add_epoch_metrics(EpochMetrics{opt.run_id, attempt, r.epoch, r.train_loss, r.val_criterion, r.learning_rate, r.seconds});
    };
    Trainer trainer(to);
    if (rank0) {
      log.line(s.model + " on " + s.dataset + " (" + kind_name(s.kind) + ", " + std::to_string(s.size) + "²), seed " +
               std::to_string(s.seed) + ", " + std::to_string(trainer.world()) + " rank(s) via " + trainer.communicator() +
               ", device " + trainer.device() + "; " + trainer.describe());
      const std::string blas = loaded_blas();
      if (is_reference_blas(blas))
        log.line("warning: LibTorch runs on the reference BLAS (" + blas +
                 "), training steps up to 2x slower than on OpenBLAS; install libopenblas0-openmp");
      store.set_provenance(opt.run_id, {{"git_commit", ORCH_GIT_COMMIT},
                                        {"build_type", ORCH_BUILD_TYPE},
                                        {"torch", torch_version()},
                                        {"blas", blas},
                                        {"hdf5", std::to_string(H5_VERS_MAJOR) + "." + std::to_string(H5_VERS_MINOR) + "." +
                                                     std::to_string(H5_VERS_RELEASE)},
                                        {"sqlite", sqlite3_libversion()},
                                        {"opencv", CV_VERSION},
                                        {"mpi_built", built_with_mpi() ? "yes" : "no"},
                                        {"nccl_built", built_with_nccl() ? "yes" : "no"},
                                        {"host", hostname()},
                                        {"device", trainer.device()},
                                        {"communicator", trainer.communicator()},
                                        {"ranks", std::to_string(trainer.world())},
                                        {"model", trainer.describe()},
                                        {"dataset_content_digest", content_digest},
                                        {"settings", s.to_json().dump()}});
    }
    TrainOutcome t = trainer.train();
    if (!t.finished) {
      std::string reason = std::string("stopped by ") + signal_name(t.signal) + ", checkpointed at epoch " +
                           std::to_string(t.epoch) + " batch " + std::to_string(t.batch);
      if (rank0) {
        if (opt.slurm_self_requeue && !job.empty() && t.signal != 15) {
          int rc = scontrol_requeue(job);
          reason += rc == 0 ? "; requeued Slurm job " + job : "; scontrol requeue " + job + " failed (" + std::to_string(rc) + ")";
        }
        store.set_run_state(opt.run_id, "queued");
        store.end_attempt(attempt, kExitRequeue, reason);
        log.line(reason + "; exit " + std::to_string(kExitRequeue) + " (requeue)");
      }
      return kExitRequeue;
    }
    if (rank0) log.line("training finished: best " + std::to_string(t.best_criterion) + " at epoch " + std::to_string(t.best_epoch));
    EvaluationOutcome e = trainer.evaluate();
    if (rank0) {
      std::vector<InferenceRow> rows;
      for (const auto& x : e.times) rows.push_back({x.image_id, x.seconds, x.cold, e.device});
      store.replace_test_metrics(opt.run_id, e.metrics);
      store.replace_inference_times(opt.run_id, rows);
      double dice = 0;
      int n = 0;
      for (const auto& m : e.metrics)
        if (m.organ == "lungs") dice += m.dice, ++n;
      store.set_run_state(opt.run_id, "done");
      store.end_attempt(attempt, 0, "done");
      char line[160];
      std::snprintf(line, sizeof line, "evaluated %d test images: mean lung Dice %.4f; predictions in %s", n,
                    n ? dice / n : 0.0, e.predictions_path.c_str());
      log.line(line);
    }
    return 0;
  } catch (const std::exception& ex) {
    if (rank0) {
      log.line(std::string("error: ") + ex.what());
      try {
        store.set_run_state(opt.run_id, "failed");
        store.end_attempt(attempt, 1, ex.what());
      } catch (const std::exception&) {
      }
    }
    throw;
  }
}

}  // namespace orch::runner
