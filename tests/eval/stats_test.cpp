// The statistics of an eval report against values worked out by hand (or exactly, with integer
// binomial coefficients) and numpy.quantile's documented behaviour.
#include <gtest/gtest.h>

#include "eval/stats.h"

namespace owl::eval {
namespace {

// 8 of 10: p = 0.8, z² / n = 0.38416, center 0.99208 / 1.38416 = 0.716738, half-width
// 1.96 · sqrt(0.016 + 0.009604) / 1.38416 = 0.226581.
TEST(Stats, WilsonEightOfTen) {
  const Interval i = wilson(8, 10);
  EXPECT_NEAR(i.low, 0.490157, 1e-6);
  EXPECT_NEAR(i.high, 0.943319, 1e-6);
}

TEST(Stats, WilsonAtTheEdges) {
  const Interval none = wilson(0, 0);
  EXPECT_EQ(none.low, 0.0);
  EXPECT_EQ(none.high, 1.0);
  // 0 of 10: [0, (z²/n) / (1 + z²/n)] = [0, 0.38416 / 1.38416].
  const Interval zero = wilson(0, 10);
  EXPECT_EQ(zero.low, 0.0);
  EXPECT_NEAR(zero.high, 0.277540, 1e-6);
  const Interval all = wilson(10, 10);
  EXPECT_NEAR(all.low, 1 - 0.277540, 1e-6);
  EXPECT_EQ(all.high, 1.0);
  // Symmetric around one half.
  const Interval half = wilson(50, 100);
  EXPECT_NEAR(half.low, 0.403830, 1e-6);
  EXPECT_NEAR(half.low + half.high, 1.0, 1e-12);
  // A wider z gives a wider interval.
  const Interval wide = wilson(8, 10, 2.576);
  EXPECT_LT(wide.low, 0.490157);
  EXPECT_GT(wide.high, 0.943319);
}

TEST(Stats, McNemarSmallCounts) {
  EXPECT_EQ(mcnemar_p(0, 0), 1.0);
  EXPECT_NEAR(mcnemar_p(0, 5), 0.0625, 1e-12);       // 2 · 1/32
  EXPECT_NEAR(mcnemar_p(5, 0), 0.0625, 1e-12);
  EXPECT_NEAR(mcnemar_p(1, 9), 0.021484375, 1e-12);  // 2 · (1 + 10) / 1024
  EXPECT_NEAR(mcnemar_p(2, 10), 0.03857421875, 1e-12);  // 2 · (1 + 12 + 66) / 4096
  EXPECT_EQ(mcnemar_p(3, 3), 1.0);
  EXPECT_NEAR(mcnemar_p(4, 5), 1.0, 1e-12);  // 2 · P(X <= 4) of Binomial(9, 1/2) = 1
  EXPECT_NEAR(mcnemar_p(20, 40), 0.0134892937312, 1e-11);
}

// Exact values from Python's integer comb(); the last from lgamma and math.fsum.
TEST(Stats, McNemarLargeCounts) {
  EXPECT_NEAR(mcnemar_p(2200, 2400) / 0.003340859427041576, 1.0, 1e-9);
  EXPECT_NEAR(mcnemar_p(4950, 5050) / 0.322174199795312, 1.0, 1e-9);
  EXPECT_NEAR(mcnemar_p(499000, 501000) / 0.0456082998365, 1.0, 1e-7);
  EXPECT_EQ(mcnemar_p(500000, 500000), 1.0);
  const double tiny = mcnemar_p(0, 1000000);  // 2 / 2^1000000 underflows to 0, never NaN
  EXPECT_GE(tiny, 0.0);
  EXPECT_LT(tiny, 1e-300);
}

TEST(Stats, QuantileMatchesNumpy) {
  EXPECT_DOUBLE_EQ(quantile({4, 1, 3, 2}, 0.25), 1.75);  // h = 0.75: 1 + 0.75 · (2 - 1)
  EXPECT_DOUBLE_EQ(quantile({4, 1, 3, 2}, 0.5), 2.5);
  EXPECT_DOUBLE_EQ(quantile({3, 1, 2, 10, 7}, 0.9), 8.8);  // h = 3.6: 7 + 0.6 · (10 - 7)
  EXPECT_DOUBLE_EQ(quantile({3, 1, 2, 10, 7}, 0.0), 1.0);
  EXPECT_DOUBLE_EQ(quantile({3, 1, 2, 10, 7}, 1.0), 10.0);
  EXPECT_DOUBLE_EQ(quantile({5}, 0.3), 5.0);
  EXPECT_DOUBLE_EQ(quantile({}, 0.5), 0.0);
  std::vector<double> v;
  for (int i = 200; i >= 1; --i) v.push_back(i);
  EXPECT_NEAR(quantile(v, 0.99), 198.01, 1e-9);  // h = 197.01
}

}  // namespace
}  // namespace owl::eval
