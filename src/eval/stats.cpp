#include "eval/stats.h"

#include <algorithm>
#include <cmath>

namespace owl::eval {

// Wilson (1927), as in Brown, Cai & DasGupta, "Interval Estimation for a Binomial Proportion"
// (2001), eq. 4: center (p + z²/2n) / (1 + z²/n), half-width z·sqrt(p(1-p)/n + z²/4n²) / (1 + z²/n).
Interval wilson(int64_t passed, int64_t total, double z) {
  if (total <= 0) return {0, 1};
  const auto n = static_cast<double>(total);
  const double p = static_cast<double>(std::clamp(passed, int64_t{0}, total)) / n;
  const double z2 = z * z;
  const double denom = 1 + z2 / n;
  const double center = (p + z2 / (2 * n)) / denom;
  const double half = z * std::sqrt(p * (1 - p) / n + z2 / (4 * n * n)) / denom;
  // At p = 0 or 1 the bound is exactly 0 or 1; rounding would leave it a hair away.
  return {passed <= 0 ? 0.0 : std::max(0.0, center - half), passed >= total ? 1.0 : std::min(1.0, center + half)};
}

// Under the null hypothesis the discordant pairs split Binomial(n = b + c, 1/2); the two-sided
// p-value doubles the tail P(X <= min(b, c)). The terms C(n, i) / 2^n are summed from i = k
// down, each from the one above by C(n, i-1) = C(n, i) · i / (n - i + 1), relative to the
// largest (i = k, whose logarithm comes from lgamma), so nothing overflows at n = 10^6 and the
// loop stops once the terms no longer change the sum.
double mcnemar_p(int64_t b, int64_t c) {
  const int64_t n = b + c;
  if (n <= 0) return 1;
  const int64_t k = std::min(b, c);
  if (2 * k >= n) return 1;  // b == c: the tail holds half the mass or more
  const auto nd = static_cast<double>(n);
  const auto kd = static_cast<double>(k);
  const double log_top = std::lgamma(nd + 1) - std::lgamma(kd + 1) - std::lgamma(nd - kd + 1) - nd * std::log(2.0);
  double sum = 1;
  double term = 1;
  for (int64_t i = k; i > 0; --i) {
    term *= static_cast<double>(i) / static_cast<double>(n - i + 1);
    sum += term;
    if (term < sum * 1e-17) break;
  }
  return std::min(1.0, 2 * std::exp(log_top + std::log(sum)));
}

// numpy.quantile's default ("linear", Hyndman & Fan type 7): position h = (n - 1) q between the
// sorted values v[floor h] and v[floor h + 1].
double quantile(std::vector<double> values, double q) {
  if (values.empty()) return 0;
  std::sort(values.begin(), values.end());
  const double h = (static_cast<double>(values.size()) - 1) * std::clamp(q, 0.0, 1.0);
  const auto lo = static_cast<size_t>(std::floor(h));
  const size_t hi = std::min(lo + 1, values.size() - 1);
  return values[lo] + (h - static_cast<double>(lo)) * (values[hi] - values[lo]);
}

}  // namespace owl::eval
