#include "storage/metrics_table.h"

#include <algorithm>
#include <cmath>
#include <set>

#include "core/errors.h"
#include "storage/claims_table.h"
#include "storage/sqlite.h"
#include "storage/store.h"

namespace orch {

bool MetricsTable::add_epoch_metrics(const EpochMetrics& m) {
  bool written = false;
  store_.write([&] {
    if (m.attempt_id != 0 && !ClaimsTable(store_).held_by(m.run_id, m.attempt_id)) return;  // fenced
    sqlite::Statement s(store_.database(), "INSERT OR REPLACE INTO epoch_metrics(run_id, attempt_id, epoch, train_loss, val_criterion, learning_rate, "
           "seconds) VALUES (?, ?, ?, ?, ?, ?, ?)");
    s.bind(1, m.run_id).bind(2, m.attempt_id).bind(3, m.epoch).bind(4, m.train_loss).bind(5, m.val_criterion)
        .bind(6, m.learning_rate).bind(7, m.seconds);
    s.run();
    written = true;
  });
  return written;
}

std::vector<EpochMetrics> MetricsTable::epoch_metrics(const std::string& run_id) {
  sqlite::Statement s(store_.database(), "SELECT run_id, attempt_id, epoch, train_loss, val_criterion, learning_rate, seconds FROM epoch_metrics "
         "WHERE run_id = ? ORDER BY epoch");
  s.bind(1, run_id);
  std::vector<EpochMetrics> out;
  while (s.row()) out.push_back({s.text(0), s.integer_or(1, 0), s.integer(2), s.real(3), s.real(4), s.real(5), s.real(6)});
  return out;
}

// In the table's order, then each curve sorted by epoch: ORDER BY walked the primary-key index and looked up every
// row (3.5 s for 8.4 million rows against 1.1 s for the scan).
std::map<std::string, MetricsTable::ValidationCurve> MetricsTable::validation_curves() {
  sqlite::Statement s(store_.database(), "SELECT run_id, epoch, val_criterion FROM epoch_metrics");
  std::map<std::string, ValidationCurve> out;
  auto at = out.end();
  while (s.row()) {
    const std::string_view run = s.text_view(0);  // compared without a copy: a lookup per run, not per epoch row
    if (at == out.end() || at->first != run) {
      at = out.find(std::string(run));
      if (at == out.end()) at = out.emplace(std::string(run), ValidationCurve{}).first;
    }
    const int64_t epoch = s.integer(1);
    at->second.last_epoch = std::max(at->second.last_epoch, epoch);
    const double v = s.real_or(2, NAN);
    if (std::isfinite(v)) at->second.values.emplace_back(epoch, v);
  }
  for (auto& [run, c] : out)
    if (!std::is_sorted(c.values.begin(), c.values.end())) std::sort(c.values.begin(), c.values.end());
  return out;
}

void MetricsTable::replace_test_metrics(const std::string& run_id, const std::vector<TestMetric>& rows) {
  store_.write([&] { put_test_metrics(run_id, rows); });
}

void MetricsTable::put_test_metrics(const std::string& run_id, const std::vector<TestMetric>& rows) {
  {
    sqlite::Statement del(store_.database(), "DELETE FROM test_metrics WHERE run_id = ?");
    del.bind(1, run_id);
    del.run();
  }
  sqlite::Statement s(store_.database(),
                      "INSERT INTO test_metrics(run_id, image_id, organ, dice, jaccard, hausdorff_mm) VALUES (?, ?, ?, ?, ?, ?)");
  for (const auto& r : rows) {
    if (r.organ != "lungs" && r.organ != "heart")
      throw InputError(store_.path(), "organ", r.organ, "test metrics take organ 'lungs' or 'heart' (image " + r.image_id + ")");
    s.reset();
    s.bind(1, run_id).bind(2, r.image_id).bind(3, r.organ).bind(4, r.dice).bind(5, r.jaccard).bind(6, r.hausdorff_mm);
    s.run();
  }
  aggregate_run(run_id, true);
}

std::vector<TestMetric> MetricsTable::test_metrics(const std::string& run_id) {
  sqlite::Statement s(store_.database(), "SELECT run_id, image_id, organ, dice, jaccard, hausdorff_mm FROM test_metrics WHERE run_id = ? "
         "ORDER BY image_id, organ");
  s.bind(1, run_id);
  std::vector<TestMetric> out;
  while (s.row()) out.push_back({s.text(0), s.text(1), s.text(2), s.real(3), s.real(4), s.real(5)});
  return out;
}

int64_t MetricsTable::test_metric_rows_end() {
  sqlite::Statement s(store_.database(), "SELECT COALESCE(MAX(rowid), 0) + 1 FROM test_metrics");
  return s.row() ? s.integer(0) : 1;
}

void MetricsTable::each_test_metric(const std::function<void(const TestMetric&)>& visit, std::pair<int64_t, int64_t> rows) {
  sqlite::Statement s(store_.database(), "SELECT run_id, image_id, organ, dice, jaccard, hausdorff_mm FROM test_metrics "
                                         "WHERE rowid >= ? AND rowid < ?");
  s.bind(1, rows.first).bind(2, rows.second);
  TestMetric t;
  while (s.row()) {
    t.run_id.assign(s.text_view(0));  // into the same strings: no allocation per row over millions of rows
    t.image_id.assign(s.text_view(1));
    t.organ.assign(s.text_view(2));
    t.dice = s.real(3);
    t.jaccard = s.real(4);
    t.hausdorff_mm = s.real(5);
    visit(t);
  }
}

void MetricsTable::replace_inference_times(const std::string& run_id, const std::vector<InferenceRow>& rows) {
  store_.write([&] { put_inference_times(run_id, rows); });
}

void MetricsTable::put_inference_times(const std::string& run_id, const std::vector<InferenceRow>& rows) {
  {
    sqlite::Statement del(store_.database(), "DELETE FROM inference_times WHERE run_id = ?");
    del.bind(1, run_id);
    del.run();
  }
  sqlite::Statement s(store_.database(), "INSERT INTO inference_times(run_id, image_id, seconds, cold, device, "
                                         "launch_seconds) VALUES (?, ?, ?, ?, ?, ?)");
  for (const auto& r : rows) {
    s.reset();
    s.bind(1, run_id).bind(2, r.image_id).bind(3, r.seconds).bind(4, static_cast<int64_t>(r.cold)).bind(5, r.device);
    s.bind(6, r.launch_seconds);
    s.run();
  }
  aggregate_run(run_id, false);
}

namespace {

// The aggregate rows of test metrics (per run and organ) and of inference times (per run, organ ''), from the rows
// of the runs `where` selects: written with a run's rows, and for every run when an older store is upgraded.
std::string test_aggregates_from(const std::string& where) {
  return "INSERT OR REPLACE INTO metric_aggregates(run_id, organ, dice, jaccard, hausdorff_mm, images, hausdorff_defined) "
         "SELECT run_id, organ, AVG(dice), AVG(jaccard), AVG(hausdorff_mm), COUNT(*), COUNT(hausdorff_mm) "
         "FROM test_metrics " + where + " GROUP BY run_id, organ";
}
// The run's row also sums its epochs' positive, finite seconds (a run is evaluated after its last epoch): correlated
// subqueries, one index seek per run (a join with a grouped subquery grouped every epoch row of the store, 2.3 s at
// 100,000 runs, inside each worker's final transaction).
std::string inference_aggregates_from(const std::string& where) {
  const std::string timed = "FROM epoch_metrics e WHERE e.run_id = i.run_id AND e.seconds > 0 AND e.seconds < 1e300";
  return "INSERT OR REPLACE INTO metric_aggregates(run_id, organ, inference_s, inference_cold_s, inference_launch_all_s, device, "
         "epoch_seconds, epochs_timed) "
         "SELECT i.run_id, '', AVG(CASE WHEN i.cold = 0 THEN i.seconds END), MAX(CASE WHEN i.cold = 1 THEN i.seconds END), "
         "AVG(i.launch_seconds), MAX(i.device), (SELECT SUM(e.seconds) " + timed + "), (SELECT COUNT(*) " + timed + ") "
         "FROM inference_times i " + where + " GROUP BY i.run_id";
}

}  // namespace

void MetricsTable::aggregate_all() {
  store_.database().exec(test_aggregates_from("").c_str());
  store_.database().exec(inference_aggregates_from("").c_str());
}

void MetricsTable::aggregate_run(const std::string& run_id, bool test) {
  sqlite::Statement del(store_.database(), test ? "DELETE FROM metric_aggregates WHERE run_id = ? AND organ <> ''"
                                                : "DELETE FROM metric_aggregates WHERE run_id = ? AND organ = ''");
  del.bind(1, run_id);
  del.run();
  sqlite::Statement s(store_.database(), test ? test_aggregates_from("WHERE run_id = ?") : inference_aggregates_from("WHERE i.run_id = ?"));
  s.bind(1, run_id);
  s.run();
}

std::vector<MetricAggregate> MetricsTable::metric_aggregates(const std::vector<std::string>& run_ids) {
  std::vector<MetricAggregate> out;
  std::set<std::string> wanted(run_ids.begin(), run_ids.end());
  sqlite::Statement s(store_.database(), "SELECT run_id, organ, dice, jaccard, hausdorff_mm, images, hausdorff_defined, inference_s, "
         "inference_cold_s, inference_launch_all_s, device, epoch_seconds, epochs_timed FROM metric_aggregates");
  while (s.row()) {
    if (!wanted.count(s.text(0))) continue;
    MetricAggregate a;
    a.run_id = s.text(0);
    a.organ = s.text(1);
    if (a.organ.empty()) {
      a.inference_s = s.real(7);
      a.inference_cold_s = s.real(8);
      a.inference_launch_all_s = s.real(9);
      a.device = s.text(10);
      a.epoch_seconds = s.real_or(11, 0);
      a.epochs_timed = s.integer(12);
    } else {
      a.dice = s.real(2);
      a.jaccard = s.real(3);
      a.hausdorff_mm = s.real(4);
      a.images = s.integer(5);
      a.hausdorff_defined = s.integer(6);
    }
    out.push_back(a);
  }
  return out;
}

}  // namespace orch
