#include "report/report_model.h"

#include "report/claims.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <set>
#include <unordered_map>

#include "core/errors.h"
#include "report/paper_tables.h"
#include "report/stats.h"
#include "storage/accounting_table.h"
#include "storage/claims_table.h"
#include "storage/layout.h"
#include "storage/metrics_table.h"
#include "storage/provenance_table.h"
#include "storage/run_state.h"
#include "storage/runs_table.h"

namespace orch::report {

namespace fs = std::filesystem;

namespace {

const double kNaN = std::nan("");
constexpr double kPaperSize = 1024;  // the paper's working size: its Hausdorff values are mm at 0.35 mm per pixel of it

std::vector<Column> columns_of(bool lh) {
  std::vector<Column> cols;
  for (const std::string& organ : lh ? std::vector<std::string>{"lungs", "heart"} : std::vector<std::string>{"lungs"}) {
    const std::string prefix = lh ? (organ == "lungs" ? "Lungs " : "Heart ") : "";
    cols.push_back({organ, Metric::kDice, prefix + "DC↑", true, 4});
    cols.push_back({organ, Metric::kHausdorff, prefix + "HD↓", false, 2});
    cols.push_back({organ, Metric::kJaccard, prefix + "JC↑", true, 4});
  }
  if (!lh) cols.push_back({"", Metric::kInference, "Inference (s)", false, 4});
  return cols;
}

// The measured values of the table runs, as the settings ask for them.
class Values {
 public:
  Values(Store& store, const std::vector<std::string>& ids, const std::map<std::string, const scheduler::PlannedRun*>& runs,
         const ReportSettings& s)
      : runs_(runs), s_(s) {
    for (auto& a : MetricsTable(store).metric_aggregates(ids)) agg_[a.run_id][a.organ] = a;
  }
  bool has(const std::string& id) const { return agg_.count(id) > 0; }
  const MetricAggregate* aggregate(const std::string& id, const std::string& organ) const {
    auto it = agg_.find(id);
    if (it == agg_.end()) return nullptr;
    auto o = it->second.find(organ);
    return o == it->second.end() ? nullptr : &o->second;
  }
  double operator()(const std::string& id, const std::string& organ, Metric metric) const {
    const MetricAggregate* a = aggregate(id, organ);
    if (!a) return kNaN;
    switch (metric) {
      case Metric::kDice: return a->dice;
      case Metric::kJaccard: return a->jaccard;
      case Metric::kHausdorff: return hausdorff(id, *a);
      case Metric::kInference: return s_.inference == InferenceTiming::kReference ? a->inference_launch_all_s : a->inference_s;
    }
    return kNaN;
  }

 private:
  double hausdorff(const std::string& id, const MetricAggregate& a) const {
    const RunSettings& rs = runs_.at(id)->settings;
    const double scale = hausdorff_scale(s_, rs);
    const int64_t undefined = a.images - a.hausdorff_defined;
    if (undefined == 0) return a.hausdorff_mm * scale;
    if (s_.empty_mask == EmptyMask::kExclude) return a.hausdorff_defined ? a.hausdorff_mm * scale : kNaN;
    const double diagonal = worst_hausdorff_mm(rs);
    const double sum = (a.hausdorff_defined ? a.hausdorff_mm * a.hausdorff_defined : 0.0) + undefined * diagonal;
    return sum / a.images * scale;
  }
  std::map<std::string, std::map<std::string, MetricAggregate>> agg_;
  const std::map<std::string, const scheduler::PlannedRun*>& runs_;
  const ReportSettings& s_;
};

double paper_value(const nlohmann::json& table, const std::string& network, const Column& c) {
  if (!table.contains(network)) return kNaN;
  const auto& pe = table[network];
  if (c.metric == Metric::kInference) return pe.value(choice_name(c.metric), kNaN);
  return pe.contains(c.organ) ? pe[c.organ].value(choice_name(c.metric), kNaN) : kNaN;
}

void mark_best(Table& t) {
  for (size_t c = 0; c < t.columns.size(); ++c) {
    int best = -1;
    for (size_t r = 0; r < t.rows.size(); ++r) {
      const double v = t.rows[r].cells[c].mean;
      if (std::isnan(v)) continue;
      const double b = best < 0 ? 0 : t.rows[static_cast<size_t>(best)].cells[c].mean;
      if (best < 0 || (t.columns[c].higher_better ? v > b : v < b)) best = static_cast<int>(r);
    }
    if (best >= 0) t.rows[static_cast<size_t>(best)].cells[c].best = true;
  }
}

// Paired tests over test images (per-image Dice averaged over organs) against the baseline network's median model.
void paired_tests(Table& t, Store& store) {
  const Row* base = nullptr;
  for (const auto& r : t.rows)
    if (r.network->paired_test_baseline && !r.median.empty()) base = &r;
  if (!base) return;
  auto per_image = [&](const std::string& id) {
    std::map<std::string, std::vector<double>> m;
    for (const auto& tm : MetricsTable(store).test_metrics(id)) m[tm.image_id].push_back(tm.dice);
    std::map<std::string, double> out;
    for (auto& [img, v] : m) out[img] = mean(v);
    return out;
  };
  auto b = per_image(base->median);
  for (auto& r : t.rows) {
    if (&r == base || r.median.empty()) continue;
    auto o = per_image(r.median);
    std::vector<double> x, y;
    for (auto& [img, v] : b)
      if (o.count(img)) x.push_back(v), y.push_back(o[img]);
    WilcoxonResult w = wilcoxon(x, y);
    r.p_vs_baseline = w.p_value;
    r.n_pairs = static_cast<int>(x.size());
  }
}

double attempt_seconds(const AttemptRow& a) {
  const double end = a.ended_unix > 0 ? a.ended_unix : std::max(a.heartbeat_unix, a.started_unix);
  return a.started_unix > 0 ? std::max(0.0, end - a.started_unix) : 0;
}

std::vector<CostRow> costs(Store& store, const std::vector<scheduler::PlannedRun>& grid) {
  std::map<std::string, std::string> network_of;
  for (const auto& r : grid) network_of[r.id] = r.settings.model;
  std::map<std::string, CostRow> by;
  std::map<std::string, std::set<std::string>> runs;
  for (const auto& a : ClaimsTable(store).attempts()) {
    auto it = network_of.find(a.run_id);
    if (it == network_of.end()) continue;
    CostRow& c = by[it->second];
    const double h = attempt_seconds(a) / 3600;
    ++c.attempts;
    runs[it->second].insert(a.run_id);
    c.wall_hours += h;
    c.gpu_hours += h * static_cast<double>(a.gpus);
    if (a.exit_status != 0) c.lost_hours += h;
  }
  const auto accounts = AccountingTable(store).of();
  std::map<std::string, int> sharing;  // a packed job's row is repeated for each of its runs: they share its GPUs
  for (const auto& j : accounts) sharing[j.job_id + "|" + j.started]++;
  for (const auto& j : accounts) {
    auto it = network_of.find(j.run_id);
    if (it == network_of.end() || choice_from<BackendKind>(j.backend) != BackendKind::kSlurm) continue;
    by[it->second].slurm_gpu_hours += j.elapsed_s / 3600 * static_cast<double>(j.gpus) / sharing[j.job_id + "|" + j.started];
  }
  std::vector<CostRow> out;
  for (const auto& n : models::network_catalogue()) {
    auto it = by.find(n.id);
    if (it == by.end()) continue;
    it->second.network = n.paper_name;
    it->second.runs = static_cast<int>(runs[n.id].size());
    out.push_back(it->second);
  }
  return out;
}

std::vector<RunInfo> run_infos(Store& store, const std::vector<scheduler::PlannedRun>& grid, const std::string& workspace,
                               const std::string& report_dir) {
  const auto recorded = RunsTable(store).states();
  std::unordered_map<std::string, std::pair<int, double>> attempts;  // run -> (count, wall hours)
  for (const auto& a : ClaimsTable(store).attempts()) {
    auto& x = attempts[a.run_id];
    ++x.first;
    x.second += attempt_seconds(a) / 3600;
  }
  auto provenance = ProvenanceTable(store).all();
  // Log links relative to the report: the workspace's relative path once, then joined per run (fs::relative per run
  // resolved every path through the file system: 3 s at 100,000 runs).
  std::error_code ec;
  const std::string rel_root = fs::relative(workspace, report_dir, ec).string();
  const WorkspaceLayout layout(ec || rel_root.empty() ? workspace : rel_root == "." ? "" : rel_root);
  const auto curves = MetricsTable(store).validation_curves();
  std::vector<RunInfo> out;
  for (const auto& r : grid) {
    RunInfo i;
    i.run_id = r.id;
    i.network = models::network_info(r.settings.model).paper_name;
    i.dataset = r.settings.dataset;
    i.stage = r.settings.stage;
    i.seed = r.settings.seed;
    auto it = recorded.find(r.id);
    i.state = it == recorded.end() ? run_state::kNew : it->second;
    i.attempts = attempts[r.id].first;
    i.wall_hours = attempts[r.id].second;
    i.log = layout.run_log(r.id);
    if (auto p = provenance.find(r.id); it != recorded.end() && p != provenance.end()) i.provenance = std::move(p->second);
    i.planned_epochs = r.settings.training.epochs;
    if (auto c = curves.find(r.id); c != curves.end()) {
      i.epochs = c->second.last_epoch;
      i.plateau = measure_plateau(c->second.values, i.epochs, models::network_info(r.settings.model).criterion_higher_is_better);
    }
    out.push_back(std::move(i));
  }
  return out;
}

}  // namespace

std::string plateau_text(const RunInfo& run) {
  if (!run.plateau.measured) return "-";
  char b[96];
  if (run.plateau.reached)
    std::snprintf(b, sizeof b, "yes, from epoch %lld", static_cast<long long>(run.plateau.flat_from));
  else
    std::snprintf(b, sizeof b, "no: %+.1f %% in epochs %lld-%lld", 100 * run.plateau.improvement,
                  static_cast<long long>(run.plateau.window_start + 1), static_cast<long long>(run.epochs));
  return b;
}

int runs_with_plateau(const ReportModel& m, int* measured) {
  int yes = 0;
  *measured = 0;
  for (const auto& r : m.runs)
    if (r.plateau.measured) {
      ++*measured;
      yes += r.plateau.reached ? 1 : 0;
    }
  return yes;
}

double hausdorff_scale(const ReportSettings& s, const RunSettings& run) {
  return s.hausdorff == HausdorffScale::kPaper ? kPaperSize / run.size : 1.0;
}

double worst_hausdorff_mm(const RunSettings& run) { return run.size * std::sqrt(2.0) * run.evaluation.spacing_mm; }

std::string hausdorff_unit(const ReportSettings& s) {
  return s.hausdorff == HausdorffScale::kPaper ? "mm at 0.35 mm/px of a 1024-px image" : "mm at the working size's spacing";
}

std::string inference_description(const ReportSettings& s) {
  return s.inference == InferenceTiming::kReference
             ? "mean seconds per image as the reference timed them: not synchronised, the first (cold) call included"
             : "mean seconds per image after the first (cold) call, synchronised on a GPU";
}

std::string empty_mask_description(const ReportSettings& s) {
  if (s.empty_mask == EmptyMask::kExclude) return "left out of the run's mean";
  if (s.empty_mask == EmptyMask::kFail) return "an error";
  return "counted as the image's diagonal (the worst case)";
}

namespace {

// The grid's table runs by (data set, network), and each run by id; runs not done are noted as missing.
struct TableRuns {
  std::unordered_map<std::string, std::string> recorded;  // run id -> state
  std::map<std::string, const scheduler::PlannedRun*> by_id;
  std::map<std::pair<std::string, std::string>, std::vector<const scheduler::PlannedRun*>> of;  // (dataset, model)
  std::vector<std::string> ids;
};

TableRuns table_runs(const std::vector<scheduler::PlannedRun>& grid, Store& store, std::vector<std::string>& missing) {
  TableRuns t;
  t.recorded = RunsTable(store).states();
  for (const auto& r : grid) {
    t.by_id[r.id] = &r;
    if (r.settings.stage != Stage::kTrain) continue;  // a separate pretraining run is not a table run
    t.of[{r.settings.dataset, r.settings.model}].push_back(&r);
    t.ids.push_back(r.id);
    auto it = t.recorded.find(r.id);
    const std::string state = it == t.recorded.end() ? run_state::kNew : it->second;
    if (state != run_state::kDone) missing.push_back(r.id + " (" + state + ")");
  }
  return t;
}

// Builds each data set's table: rows of done runs' means, the paper's values, median models, empty-mask notes.
class TableBuilder {
 public:
  TableBuilder(const Experiment& exp, const TableRuns& runs, const Values& value, const ReportSettings& settings, ReportModel& m)
      : runs_(runs), value_(value), settings_(settings), m_(m) {
    n_lh_ = static_cast<int>(std::count_if(exp.datasets.begin(), exp.datasets.end(),
                                           [](auto& d) { return d.kind == DatasetKind::kLungsHeart; }));
    n_l_ = static_cast<int>(exp.datasets.size()) - n_lh_;
  }

  Table table(const DatasetSpec& ds, const nlohmann::json& paper) {
    Table t;
    t.dataset = &ds;
    t.lungs_and_heart = ds.kind == DatasetKind::kLungsHeart;
    t.number = t.lungs_and_heart ? "1" : "2";
    if (t.lungs_and_heart && n_lh_ > 1) t.number += std::string(1, static_cast<char>('a' + lh_tables_++));
    if (!t.lungs_and_heart && n_l_ > 1) t.number += std::string(1, static_cast<char>('a' + l_tables_++));
    t.columns = columns_of(t.lungs_and_heart);
    const nlohmann::json& ptab = paper.at(t.lungs_and_heart ? "table1" : "table2");
    t.paper_dataset = ptab.value("dataset", std::string());
    for (const auto& network : models::network_catalogue()) {
      auto it = runs_.of.find({ds.name, network.id});
      if (it != runs_.of.end()) t.rows.push_back(row(t, network, it->second, ptab));
    }
    return t;
  }

  const std::vector<std::string>& failing() const { return failing_; }

 private:
  bool done(const std::string& id) const {
    auto it = runs_.recorded.find(id);
    return it != runs_.recorded.end() && it->second == run_state::kDone && value_.has(id);
  }
  std::vector<std::string> organs(const Table& t) const {
    return t.lungs_and_heart ? std::vector<std::string>{"lungs", "heart"} : std::vector<std::string>{"lungs"};
  }

  Row row(Table& t, const models::NetworkInfo& network, const std::vector<const scheduler::PlannedRun*>& runs,
          const nlohmann::json& ptab) {
    Row row;
    row.network = &network;
    row.p_vs_baseline = kNaN;
    for (const auto* r : runs)
      if (done(r->id)) row.done_ids.push_back(r->id);
    for (const auto& c : t.columns) {
      std::vector<double> v;
      for (const auto& id : row.done_ids)
        if (double x = value_(id, c.organ, c.metric); !std::isnan(x)) v.push_back(x);
      row.cells.push_back({mean(v), stddev(v), paper_value(ptab, network.id, c), static_cast<int>(v.size()), false});
    }
    if (!row.done_ids.empty()) pick_median(row, t);
    note_empty_masks(row, t);
    return row;
  }

  // The median model: the run whose mean over organs of the median metric is the median of the row's runs.
  void pick_median(Row& row, const Table& t) {
    std::vector<double> scores;
    for (const auto& id : row.done_ids) {
      std::vector<double> per_organ;
      for (const auto& organ : organs(t)) per_organ.push_back(value_(id, organ, settings_.median_metric));
      scores.push_back(mean(per_organ));
    }
    const size_t k = median_index(scores);
    row.median = row.done_ids[k];
    m_.medians.push_back({t.dataset->name, row.network->id, row.median, choice_name(settings_.median_metric), scores[k],
                          static_cast<int>(row.done_ids.size())});
  }

  void note_empty_masks(const Row& row, Table& t) {
    for (const auto& id : row.done_ids)
      for (const auto& organ : organs(t)) {
        const MetricAggregate* a = value_.aggregate(id, organ);
        if (!a || a->hausdorff_defined == a->images) continue;
        const int64_t n = a->images - a->hausdorff_defined;
        t.empty_mask_images += static_cast<int>(n);
        if (settings_.empty_mask == EmptyMask::kFail) failing_.push_back(id + " (" + organ + ", " + std::to_string(n) + " images)");
        m_.notes.push_back(id + ": " + std::to_string(n) + " of " + std::to_string(a->images) + " test images (" + organ +
                           ") have no Hausdorff distance (an empty mask): " + empty_mask_description(settings_));
      }
  }

  const TableRuns& runs_;
  const Values& value_;
  const ReportSettings& settings_;
  ReportModel& m_;
  int n_lh_ = 0, n_l_ = 0, lh_tables_ = 0, l_tables_ = 0;
  std::vector<std::string> failing_;
};

}  // namespace

ReportModel build_report_model(const Experiment& exp, const std::vector<scheduler::PlannedRun>& grid, Store& store,
                               const std::string& workspace, const std::string& report_dir, const ReportSettings& settings) {
  settings.validate();
  ReportModel m;
  m.experiment = exp.name;
  m.seeds = static_cast<int>(exp.seeds.size());
  m.settings = settings;
  const nlohmann::json& paper = paper_tables();
  m.paper_source = paper.value("source", std::string());
  const TableRuns runs = table_runs(grid, store, m.missing);
  const Values value(store, runs.ids, runs.by_id, settings);
  TableBuilder tables(exp, runs, value, settings, m);
  for (const auto& ds : exp.datasets) {
    Table t = tables.table(ds, paper);
    mark_best(t);
    paired_tests(t, store);
    m.tables.push_back(std::move(t));
  }
  if (!tables.failing().empty()) {
    std::string list;
    for (const auto& f : tables.failing()) list += (list.empty() ? "" : ", ") + f;
    throw Error("report: images with an empty mask and report.empty_mask \"fail\": " + list);
  }
  m.cost = costs(store, grid);
  m.runs = run_infos(store, grid, workspace, report_dir);
  m.claims = evaluate_claims(paper_claims(), exp.report.claims, m, grid, store);
  return m;
}

}  // namespace orch::report
