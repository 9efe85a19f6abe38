// Every name in a workspace folder, in one place (as LevelDB's db/filename.cc owns a database's files). Code
// that reads or writes a workspace asks a WorkspaceLayout for the path; no other file spells one out.
//
//   WORKSPACE/orchestrator.db                   the run store (storage/store.h), with -wal and -shm beside it
//   WORKSPACE/.orchestrator.lock                the workspace lock (storage/workspace_lock.h)
//   WORKSPACE/raw/<dataset>/                    synthetic sources as `synth` writes them
//   WORKSPACE/datasets/<dataset>.h5             prepared data sets (storage/dataset_file.h), and <dataset>.lock
//   WORKSPACE/runs/<run-id>/log.txt             the run's log, appended by every attempt
//   WORKSPACE/runs/<run-id>/checkpoints/        ckpt-<epoch>-<batch>.h5, best.h5, best.copy.h5
//   WORKSPACE/runs/<run-id>/checkpoints.replaced-<unix seconds>/   a done run's checkpoints, set aside (kept) when
//                                               `resume --rebuild-damaged` retrains it from scratch
//   WORKSPACE/runs/<run-id>/predictions.h5      test-split predictions
//   WORKSPACE/logs/local/<run-id>.log           a local worker's stdout and stderr
//   WORKSPACE/logs/<array>_<task>.out           a Slurm task's output
//   WORKSPACE/slurm/<stamp>-<group>.{sbatch,manifest,manifest.jobname}   generated job scripts and manifests
//   WORKSPACE/report/                           tables, figures, the HTML page, and .report.lock (any report
//                                               folder has one: two reports into one folder take turns)
//
// Values only; thread-safe.
#pragma once

#include <string>

namespace orch {

class WorkspaceLayout {
 public:
  explicit WorkspaceLayout(std::string root);
  const std::string& root() const { return root_; }

  std::string store() const;
  std::string lock() const;
  std::string raw_dataset(const std::string& dataset) const;
  std::string datasets_dir() const;
  std::string dataset(const std::string& dataset) const;
  std::string dataset_lock(const std::string& dataset) const;
  std::string run_dir(const std::string& run_id) const;
  std::string run_log(const std::string& run_id) const;
  std::string checkpoints(const std::string& run_id) const;
  std::string replaced_checkpoints(const std::string& run_id, long long unix_seconds) const;
  std::string predictions(const std::string& run_id) const;
  std::string logs_dir() const;
  std::string local_logs_dir() const;
  std::string local_log(const std::string& run_id) const;
  // The Slurm output pattern (sbatch --output): logs/%A_%a.out.
  std::string slurm_output_pattern() const;
  std::string slurm_output(const std::string& array_job, const std::string& task) const;
  std::string slurm_dir() const;
  std::string report_dir() const;

 private:
  std::string root_;
};

// The best checkpoint's file names inside a run's checkpoints folder.
constexpr const char* kBestCheckpoint = "best.h5";
constexpr const char* kBestCheckpointCopy = "best.copy.h5";
// The lock of a report folder (the workspace's or --out's), held while a report writes into it.
std::string report_lock(const std::string& report_dir);

}  // namespace orch
