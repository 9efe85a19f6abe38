#include "runner/worker.h"

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
#include "runner/environment.h"
#include "runner/signals.h"
#include "runner/trainer.h"
#include "storage/claims_table.h"
#include "storage/dataset_file.h"
#include "storage/layout.h"
#include "storage/provenance_table.h"
#include "storage/run_ledger.h"
#include "storage/run_state.h"
#include "storage/runs_table.h"
#include "storage/store.h"


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
  auto run = RunsTable(store).run(run_id);
  if (!run) throw InputError(store.path(), "run", run_id, "no such run in the store (plan or submit the experiment first)");
  nlohmann::json j = nlohmann::json::parse(run->settings_json, nullptr, false);
  if (j.is_discarded()) throw InputError(store.path(), "runs.settings_json", run_id, "not valid JSON");
  return RunSettings::from_json(j, store.path() + ": run " + run_id);
}

std::map<std::string, std::string> provenance(const RunSettings& s, const Trainer& trainer, const std::string& blas,
                                              const std::string& content_digest, const JobEnvironment& job) {
  std::map<std::string, std::string> out;
  for (const auto& [k, v] : environment_facts())  // the build and its libraries (runner/environment.h)
    if (k != "cuda_available" && k != "gpus" && k.rfind("gpu", 0) != 0) out[k] = v;
  out["blas"] = blas;
  const std::map<std::string, std::string> run = {
          {"host", this_host()},
          {"device", trainer.device()},
          {"communicator", trainer.communicator()},
          {"ranks", std::to_string(trainer.world())},
          {"backend", job.backend()},
          {"job", job.job_id()},
          {"model", trainer.describe()},
          {"dataset_content_digest", content_digest},
          {"settings", s.to_json().dump()}};
  out.insert(run.begin(), run.end());
  return out;
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
  auto dep = RunsTable(store).run(s.dependency);
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

namespace {

// One attempt of a run in this process: the claim, the log and heartbeat, training, evaluation, and what is
// recorded at each end. run_worker() calls the steps in order.
class Attempt {
 public:
  Attempt(const WorkerOptions& opt, Communicator& comm)
      : opt_(opt), comm_(comm), rank0_(comm.rank() == 0), layout_(opt.workspace), ledger_(layout_.store(), opt.run_id),
        s_(load_settings(ledger_.store(), opt.run_id)) {}

  // The claim (rank 0), shared with the other ranks: an exit code when this worker is not to train (-1: train).
  int claim() {
    int early = -1;
    if (rank0_) {
      const ClaimResult c = ledger_.claim(ProcessIdentity::self(), opt_.job->job_id(), opt_.job->backend(),
                                          opt_.job->gpu_share(), control_timeouts().lost_after_s);
      switch (c.outcome) {
        case ClaimResult::kAlreadyDone:
          std::cerr << "run " << opt_.run_id << " is already done\n";
          early = kExitOk;
          break;
        case ClaimResult::kCancelled:
        case ClaimResult::kHeld:
          std::cerr << "run " << opt_.run_id << " not started: " << c.detail << "\n";
          early = kExitNotClaimed;
          break;
        case ClaimResult::kMissing:
          early = kExitInputError;
          break;
        case ClaimResult::kClaimed:
          claim_note_ = c.detail;
          break;
      }
    }
    const int code = agree(comm_, early);
    if (code == kExitInputError) throw InputError(ledger_.store().path(), "run", opt_.run_id, "no such run in the store");
    return code;
  }

  // The run's folder and log, the stop signals, and (rank 0) the heartbeat that learns of a cancel or a takeover.
  void open_log() {
    fs::create_directories(layout_.run_dir(opt_.run_id));
    if (rank0_) remove_stale_temporaries(layout_.predictions(opt_.run_id), *opt_.env);  // the claim makes this the one writer
    log_ = std::make_unique<RunLog>(layout_.run_log(opt_.run_id), rank0_);
    clear_stop();  // a request seen by an earlier run of this process (train runs dependencies first) is done with
    install_stop_signals();
    if (!rank0_) return;
    log_->line("run " + opt_.run_id + ": attempt " + std::to_string(ledger_.attempt()) + " on " + this_host() + " (pid " +
               std::to_string(::getpid()) +
               (opt_.job->job_id().empty() ? "" : ", " + opt_.job->backend() + " job " + opt_.job->job_id()) + ")" +
               (claim_note_.empty() ? "" : "; " + claim_note_));
    ledger_.start_heartbeat(control_timeouts().heartbeat_s, [this](ClaimStanding st) {
      if (st == ClaimStanding::kCancelled) {
        log_->line("the run was cancelled: checkpointing and stopping");
        request_stop(SIGTERM);
      } else {
        log_->line("the claim on this run was taken over by another worker: stopping without writing");
        claim_lost_ = true;
      }
    });
  }

  // Trains and evaluates; the exit code. Failures are recorded (rank 0) and rethrown.
  int run() {
    try {
      const std::string data = layout_.dataset(s_.dataset);
      const std::string content_digest = check_dataset(data, s_, opt_.run_id);
      Trainer trainer(trainer_options(data));
      if (rank0_) announce(trainer, content_digest);
      TrainOutcome t = trainer.train();
      position_epoch_ = t.epoch;
      position_batch_ = t.batch;
      if (claim_lost_) {
        log_->line("stopped: another worker holds this run now");
        return kExitNotClaimed;
      }
      if (!t.finished) return stopped(t);
      if (rank0_)
        log_->line("training finished" + (t.stopped_early ? " early, after epoch " + std::to_string(t.epoch) : std::string()) +
                   ": best " + std::to_string(t.best_criterion) + " at epoch " + std::to_string(t.best_epoch));
      return evaluated(trainer.evaluate(), t.epoch);
    } catch (const AbandonedError& ex) {
      return fenced(*log_, ledger_, rank0_, ex.what());
    } catch (const FencedError& ex) {
      return fenced(*log_, ledger_, rank0_, ex.what());
    } catch (const std::exception& ex) {
      if (rank0_) record_failure(ex);
      throw;
    }
  }

 private:
  TrainerOptions trainer_options(const std::string& data) {
    TrainerOptions to;
    to.settings = s_;
    if (opt_.threads > 0) to.settings.training.threads = opt_.threads;
    to.run_id = opt_.run_id;
    to.checkpoints_dir = layout_.checkpoints(opt_.run_id);
    to.predictions_path = layout_.predictions(opt_.run_id);
    to.dataset_path = data;
    if (!s_.dependency.empty()) to.dependency_checkpoint = dependency_checkpoint(ledger_.store(), layout_, s_, opt_.run_id);
    to.comm = &comm_;
    to.progress_bar = opt_.progress_bar;
    to.hooks = opt_.hooks ? opt_.hooks : preloaded_training_hooks();
    to.env = opt_.env;
    to.abandoned = [this] { return claim_lost_.load(); };
    if (rank0_) to.publish_fence = ledger_.fence();
    to.log = [this](const std::string& l) { log_->line(l); };
    to.on_epoch = [this](const EpochRecord& r) {
      position_epoch_ = r.epoch;
      position_batch_ = 0;
      if (!ledger_.epoch(r.epoch, r.train_loss, r.val_criterion, r.learning_rate, r.seconds)) claim_lost_ = true;
    };
    return to;
  }

  // What runs where, the BLAS warning, the attempt's starting position and the run's provenance (rank 0).
  void announce(const Trainer& trainer, const std::string& content_digest) {
    log_->line(s_.model + " on " + s_.dataset + " (" + kind_name(s_.kind) + ", " + std::to_string(s_.size) + "²), seed " +
               std::to_string(s_.seed) + ", " + std::to_string(trainer.world()) + " rank(s) via " + trainer.communicator() +
               ", device " + trainer.device() + "; " + trainer.describe());
    const std::string blas = loaded_blas();
    if (is_reference_blas(blas))
      log_->line("warning: LibTorch runs on the reference BLAS (" + blas +
                 "), training steps up to 2x slower than on OpenBLAS; install libopenblas0-openmp");
    ledger_.started_at(trainer.start_epoch(), trainer.start_batch());
    position_epoch_ = trainer.start_epoch();
    position_batch_ = trainer.start_batch();
    ProvenanceTable(ledger_.store()).set(opt_.run_id, provenance(s_, trainer, blas, content_digest, *opt_.job));
  }

  // Stopped by a signal at a checkpoint: requeue (75), or not when the run was cancelled or taken over meanwhile.
  int stopped(const TrainOutcome& t) {
    std::string reason = std::string("stopped by ") + signal_name(t.signal) + ", checkpointed at epoch " +
                         std::to_string(t.epoch) + " batch " + std::to_string(t.batch);
    int code = kExitRequeue;
    if (rank0_) {
      std::string requeued = opt_.job->request_requeue(t.signal);
      if (!requeued.empty()) reason += "; " + requeued;
      ledger_.stop_heartbeat();
      const std::string state = ledger_.stopped(kExitRequeue, reason, t.epoch, t.batch);
      if (state == run_state::kCancelled) {
        code = kExitNotClaimed;
        log_->line(reason + "; the run was cancelled: exit " + std::to_string(code) + " (not requeued)");
      } else if (state.empty()) {
        code = kExitNotClaimed;
        log_->line(reason + "; another worker holds this run now: exit " + std::to_string(code));
      } else {
        log_->line(reason + "; exit " + std::to_string(code) + " (requeue)");
      }
    }
    return agree(comm_, code);
  }

  // The test split's metrics and times recorded with the done state (fenced), and the mean lung Dice logged.
  int evaluated(const EvaluationOutcome& e, int64_t epoch) {
    if (rank0_) {
      ledger_.stop_heartbeat();
      std::vector<InferenceRow> rows;
      for (const auto& x : e.times) rows.push_back({x.image_id, x.seconds, x.launch_seconds, x.cold, e.device});
      if (!ledger_.done(e.metrics, rows, epoch)) {
        log_->line("evaluated, but another worker holds this run now: its results were not recorded");
        return agree(comm_, kExitNotClaimed);
      }
      double dice = 0;
      int n = 0;
      for (const auto& m : e.metrics)
        if (m.organ == "lungs") dice += m.dice, ++n;
      char line[160];
      std::snprintf(line, sizeof line, "evaluated %d test images: mean lung Dice %.4f; predictions in %s", n,
                    n ? dice / n : 0.0, e.predictions_path.c_str());
      log_->line(line);
    }
    return agree(comm_, kExitOk);
  }

  void record_failure(const std::exception& ex) {
    log_->line(std::string("error: ") + ex.what());  // the whole message, backtrace and all
    ledger_.stop_heartbeat();
    try {
      if (!claim_lost_) ledger_.failed(brief_reason(ex.what()), position_epoch_, position_batch_);
    } catch (const std::exception& again) {
      log_->line(std::string("error: could not record the failure in the store: ") + again.what());
    }
  }

  const WorkerOptions& opt_;
  Communicator& comm_;
  const bool rank0_;
  const WorkspaceLayout layout_;
  std::string claim_note_;
  // Declared before the ledger, whose heartbeat thread uses them: the ledger (and its thread) goes first.
  std::unique_ptr<RunLog> log_;
  std::atomic<bool> claim_lost_{false};
  int64_t position_epoch_ = -1, position_batch_ = -1;
  RunLedger ledger_;
  const RunSettings s_;
};

}  // namespace

int run_worker(const WorkerOptions& opt, Communicator& comm) {
  if (!is_safe_run_id(opt.run_id)) throw InputError("--run", "", opt.run_id, "not a run id ([A-Za-z0-9_.-])");
  if (!opt.job) throw Error("run_worker: no job environment given");
  const WorkspaceLayout layout(opt.workspace);
  if (!fs::exists(layout.store()))
    throw InputError(layout.store(), "run", opt.run_id, "no run store in this workspace (plan or submit the experiment first)");
  Attempt attempt(opt, comm);
  if (int code = attempt.claim(); code >= 0) return code;
  attempt.open_log();
  return attempt.run();
}

}  // namespace orch::runner
