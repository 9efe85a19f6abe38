// Users' documentation: docs/report.md ("Claims").
// The claims' interval: a percentile bootstrap of one side's advantage over another, where each side is a matrix of
// runs (seeds) x units (test images, or one inference time) and the advantage is the mean over units of (mean over
// the first side's runs - mean over the second's). Each resample draws, with replacement, the first side's runs,
// the second side's runs and the units, independently; the same seed gives the same draws on every machine
// (core/rng.h: no library distribution whose algorithm may change between standard libraries).
// Cost: (runs of both sides) x units multiply-adds per resample: each side's sums are a small matrix product of how
// often each run was drawn by its values, sixteen resamples per pass over the values (on x86-64 compiled for AVX2
// and FMA too, chosen at run time), so a bootstrap over thousands of seeds is a second of arithmetic. Stateless
// functions; safe to call from any number of threads at once. An advantage within 1e-12 of the values' largest
// magnitude is zero (rounding: two sides of equal values give [0, 0]).
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

namespace orch::report {

// Runs x units, contiguous, each row padded with zeros to a whole number of column blocks.
class Rows {
 public:
  Rows(size_t runs, size_t units);
  size_t runs() const { return runs_; }
  size_t units() const { return units_; }
  double* row(size_t r) { return v_.data() + r * stride_; }
  const double* row(size_t r) const { return v_.data() + r * stride_; }
  size_t stride() const { return stride_; }

 private:
  size_t runs_, units_, stride_;
  std::vector<double> v_;
};

// The advantage of `a` over `b` with every run and unit once (the point estimate).
double advantage(const Rows& a, const Rows& b);

struct Interval {
  double lo = 0, hi = 0;  // the 2.5 % and 97.5 % points of the resampled advantages
};

// The percentile interval of `resamples` resampled advantages, drawn from `seed`. Requires runs and units > 0 on
// both sides and a.units() == b.units().
Interval bootstrap_interval(const Rows& a, const Rows& b, uint64_t seed, int resamples);

}  // namespace orch::report
