// Importance-weighted quantizers; see weighted.h. Each block is fitted twice — by the weighted
// search below and by the reference quantizer — and the one with the lower weighted squared
// error of its decoded values is kept, so a block is never worse (in the importance-weighted
// error) than llama.cpp's reference quantizer makes it.
#include "quant/weighted.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <vector>

#include "quant/half.h"
#include "quant/kquant_pack.h"
#include "quant/kquant_search.h"
#include "quant/quant.h"
#include "quant/traits.h"

namespace owl::quant {
namespace {

using detail::fit_scale_and_min;
using detail::kGroupMaxEps;
using detail::ScaleGrid;
using gguf::TensorType;

int clamp(int v, int lo, int hi) { return std::max(lo, std::min(hi, v)); }

// Weighted symmetric fit x ~ scale * l, l in [-nmax, nmax): tries inverse scales
// -(nmax + 0.1 k) / max, k in [-9, 9], each with its weighted least-squares scale.
float fit_symmetric_weighted(int n, int nmax, const float* x, const float* w) {
  float amax = 0.0f, max = 0.0f;
  for (int i = 0; i < n; ++i) {
    if (std::fabs(x[i]) > amax) {
      amax = std::fabs(x[i]);
      max = x[i];
    }
  }
  if (amax < kGroupMaxEps) return 0.0f;
  float best_scale = 0.0f, best = -1.0f;
  for (int k = -9; k <= 9; ++k) {
    const float iscale = -(static_cast<float>(nmax) + 0.1f * static_cast<float>(k)) / max;
    double slx = 0, sll = 0;
    for (int i = 0; i < n; ++i) {
      const int l = clamp(nearest_int(iscale * x[i]), -nmax, nmax - 1);
      slx += static_cast<double>(w[i]) * x[i] * l;
      sll += static_cast<double>(w[i]) * l * l;
    }
    if (sll > 0 && slx * slx / sll > best) {
      best = static_cast<float>(slx * slx / sll);
      best_scale = static_cast<float>(slx / sll);
    }
  }
  return best_scale;
}

// w_i = importance_i * sqrt(sigma^2 + x_i^2) over one block of n.
void block_weights(const float* x, const float* importance, int n, float* w) {
  float sum_x2 = 0.0f;
  for (int i = 0; i < n; ++i) sum_x2 += x[i] * x[i];
  const float sigma2 = sum_x2 / static_cast<float>(n);
  for (int i = 0; i < n; ++i) w[i] = importance[i] * std::sqrt(sigma2 + x[i] * x[i]);
}

// Q4_K / Q5_K: 8 sub-blocks of 32 with 6-bit scales and mins; the quants go to L [256].
template <int kMax>
void weighted_k45(const float* x, const float* w, uint16_t& d16, uint16_t& dmin16, uint8_t* packed, uint8_t* L) {
  float scales[8], mins[8];
  uint8_t laux[32];
  for (int j = 0; j < 8; ++j) {
    scales[j] = fit_scale_and_min(32, kMax, x + 32 * j, w + 32 * j, L + 32 * j, &mins[j], laux,
                                  ScaleGrid{-1.0f, 0.1f, 20}, false);
  }
  float max_scale = 0.0f, max_min = 0.0f;
  for (int j = 0; j < 8; ++j) {
    max_scale = std::max(max_scale, scales[j]);
    max_min = std::max(max_min, mins[j]);
  }
  const float inv_scale = max_scale > 0 ? 63.0f / max_scale : 0.0f;
  const float inv_min = max_min > 0 ? 63.0f / max_min : 0.0f;
  std::memset(packed, 0, kScaleBytesK);
  for (int j = 0; j < 8; ++j) {
    put_scale_min_k4(j, static_cast<uint8_t>(clamp(nearest_int(inv_scale * scales[j]), 0, 63)),
                     static_cast<uint8_t>(clamp(nearest_int(inv_min * mins[j]), 0, 63)), packed);
  }
  d16 = f32_to_f16(max_scale / 63.0f);
  dmin16 = f32_to_f16(max_min / 63.0f);
  for (int j = 0; j < 8; ++j) {
    const ScaleMin sm = get_scale_min_k4(j, packed);
    const float d = f16_to_f32(d16) * static_cast<float>(sm.scale);
    if (d == 0.0f) continue;
    const float dm = f16_to_f32(dmin16) * static_cast<float>(sm.min);
    for (int i = 0; i < 32; ++i) L[32 * j + i] = static_cast<uint8_t>(clamp(nearest_int((x[32 * j + i] + dm) / d), 0, kMax));
  }
}

// Q4_1 / Q5_1: x ~ d * q + m.
template <typename Block, int kMax>
void weighted_q_1(const float* x, const float* w, Block& y) {
  uint8_t L[kQK], laux[kQK];
  float min = 0.0f;
  const float d = fit_scale_and_min(kQK, kMax, x, w, L, &min, laux, ScaleGrid{-1.0f, 0.1f, 20}, false);
  y.d = f32_to_f16(d);
  y.m = f32_to_f16(-min);
  const float dd = f16_to_f32(y.d), m = f16_to_f32(y.m);
  const float id = dd != 0.0f ? 1.0f / dd : 0.0f;
  uint32_t qh = 0;
  for (int j = 0; j < kQK / 2; ++j) {
    const int q0 = clamp(nearest_int((x[j] - m) * id), 0, kMax);
    const int q1 = clamp(nearest_int((x[j + kQK / 2] - m) * id), 0, kMax);
    y.qs[j] = static_cast<uint8_t>((q0 & 0xF) | ((q1 & 0xF) << 4));
    qh |= static_cast<uint32_t>(q0 >> 4) << j;
    qh |= static_cast<uint32_t>(q1 >> 4) << (j + kQK / 2);
  }
  if constexpr (kMax == 31) std::memcpy(y.qh, &qh, 4);
}

// Weighted squared error of one decoded block.
double block_error(const FormatTraits& traits, const void* block, const float* x, const float* w, int n) {
  float y[kQK_K];
  traits.dequantize(block, y, n);
  double e = 0;
  for (int i = 0; i < n; ++i) e += static_cast<double>(w[i]) * (x[i] - y[i]) * (x[i] - y[i]);
  return e;
}

// Bytes of the largest block of any type (a block fitted here fits in it).
constexpr size_t max_block_bytes() {
  int64_t bytes = 0;
  for (const gguf::TensorTypeInfo& info : gguf::kTensorTypes) bytes = std::max(bytes, info.type_size);
  return static_cast<size_t>(bytes);
}

}  // namespace

namespace detail {

void weighted_block_q4_0(const float* x, const float* w, BlockQ4_0& y) {
  const float d = fit_symmetric_weighted(kQK, 8, x, w);
  y.d = f32_to_f16(d);
  const float dd = f16_to_f32(y.d);
  const float id = dd != 0.0f ? 1.0f / dd : 0.0f;
  for (int j = 0; j < kQK / 2; ++j) {
    const int q0 = clamp(nearest_int(x[j] * id), -8, 7) + 8;
    const int q1 = clamp(nearest_int(x[j + kQK / 2] * id), -8, 7) + 8;
    y.qs[j] = static_cast<uint8_t>(q0 | (q1 << 4));
  }
}

void weighted_block_q5_0(const float* x, const float* w, BlockQ5_0& y) {
  const float d = fit_symmetric_weighted(kQK, 16, x, w);
  y.d = f32_to_f16(d);
  const float dd = f16_to_f32(y.d);
  const float id = dd != 0.0f ? 1.0f / dd : 0.0f;
  uint32_t qh = 0;
  for (int j = 0; j < kQK / 2; ++j) {
    const int q0 = clamp(nearest_int(x[j] * id), -16, 15) + 16;
    const int q1 = clamp(nearest_int(x[j + kQK / 2] * id), -16, 15) + 16;
    y.qs[j] = static_cast<uint8_t>((q0 & 0xF) | ((q1 & 0xF) << 4));
    qh |= static_cast<uint32_t>(q0 >> 4) << j;
    qh |= static_cast<uint32_t>(q1 >> 4) << (j + kQK / 2);
  }
  std::memcpy(y.qh, &qh, 4);
}

void weighted_block_q4_1(const float* x, const float* w, BlockQ4_1& y) { weighted_q_1<BlockQ4_1, 15>(x, w, y); }

void weighted_block_q5_1(const float* x, const float* w, BlockQ5_1& y) { weighted_q_1<BlockQ5_1, 31>(x, w, y); }

void weighted_block_q4_k(const float* x, const float* w, BlockQ4_K& y) {
  uint8_t L[kQK_K] = {};
  weighted_k45<15>(x, w, y.d, y.dmin, y.scales, L);
  pack_4bit(L, y.qs);
}

void weighted_block_q5_k(const float* x, const float* w, BlockQ5_K& y) {
  uint8_t L[kQK_K] = {};
  weighted_k45<31>(x, w, y.d, y.dmin, y.scales, L);
  pack_q5_k(L, y);
}

// Q6_K: 16 sub-blocks of 16, int8 scales relative to the largest, 6-bit quants.
void weighted_block_q6_k(const float* x, const float* w, BlockQ6_K& y) {
  float scales[16], max_scale = 0.0f, amax = 0.0f;
  for (int j = 0; j < 16; ++j) {
    scales[j] = fit_symmetric_weighted(16, 32, x + 16 * j, w + 16 * j);
    if (std::fabs(scales[j]) > amax) {
      amax = std::fabs(scales[j]);
      max_scale = scales[j];
    }
  }
  std::memset(&y, 0, sizeof(y));
  if (amax < kGroupMaxEps) return;
  const float iscale = -128.0f / max_scale;
  y.d = f32_to_f16(1 / iscale);
  int8_t L[kQK_K] = {};
  for (int j = 0; j < 16; ++j) {
    y.scales[j] = static_cast<int8_t>(std::min(127, nearest_int(iscale * scales[j])));
    const float d = f16_to_f32(y.d) * static_cast<float>(y.scales[j]);
    for (int i = 0; i < 16; ++i) {
      L[16 * j + i] = static_cast<int8_t>(d == 0.0f ? 32 : clamp(nearest_int(x[16 * j + i] / d), -32, 31) + 32);
    }
  }
  pack_q6_k(L, y);
}

// Q2_K: 16 sub-blocks of 16, x ~ d * sc * q - dmin * m, 4-bit sc and m, 2-bit q.
void weighted_block_q2_k(const float* x, const float* w, BlockQ2_K& y) {
  uint8_t L[kQK_K] = {}, laux[16];
  float scales[16], mins[16], max_scale = 0.0f, max_min = 0.0f;
  for (int j = 0; j < 16; ++j) {
    scales[j] = fit_scale_and_min(16, 3, x + 16 * j, w + 16 * j, L + 16 * j, &mins[j], laux, ScaleGrid{-0.9f, 0.05f, 36},
                                  false);
    max_scale = std::max(max_scale, scales[j]);
    max_min = std::max(max_min, mins[j]);
  }
  const float is = max_scale > 0 ? 15.0f / max_scale : 0.0f, im = max_min > 0 ? 15.0f / max_min : 0.0f;
  for (int j = 0; j < 16; ++j) {
    y.scales[j] = static_cast<uint8_t>(clamp(nearest_int(is * scales[j]), 0, 15) | (clamp(nearest_int(im * mins[j]), 0, 15) << 4));
  }
  y.d = f32_to_f16(max_scale / 15.0f);
  y.dmin = f32_to_f16(max_min / 15.0f);
  for (int j = 0; j < 16; ++j) {
    const float d = f16_to_f32(y.d) * static_cast<float>(y.scales[j] & 0xF);
    if (d == 0.0f) continue;
    const float dm = f16_to_f32(y.dmin) * static_cast<float>(y.scales[j] >> 4);
    for (int i = 0; i < 16; ++i) L[16 * j + i] = static_cast<uint8_t>(clamp(nearest_int((x[16 * j + i] + dm) / d), 0, 3));
  }
  pack_2bit(L, y.qs);
}

// Q3_K: 16 sub-blocks of 16, x ~ d * (s - 32) * (q - 4), 6-bit s, 3-bit q (high bit in hmask).
void weighted_block_q3_k(const float* x, const float* w, BlockQ3_K& y) {
  float scales[16], max_scale = 0.0f, amax = 0.0f;
  for (int j = 0; j < 16; ++j) {
    scales[j] = fit_symmetric_weighted(16, 4, x + 16 * j, w + 16 * j);
    if (std::fabs(scales[j]) > amax) {
      amax = std::fabs(scales[j]);
      max_scale = scales[j];
    }
  }
  std::memset(&y, 0, sizeof(y));
  if (max_scale == 0.0f) return;
  const float iscale = -32.0f / max_scale;
  for (int j = 0; j < 16; ++j) {
    put_scale_q3_k(j, clamp(nearest_int(iscale * scales[j]), -32, 31) + 32, y.scales);
  }
  y.d = f32_to_f16(1 / iscale);
  int8_t L[kQK_K];
  for (int j = 0; j < 16; ++j) {
    const float d = f16_to_f32(y.d) * static_cast<float>(get_scale_q3_k(j, y.scales) - 32);
    for (int i = 0; i < 16; ++i) {
      L[16 * j + i] = static_cast<int8_t>(d == 0.0f ? 4 : clamp(nearest_int(x[16 * j + i] / d), -4, 3) + 4);
    }
  }
  pack_q3_k(L, y);
}

}  // namespace detail

bool quantize_row_weighted(TensorType type, const float* x, void* dst, int64_t n, const float* importance) {
  const FormatTraits* traits = find_format_traits(type);
  if (traits == nullptr || traits->quantize_block_weighted == nullptr) return false;
  const gguf::TensorTypeInfo& info = traits->info();
  const int bs = static_cast<int>(info.block_size);
  auto* out = static_cast<uint8_t*>(dst);
  alignas(8) uint8_t candidate[max_block_bytes()];
  float w[kQK_K];
  for (int64_t b = 0; b < n / bs; ++b, x += bs, importance += bs, out += info.type_size) {
    block_weights(x, importance, bs, w);
    traits->quantize_block_weighted(x, w, candidate);
    traits->quantize(x, out, bs);  // the reference block
    if (block_error(*traits, candidate, x, w, bs) < block_error(*traits, out, x, w, bs)) {
      std::memcpy(out, candidate, static_cast<size_t>(info.type_size));
    }
  }
  return true;
}

}  // namespace owl::quant
