// The K-quant formats: 256-element super-blocks of 16 or 8 sub-blocks, each sub-block with
// its own scale (and min) stored in 4..8 bits relative to one F16 super-block scale.
// Reference: llama.cpp ggml/src/ggml-quants.c, quantize_row_q{2..6}_K_ref and
// dequantize_row_q{2..6,8}_K. The quantizers run in three steps:
//   1. fit each sub-block on its own (kquant_search.h) -> float scale (and min) per sub-block;
//   2. quantize those scales against the largest one -> the stored 4/6/8-bit scales and d;
//   3. requantize every element with the scale it will actually be decoded with, then pack.
#include <algorithm>
#include <cmath>
#include <cstring>

#include "quant/half.h"
#include "quant/kquant_pack.h"
#include "quant/kquant_search.h"
#include "quant/quant.h"

namespace owl::quant {
namespace {

using detail::fit_scale_and_min;
using detail::fit_symmetric_q3;
using detail::fit_symmetric_rmse;
using detail::kGroupMaxEps;
using detail::ScaleGrid;

// Re-derives the quants of each 16-element sub-block from its final (stored, rounded) scale,
// as llama.cpp does once the scales are encoded: L = clamp(round(x / d_j), -half, half - 1) + half.
// A sub-block whose scale is 0 keeps the L it has.
template <typename ScaleOf>
void requantize_16(const float* x, int half, ScaleOf scale_of, int8_t* L) {
  for (int j = 0; j < kQK_K / 16; ++j) {
    const float d = scale_of(j);
    if (d == 0.0f) continue;
    for (int i = 0; i < 16; ++i) {
      const int l = nearest_int(x[16 * j + i] / d);
      L[16 * j + i] = static_cast<int8_t>(std::max(-half, std::min(half - 1, l)) + half);
    }
  }
}

// ---------------------------------------------------------------------------------- Q2_K

// Step 1: 16 sub-blocks of 16, 2-bit quants with a min, weighted by |x|, absolute error.
void fit_q2_k(const float* x, uint8_t* L, float* scales, float* mins) {
  float weights[16];
  uint8_t laux[16];
  for (int j = 0; j < kQK_K / 16; ++j) {
    for (int l = 0; l < 16; ++l) weights[l] = std::fabs(x[16 * j + l]);
    scales[j] = fit_scale_and_min(16, 3, x + 16 * j, weights, L + 16 * j, &mins[j], laux,
                                  ScaleGrid{-0.5f, 0.1f, 15}, /*use_mad=*/true);
  }
}

// Step 2: scales in the low nibbles, mins in the high nibbles, both relative to their max / 15.
void encode_scales_q2_k(const float* scales, const float* mins, BlockQ2_K& y) {
  constexpr float kLevels = 15.0f;
  float max_scale = 0.0f;
  float max_min = 0.0f;
  for (int j = 0; j < kQK_K / 16; ++j) {
    if (scales[j] > max_scale) max_scale = scales[j];
    if (mins[j] > max_min) max_min = mins[j];
  }
  if (max_scale > 0) {
    const float iscale = kLevels / max_scale;
    for (int j = 0; j < kQK_K / 16; ++j) y.scales[j] = static_cast<uint8_t>(nearest_int(iscale * scales[j]));
    y.d = f32_to_f16(max_scale / kLevels);
  } else {
    std::memset(y.scales, 0, sizeof(y.scales));
    y.d = f32_to_f16(0.0f);
  }
  if (max_min > 0) {
    const float iscale = kLevels / max_min;
    for (int j = 0; j < kQK_K / 16; ++j) {
      y.scales[j] |= static_cast<uint8_t>(nearest_int(iscale * mins[j]) << 4);
    }
    y.dmin = f32_to_f16(max_min / kLevels);
  } else {
    y.dmin = f32_to_f16(0.0f);
  }
}

}  // namespace

void quantize_row_q2_K(const float* x, BlockQ2_K* y, int64_t n) {
  for (int64_t b = 0; b < n / kQK_K; ++b, x += kQK_K) {
    uint8_t L[kQK_K];
    float scales[kQK_K / 16];
    float mins[kQK_K / 16];
    fit_q2_k(x, L, scales, mins);
    encode_scales_q2_k(scales, mins, y[b]);
    // Step 3; a sub-block whose decoded scale is 0 keeps the quants of step 1.
    for (int j = 0; j < kQK_K / 16; ++j) {
      const float d = f16_to_f32(y[b].d) * static_cast<float>(y[b].scales[j] & 0xF);
      if (d == 0.0f) continue;
      const float dm = f16_to_f32(y[b].dmin) * static_cast<float>(y[b].scales[j] >> 4);
      for (int i = 0; i < 16; ++i) {
        const int l = nearest_int((x[16 * j + i] + dm) / d);
        L[16 * j + i] = static_cast<uint8_t>(std::max(0, std::min(3, l)));
      }
    }
    pack_2bit(L, y[b].qs);
  }
}

// x = d * (scales[j] & 0xF) * q - dmin * (scales[j] >> 4), sub-block j = e / 16.
void dequantize_row_q2_K(const BlockQ2_K* x, float* y, int64_t n) {
  for (int64_t b = 0; b < n / kQK_K; ++b, y += kQK_K) {
    const float d = f16_to_f32(x[b].d);
    const float dmin = f16_to_f32(x[b].dmin);
    for (int e = 0; e < kQK_K; ++e) {
      const uint8_t sc = x[b].scales[e / 16];
      const float dl = d * static_cast<float>(sc & 0xF);
      const float ml = dmin * static_cast<float>(sc >> 4);
      y[e] = dl * static_cast<float>(unpack_2bit(x[b].qs, e)) - ml;
    }
  }
}

// ---------------------------------------------------------------------------------- Q3_K

namespace {

// Step 2 of Q3_K: signed sub-block scales relative to the one of largest magnitude, which
// maps to -32; stored as 6-bit (s + 32), see get_scale_q3_k for the packing.
void encode_scales_q3_k(const float* scales, BlockQ3_K& y) {
  float max_scale = 0.0f;
  float amax = 0.0f;
  for (int j = 0; j < kQK_K / 16; ++j) {
    if (std::fabs(scales[j]) > amax) {
      amax = std::fabs(scales[j]);
      max_scale = scales[j];
    }
  }
  std::memset(y.scales, 0, sizeof(y.scales));
  if (max_scale == 0.0f) {
    y.d = f32_to_f16(0.0f);
    return;
  }
  const float iscale = -32.0f / max_scale;
  for (int j = 0; j < kQK_K / 16; ++j) {
    int8_t l = static_cast<int8_t>(nearest_int(iscale * scales[j]));  // ggml narrows first
    l = static_cast<int8_t>(std::max<int>(-32, std::min<int>(31, l)) + 32);
    put_scale_q3_k(j, l, y.scales);
  }
  y.d = f32_to_f16(1 / iscale);
}

}  // namespace

void quantize_row_q3_K(const float* x, BlockQ3_K* y, int64_t n) {
  for (int64_t b = 0; b < n / kQK_K; ++b, x += kQK_K) {
    int8_t L[kQK_K];
    float scales[kQK_K / 16];
    for (int j = 0; j < kQK_K / 16; ++j) scales[j] = fit_symmetric_q3(16, 4, x + 16 * j, L + 16 * j);
    encode_scales_q3_k(scales, y[b]);
    requantize_16(x, 4, [&](int j) {
      return f16_to_f32(y[b].d) * static_cast<float>(get_scale_q3_k(j, y[b].scales) - 32);
    }, L);
    pack_q3_k(L, y[b]);
  }
}

// x = d * (s_j - 32) * (q - 4 * !hbit), q the low 2 bits, sub-block j = e / 16.
void dequantize_row_q3_K(const BlockQ3_K* x, float* y, int64_t n) {
  for (int64_t b = 0; b < n / kQK_K; ++b, y += kQK_K) {
    const float d_all = f16_to_f32(x[b].d);
    for (int e = 0; e < kQK_K; ++e) {
      const float dl = d_all * static_cast<float>(get_scale_q3_k(e / 16, x[b].scales) - 32);
      const bool high = (x[b].hmask[e % 32] >> (e / 32)) & 1;
      y[e] = dl * static_cast<float>(unpack_2bit(x[b].qs, e) - (high ? 0 : 4));
    }
  }
}

// ------------------------------------------------------------------------- Q4_K and Q5_K

namespace {

struct SuperScales {
  uint16_t d;
  uint16_t dmin;
};

// Step 2 of Q4_K / Q5_K: 6-bit scales and mins relative to their max / 63.
SuperScales encode_scales_k4(const float* scales, const float* mins, uint8_t* packed) {
  float max_scale = 0.0f;
  float max_min = 0.0f;
  for (int j = 0; j < kQK_K / 32; ++j) {
    if (scales[j] > max_scale) max_scale = scales[j];
    if (mins[j] > max_min) max_min = mins[j];
  }
  const float inv_scale = max_scale > 0 ? 63.0f / max_scale : 0.0f;
  const float inv_min = max_min > 0 ? 63.0f / max_min : 0.0f;
  for (int j = 0; j < kQK_K / 32; ++j) {
    // ggml narrows to uint8 before clamping to 63.
    const auto ls = static_cast<uint8_t>(nearest_int(inv_scale * scales[j]));
    const auto lm = static_cast<uint8_t>(nearest_int(inv_min * mins[j]));
    put_scale_min_k4(j, std::min<uint8_t>(63, ls), std::min<uint8_t>(63, lm), packed);
  }
  return {f32_to_f16(max_scale / 63.0f), f32_to_f16(max_min / 63.0f)};
}

// Step 3 of Q4_K / Q5_K: L in [0, nmax] against the decoded scale and min of each sub-block.
void requantize_k4(const float* x, int nmax, uint16_t d16, uint16_t dmin16, const uint8_t* packed,
                   uint8_t* L) {
  for (int j = 0; j < kQK_K / 32; ++j) {
    const ScaleMin sm = get_scale_min_k4(j, packed);
    const float d = f16_to_f32(d16) * static_cast<float>(sm.scale);
    if (d == 0.0f) continue;
    const float dm = f16_to_f32(dmin16) * static_cast<float>(sm.min);
    for (int i = 0; i < 32; ++i) {
      const int l = nearest_int((x[32 * j + i] + dm) / d);
      L[32 * j + i] = static_cast<uint8_t>(std::max(0, std::min(nmax, l)));
    }
  }
}

// Q4_K / Q5_K from step 1 on: super-blocks in pairs, so that a SIMD fit takes the 16 sub-blocks
// of two at once; then each one's scales, its quants against them, and `pack` for its bits.
template <typename Block, typename Pack>
void quantize_row_k45(const float* x, Block* y, int64_t n, detail::FitQ45Fn fit, int nmax, ScaleGrid grid, Pack pack) {
  const int64_t nb = n / kQK_K;
  for (int64_t b0 = 0; b0 < nb; b0 += 2) {
    const int n_super = static_cast<int>(std::min<int64_t>(2, nb - b0));
    uint8_t L[2 * kQK_K];
    float scales[2 * kQK_K / 32];
    float mins[2 * kQK_K / 32];
    fit(x + b0 * kQK_K, n_super * kQK_K / 32, nmax, grid, L, scales, mins);
    for (int s = 0; s < n_super; ++s) {
      Block& out = y[b0 + s];
      const SuperScales ss = encode_scales_k4(scales + 8 * s, mins + 8 * s, out.scales);
      out.d = ss.d;
      out.dmin = ss.dmin;
      requantize_k4(x + (b0 + s) * kQK_K, nmax, ss.d, ss.dmin, out.scales, L + kQK_K * s);
      pack(L + kQK_K * s, out);
    }
  }
}

}  // namespace

// Step 1 of Q4_K / Q5_K (kquant_search.h).
void detail::fit_q45_k(const float* x, int n_sub, int nmax, ScaleGrid grid, uint8_t* L, float* scales, float* mins) {
  float weights[32];
  uint8_t laux[32];
  for (int j = 0; j < n_sub; ++j) {
    const float* xs = x + 32 * j;
    float sum_x2 = 0.0f;
    for (int l = 0; l < 32; ++l) sum_x2 += xs[l] * xs[l];
    const float av_x = std::sqrt(sum_x2 / 32);
    for (int l = 0; l < 32; ++l) weights[l] = av_x + std::fabs(xs[l]);
    scales[j] = fit_scale_and_min(32, nmax, xs, weights, L + 32 * j, &mins[j], laux, grid,
                                  /*use_mad=*/false);
  }
}

void quantize_row_q4_K(const float* x, BlockQ4_K* y, int64_t n) { quantize_row_q4_K_with(x, y, n, detail::fit_q45_k); }

void quantize_row_q4_K_with(const float* x, BlockQ4_K* y, int64_t n, detail::FitQ45Fn fit) {
  quantize_row_k45(x, y, n, fit, 15, ScaleGrid{-1.0f, 0.1f, 20}, [](uint8_t* L, BlockQ4_K& out) { pack_4bit(L, out.qs); });
}

// x = d * scale_j * q - dmin * min_j, sub-block j = e / 32.
void dequantize_row_q4_K(const BlockQ4_K* x, float* y, int64_t n) {
  for (int64_t b = 0; b < n / kQK_K; ++b, y += kQK_K) {
    const float d = f16_to_f32(x[b].d);
    const float dmin = f16_to_f32(x[b].dmin);
    for (int j = 0; j < kQK_K / 32; ++j) {
      const ScaleMin sm = get_scale_min_k4(j, x[b].scales);
      const float dl = d * static_cast<float>(sm.scale);
      const float ml = dmin * static_cast<float>(sm.min);
      for (int i = 0; i < 32; ++i) {
        const int e = 32 * j + i;
        y[e] = dl * static_cast<float>(unpack_4bit(x[b].qs, e)) - ml;
      }
    }
  }
}

void quantize_row_q5_K(const float* x, BlockQ5_K* y, int64_t n) { quantize_row_q5_K_with(x, y, n, detail::fit_q45_k); }

void quantize_row_q5_K_with(const float* x, BlockQ5_K* y, int64_t n, detail::FitQ45Fn fit) {
  quantize_row_k45(x, y, n, fit, 31, ScaleGrid{-0.5f, 0.1f, 15}, [](uint8_t* L, BlockQ5_K& out) { pack_q5_k(L, out); });
}

// As Q4_K with q = low 4 bits + 16 * (bit e / 32 of qh[e % 32]).
void dequantize_row_q5_K(const BlockQ5_K* x, float* y, int64_t n) {
  for (int64_t b = 0; b < n / kQK_K; ++b, y += kQK_K) {
    const float d = f16_to_f32(x[b].d);
    const float dmin = f16_to_f32(x[b].dmin);
    for (int j = 0; j < kQK_K / 32; ++j) {
      const ScaleMin sm = get_scale_min_k4(j, x[b].scales);
      const float dl = d * static_cast<float>(sm.scale);
      const float ml = dmin * static_cast<float>(sm.min);
      for (int i = 0; i < 32; ++i) {
        const int e = 32 * j + i;
        const int high = (x[b].qh[e % 32] >> (e / 32)) & 1;
        y[e] = dl * static_cast<float>(unpack_4bit(x[b].qs, e) + 16 * high) - ml;
      }
    }
  }
}

// ---------------------------------------------------------------------------------- Q6_K

void detail::fit_q6_k(const float* x, float* scales, int8_t* L) {
  for (int j = 0; j < kQK_K / 16; ++j) scales[j] = fit_symmetric_rmse(16, 32, x + 16 * j, L + 16 * j);
}

void quantize_row_q6_K(const float* x, BlockQ6_K* y, int64_t n) { quantize_row_q6_K_with(x, y, n, detail::fit_q6_k); }

void quantize_row_q6_K_with(const float* x, BlockQ6_K* y, int64_t n, detail::FitQ6Fn fit) {
  for (int64_t b = 0; b < n / kQK_K; ++b, x += kQK_K) {
    int8_t L[kQK_K];
    float scales[kQK_K / 16];
    float max_scale = 0.0f;
    float max_abs_scale = 0.0f;
    fit(x, scales, L);
    for (int j = 0; j < kQK_K / 16; ++j) {
      if (std::fabs(scales[j]) > max_abs_scale) {
        max_abs_scale = std::fabs(scales[j]);
        max_scale = scales[j];
      }
    }
    if (max_abs_scale < kGroupMaxEps) {
      std::memset(&y[b], 0, sizeof(BlockQ6_K));
      continue;
    }
    // The sub-block scale of largest magnitude maps to -128; the stored scales are int8.
    const float iscale = -128.0f / max_scale;
    y[b].d = f32_to_f16(1 / iscale);
    for (int j = 0; j < kQK_K / 16; ++j) {
      y[b].scales[j] = static_cast<int8_t>(std::min(127, nearest_int(iscale * scales[j])));
    }
    requantize_16(x, 32, [&](int j) { return f16_to_f32(y[b].d) * static_cast<float>(y[b].scales[j]); }, L);
    pack_q6_k(L, y[b]);
  }
}

// x = d * scales[e / 16] * (q - 32).
void dequantize_row_q6_K(const BlockQ6_K* x, float* y, int64_t n) {
  for (int64_t b = 0; b < n / kQK_K; ++b, y += kQK_K) {
    const float d = f16_to_f32(x[b].d);
    for (int e = 0; e < kQK_K; ++e) {
      const int q = unpack_q6_k(x[b], e) - 32;
      y[e] = d * static_cast<float>(x[b].scales[e / 16]) * static_cast<float>(q);
    }
  }
}

// ---------------------------------------------------------------------------------- Q8_K

void dequantize_row_q8_K(const BlockQ8_K* x, float* y, int64_t n) {
  for (int64_t b = 0; b < n / kQK_K; ++b, y += kQK_K) {
    for (int e = 0; e < kQK_K; ++e) y[e] = x[b].d * static_cast<float>(x[b].qs[e]);
  }
}

}  // namespace owl::quant
