// The workspace folder of an experiment and the data sets in it:
//
//   WORKSPACE/raw/<dataset>/        synthetic data sets as `synth` writes them (public layout)
//   WORKSPACE/datasets/<dataset>.h5 prepared data sets (storage/dataset_file.h)
//   WORKSPACE/report/               previews, tables and figures
//
// ensure_dataset() makes a data set exist and match its experiment settings: a data set whose recorded spec
// digest matches is reused; a changed spec regenerates it (atomically: the old file stays until the new one
// is complete). Building happens under the data set's lock file (storage/workspace_lock.h), so concurrent
// processes build it once and the others wait (up to kDatasetLockWaitS) and reuse it. Separate data sets may be
// ensured concurrently. The paths come from storage/layout.h.
#pragma once

#include <string>
#include <vector>

#include "core/experiment.h"
#include "storage/prepare.h"

namespace orch {

constexpr double kDatasetLockWaitS = 6 * 3600.0;  // building a 1024-px data set takes minutes; a stuck one, not hours

struct EnsuredDataset {
  std::string path;
  bool rebuilt = false;
  PrepareSummary summary;  // filled when rebuilt
};

std::string dataset_path(const std::string& workspace, const std::string& dataset);
// Digest of a data set's normalised settings in the experiment.
std::string dataset_spec_digest(const Experiment& exp, const DatasetSpec& spec);
// Folders an experiment's file-based data sets name that do not exist, all of them ("datasets.x: data/raw/JSRT
// (raw_jsrt)"); empty when everything is there (or every data set is synthetic).
std::vector<std::string> missing_dataset_sources(const Experiment& exp);

EnsuredDataset ensure_dataset(const Experiment& exp, const DatasetSpec& spec, const std::string& workspace,
                              int threads = 0, bool quiet = false);

}  // namespace orch
