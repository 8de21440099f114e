// Error budgets of the formats for the quant tests: a quantize -> dequantize round trip of a
// row must have rmse(x_hat - x) <= rms(x) * budget, with
//   budget = 2^(1 - bits) * sqrt(ln(group) / ln(32))
// bits = the format's quant width, group = the number of elements that share one scale.
// Rounding to 2^bits levels spread over a group's range gives an error proportional to
// 2^-bits times that range, and the range of g Gaussian samples grows as sqrt(2 ln g); the
// constant puts a correct implementation at 55-70% of its budget, while a mis-decoded block
// gives errors of the order of rms(x) or more. Plain float types use 2^(1 - mantissa bits).
#pragma once

#include <cmath>
#include <cstdint>
#include <vector>

#include "gguf/tensor_type.h"

namespace owl::quant::testing {

inline int quant_bits(gguf::TensorType type) {
  using gguf::TensorType;
  switch (type) {
    case TensorType::F32: return 24;
    case TensorType::F16: return 11;
    case TensorType::BF16: return 8;
    case TensorType::Q8_0:
    case TensorType::Q8_1:
    case TensorType::Q8_K: return 8;
    case TensorType::Q6_K: return 6;
    case TensorType::Q5_0:
    case TensorType::Q5_1:
    case TensorType::Q5_K: return 5;
    case TensorType::Q4_0:
    case TensorType::Q4_1:
    case TensorType::Q4_K: return 4;
    case TensorType::Q3_K: return 3;
    case TensorType::Q2_K: return 2;
    default: return 0;
  }
}

// Elements that share one scale; 1 for the plain float types.
inline int scale_group(gguf::TensorType type) {
  using gguf::TensorType;
  switch (type) {
    case TensorType::Q2_K:
    case TensorType::Q3_K:
    case TensorType::Q6_K: return 16;
    case TensorType::Q8_K: return 256;
    case TensorType::F32:
    case TensorType::F16:
    case TensorType::BF16: return 1;
    default: return 32;  // the 32-element formats; the sub-blocks of Q4_K / Q5_K
  }
}

inline double relative_rmse_budget(gguf::TensorType type) {
  const double base = std::ldexp(1.0, 1 - quant_bits(type));
  const int group = scale_group(type);
  if (group == 1) return base;
  return base * std::sqrt(std::log(static_cast<double>(group)) / std::log(32.0));
}

// rmse(y - x) / rms(x), in double; 0 for an all-zero x reconstructed exactly.
inline double relative_rmse(const float* x, const float* y, int64_t n) {
  double err = 0.0;
  double ref = 0.0;
  for (int64_t i = 0; i < n; ++i) {
    const double d = static_cast<double>(y[i]) - static_cast<double>(x[i]);
    err += d * d;
    ref += static_cast<double>(x[i]) * static_cast<double>(x[i]);
  }
  if (ref == 0.0) return err == 0.0 ? 0.0 : INFINITY;
  return std::sqrt(err / ref);
}

}  // namespace owl::quant::testing
