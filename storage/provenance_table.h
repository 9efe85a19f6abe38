// The run store's record of where results came from: each run's provenance (git commit, build, library versions,
// host, device, settings, the data set's digest; written by the worker) and the report's median models (which run
// stands for each network and data set). A part of the store (storage/store.h): its SQL and its row mappers live
// here, and callers that need only these hold this part. Shares the Store's connection: use it from the thread
// that uses that Store.
#pragma once

#include <map>
#include <string>
#include <vector>

namespace orch {

class Store;

// The report's median model of one network on one data set under one metric (report/report_model.h).
struct MedianModel {
  std::string dataset, model, run_id, metric;
  double score = 0;
  int n_seeds = 0;
};

class ProvenanceTable {
 public:
  explicit ProvenanceTable(Store& store) : store_(store) {}
  void set(const std::string& run_id, const std::map<std::string, std::string>& values);  // one transaction
  std::map<std::string, std::string> of(const std::string& run_id);
  // Every run's provenance (run id -> key -> value), in one query (a query per run took a second at 100,000 runs).
  std::map<std::string, std::map<std::string, std::string>> all();
  // One key of every run that has it (run id -> value), in one query.
  std::map<std::string, std::string> key_of_all(const std::string& key);
  // The experiment's median models, replacing rows of the same data set, network and metric.
  void set_median_models(const std::string& experiment, const std::vector<MedianModel>& rows);

 private:
  Store& store_;
};

}  // namespace orch
