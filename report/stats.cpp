#include "report/stats.h"

#include <algorithm>
#include <cmath>
#include <numeric>

namespace orch::report {

double mean(const std::vector<double>& v) {
  if (v.empty()) return std::nan("");
  return std::accumulate(v.begin(), v.end(), 0.0) / static_cast<double>(v.size());
}

double stddev(const std::vector<double>& v) {
  if (v.size() < 2) return std::nan("");
  double m = mean(v), s = 0;
  for (double x : v) s += (x - m) * (x - m);
  return std::sqrt(s / static_cast<double>(v.size() - 1));
}

size_t median_index(const std::vector<double>& scores) {
  std::vector<size_t> idx(scores.size());
  std::iota(idx.begin(), idx.end(), 0);
  std::stable_sort(idx.begin(), idx.end(), [&](size_t a, size_t b) { return scores[a] < scores[b]; });
  return idx[(idx.size() - 1) / 2];
}

WilcoxonResult wilcoxon(const std::vector<double>& x, const std::vector<double>& y) {
  std::vector<double> d;
  for (size_t i = 0; i < x.size() && i < y.size(); ++i) {
    double v = x[i] - y[i];
    if (std::isnan(v) || v == 0) continue;
    d.push_back(v);
  }
  WilcoxonResult r;
  r.n = static_cast<int>(d.size());
  if (d.empty()) return r;
  std::vector<size_t> order(d.size());
  std::iota(order.begin(), order.end(), 0);
  std::sort(order.begin(), order.end(), [&](size_t a, size_t b) { return std::abs(d[a]) < std::abs(d[b]); });
  std::vector<double> rank(d.size());
  double tie_term = 0;
  for (size_t i = 0; i < order.size();) {
    size_t j = i;
    while (j + 1 < order.size() && std::abs(d[order[j + 1]]) == std::abs(d[order[i]])) ++j;
    double avg = (static_cast<double>(i + 1) + static_cast<double>(j + 1)) / 2;
    for (size_t k = i; k <= j; ++k) rank[order[k]] = avg;
    double t = static_cast<double>(j - i + 1);
    if (t > 1) tie_term += t * t * t - t;
    i = j + 1;
  }
  double wp = 0, wm = 0;
  for (size_t i = 0; i < d.size(); ++i) (d[i] > 0 ? wp : wm) += rank[i];
  r.statistic = std::min(wp, wm);
  const int n = r.n;
  if (n <= 50) {  // scipy 1.10's 'auto': the exact distribution up to 50 pairs, ties or not
    // Exact: the number of subsets of {1..n} per rank sum.
    const int max_sum = n * (n + 1) / 2;
    std::vector<double> count(static_cast<size_t>(max_sum) + 1, 0.0);
    count[0] = 1;
    for (int k = 1; k <= n; ++k)
      for (int s = max_sum; s >= k; --s) count[static_cast<size_t>(s)] += count[static_cast<size_t>(s - k)];
    // As scipy: W+ floored, p = 2 min(P(W <= W+), P(W >= W+)), 1 at the centre.
    const int rp = static_cast<int>(std::floor(wp));
    double less = 0, greater = 0;
    for (int k = 0; k <= max_sum; ++k) {
      if (k <= rp) less += count[static_cast<size_t>(k)];
      if (k >= rp) greater += count[static_cast<size_t>(k)];
    }
    const double total = std::ldexp(1.0, n);
    r.p_value = rp == max_sum / 2 ? 1.0 : std::min(1.0, 2 * std::min(less, greater) / total);
    r.exact = true;
  } else {
    double mn = n * (n + 1) / 4.0;
    double var = n * (n + 1) * (2.0 * n + 1) / 24.0 - tie_term / 48.0;
    double z = (r.statistic - mn) / std::sqrt(var);
    r.p_value = std::min(1.0, std::erfc(std::abs(z) / std::sqrt(2.0)));
  }
  return r;
}

}  // namespace orch::report
