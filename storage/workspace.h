// The workspace folder of an experiment and the data sets in it:
//
//   WORKSPACE/raw/<dataset>/        synthetic data sets as `synth` writes them (public layout)
//   WORKSPACE/datasets/<dataset>.h5 prepared data sets (storage/dataset_file.h)
//   WORKSPACE/report/               previews, tables and figures
//
// ensure_dataset() makes a data set exist and match its experiment settings: a data set whose recorded spec
// digest matches is reused; a changed spec regenerates it (atomically: the old file stays until the new one
// is complete). Not thread-safe for the same data set; separate data sets may be ensured concurrently.
#pragma once

#include <string>

#include "core/experiment.h"
#include "storage/prepare.h"

namespace orch {

struct EnsuredDataset {
  std::string path;
  bool rebuilt = false;
  PrepareSummary summary;  // filled when rebuilt
};

std::string dataset_path(const std::string& workspace, const std::string& dataset);
// Digest of a data set's normalised settings in the experiment.
std::string dataset_spec_digest(const Experiment& exp, const DatasetSpec& spec);
EnsuredDataset ensure_dataset(const Experiment& exp, const DatasetSpec& spec, const std::string& workspace,
                              int threads = 0, bool quiet = false);

}  // namespace orch
