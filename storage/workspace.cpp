#include "storage/workspace.h"

#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "core/atomic_file.h"
#include "core/control.h"
#include "core/digest.h"
#include "core/errors.h"
#include "storage/dataset_file.h"
#include "storage/layout.h"
#include "storage/workspace_lock.h"

namespace orch {

namespace fs = std::filesystem;

std::string dataset_path(const std::string& workspace, const std::string& dataset) {
  return WorkspaceLayout(workspace).dataset(dataset);
}

std::string dataset_spec_digest(const Experiment& exp, const DatasetSpec& spec) {
  Digest d;
  nlohmann::json j = exp.raw.at("datasets").at(spec.name);
  j.erase("description");  // prose: editing it must not rebuild the data or change run ids
  d.add("dataset-spec-v1").add(j.dump());
  return d.hex();
}

// The folders a non-synthetic data set is prepared from, as its experiment entry names them.
static void set_sources(PrepareOptions& p, const DatasetSpec& spec) {
  p.landmarks = spec.landmarks;
  p.images = spec.images;
  p.raw_jsrt = spec.raw_jsrt;
  p.raw_png = spec.raw_png;
  p.splits = spec.splits;
}

static std::string recorded_digest(const std::string& h5) {
  try {
    DatasetReader r(h5);
    auto j = nlohmann::json::parse(r.info().sources, nullptr, false);
    if (j.is_object() && j.contains("spec_digest") && j["spec_digest"].is_string()) return j["spec_digest"];
  } catch (const Error&) {
  }
  return "";
}

std::vector<std::string> missing_dataset_sources(const Experiment& exp) {
  std::vector<std::string> out;
  for (const auto& spec : exp.datasets) {
    if (spec.synthetic) continue;
    PrepareOptions p;
    set_sources(p, spec);
    for (const auto& m : missing_sources(p)) out.push_back("datasets." + spec.name + ": " + m);
  }
  return out;
}

EnsuredDataset ensure_dataset(const Experiment& exp, const DatasetSpec& spec, const std::string& workspace,
                              int threads, bool quiet) {
  EnsuredDataset out;
  const WorkspaceLayout layout(workspace);
  out.path = layout.dataset(spec.name);
  const std::string digest = dataset_spec_digest(exp, spec);
  if (fs::exists(out.path) && recorded_digest(out.path) == digest) return out;
  // One builder at a time (concurrent commands, `train` processes); the others wait, then find it built.
  FileLock lock(layout.dataset_lock(spec.name), "prepare data set " + spec.name,
                std::max(control_timeouts().lock_wait_s, kDatasetLockWaitS), [&](const std::string& holder) {
                  if (!quiet) std::fprintf(stderr, "data set %s: waiting for %s to finish building it\n", spec.name.c_str(),
                                           holder.c_str());
                });
  if (fs::exists(out.path) && recorded_digest(out.path) == digest) return out;
  remove_stale_temporaries(out.path);  // of a build killed before it published (the lock makes this the builder)

  PrepareOptions p;
  p.out = out.path;
  p.size = spec.size;
  p.overwrite = true;
  p.threads = threads;
  p.quiet = quiet;
  p.spec_digest = digest;
  p.kind = kind_name(spec.kind);
  p.edges = spec.edges;
  if (spec.synthetic) {
    fs::path raw = layout.raw_dataset(spec.name);
    fs::path marker = raw / "spec_digest";
    std::string have;
    if (fs::exists(marker)) std::getline(std::ifstream(marker), have);
    if (have != digest) {
      fs::remove_all(raw);
      fs::create_directories(raw.parent_path());
      SynthOptions so = *spec.synthetic;
      so.threads = threads;
      write_synthetic_dataset(so, raw.string(), quiet);
      std::ofstream(marker) << digest << "\n";
    }
    p.landmarks = (raw / "landmarks").string();
    p.images = {(raw / "images").string()};
    p.splits = {(raw / "splits").string()};
  } else {
    set_sources(p, spec);
    p.split_seed = spec.split_seed;
    p.blank_images = spec.blank_images;
  }
  fs::create_directories(fs::path(out.path).parent_path());
  try {
    out.summary = prepare_dataset(p);
  } catch (const InputError& e) {
    // Say which experiment entry the bad input came from.
    throw InputError(exp.path + ": datasets." + spec.name + ": " + e.what());
  }
  out.rebuilt = true;
  return out;
}

}  // namespace orch
