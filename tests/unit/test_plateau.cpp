// The plateau measure (core/plateau.h) on curves whose answer is known.
#include <gtest/gtest.h>

#include <cmath>

#include "core/plateau.h"

namespace orch {
namespace {

using Series = std::vector<std::pair<int64_t, double>>;

// A loss falling as 1/epoch, validated every `every` epochs up to `last`.
Series falling(int64_t last, int every) {
  Series s;
  for (int64_t e = every; e <= last; e += every) s.push_back({e, 1.0 / static_cast<double>(e)});
  return s;
}

TEST(Plateau, AFallingCurveHasNone) {
  // 1/e over 100 epochs: the best before epoch 80 is 1/80, at the end 1/100: 20 % better.
  const Plateau p = measure_plateau(falling(100, 5), 100, false);
  ASSERT_TRUE(p.measured);
  EXPECT_FALSE(p.reached);
  EXPECT_EQ(p.window_start, 80);
  EXPECT_NEAR(p.improvement, 0.2, 1e-12);
}

TEST(Plateau, AFlatTailIsOneAndSaysWhereItBegan) {
  Series s;
  for (int64_t e = 5; e <= 100; e += 5) s.push_back({e, e < 40 ? 1.0 / static_cast<double>(e) : 1.0 / 40 * (1 - 0.0001 * e)});
  const Plateau p = measure_plateau(s, 100, false);
  ASSERT_TRUE(p.measured);
  EXPECT_TRUE(p.reached);
  EXPECT_LT(p.improvement, 0.01);
  EXPECT_GT(p.improvement, 0);
  EXPECT_EQ(p.flat_from, 40);
}

TEST(Plateau, HigherIsBetterAndNoiseAfterTheBest) {
  // A Dice-like criterion: rises to 0.9 by epoch 30, then wobbles below it; the tail is not an improvement.
  Series s;
  for (int64_t e = 1; e <= 50; ++e) s.push_back({e, e <= 30 ? 0.3 * e / 10.0 : 0.9 - 0.01 * (e % 3)});
  const Plateau p = measure_plateau(s, 50, true);
  ASSERT_TRUE(p.measured);
  EXPECT_TRUE(p.reached);
  EXPECT_EQ(p.improvement, 0);
  EXPECT_EQ(p.flat_from, 30);
  // The same values read as lower-is-better: the best is the first epoch's, nothing later improves on it.
  EXPECT_TRUE(measure_plateau(s, 50, false).reached);
  // A threshold of 0 counts no improvement as flat (improvement 0 is not below 0).
  EXPECT_FALSE(measure_plateau(s, 50, true, PlateauOptions{0.0, 0.2}).reached);
}

TEST(Plateau, TooFewValidationsOrNonFiniteValuesAreNotMeasured) {
  EXPECT_FALSE(measure_plateau({}, 0, false).measured);
  EXPECT_FALSE(measure_plateau({{100, 0.5}}, 100, false).measured);     // nothing before the window
  EXPECT_FALSE(measure_plateau({{10, 0.5}, {20, 0.4}}, 100, false).measured);  // nothing in it
  // A short run still has a window of one epoch: the last fifth of 2 epochs is the second.
  const Plateau two = measure_plateau({{1, 0.9}, {2, 0.5}}, 2, false);
  EXPECT_TRUE(two.measured);
  EXPECT_EQ(two.window_start, 1);
  const Plateau p = measure_plateau({{10, 0.5}, {50, NAN}, {90, 0.25}}, 100, false);
  ASSERT_TRUE(p.measured);
  EXPECT_NEAR(p.improvement, 0.5, 1e-12);
  EXPECT_FALSE(p.reached);
}

}  // namespace
}  // namespace orch
