// The statistics of an eval report: confidence intervals on pass rates, paired comparisons of
// two candidates on the same cases, and quantiles of latencies.
#pragma once

#include <cstdint>
#include <vector>

namespace owl::eval {

struct Interval {
  double low = 0, high = 0;
};

// Wilson score interval for `passed` successes of `total` at confidence z (1.96: 95%); [0, 1]
// when total is 0.
Interval wilson(int64_t passed, int64_t total, double z = 1.96);

// McNemar's exact test on paired outcomes: `b` pairs where only the first passes, `c` where only
// the second does. The two-sided p-value (binomial, p = 1/2 over b + c discordant pairs); 1 when
// there are none.
double mcnemar_p(int64_t b, int64_t c);

// The q-quantile (q in [0, 1]) by linear interpolation between order statistics (numpy's
// default); 0 for an empty vector.
double quantile(std::vector<double> values, double q);

}  // namespace owl::eval
