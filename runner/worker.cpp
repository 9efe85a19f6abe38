#include "runner/worker.h"

#include <H5public.h>
#include <opencv2/core/version.hpp>
#include "storage/sqlite.h"
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <csignal>
#include <cstdio>
#include <ctime>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <mutex>

#include "core/atomic_file.h"
#include "core/blas.h"
#include "core/control.h"
#include "core/errors.h"
#include "core/process_identity.h"
#include "core/run_settings.h"
#include "core/utc_time.h"
#include "runner/checkpoint.h"
#include "runner/signals.h"
#include "runner/trainer.h"
#include "storage/dataset_file.h"
#include "storage/layout.h"
#include "storage/run_ledger.h"
#include "storage/run_state.h"
#include "storage/store.h"

#ifndef ORCH_GIT_COMMIT
#define ORCH_GIT_COMMIT "unknown"
#endif
#ifndef ORCH_BUILD_TYPE
#define ORCH_BUILD_TYPE "unknown"
#endif

namespace orch::runner {

namespace fs = std::filesystem;

namespace {

class RunLog {
 public:
  RunLog(const std::string& path, bool to_stderr) : out_(path, std::ios::app), to_stderr_(to_stderr) {}
  void line(const std::string& text) {
    std::lock_guard<std::mutex> l(mu_);
    bool cr = !text.empty() && text[0] == '\r';
    std::string t = cr ? text.substr(1) : text;
    out_ << utc_now_text() << " " << t << "\n";
    out_.flush();
    if (to_stderr_) std::cerr << (cr ? "\r\033[K" : "") << t << "\n";
  }

 private:
  std::ofstream out_;
  bool to_stderr_;
  std::mutex mu_;
};

RunSettings load_settings(Store& store, const std::string& run_id) {
  auto run = store.run(run_id);
  if (!run) throw InputError(store.path(), "run", run_id, "no such run in the store (plan or submit the experiment first)");
  nlohmann::json j = nlohmann::json::parse(run->settings_json, nullptr, false);
  if (j.is_discarded()) throw InputError(store.path(), "runs.settings_json", run_id, "not valid JSON");
  return RunSettings::from_json(j, store.path() + ": run " + run_id);
}

std::map<std::string, std::string> provenance(const RunSettings& s, const Trainer& trainer, const std::string& blas,
                                              const std::string& content_digest, const JobEnvironment& job) {
  return {{"git_commit", ORCH_GIT_COMMIT},
          {"build_type", ORCH_BUILD_TYPE},
          {"torch", torch_version()},
          {"blas", blas},
          {"hdf5", std::to_string(H5_VERS_MAJOR) + "." + std::to_string(H5_VERS_MINOR) + "." + std::to_string(H5_VERS_RELEASE)},
          {"sqlite", sqlite::library_version()},
          {"opencv", CV_VERSION},
          {"mpi_built", built_with_mpi() ? "yes" : "no"},
          {"nccl_built", built_with_nccl() ? "yes" : "no"},
          {"host", this_host()},
          {"device", trainer.device()},
          {"communicator", trainer.communicator()},
          {"ranks", std::to_string(trainer.world())},
          {"backend", job.backend()},
          {"job", job.job_id()},
          {"model", trainer.describe()},
          {"dataset_content_digest", content_digest},
          {"settings", s.to_json().dump()}};
}

// Checks that the run's data set exists and was prepared from the settings the run was planned with; returns its
// content digest.
std::string check_dataset(const std::string& data, const RunSettings& s, const std::string& run_id) {
  if (!fs::exists(data)) throw InputError(data, "dataset", s.dataset, "the run's data set has not been prepared");
  DatasetReader reader(data);
  auto src = nlohmann::json::parse(reader.info().sources, nullptr, false);
  std::string recorded = src.is_object() ? src.value("spec_digest", std::string()) : std::string();
  if (recorded != s.dataset_digest)
    throw InputError(data, "spec_digest", recorded,
                     "the data set was prepared from other settings than run " + run_id + " was planned with (" +
                         s.dataset_digest + "); plan the experiment again");
  return reader.info().content_digest;
}

// The verified best checkpoint of the dependency run.
std::string dependency_checkpoint(Store& store, const WorkspaceLayout& layout, const RunSettings& s, const std::string& run_id) {
  auto dep = store.run(s.dependency);
  if (!dep || dep->state != run_state::kDone)
    throw InputError(store.path(), "dependency", s.dependency,
                     "run " + run_id + " needs it finished first (its state: " + (dep ? dep->state : "absent") + ")");
  std::vector<std::string> warnings;
  auto best = CheckpointSeries(layout.checkpoints(s.dependency)).verified_best(&warnings);
  if (!best)
    throw InputError(layout.checkpoints(s.dependency), "dependency", s.dependency,
                     "no valid best checkpoint (" + (warnings.empty() ? std::string("missing") : warnings.back()) + ")");
  return *best;
}

// Agreement of all ranks on rank 0's decision (a code >= 0 means: every rank returns it now).
int agree(Communicator& comm, int code) {
  std::vector<double> v{static_cast<double>(code)};
  comm.allreduce_max(v);
  return static_cast<int>(v[0]);
}

// The claim was taken over (this worker was judged lost): it stopped without publishing anything and exits
// kExitNotClaimed; the run belongs to the worker that took it over.
int fenced(RunLog& log, RunLedger& ledger, bool rank0, const std::string& what) {
  if (rank0) {
    ledger.stop_heartbeat();
    log.line("stopped without writing: another worker holds this run now (" + what + "); exit " +
             std::to_string(kExitNotClaimed));
  }
  return kExitNotClaimed;
}

}  // namespace

bool run_uses_cuda(const std::string& ws, const std::string& run_id) {
  Store store(WorkspaceLayout(ws).store());
  return use_cuda(load_settings(store, run_id).training);
}

int run_worker(const WorkerOptions& opt, Communicator& comm) {
  if (!is_safe_run_id(opt.run_id)) throw InputError("--run", "", opt.run_id, "not a run id ([A-Za-z0-9_.-])");
  if (!opt.job) throw Error("run_worker: no job environment given");
  const bool rank0 = comm.rank() == 0;
  const WorkspaceLayout layout(opt.workspace);
  if (!fs::exists(layout.store()))
    throw InputError(layout.store(), "run", opt.run_id, "no run store in this workspace (plan or submit the experiment first)");
  RunLedger ledger(layout.store(), opt.run_id);
  RunSettings s = load_settings(ledger.store(), opt.run_id);

  // The claim (rank 0), shared with the other ranks.
  int early = -1;
  std::string claim_note;
  if (rank0) {
    const ClaimResult c = ledger.claim(ProcessIdentity::self(), opt.job->job_id(), opt.job->backend(), opt.job->gpu_share(),
                                       control_timeouts().lost_after_s);
    switch (c.outcome) {
      case ClaimResult::kAlreadyDone:
        std::cerr << "run " << opt.run_id << " is already done\n";
        early = kExitOk;
        break;
      case ClaimResult::kCancelled:
      case ClaimResult::kHeld:
        std::cerr << "run " << opt.run_id << " not started: " << c.detail << "\n";
        early = kExitNotClaimed;
        break;
      case ClaimResult::kMissing:
        early = kExitInputError;
        break;
      case ClaimResult::kClaimed:
        claim_note = c.detail;
        break;
    }
  }
  if (int code = agree(comm, early); code >= 0) {
    if (code == kExitInputError) throw InputError(ledger.store().path(), "run", opt.run_id, "no such run in the store");
    return code;
  }

  fs::create_directories(layout.run_dir(opt.run_id));
  if (rank0) remove_stale_temporaries(layout.predictions(opt.run_id));  // the claim makes this the one writer
  RunLog log(layout.run_log(opt.run_id), rank0);
  clear_stop();  // a request seen by an earlier run of this process (train runs dependencies first) is done with
  install_stop_signals();
  std::atomic<bool> claim_lost{false};
  if (rank0) {
    log.line("run " + opt.run_id + ": attempt " + std::to_string(ledger.attempt()) + " on " + this_host() + " (pid " +
             std::to_string(::getpid()) + (opt.job->job_id().empty() ? "" : ", " + opt.job->backend() + " job " + opt.job->job_id()) +
             ")" + (claim_note.empty() ? "" : "; " + claim_note));
    ledger.start_heartbeat(control_timeouts().heartbeat_s, [&](ClaimStanding st) {
      if (st == ClaimStanding::kCancelled) {
        log.line("the run was cancelled: checkpointing and stopping");
        request_stop(SIGTERM);
      } else {
        log.line("the claim on this run was taken over by another worker: stopping without writing");
        claim_lost = true;
      }
    });
  }
  int64_t position_epoch = -1, position_batch = -1;
  try {
    const std::string data = layout.dataset(s.dataset);
    const std::string content_digest = check_dataset(data, s, opt.run_id);
    std::string dep_ckpt;
    if (!s.dependency.empty()) dep_ckpt = dependency_checkpoint(ledger.store(), layout, s, opt.run_id);

    TrainerOptions to;
    to.settings = s;
    if (opt.threads > 0) to.settings.training.threads = opt.threads;
    to.run_id = opt.run_id;
    to.checkpoints_dir = layout.checkpoints(opt.run_id);
    to.predictions_path = layout.predictions(opt.run_id);
    to.dataset_path = data;
    to.dependency_checkpoint = dep_ckpt;
    to.comm = &comm;
    to.progress_bar = opt.progress_bar;
    to.hooks = opt.hooks ? opt.hooks : preloaded_training_hooks();
    to.abandoned = [&] { return claim_lost.load(); };
    if (rank0) to.publish_fence = ledger.fence();
    to.log = [&log](const std::string& l) { log.line(l); };
    to.on_epoch = [&](const EpochRecord& r) {
      position_epoch = r.epoch;
      position_batch = 0;
      if (!ledger.epoch(r.epoch, r.train_loss, r.val_criterion, r.learning_rate, r.seconds)) claim_lost = true;
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
      ledger.started_at(trainer.start_epoch(), trainer.start_batch());
      position_epoch = trainer.start_epoch();
      position_batch = trainer.start_batch();
      ledger.store().set_provenance(opt.run_id, provenance(s, trainer, blas, content_digest, *opt.job));
    }
    TrainOutcome t = trainer.train();
    position_epoch = t.epoch;
    position_batch = t.batch;
    if (claim_lost) {
      log.line("stopped: another worker holds this run now");
      return kExitNotClaimed;
    }
    if (!t.finished) {
      std::string reason = std::string("stopped by ") + signal_name(t.signal) + ", checkpointed at epoch " +
                           std::to_string(t.epoch) + " batch " + std::to_string(t.batch);
      int code = kExitRequeue;
      if (rank0) {
        std::string requeued = opt.job->request_requeue(t.signal);
        if (!requeued.empty()) reason += "; " + requeued;
        ledger.stop_heartbeat();
        const std::string state = ledger.stopped(kExitRequeue, reason, t.epoch, t.batch);
        if (state == run_state::kCancelled) {
          code = kExitNotClaimed;
          log.line(reason + "; the run was cancelled: exit " + std::to_string(code) + " (not requeued)");
        } else if (state.empty()) {
          code = kExitNotClaimed;
          log.line(reason + "; another worker holds this run now: exit " + std::to_string(code));
        } else {
          log.line(reason + "; exit " + std::to_string(code) + " (requeue)");
        }
      }
      return agree(comm, code);
    }
    if (rank0) log.line("training finished: best " + std::to_string(t.best_criterion) + " at epoch " + std::to_string(t.best_epoch));
    EvaluationOutcome e = trainer.evaluate();
    if (rank0) {
      ledger.stop_heartbeat();
      std::vector<InferenceRow> rows;
      for (const auto& x : e.times) rows.push_back({x.image_id, x.seconds, x.launch_seconds, x.cold, e.device});
      if (!ledger.done(e.metrics, rows, t.epoch)) {
        log.line("evaluated, but another worker holds this run now: its results were not recorded");
        return agree(comm, kExitNotClaimed);
      }
      double dice = 0;
      int n = 0;
      for (const auto& m : e.metrics)
        if (m.organ == "lungs") dice += m.dice, ++n;
      char line[160];
      std::snprintf(line, sizeof line, "evaluated %d test images: mean lung Dice %.4f; predictions in %s", n,
                    n ? dice / n : 0.0, e.predictions_path.c_str());
      log.line(line);
    }
    return agree(comm, kExitOk);
  } catch (const AbandonedError& ex) {
    return fenced(log, ledger, rank0, ex.what());
  } catch (const FencedError& ex) {
    return fenced(log, ledger, rank0, ex.what());
  } catch (const std::exception& ex) {
    if (rank0) {
      log.line(std::string("error: ") + ex.what());  // the whole message, backtrace and all
      ledger.stop_heartbeat();
      try {
        if (!claim_lost) ledger.failed(brief_reason(ex.what()), position_epoch, position_batch);
      } catch (const std::exception& again) {
        log.line(std::string("error: could not record the failure in the store: ") + again.what());
      }
    }
    throw;
  }
}

}  // namespace orch::runner
