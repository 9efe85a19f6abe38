// The claims' bootstrap (report/bootstrap.h): its point estimate, its reproducibility, rounding between equal sides,
// and its interval against a plain resampling loop written out here (other draws, the same statistic).
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <random>

#include "core/rng.h"
#include "report/bootstrap.h"

namespace orch::report {
namespace {

Rows filled(size_t runs, size_t units, double mean, double spread, uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::normal_distribution<double> d(mean, spread);
  Rows m(runs, units);
  for (size_t r = 0; r < runs; ++r)
    for (size_t u = 0; u < units; ++u) m.row(r)[u] = d(rng);
  return m;
}

double mean(const Rows& m) {
  double s = 0;
  for (size_t r = 0; r < m.runs(); ++r)
    for (size_t u = 0; u < m.units(); ++u) s += m.row(r)[u];
  return s / static_cast<double>(m.runs() * m.units());
}

// The statistic resampled the obvious way: runs of each side and units drawn with replacement, one at a time.
Interval plain_interval(const Rows& a, const Rows& b, int resamples) {
  std::mt19937_64 rng(7);
  auto pick = [&](size_t n) { return std::uniform_int_distribution<size_t>(0, n - 1)(rng); };
  std::vector<double> draws;
  for (int k = 0; k < resamples; ++k) {
    std::vector<size_t> ra(a.runs()), rb(b.runs()), us(a.units());
    for (auto& x : ra) x = pick(a.runs());
    for (auto& x : rb) x = pick(b.runs());
    for (auto& x : us) x = pick(a.units());
    double total = 0;
    for (size_t u : us) {
      double sa = 0, sb = 0;
      for (size_t r : ra) sa += a.row(r)[u];
      for (size_t r : rb) sb += b.row(r)[u];
      total += sa / static_cast<double>(ra.size()) - sb / static_cast<double>(rb.size());
    }
    draws.push_back(total / static_cast<double>(us.size()));
  }
  std::sort(draws.begin(), draws.end());
  return {draws[static_cast<size_t>(0.025 * (resamples - 1))], draws[static_cast<size_t>(std::ceil(0.975 * (resamples - 1)))]};
}

TEST(RngBelow, EveryValueInRangeAboutEquallyOftenAndTheSameForTheSameSeed) {
  Rng x(3), y(3);
  std::vector<int> seen(7, 0);
  for (int i = 0; i < 70000; ++i) {
    const uint32_t v = x.below(7);
    ASSERT_LT(v, 7u);
    ASSERT_EQ(v, y.below(7));
    ++seen[v];
  }
  for (int n : seen) EXPECT_NEAR(n, 10000, 400);
  EXPECT_EQ(x.below(1), 0u);
}

TEST(Bootstrap, TheAdvantageIsTheDifferenceOfTheSidesMeans) {
  const Rows a = filled(7, 13, 0.9, 0.05, 1), b = filled(5, 13, 0.8, 0.05, 2);  // 13 units: a padded block
  EXPECT_NEAR(advantage(a, b), mean(a) - mean(b), 1e-12);
}

TEST(Bootstrap, TheSameSeedDrawsTheSameIntervalAnotherSeedAnother) {
  const Rows a = filled(30, 20, 0.9, 0.05, 3), b = filled(40, 20, 0.88, 0.05, 4);
  const Interval x = bootstrap_interval(a, b, 11, 500), y = bootstrap_interval(a, b, 11, 500);
  const Interval z = bootstrap_interval(a, b, 12, 500);
  EXPECT_EQ(x.lo, y.lo);
  EXPECT_EQ(x.hi, y.hi);
  EXPECT_TRUE(x.lo != z.lo || x.hi != z.hi);
  EXPECT_LT(x.lo, x.hi);
}

TEST(Bootstrap, EqualValuesOnBothSidesGiveZeroNotRoundingNoise) {
  Rows a(3, 5), b(7, 5);  // three and seven runs of 0.8: the sides' sums round differently
  for (Rows* m : {&a, &b})
    for (size_t r = 0; r < m->runs(); ++r)
      for (size_t u = 0; u < 5; ++u) m->row(r)[u] = 0.8;
  EXPECT_EQ(advantage(a, b), 0.0);
  const Interval i = bootstrap_interval(a, b, 5, 200);
  EXPECT_EQ(i.lo, 0.0);
  EXPECT_EQ(i.hi, 0.0);
}

TEST(Bootstrap, TheIntervalAgreesWithAPlainResamplingLoop) {
  // Seeds differ by side (spread across runs) and images by difficulty (spread across units): both resampled.
  Rows a = filled(25, 30, 0.0, 0.02, 5), b = filled(35, 30, 0.0, 0.02, 6);
  const Rows difficulty = filled(1, 30, 0.0, 0.05, 7), seed_a = filled(25, 1, 0.0, 0.03, 8), seed_b = filled(35, 1, 0.0, 0.03, 9);
  for (size_t u = 0; u < 30; ++u) {
    for (size_t r = 0; r < 25; ++r) a.row(r)[u] += 0.90 + difficulty.row(0)[u] + seed_a.row(r)[0];
    for (size_t r = 0; r < 35; ++r) b.row(r)[u] += 0.88 + 0.8 * difficulty.row(0)[u] + seed_b.row(r)[0];
  }
  const Interval mine = bootstrap_interval(a, b, 99, 4000), plain = plain_interval(a, b, 4000);
  const double width = plain.hi - plain.lo;
  ASSERT_GT(width, 0.005);
  EXPECT_NEAR(mine.lo, plain.lo, 0.1 * width);
  EXPECT_NEAR(mine.hi, plain.hi, 0.1 * width);
}

TEST(Bootstrap, SidesWithoutRunsOrWithOtherUnitsAreRefused) {
  EXPECT_THROW(advantage(Rows(0, 3), Rows(2, 3)), std::logic_error);
  EXPECT_THROW(bootstrap_interval(Rows(2, 3), Rows(2, 4), 1, 10), std::logic_error);
}

}  // namespace
}  // namespace orch::report
