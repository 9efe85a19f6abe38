#include "report/claims.h"

#include <algorithm>
#include <array>
#include <cmath>
#include <filesystem>
#include <future>
#include <memory>
#include <unordered_map>

#include "core/errors.h"
#include "core/thread_pool.h"
#include "models/catalogue.h"
#include "report/bootstrap.h"
#include "report/stats.h"
#include "storage/metrics_table.h"

namespace orch::report {

namespace {

namespace fs = std::filesystem;

const double kNaN = std::nan("");
constexpr int kResamples = 2000;

// Per run, the metric at each unit: its data set's test images in image-id order, or the run's one inference time.
// NaN: not measured (or excluded, as the report's settings count it).
using Units = std::vector<double>;

// Every table run's values, read in one pass over the store's rows the first time one is asked for (a query per run
// and metric took minutes at 100,000 runs, and a map per run and metric held gigabytes). Read by the thread that
// asks first (with a second thread and connection of its own for half the rows); once read, any number of threads
// may ask for values at once (nothing changes after).
class ClaimValues {
 public:
  ClaimValues(Store& store, const std::vector<scheduler::PlannedRun>& grid, const ReportSettings& s) : store_(store), s_(s) {
    for (const auto& r : grid) settings_[r.id] = &r.settings;
  }
  // Runs of one data set have Units of one length (its images), so the units of two runs compare index by index.
  const Units& of(const std::string& run, Metric metric) {
    read();
    static const Units none;
    auto it = values_.find(run);
    return it == values_.end() ? none : it->second[static_cast<size_t>(metric)];
  }
  void read() {
    if (read_) return;
    read_ = true;
    std::vector<Part> parts = read_parts();
    for (size_t k = 1; k < parts.size(); ++k) merge(parts[k], parts.front());
    auto& [pending, images] = parts.front();
    for (auto& [name, d] : images) d.sort();
    for (auto it = pending.begin(); it != pending.end(); it = pending.erase(it)) {
      const Pending& p = it->second;
      const Images& d = *p.images;
      auto& units = values_[it->first];
      for (size_t m = 0; m < 3; ++m) {
        units[m].assign(d.seen.size(), kNaN);
        for (size_t k = 0; k < d.seen.size(); ++k) {
          const size_t i = d.order[k];
          if (i < p.n[m].size() && p.n[m][i] > 0) units[m][k] = p.sum[m][i] / p.n[m][i];
        }
      }
    }
    read_inference();
  }

 private:
  // A data set's test image ids as first seen, and their image-id order.
  struct Images {
    std::unordered_map<std::string, size_t> index;
    std::vector<std::string> seen;
    std::vector<size_t> order;  // image-id order -> first-seen index
    size_t id(const std::string& image) {
      auto [at, added] = index.emplace(image, seen.size());
      if (added) seen.push_back(image);
      return at->second;
    }
    void sort() {
      order.resize(seen.size());
      for (size_t i = 0; i < order.size(); ++i) order[i] = i;
      std::sort(order.begin(), order.end(), [&](size_t a, size_t b) { return seen[a] < seen[b]; });
    }
  };
  // A run's sums and counts per image (first-seen index) and image metric while its rows are read: an image's
  // organs are averaged (sum, then divide: what mean() does).
  struct Pending {
    Images* images = nullptr;  // its data set's
    std::array<std::vector<double>, 3> sum;
    std::array<std::vector<int>, 3> n;
    // Room for a data set's images as seen so far: grown one image at a time, each vector ended with a third of it
    // unused (60 MB at 100,000 runs).
    void reserve(size_t images) {
      for (size_t m = 0; m < 3; ++m) sum[m].reserve(images), n[m].reserve(images);
    }
    void add(size_t metric, size_t image, double v, int count = 1) {
      if (sum[metric].size() <= image) sum[metric].resize(image + 1, 0.0), n[metric].resize(image + 1, 0);
      sum[metric][image] += v;
      n[metric][image] += count;
    }
  };
  // What one slice of the rows gives: each run's sums, and each data set's images (their first-seen indices).
  struct Part {
    std::map<std::string, Pending> pending;
    std::map<std::string, Images> images;
  };

  // The test-metric rows in two slices by row number, on this connection and a second one at once (9.6 million rows
  // took 4.5 s on one at 100,000 runs); one slice for a store with no file (in memory). A run whose rows are
  // rewritten while the report reads may be read in part, as with any read of a grid still being written.
  std::vector<Part> read_parts() {
    const int64_t end = MetricsTable(store_).test_metric_rows_end();
    std::vector<Part> parts(fs::is_regular_file(store_.path()) ? 2 : 1);
    if (parts.size() == 1) {
      read_test_rows(store_, {0, end}, parts[0]);
      return parts;
    }
    auto second = std::async(std::launch::async, [this, end, &parts] {
      Store own(store_.path(), Store::Mode::kRead);
      read_test_rows(own, {end / 2, end}, parts[1]);
    });
    read_test_rows(store_, {0, end / 2}, parts[0]);
    second.get();  // its error, if any, reaches the caller from here
    return parts;
  }
  // `from`'s runs moved into `into`, their images renumbered by name (each slice numbered the images it saw first);
  // a run with rows in both slices has its sums added image by image (an image's two organ rows add up in row
  // order, as one pass would). Moved, not copied: a copy held both slices' sums twice at the peak (+110 MB).
  void merge(Part& from, Part& into) {
    std::map<const Images*, std::vector<size_t>> renumbered;  // per data set: from's image number -> into's
    std::vector<double> sums;
    std::vector<int> counts;
    while (!from.pending.empty()) {
      auto node = from.pending.extract(from.pending.begin());
      Pending& p = node.mapped();
      Images& d = into.images[settings_.at(node.key())->dataset];
      auto& to = renumbered[p.images];
      if (to.empty())
        for (const auto& name : p.images->seen) to.push_back(d.id(name));
      if (auto at = into.pending.find(node.key()); at != into.pending.end()) {
        for (size_t m = 0; m < 3; ++m)
          for (size_t i = 0; i < p.sum[m].size(); ++i)
            if (p.n[m][i] > 0) at->second.add(m, to[i], p.sum[m][i], p.n[m][i]);
        continue;
      }
      for (size_t m = 0; m < 3; ++m) {
        sums.swap(p.sum[m]);
        counts.swap(p.n[m]);
        p.sum[m].assign(d.seen.size(), 0.0);
        p.n[m].assign(d.seen.size(), 0);
        for (size_t i = 0; i < sums.size(); ++i) p.sum[m][to[i]] = sums[i], p.n[m][to[i]] = counts[i];
      }
      p.images = &d;
      into.pending.insert(std::move(node));
    }
  }

  // One pass over the test-metric rows numbered [rows.first, rows.second) (the store's order: no sort), keeping this
  // grid's runs. Reads only what the constructor set, so two slices may be read at once.
  void read_test_rows(Store& store, std::pair<int64_t, int64_t> rows, Part& part) {
    auto& pending = part.pending;
    auto& images = part.images;
    Pending* p = nullptr;  // the current row's run, or null: not a run of this grid
    std::string last_run;
    bool first = true;
    double scale = 1, diagonal = 0;
    auto visit = [&](const TestMetric& t) {
      if (first || t.run_id != last_run) {
        first = false;
        last_run = t.run_id;
        auto it = settings_.find(t.run_id);
        p = it == settings_.end() ? nullptr : &pending[t.run_id];
        if (!p) return;
        p->images = &images[it->second->dataset];
        p->reserve(p->images->seen.size());
        scale = hausdorff_scale(s_, *it->second);
        diagonal = worst_hausdorff_mm(*it->second);
      }
      if (!p) return;
      const size_t image = p->images->id(t.image_id);
      p->add(0, image, t.dice);
      p->add(1, image, t.jaccard);
      const double hd = t.hausdorff_mm;
      if (std::isnan(hd) && s_.empty_mask == EmptyMask::kExclude) return;
      p->add(2, image, (std::isnan(hd) ? diagonal : hd) * scale);
    };
    MetricsTable(store).each_test_metric(visit, rows);
  }
  void read_inference() {
    std::vector<std::string> ids;
    for (const auto& [id, s] : settings_) ids.push_back(id);
    for (const auto& a : MetricsTable(store_).metric_aggregates(ids))
      if (a.organ.empty())
        values_[a.run_id][static_cast<size_t>(Metric::kInference)] =
            Units{s_.inference == InferenceTiming::kReference ? a.inference_launch_all_s : a.inference_s};
  }

  Store& store_;
  const ReportSettings& s_;
  std::map<std::string, const RunSettings*> settings_;
  std::map<std::string, std::array<Units, 4>> values_;  // run -> Units per Metric
  bool read_ = false;
};

struct Side {
  std::vector<std::string> runs;
  std::string median;
};

uint64_t seed_of(const std::string& text) {  // FNV-1a: the same comparison resamples the same way in every report
  uint64_t h = 1469598103934665603ull;
  for (unsigned char c : text) h = (h ^ c) * 1099511628211ull;
  return h;
}

// values[run][unit] for the units every run of both sides has, times `sign` (so that positive favours the claim).
Rows matrix(ClaimValues& values, const std::vector<std::string>& runs, const std::vector<size_t>& units, Metric metric,
            double sign) {
  Rows m(runs.size(), units.size());
  for (size_t r = 0; r < runs.size(); ++r) {
    const Units& u = values.of(runs[r], metric);
    double* row = m.row(r);
    for (size_t k = 0; k < units.size(); ++k) row[k] = sign * u.at(units[k]);
  }
  return m;
}

// One run's values at the units, as stored (the Wilcoxon test's input).
std::vector<double> column(ClaimValues& values, const std::string& run, const std::vector<size_t>& units, Metric metric) {
  const Units& u = values.of(run, metric);
  std::vector<double> out;
  out.reserve(units.size());
  for (size_t k : units) out.push_back(u.at(k));
  return out;
}

std::vector<size_t> common_units(ClaimValues& values, const Side& a, const Side& b, Metric metric) {
  std::vector<const Units*> rows;
  for (const auto* side : {&a, &b})
    for (const auto& r : side->runs) rows.push_back(&values.of(r, metric));
  std::vector<size_t> out;
  for (size_t k = 0; k < rows.front()->size(); ++k) {
    bool everywhere = true;
    for (const Units* u : rows) everywhere = everywhere && k < u->size() && std::isfinite((*u)[k]);
    if (everywhere) out.push_back(k);
  }
  return out;
}

ClaimComparison compare(ClaimValues& values, const ClaimSpec& spec, const std::string& dataset, Metric metric,
                        const std::string& better, const Side* a, const std::string& than, const Side* b) {
  ClaimComparison c;
  c.dataset = dataset;
  c.metric = metric;
  c.better = better;
  c.than = than;
  c.effect = c.lo = c.hi = c.median_effect = c.p_value = kNaN;
  if (!a || !b || a->runs.empty() || b->runs.empty()) return c;
  const std::vector<size_t> units = common_units(values, *a, *b, metric);
  if (units.empty()) return c;
  const double sign = higher_is_better(metric) ? 1.0 : -1.0;
  const Rows ma = matrix(values, a->runs, units, metric, sign), mb = matrix(values, b->runs, units, metric, sign);
  c.seeds_better = static_cast<int>(a->runs.size());
  c.seeds_than = static_cast<int>(b->runs.size());
  c.images = metric == Metric::kInference ? 0 : static_cast<int>(units.size());
  c.effect = advantage(ma, mb);
  const Interval i = bootstrap_interval(ma, mb, seed_of(c.dataset + "|" + choice_name(c.metric) + "|" + c.better + "|" + c.than),
                                        kResamples);
  c.lo = i.lo;
  c.hi = i.hi;
  const Rows med_a = matrix(values, {a->median}, units, metric, sign), med_b = matrix(values, {b->median}, units, metric, sign);
  c.median_effect = advantage(med_a, med_b);
  if (units.size() > 1) c.p_value = wilcoxon(column(values, a->median, units, metric), column(values, b->median, units, metric)).p_value;
  const bool resampled = ma.runs() > 1 || mb.runs() > 1 || units.size() > 1;
  const double margin = spec.margin.count(metric) ? spec.margin.at(metric) : 0;
  c.verdict = resampled ? comparison_verdict(spec.kind, c.lo, c.hi, margin) : Verdict::kInconclusive;
  return c;
}

Verdict claim_verdict(const std::vector<ClaimComparison>& cs) {
  bool any = false, all = true;
  for (const auto& c : cs) {
    if (c.verdict == Verdict::kContradicted) return Verdict::kContradicted;
    any = any || c.verdict != Verdict::kNotEvaluated;
    all = all && c.verdict == Verdict::kSupported;
  }
  return !any ? Verdict::kNotEvaluated : all ? Verdict::kSupported : Verdict::kInconclusive;
}

void check_networks(const ClaimSpec& s, bool from_paper) {
  for (const auto* list : {&s.better, &s.than})
    for (const auto& id : *list)
      if (!models::find_network(id))
        throw InputError(from_paper ? "report/paper_claims.json" : "report.claims", s.id, id,
                         "unknown network (known: " + models::known_network_list() + ")");
}

// Each comparison of a claim on the pool (they only read `values`, read in full before): a bootstrap over thousands
// of seeds takes seconds, and the comparisons are independent. Results keep the claim's order; an error in any of
// them reaches the caller from get().
CheckedClaim evaluate(const ClaimSpec& spec, bool from_paper, const ReportModel& model, ClaimValues& values, ThreadPool& pool) {
  CheckedClaim r;
  r.spec = spec;
  r.from_paper = from_paper;
  std::vector<std::future<ClaimComparison>> pending;
  for (const auto& t : model.tables) {
    if (!spec.datasets.empty() && std::find(spec.datasets.begin(), spec.datasets.end(), t.dataset->name) == spec.datasets.end())
      continue;
    auto sides = std::make_shared<std::map<std::string, Side>>();  // shared with the tasks, which may outlive this loop
    for (const auto& row : t.rows) (*sides)[row.network->id] = {row.done_ids, row.median};
    for (const auto& metric : spec.metrics)
      for (const auto& b : spec.better)
        for (const auto& o : spec.than)
          pending.push_back(pool.submit([&values, &spec, sides, dataset = t.dataset->name, metric, b, o] {
            auto side = [&](const std::string& id) { return sides->count(id) ? &sides->at(id) : nullptr; };
            return compare(values, spec, dataset, metric, b, side(b), o, side(o));
          }));
  }
  for (auto& f : pending) r.comparisons.push_back(f.get());
  r.verdict = claim_verdict(r.comparisons);
  return r;
}

}  // namespace

int CheckedClaim::count(Verdict v) const {
  return static_cast<int>(std::count_if(comparisons.begin(), comparisons.end(), [v](const auto& c) { return c.verdict == v; }));
}

Verdict comparison_verdict(ClaimKind kind, double lo, double hi, double margin) {
  if (std::isnan(lo) || std::isnan(hi)) return Verdict::kNotEvaluated;
  if (kind == ClaimKind::kSimilar) {
    if (lo >= -margin && hi <= margin) return Verdict::kSupported;
    if (lo > margin || hi < -margin) return Verdict::kContradicted;
    return Verdict::kInconclusive;
  }
  if (lo > 0) return Verdict::kSupported;
  if (hi < 0) return Verdict::kContradicted;
  return Verdict::kInconclusive;
}

std::vector<CheckedClaim> evaluate_claims(const std::vector<ClaimSpec>& paper, const std::vector<ClaimSpec>& own,
                                         const ReportModel& model, const std::vector<scheduler::PlannedRun>& grid,
                                         Store& store) {
  ClaimValues values(store, grid, model.settings);
  values.read();  // every value, now, on this thread
  ThreadPool pool(static_cast<int>(std::clamp(std::thread::hardware_concurrency(), 1u, 8u)));
  std::vector<CheckedClaim> out;
  for (const auto* list : {&paper, &own})
    for (const auto& spec : *list) {
      check_networks(spec, list == &paper);
      out.push_back(evaluate(spec, list == &paper, model, values, pool));
    }
  return out;
}

}  // namespace orch::report
