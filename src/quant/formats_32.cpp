// The 32-element block formats: Q4_0, Q4_1, Q5_0, Q5_1 (quantize and dequantize) and the
// dequantizers of Q8_0 / Q8_1 (their quantizers are in q8.cpp).
// Reference: llama.cpp ggml/src/ggml-quants.c, quantize_row_<type>_ref / dequantize_row_<type>.
//
// Element order inside a block: byte j of qs holds element j in its low nibble and element
// j + 16 in its high nibble. The 5-bit formats keep bit 4 of element j in bit j of the
// little-endian 32-bit word qh.
#include <algorithm>
#include <cfloat>
#include <cmath>
#include <cstring>

#include "quant/half.h"
#include "quant/quant.h"

namespace owl::quant {
namespace {

constexpr int kHalf = kQK / 2;

// The element of largest magnitude, with its sign (the first one on ties).
float signed_absmax(const float* x) {
  float amax = 0.0f;
  float max = 0.0f;
  for (int j = 0; j < kQK; ++j) {
    if (amax < std::fabs(x[j])) {
      amax = std::fabs(x[j]);
      max = x[j];
    }
  }
  return max;
}

struct Range {
  float min;
  float max;
};
Range value_range(const float* x) {
  Range r{FLT_MAX, -FLT_MAX};
  for (int j = 0; j < kQK; ++j) {
    if (x[j] < r.min) r.min = x[j];
    if (x[j] > r.max) r.max = x[j];
  }
  return r;
}

uint8_t pack_nibbles(int low, int high) { return static_cast<uint8_t>((low & 0xF) | ((high & 0xF) << 4)); }

// Bit 4 of the 5-bit quant q of element j, placed at bit j of qh.
uint32_t high_bit(int q, int j) { return static_cast<uint32_t>((q >> 4) & 1) << j; }

}  // namespace

// x = d * (q - 8). d = max / -8 maps the element of largest magnitude to q = 0 exactly and the
// other side reaches +7; truncating x / d + 8.5 rounds half up.
void quantize_row_q4_0(const float* x, BlockQ4_0* y, int64_t n) {
  for (int64_t b = 0; b < n / kQK; ++b, x += kQK) {
    const float d = signed_absmax(x) / -8.0f;
    const float id = d != 0.0f ? 1.0f / d : 0.0f;
    y[b].d = f32_to_f16(d);
    for (int j = 0; j < kHalf; ++j) {
      const int q0 = std::min(15, static_cast<int>(static_cast<int8_t>(x[j] * id + 8.5f)));
      const int q1 = std::min(15, static_cast<int>(static_cast<int8_t>(x[j + kHalf] * id + 8.5f)));
      y[b].qs[j] = pack_nibbles(q0, q1);
    }
  }
}

// x = d * q + m with m = min, d = (max - min) / 15.
void quantize_row_q4_1(const float* x, BlockQ4_1* y, int64_t n) {
  for (int64_t b = 0; b < n / kQK; ++b, x += kQK) {
    const Range r = value_range(x);
    const float d = (r.max - r.min) / 15.0f;
    const float id = d != 0.0f ? 1.0f / d : 0.0f;
    y[b].d = f32_to_f16(d);
    y[b].m = f32_to_f16(r.min);
    for (int j = 0; j < kHalf; ++j) {
      const int q0 = std::min(15, static_cast<int>(static_cast<int8_t>((x[j] - r.min) * id + 0.5f)));
      const int q1 = std::min(15, static_cast<int>(static_cast<int8_t>((x[j + kHalf] - r.min) * id + 0.5f)));
      y[b].qs[j] = pack_nibbles(q0, q1);
    }
  }
}

// x = d * (q - 16), d = max / -16: as Q4_0 with one more bit.
void quantize_row_q5_0(const float* x, BlockQ5_0* y, int64_t n) {
  for (int64_t b = 0; b < n / kQK; ++b, x += kQK) {
    const float d = signed_absmax(x) / -16.0f;
    const float id = d != 0.0f ? 1.0f / d : 0.0f;
    y[b].d = f32_to_f16(d);
    uint32_t qh = 0;
    for (int j = 0; j < kHalf; ++j) {
      const int q0 = std::min(31, static_cast<int>(static_cast<int8_t>(x[j] * id + 16.5f)));
      const int q1 = std::min(31, static_cast<int>(static_cast<int8_t>(x[j + kHalf] * id + 16.5f)));
      y[b].qs[j] = pack_nibbles(q0, q1);
      qh |= high_bit(q0, j) | high_bit(q1, j + kHalf);
    }
    std::memcpy(y[b].qh, &qh, sizeof(qh));
  }
}

// x = d * q + m with m = min, d = (max - min) / 31.
void quantize_row_q5_1(const float* x, BlockQ5_1* y, int64_t n) {
  for (int64_t b = 0; b < n / kQK; ++b, x += kQK) {
    const Range r = value_range(x);
    const float d = (r.max - r.min) / 31.0f;
    const float id = d != 0.0f ? 1.0f / d : 0.0f;
    y[b].d = f32_to_f16(d);
    y[b].m = f32_to_f16(r.min);
    uint32_t qh = 0;
    for (int j = 0; j < kHalf; ++j) {
      // No clamp: (x - min) / d <= 31 + rounding, and ggml writes the truncated value as is.
      const int q0 = static_cast<uint8_t>((x[j] - r.min) * id + 0.5f);
      const int q1 = static_cast<uint8_t>((x[j + kHalf] - r.min) * id + 0.5f);
      y[b].qs[j] = pack_nibbles(q0, q1);
      qh |= high_bit(q0, j) | high_bit(q1, j + kHalf);
    }
    std::memcpy(y[b].qh, &qh, sizeof(qh));
  }
}

void dequantize_row_q4_0(const BlockQ4_0* x, float* y, int64_t n) {
  for (int64_t b = 0; b < n / kQK; ++b, y += kQK) {
    const float d = f16_to_f32(x[b].d);
    for (int j = 0; j < kHalf; ++j) {
      y[j] = static_cast<float>((x[b].qs[j] & 0xF) - 8) * d;
      y[j + kHalf] = static_cast<float>((x[b].qs[j] >> 4) - 8) * d;
    }
  }
}

void dequantize_row_q4_1(const BlockQ4_1* x, float* y, int64_t n) {
  for (int64_t b = 0; b < n / kQK; ++b, y += kQK) {
    const float d = f16_to_f32(x[b].d);
    const float m = f16_to_f32(x[b].m);
    for (int j = 0; j < kHalf; ++j) {
      y[j] = static_cast<float>(x[b].qs[j] & 0xF) * d + m;
      y[j + kHalf] = static_cast<float>(x[b].qs[j] >> 4) * d + m;
    }
  }
}

void dequantize_row_q5_0(const BlockQ5_0* x, float* y, int64_t n) {
  for (int64_t b = 0; b < n / kQK; ++b, y += kQK) {
    const float d = f16_to_f32(x[b].d);
    uint32_t qh;
    std::memcpy(&qh, x[b].qh, sizeof(qh));
    for (int j = 0; j < kHalf; ++j) {
      const int q0 = (x[b].qs[j] & 0xF) | (((qh >> j) & 1) << 4);
      const int q1 = (x[b].qs[j] >> 4) | (((qh >> (j + kHalf)) & 1) << 4);
      y[j] = static_cast<float>(q0 - 16) * d;
      y[j + kHalf] = static_cast<float>(q1 - 16) * d;
    }
  }
}

void dequantize_row_q5_1(const BlockQ5_1* x, float* y, int64_t n) {
  for (int64_t b = 0; b < n / kQK; ++b, y += kQK) {
    const float d = f16_to_f32(x[b].d);
    const float m = f16_to_f32(x[b].m);
    uint32_t qh;
    std::memcpy(&qh, x[b].qh, sizeof(qh));
    for (int j = 0; j < kHalf; ++j) {
      const int q0 = (x[b].qs[j] & 0xF) | (((qh >> j) & 1) << 4);
      const int q1 = (x[b].qs[j] >> 4) | (((qh >> (j + kHalf)) & 1) << 4);
      y[j] = static_cast<float>(q0) * d + m;
      y[j + kHalf] = static_cast<float>(q1) * d + m;
    }
  }
}

void dequantize_row_q8_0(const BlockQ8_0* x, float* y, int64_t n) {
  for (int64_t b = 0; b < n / kQK; ++b, y += kQK) {
    const float d = f16_to_f32(x[b].d);
    for (int j = 0; j < kQK; ++j) y[j] = static_cast<float>(x[b].qs[j]) * d;
  }
}

// ggml has no Q8_1 dequantizer (it is an activation format); this is its plain meaning, d * q.
void dequantize_row_q8_1(const BlockQ8_1* x, float* y, int64_t n) {
  for (int64_t b = 0; b < n / kQK; ++b, y += kQK) {
    const float d = f16_to_f32(x[b].d);
    for (int j = 0; j < kQK; ++j) y[j] = static_cast<float>(x[b].qs[j]) * d;
  }
}

}  // namespace owl::quant
