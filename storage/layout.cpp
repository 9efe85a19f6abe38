#include "storage/layout.h"

#include <filesystem>

namespace orch {

namespace fs = std::filesystem;

WorkspaceLayout::WorkspaceLayout(std::string root) : root_(std::move(root)) {}

// a/b as std::filesystem::path's operator/ makes it for a relative b (every name joined here is one), without
// parsing either path into components: `status` builds three paths for each run of a 100,000-run grid.
static std::string join(const std::string& a, const std::string& b) {
  if (a.empty()) return b;
  return a.back() == '/' ? a + b : a + '/' + b;
}

std::string WorkspaceLayout::store() const { return join(root_, "orchestrator.db"); }
std::string WorkspaceLayout::lock() const { return join(root_, ".orchestrator.lock"); }
std::string WorkspaceLayout::raw_dataset(const std::string& d) const { return join(join(root_, "raw"), d); }
std::string WorkspaceLayout::datasets_dir() const { return join(root_, "datasets"); }
std::string WorkspaceLayout::dataset(const std::string& d) const { return join(datasets_dir(), d + ".h5"); }
std::string WorkspaceLayout::dataset_lock(const std::string& d) const { return join(datasets_dir(), d + ".lock"); }
std::string WorkspaceLayout::run_dir(const std::string& id) const { return join(join(root_, "runs"), id); }
std::string WorkspaceLayout::run_log(const std::string& id) const { return join(run_dir(id), "log.txt"); }
std::string WorkspaceLayout::checkpoints(const std::string& id) const { return join(run_dir(id), "checkpoints"); }
std::string WorkspaceLayout::replaced_checkpoints(const std::string& id, long long unix_seconds) const {
  return join(run_dir(id), "checkpoints.replaced-" + std::to_string(unix_seconds));
}
std::string WorkspaceLayout::predictions(const std::string& id) const { return join(run_dir(id), "predictions.h5"); }
std::string WorkspaceLayout::logs_dir() const { return join(root_, "logs"); }
std::string WorkspaceLayout::local_logs_dir() const { return join(logs_dir(), "local"); }
std::string WorkspaceLayout::local_log(const std::string& id) const { return join(local_logs_dir(), id + ".log"); }
std::string WorkspaceLayout::slurm_output_pattern() const { return join(logs_dir(), "%A_%a.out"); }
std::string WorkspaceLayout::slurm_output(const std::string& a, const std::string& t) const {
  return join(logs_dir(), a + "_" + t + ".out");
}
std::string WorkspaceLayout::slurm_dir() const { return join(root_, "slurm"); }
std::string WorkspaceLayout::report_dir() const { return join(root_, "report"); }

std::string report_lock(const std::string& report_dir) { return report_dir + "/.report.lock"; }

}  // namespace orch
