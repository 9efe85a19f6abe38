// The run store's measurements of each run: its epochs (training loss, validation criterion, learning rate,
// seconds), its test metrics per image and organ, and its inference times per image. A part of the store
// (storage/store.h): its SQL and its row mappers live here; the worker's final word (ClaimsTable::finish_done) writes
// test metrics and inference times through it inside its own fenced transaction. Shares the Store's connection:
// use it from the thread that uses that Store.
#pragma once

#include <cstdint>
#include <functional>
#include <limits>
#include <map>
#include <string>
#include <utility>
#include <vector>

namespace orch {

class Store;

struct EpochMetrics {
  std::string run_id;
  int64_t attempt_id = 0;
  int64_t epoch = 0;
  double train_loss = 0, val_criterion = 0, learning_rate = 0, seconds = 0;
};
struct TestMetric {
  std::string run_id, image_id, organ;  // organ: "lungs" or "heart"
  double dice = 0, jaccard = 0, hausdorff_mm = 0;  // hausdorff NaN is stored as NULL
};
struct InferenceRow {
  std::string image_id;
  double seconds = 0;         // synchronised forward pass
  double launch_seconds = 0;  // until the call returned, without synchronising (the reference's way); NaN unknown
  bool cold = false;
  std::string device = "cpu";
};
struct MetricAggregate {
  std::string run_id, organ;
  double dice = 0, jaccard = 0, hausdorff_mm = 0;
  int64_t images = 0, hausdorff_defined = 0;
  double inference_s = 0, inference_cold_s = 0, inference_launch_all_s = 0;
  std::string device;
  double epoch_seconds = 0;  // the run's row: the sum and count of its epochs' positive, finite seconds (estimates)
  int64_t epochs_timed = 0;
};

class MetricsTable {
 public:
  explicit MetricsTable(Store& store) : store_(store) {}

  bool add_epoch_metrics(const EpochMetrics& m);  // fenced by m.attempt_id when it is not 0 (false: not written)
  std::vector<EpochMetrics> epoch_metrics(const std::string& run_id);
  // Per run, its last recorded epoch and its validation criterion per validated epoch, in epoch order: one query
  // for a whole grid (the report's plateau measure, core/plateau.h).
  struct ValidationCurve {
    int64_t last_epoch = 0;
    std::vector<std::pair<int64_t, double>> values;
  };
  std::map<std::string, ValidationCurve> validation_curves();

  void replace_test_metrics(const std::string& run_id, const std::vector<TestMetric>& rows);  // one transaction
  std::vector<TestMetric> test_metrics(const std::string& run_id);
  // Every run's test metrics in one pass, in the store's order (no sort: runs and images in no set order); with
  // `rows`, only the rows numbered [first, second): slices that several connections read at once, cut from
  // test_metric_rows_end() read once (rows written after it are in no slice).
  void each_test_metric(const std::function<void(const TestMetric&)>& visit,
                        std::pair<int64_t, int64_t> rows = {0, std::numeric_limits<int64_t>::max()});
  int64_t test_metric_rows_end();
  void replace_inference_times(const std::string& run_id, const std::vector<InferenceRow>& rows);
  // Per run and organ, the means over its test images; per run (organ ""), its inference times and epoch seconds
  // (summed when its inference times are written, after its last epoch). Read from the
  // table of aggregates that the writes below keep (one row per run and organ), not by grouping every image's row.
  std::vector<MetricAggregate> metric_aggregates(const std::vector<std::string>& run_ids);
  // Recomputes every run's aggregates from its rows, inside a write transaction the caller holds (Store::migrate).
  void aggregate_all();

  // The same replacements inside a write transaction the caller already holds (ClaimsTable::finish_done).
  void put_test_metrics(const std::string& run_id, const std::vector<TestMetric>& rows);
  void put_inference_times(const std::string& run_id, const std::vector<InferenceRow>& rows);

 private:
  void aggregate_run(const std::string& run_id, bool test);  // test metrics' rows (true) or inference times' (false)
  Store& store_;
};

}  // namespace orch
