// Scale searches of the K-quant reference quantizers; see kquant_search.h.
// Every expression keeps ggml's evaluation order (left to right, int operands converted to
// float where ggml converts them): a different order changes the last bit of a sum, which can
// flip a comparison between candidate scales and so change the bytes.
#include "quant/kquant_search.h"

#include <algorithm>
#include <cmath>

#include "quant/quant.h"

namespace owl::quant::detail {
namespace {

// The element of largest magnitude, with its sign (the first one on ties).
float signed_absmax(int n, const float* x, float* amax_out) {
  float amax = 0.0f;
  float max = 0.0f;
  for (int i = 0; i < n; ++i) {
    const float ax = std::fabs(x[i]);
    if (ax > amax) {
      amax = ax;
      max = x[i];
    }
  }
  *amax_out = amax;
  return max;
}

int clamp_symmetric(int l, int nmax) { return std::max(-nmax, std::min(nmax - 1, l)); }

// Weighted sums of one candidate quantization with weights x^2:
// sum_lx = sum w * x * l, sum_l2 = sum w * l * l.
struct SymmetricSums {
  float sum_lx = 0.0f;
  float sum_l2 = 0.0f;
};
SymmetricSums symmetric_sums(int n, int nmax, const float* x, float iscale) {
  SymmetricSums s;
  for (int i = 0; i < n; ++i) {
    const int l = clamp_symmetric(nearest_int(iscale * x[i]), nmax);
    const float w = x[i] * x[i];
    s.sum_lx += w * x[i] * static_cast<float>(l);
    s.sum_l2 += w * static_cast<float>(l) * static_cast<float>(l);
  }
  return s;
}

void store_symmetric(int n, int nmax, const float* x, float iscale, int8_t* L) {
  for (int i = 0; i < n; ++i) {
    L[i] = static_cast<int8_t>(nmax + clamp_symmetric(nearest_int(iscale * x[i]), nmax));
  }
}

}  // namespace

float fit_symmetric_rmse(int n, int nmax, const float* x, int8_t* L) {
  float amax;
  const float max = signed_absmax(n, x, &amax);
  if (amax < kGroupMaxEps) {
    std::fill(L, L + n, int8_t{0});
    return 0.0f;
  }
  float iscale = static_cast<float>(-nmax) / max;
  store_symmetric(n, nmax, x, iscale, L);
  SymmetricSums s = symmetric_sums(n, nmax, x, iscale);
  float scale = s.sum_l2 != 0.0f ? s.sum_lx / s.sum_l2 : 0.0f;
  float best = scale * s.sum_lx;  // the error reduction sum_lx^2 / sum_l2 of the best so far
  for (int k = -9; k <= 9; ++k) {
    if (k == 0) continue;
    iscale = -(static_cast<float>(nmax) + 0.1f * static_cast<float>(k)) / max;
    s = symmetric_sums(n, nmax, x, iscale);
    if (s.sum_l2 > 0 && s.sum_lx * s.sum_lx > best * s.sum_l2) {
      store_symmetric(n, nmax, x, iscale, L);
      scale = s.sum_lx / s.sum_l2;
      best = scale * s.sum_lx;
    }
  }
  return scale;
}

float fit_symmetric_q3(int n, int nmax, const float* x, int8_t* L) {
  float amax;
  const float max = signed_absmax(n, x, &amax);
  if (amax < kGroupMaxEps) {
    std::fill(L, L + n, int8_t{0});
    return 0.0f;
  }
  const float iscale = static_cast<float>(-nmax) / max;
  // L holds the signed quant l in [-nmax, nmax) until the final shift.
  float sum_lx = 0.0f;
  float sum_l2 = 0.0f;
  for (int i = 0; i < n; ++i) {
    const int l = clamp_symmetric(nearest_int(iscale * x[i]), nmax);
    L[i] = static_cast<int8_t>(l);
    const float w = x[i] * x[i];
    sum_lx += w * x[i] * static_cast<float>(l);
    sum_l2 += w * static_cast<float>(l) * static_cast<float>(l);
  }
  // Coordinate descent: re-round each quant against the scale fitted without it, and keep the
  // change when it raises sum_lx^2 / sum_l2 (i.e. lowers the weighted squared error).
  for (int pass = 0; pass < 5; ++pass) {
    int n_changed = 0;
    for (int i = 0; i < n; ++i) {
      const float w = x[i] * x[i];
      float slx = sum_lx - w * x[i] * static_cast<float>(L[i]);
      if (!(slx > 0)) continue;
      float sl2 = sum_l2 - w * static_cast<float>(L[i]) * static_cast<float>(L[i]);
      const int new_l = clamp_symmetric(nearest_int(x[i] * sl2 / slx), nmax);
      if (new_l == L[i]) continue;
      slx += w * x[i] * static_cast<float>(new_l);
      sl2 += w * static_cast<float>(new_l) * static_cast<float>(new_l);
      if (sl2 > 0 && slx * slx * sum_l2 > sum_lx * sum_lx * sl2) {
        L[i] = static_cast<int8_t>(new_l);
        sum_lx = slx;
        sum_l2 = sl2;
        ++n_changed;
      }
    }
    if (n_changed == 0) break;
  }
  for (int i = 0; i < n; ++i) L[i] = static_cast<int8_t>(L[i] + nmax);
  return sum_l2 > 0.0f ? sum_lx / sum_l2 : 0.0f;
}

namespace {

// Weighted error of x ~ scale * L + min (min <= 0 here: the offset as added, not subtracted).
float weighted_error(int n, const float* x, const float* weights, const uint8_t* L, float scale,
                     float min, bool use_mad) {
  float error = 0.0f;
  for (int i = 0; i < n; ++i) {
    float diff = scale * static_cast<float>(L[i]) + min - x[i];
    diff = use_mad ? std::fabs(diff) : diff * diff;
    error += weights[i] * diff;
  }
  return error;
}

void round_to_grid(int n, int nmax, const float* x, float iscale, float min, uint8_t* L) {
  for (int i = 0; i < n; ++i) {
    const int l = nearest_int(iscale * (x[i] - min));
    L[i] = static_cast<uint8_t>(std::max(0, std::min(nmax, l)));
  }
}

}  // namespace

float fit_scale_and_min(int n, int nmax, const float* x, const float* weights, uint8_t* L,
                        float* min_out, uint8_t* laux, ScaleGrid grid, bool use_mad) {
  float min = x[0];
  float max = x[0];
  float sum_w = weights[0];
  float sum_x = sum_w * x[0];
  for (int i = 1; i < n; ++i) {
    if (x[i] < min) min = x[i];
    if (x[i] > max) max = x[i];
    sum_w += weights[i];
    sum_x += weights[i] * x[i];
  }
  if (min > 0) min = 0;  // the offset only ever lowers the grid: x >= 0 blocks start at 0
  if (max == min) {
    std::fill(L, L + n, uint8_t{0});
    *min_out = -min;
    return 0.0f;
  }
  float iscale = static_cast<float>(nmax) / (max - min);
  float scale = 1 / iscale;
  round_to_grid(n, nmax, x, iscale, min, L);
  float best_error = weighted_error(n, x, weights, L, scale, min, use_mad);
  if (grid.nstep < 1) {
    *min_out = -min;
    return scale;
  }
  for (int k = 0; k <= grid.nstep; ++k) {
    iscale = (grid.rmin + grid.rdelta * static_cast<float>(k) + static_cast<float>(nmax)) / (max - min);
    round_to_grid(n, nmax, x, iscale, min, laux);
    float sum_l = 0.0f;
    float sum_l2 = 0.0f;
    float sum_xl = 0.0f;
    for (int i = 0; i < n; ++i) {
      const float w = weights[i];
      const float l = static_cast<float>(laux[i]);
      sum_l += w * l;
      sum_l2 += w * l * l;
      sum_xl += w * l * x[i];
    }
    // Weighted least squares for x ~ this_scale * l + this_min (normal equations, determinant D).
    const float D = sum_w * sum_l2 - sum_l * sum_l;
    if (!(D > 0)) continue;
    float this_scale = (sum_w * sum_xl - sum_x * sum_l) / D;
    float this_min = (sum_l2 * sum_x - sum_l * sum_xl) / D;
    if (this_min > 0) {
      this_min = 0;
      this_scale = sum_xl / sum_l2;
    }
    const float error = weighted_error(n, x, weights, laux, this_scale, this_min, use_mad);
    if (error < best_error) {
      std::copy(laux, laux + n, L);
      best_error = error;
      scale = this_scale;
      min = this_min;
    }
  }
  *min_out = -min;
  return scale;
}

}  // namespace owl::quant::detail
