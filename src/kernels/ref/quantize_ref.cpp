// Activation quantizers for the quantized dot products. Q8_0/Q8_1 follow llama.cpp's x86
// path (q = round_half_even(x * (127 / amax)), which its reference C code does not: that uses
// round-half-away of x / d); Q8_K follows quantize_row_q8_K_ref. SIMD variants are bit-exact.
#include <algorithm>
#include <cmath>
#include <cstring>

#include "kernels/ref/ref.h"
#include "quant/blocks.h"
#include "quant/half.h"
#include "quant/quant.h"

namespace owl::kernels {

using namespace owl::quant;

// Per 32-block: amax = max|x|, d = amax / 127 (stored f16), q = rint(x * (127 / amax)).
void quantize_row_q8_0_ref(const float* x, void* y, int64_t n) {
  BlockQ8_0* out = static_cast<BlockQ8_0*>(y);
  for (int64_t b = 0; b < n / kQK; ++b, x += kQK) {
    float amax = 0.0f;
    for (int j = 0; j < kQK; ++j) amax = std::max(amax, std::fabs(x[j]));
    const float id = amax != 0.0f ? 127.0f / amax : 0.0f;
    out[b].d = f32_to_f16(amax / 127.0f);
    for (int j = 0; j < kQK; ++j) out[b].qs[j] = static_cast<int8_t>(std::nearbyint(x[j] * id));
  }
}

void quantize_weight_q4_0_ref(const float* x, void* y, int64_t n) { quant::quantize_row_q4_0(x, static_cast<BlockQ4_0*>(y), n); }
void quantize_weight_q8_0_ref(const float* x, void* y, int64_t n) { quant::quantize_row_q8_0(x, static_cast<BlockQ8_0*>(y), n); }
void quantize_weight_q4_K_ref(const float* x, void* y, int64_t n) { quant::quantize_row_q4_K(x, static_cast<BlockQ4_K*>(y), n); }
void quantize_weight_q5_K_ref(const float* x, void* y, int64_t n) { quant::quantize_row_q5_K(x, static_cast<BlockQ5_K*>(y), n); }
void quantize_weight_q6_K_ref(const float* x, void* y, int64_t n) { quant::quantize_row_q6_K(x, static_cast<BlockQ6_K*>(y), n); }

void quantize_row_panel_q8_0_ref(const float* x, void* y, int64_t n) {
  uint8_t* values = static_cast<uint8_t*>(y);
  uint8_t* scales = values + n;
  for (int64_t b = 0; b < n / kQK; ++b) {
    BlockQ8_0 q;
    quantize_row_q8_0_ref(x + b * kQK, &q, kQK);
    for (int j = 0; j < kQK; ++j) values[b * kQK + j] = static_cast<uint8_t>(q.qs[j]) ^ 0x80u;
    const float d = f16_to_f32(q.d);
    std::memcpy(scales + b * 4, &d, 4);
  }
}

// As Q8_0, plus s = f16(d * sum q) with d the f32 scale.
void quantize_row_q8_1_ref(const float* x, void* y, int64_t n) {
  BlockQ8_1* out = static_cast<BlockQ8_1*>(y);
  for (int64_t b = 0; b < n / kQK; ++b, x += kQK) {
    float amax = 0.0f;
    for (int j = 0; j < kQK; ++j) amax = std::max(amax, std::fabs(x[j]));
    const float d = amax / 127.0f;
    const float id = amax != 0.0f ? 127.0f / amax : 0.0f;
    int sum = 0;
    for (int j = 0; j < kQK; ++j) {
      out[b].qs[j] = static_cast<int8_t>(std::nearbyint(x[j] * id));
      sum += out[b].qs[j];
    }
    out[b].d = f32_to_f16(d);
    out[b].s = f32_to_f16(d * static_cast<float>(sum));
  }
}

// Per 256-block: max = the value of largest magnitude (first one on ties), iscale = -127 / max,
// q = min(127, rint(iscale * x)), d = 1 / iscale (f32), bsums = sums of 16-element groups.
// Q8_K has one definition: the quant module's, which is llama.cpp's quantize_row_q8_K_ref.
void quantize_row_q8_K_ref(const float* x, void* y, int64_t n) {
  quant::quantize_row_q8_K(x, static_cast<BlockQ8_K*>(y), n);
}

void quantize_row_f16_ref(const float* x, void* y, int64_t n) {
  uint16_t* out = static_cast<uint16_t*>(y);
  for (int64_t i = 0; i < n; ++i) out[i] = f32_to_f16(x[i]);
}

void widen_row_f16_ref(const void* x, float* y, int64_t n) {
  const auto* in = static_cast<const uint16_t*>(x);
  for (int64_t i = 0; i < n; ++i) y[i] = f16_to_f32(in[i]);
}

void widen_row_bf16_ref(const void* x, float* y, int64_t n) {
  const auto* in = static_cast<const uint16_t*>(x);
  for (int64_t i = 0; i < n; ++i) y[i] = bf16_to_f32(in[i]);
}

void quantize_row_bf16_ref(const float* x, void* y, int64_t n) {
  uint16_t* out = static_cast<uint16_t*>(y);
  for (int64_t i = 0; i < n; ++i) out[i] = f32_to_bf16(x[i]);
}

}  // namespace owl::kernels
