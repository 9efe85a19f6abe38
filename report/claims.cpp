#include "report/claims.h"

#include <algorithm>
#include <cmath>
#include <random>

#include "core/errors.h"
#include "models/catalogue.h"
#include "report/stats.h"
#include "storage/metrics_table.h"

namespace orch::report {

namespace {

const double kNaN = std::nan("");
constexpr int kResamples = 2000;

// Per run, per test image ("" for the per-run inference time): the metric as the report's settings count it.
using Units = std::map<std::string, double>;

class ClaimValues {
 public:
  ClaimValues(Store& store, const std::vector<scheduler::PlannedRun>& grid, const ReportSettings& s) : store_(store), s_(s) {
    for (const auto& r : grid) settings_[r.id] = &r.settings;
  }
  const Units& of(const std::string& run, Metric metric) {
    auto key = std::make_pair(run, metric);
    auto it = cache_.find(key);
    if (it == cache_.end()) it = cache_.emplace(key, metric == Metric::kInference ? inference(run) : per_image(run, metric)).first;
    return it->second;
  }

 private:
  // Every run's inference time, read in one query the first time one is asked for (one query per run took
  // minutes over a 1,000-run grid).
  Units inference(const std::string& run) {
    if (!inference_read_) {
      std::vector<std::string> ids;
      for (const auto& [id, s] : settings_) ids.push_back(id);
      for (const auto& a : MetricsTable(store_).metric_aggregates(ids))
        if (a.organ.empty()) inference_[a.run_id] = s_.inference == InferenceTiming::kReference ? a.inference_launch_all_s : a.inference_s;
      inference_read_ = true;
    }
    Units u;
    if (auto it = inference_.find(run); it != inference_.end()) u[""] = it->second;
    return u;
  }
  Units per_image(const std::string& run, Metric metric) {
    const RunSettings& rs = *settings_.at(run);
    const double scale = hausdorff_scale(s_, rs);
    const double diagonal = worst_hausdorff_mm(rs);
    std::map<std::string, std::vector<double>> organs;
    for (const auto& t : MetricsTable(store_).test_metrics(run)) {
      double v = metric == Metric::kDice ? t.dice : metric == Metric::kJaccard ? t.jaccard : t.hausdorff_mm;
      if (metric == Metric::kHausdorff) {
        if (std::isnan(v) && s_.empty_mask == EmptyMask::kExclude) continue;
        v = (std::isnan(v) ? diagonal : v) * scale;
      }
      organs[t.image_id].push_back(v);
    }
    Units u;
    for (const auto& [img, v] : organs) u[img] = mean(v);
    return u;
  }
  Store& store_;
  const ReportSettings& s_;
  std::map<std::string, const RunSettings*> settings_;
  std::map<std::pair<std::string, Metric>, Units> cache_;
  std::map<std::string, double> inference_;
  bool inference_read_ = false;
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

// values[run][unit] for the units every run of both sides has.
std::vector<std::vector<double>> matrix(ClaimValues& values, const std::vector<std::string>& runs,
                                        const std::vector<std::string>& units, Metric metric) {
  std::vector<std::vector<double>> m;
  for (const auto& r : runs) {
    const Units& u = values.of(r, metric);
    m.emplace_back();
    for (const auto& k : units) m.back().push_back(u.at(k));
  }
  return m;
}

std::vector<std::string> common_units(ClaimValues& values, const Side& a, const Side& b, Metric metric) {
  std::vector<std::string> out;
  const Units& first = values.of(a.runs.front(), metric);
  for (const auto& [k, v] : first) {
    bool everywhere = std::isfinite(v);
    for (const auto* side : {&a, &b})
      for (const auto& r : side->runs) {
        const Units& u = values.of(r, metric);
        auto it = u.find(k);
        everywhere = everywhere && it != u.end() && std::isfinite(it->second);
      }
    if (everywhere) out.push_back(k);
  }
  return out;
}

// The mean over units of (mean over a's picked runs - mean over b's), with runs and units picked by index.
double advantage(const std::vector<std::vector<double>>& a, const std::vector<std::vector<double>>& b,
                 const std::vector<size_t>& ra, const std::vector<size_t>& rb, const std::vector<size_t>& units) {
  double sum = 0;
  for (size_t u : units) {
    double ma = 0, mb = 0;
    for (size_t r : ra) ma += a[r][u];
    for (size_t r : rb) mb += b[r][u];
    sum += ma / static_cast<double>(ra.size()) - mb / static_cast<double>(rb.size());
  }
  return sum / static_cast<double>(units.size());
}

std::vector<size_t> iota(size_t n) {
  std::vector<size_t> v(n);
  for (size_t i = 0; i < n; ++i) v[i] = i;
  return v;
}

void bootstrap(ClaimComparison& c, const std::vector<std::vector<double>>& a, const std::vector<std::vector<double>>& b,
               double sign) {
  const size_t na = a.size(), nb = b.size(), nu = a.front().size();
  c.effect = sign * advantage(a, b, iota(na), iota(nb), iota(nu));
  std::mt19937_64 rng(seed_of(c.dataset + "|" + choice_name(c.metric) + "|" + c.better + "|" + c.than));
  auto pick = [&](size_t n) {
    std::vector<size_t> v(n);
    std::uniform_int_distribution<size_t> d(0, n - 1);
    for (auto& x : v) x = d(rng);
    return v;
  };
  std::vector<double> draws;
  draws.reserve(kResamples);
  for (int k = 0; k < kResamples; ++k) draws.push_back(sign * advantage(a, b, pick(na), pick(nb), pick(nu)));
  std::sort(draws.begin(), draws.end());
  c.lo = draws[static_cast<size_t>(0.025 * (kResamples - 1))];
  c.hi = draws[static_cast<size_t>(std::ceil(0.975 * (kResamples - 1)))];
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
  const std::vector<std::string> units = common_units(values, *a, *b, metric);
  if (units.empty()) return c;
  const double sign = higher_is_better(metric) ? 1.0 : -1.0;
  const auto ma = matrix(values, a->runs, units, metric), mb = matrix(values, b->runs, units, metric);
  c.seeds_better = static_cast<int>(a->runs.size());
  c.seeds_than = static_cast<int>(b->runs.size());
  c.images = metric == Metric::kInference ? 0 : static_cast<int>(units.size());
  bootstrap(c, ma, mb, sign);
  const auto med = matrix(values, {a->median, b->median}, units, metric);
  c.median_effect = sign * advantage({med[0]}, {med[1]}, {0}, {0}, iota(units.size()));
  if (units.size() > 1) c.p_value = wilcoxon(med[0], med[1]).p_value;
  const bool resampled = ma.size() > 1 || mb.size() > 1 || units.size() > 1;
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

CheckedClaim evaluate(const ClaimSpec& spec, bool from_paper, const ReportModel& model, ClaimValues& values) {
  CheckedClaim r;
  r.spec = spec;
  r.from_paper = from_paper;
  for (const auto& t : model.tables) {
    if (!spec.datasets.empty() && std::find(spec.datasets.begin(), spec.datasets.end(), t.dataset->name) == spec.datasets.end())
      continue;
    std::map<std::string, Side> sides;
    for (const auto& row : t.rows) sides[row.network->id] = {row.done_ids, row.median};
    auto side = [&](const std::string& id) { return sides.count(id) ? &sides[id] : nullptr; };
    for (const auto& metric : spec.metrics)
      for (const auto& b : spec.better)
        for (const auto& o : spec.than)
          r.comparisons.push_back(compare(values, spec, t.dataset->name, metric, b, side(b), o, side(o)));
  }
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
  std::vector<CheckedClaim> out;
  for (const auto* list : {&paper, &own})
    for (const auto& spec : *list) {
      check_networks(spec, list == &paper);
      out.push_back(evaluate(spec, list == &paper, model, values));
    }
  return out;
}

}  // namespace orch::report
