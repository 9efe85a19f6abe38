// Statistics of the report: mean and standard deviation over seeds, the median model, and the Wilcoxon
// signed-rank test. Stateless functions; thread-safe.
#pragma once

#include <cstddef>
#include <string>
#include <vector>

namespace orch::report {

double mean(const std::vector<double>& v);    // NaN when empty
double stddev(const std::vector<double>& v);  // sample standard deviation (n - 1); NaN when n < 2

// The index of the median element of `scores`: sorted ascending (ties by index), the middle one for an odd
// count and the lower of the two middle ones for an even count (so the median model is always a real run).
size_t median_index(const std::vector<double>& scores);

struct WilcoxonResult {
  double statistic = 0;  // min(W+, W-) over the non-zero differences, ranks averaged over ties
  double p_value = 1;    // two-sided
  int n = 0;             // pairs with a non-zero difference
  bool exact = false;
};

// Paired two-sided Wilcoxon signed-rank test of x - y, as scipy.stats.wilcoxon's default (zero differences
// dropped; for n <= 50 the exact distribution of the statistic (floored when ties make it fractional), as
// scipy 1.10's 'auto'; else the normal approximation with the tie correction and no continuity correction). Pairs with a NaN are dropped.
WilcoxonResult wilcoxon(const std::vector<double>& x, const std::vector<double>& y);

}  // namespace orch::report
