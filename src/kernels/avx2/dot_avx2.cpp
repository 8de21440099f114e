// AVX2 dot products: 256-bit FMAs for float weights (F16C converts f16 operands), x86/quant_dot.inc (maddubs/madd) for
// quantized ones.
#include <immintrin.h>

#include <cstring>
#include <type_traits>

#include "kernels/avx2/avx2.h"
#include "kernels/ref/ref.h"
#include "quant/blocks.h"
#include "quant/half.h"

namespace owl::kernels {
namespace {

#include "kernels/x86/quant_dot.inc"

// Loads of 8 consecutive elements of a float format as f32.
struct F32 {
  static constexpr size_t kBytes = 4;
  static __m256 load(const void* p, int64_t i) { return _mm256_loadu_ps(static_cast<const float*>(p) + i); }
};
struct F16 {
  static constexpr size_t kBytes = 2;
  static __m256 load(const void* p, int64_t i) {
    return _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(static_cast<const uint16_t*>(p) + i)));
  }
};
struct BF16 {
  static constexpr size_t kBytes = 2;
  static __m256 load(const void* p, int64_t i) {
    const __m128i h = _mm_loadu_si128(reinterpret_cast<const __m128i*>(static_cast<const uint16_t*>(p) + i));
    return _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_cvtepu16_epi32(h), 16));
  }
};

// y[r] = sum_i w[i] x_r[i] over whole 8-lane vectors (products exact in f32 for f16/bf16
// operands); the tail (n % 8) goes to the reference `tail`. U independent accumulators per
// row hide FMA latency; U is the same for every NX, so that a row's sum does not depend on how
// many rows come with it (batch invariance).
template <int NX, typename W, typename X>
void dot_float_nx(int64_t n, const void* w, const void* x, size_t x_stride, float* y, DotFn tail) {
  constexpr int U = 4;
  const void* xr[NX];
  __m256 acc[NX][U];
  for (int r = 0; r < NX; ++r) {
    xr[r] = static_cast<const uint8_t*>(x) + r * x_stride;
    for (int u = 0; u < U; ++u) acc[r][u] = _mm256_setzero_ps();
  }
  int64_t i = 0;
  for (; i + 8 * U <= n; i += 8 * U) {
    for (int u = 0; u < U; ++u) {
      const __m256 wv = W::load(w, i + 8 * u);
      for (int r = 0; r < NX; ++r) acc[r][u] = _mm256_fmadd_ps(wv, X::load(xr[r], i + 8 * u), acc[r][u]);
    }
  }
  for (; i + 8 <= n; i += 8) {
    const __m256 wv = W::load(w, i);
    for (int r = 0; r < NX; ++r) acc[r][0] = _mm256_fmadd_ps(wv, X::load(xr[r], i), acc[r][0]);
  }
  for (int r = 0; r < NX; ++r) {
    for (int u = 1; u < U; ++u) acc[r][0] = _mm256_add_ps(acc[r][0], acc[r][u]);
    y[r] = hsum_ps(acc[r][0]);
  }
  if (i < n) {
    float t[kMaxDotRows];
    tail(n - i, static_cast<const uint8_t*>(w) + i * W::kBytes, static_cast<const uint8_t*>(x) + i * X::kBytes,
         x_stride, NX, t);
    for (int r = 0; r < NX; ++r) y[r] += t[r];
  }
}

// The rows two at a time: U accumulators for two rows fill half of the 16 ymm registers.
template <typename W, typename X>
void dot_float(int64_t n, const void* w, const void* x, size_t x_stride, int n_x, float* y, DotFn tail) {
  for (int r = 0; r < n_x; r += 2) {
    const void* xr = static_cast<const uint8_t*>(x) + r * x_stride;
    if (n_x - r >= 2) {
      dot_float_nx<2, W, X>(n, w, xr, x_stride, y + r, tail);
    } else {
      dot_float_nx<1, W, X>(n, w, xr, x_stride, y + r, tail);
    }
  }
}

}  // namespace

void dot_f32_f32_avx2(int64_t n, const void* w, const void* x, size_t x_stride, int n_x, float* y) {
  dot_float<F32, F32>(n, w, x, x_stride, n_x, y, dot_f32_f32_ref);
}
void dot_f16_f16_avx2(int64_t n, const void* w, const void* x, size_t x_stride, int n_x, float* y) {
  dot_float<F16, F16>(n, w, x, x_stride, n_x, y, dot_f16_f16_ref);
}
void dot_bf16_bf16_avx2(int64_t n, const void* w, const void* x, size_t x_stride, int n_x, float* y) {
  dot_float<BF16, BF16>(n, w, x, x_stride, n_x, y, dot_bf16_bf16_ref);
}
void dot_q4_0_q8_0_avx2(int64_t n, const void* w, const void* x, size_t x_stride, int n_x, float* y) {
  by_rows(n_x, [&](auto nx) { dot_q4_0_q8_0_nx<nx()>(n, w, x, x_stride, y); });
}
void dot_q4_1_q8_1_avx2(int64_t n, const void* w, const void* x, size_t x_stride, int n_x, float* y) {
  by_rows(n_x, [&](auto nx) { dot_q4_1_q8_1_nx<nx()>(n, w, x, x_stride, y); });
}
void dot_q5_0_q8_0_avx2(int64_t n, const void* w, const void* x, size_t x_stride, int n_x, float* y) {
  by_rows(n_x, [&](auto nx) { dot_q5_0_q8_0_nx<nx()>(n, w, x, x_stride, y); });
}
void dot_q5_1_q8_1_avx2(int64_t n, const void* w, const void* x, size_t x_stride, int n_x, float* y) {
  by_rows(n_x, [&](auto nx) { dot_q5_1_q8_1_nx<nx()>(n, w, x, x_stride, y); });
}
void dot_q8_0_q8_0_avx2(int64_t n, const void* w, const void* x, size_t x_stride, int n_x, float* y) {
  by_rows(n_x, [&](auto nx) { dot_q8_0_q8_0_nx<nx()>(n, w, x, x_stride, y); });
}
void dot_q4_K_q8_K_avx2(int64_t n, const void* w, const void* x, size_t x_stride, int n_x, float* y) {
  by_rows(n_x, [&](auto nx) { dot_q4_K_q8_K_nx<nx()>(n, w, x, x_stride, y); });
}
void dot_q5_K_q8_K_avx2(int64_t n, const void* w, const void* x, size_t x_stride, int n_x, float* y) {
  by_rows(n_x, [&](auto nx) { dot_q5_K_q8_K_nx<nx()>(n, w, x, x_stride, y); });
}
void dot_q6_K_q8_K_avx2(int64_t n, const void* w, const void* x, size_t x_stride, int n_x, float* y) {
  by_rows(n_x, [&](auto nx) { dot_q6_K_q8_K_nx<nx()>(n, w, x, x_stride, y); });
}

// Bit-exact with quantize_row_q8_0_ref (same reasoning as the AVX-512 variant).
void quantize_row_q8_0_avx2(const float* x, void* y, int64_t n) {
  quant::BlockQ8_0* out = static_cast<quant::BlockQ8_0*>(y);
  const __m256 sign = _mm256_set1_ps(-0.0f);
  for (int64_t b = 0; b < n / quant::kQK; ++b, x += quant::kQK) {
    __m256 v[4];
    __m256 amax = _mm256_setzero_ps();
    for (int i = 0; i < 4; ++i) {
      v[i] = _mm256_loadu_ps(x + 8 * i);
      amax = _mm256_max_ps(amax, _mm256_andnot_ps(sign, v[i]));
    }
    __m128 m4 = _mm_max_ps(_mm256_castps256_ps128(amax), _mm256_extractf128_ps(amax, 1));
    m4 = _mm_max_ps(m4, _mm_movehl_ps(m4, m4));
    m4 = _mm_max_ss(m4, _mm_movehdup_ps(m4));
    const float max = _mm_cvtss_f32(m4);
    const float id = max != 0.0f ? 127.0f / max : 0.0f;
    out[b].d = quant::f32_to_f16(max / 127.0f);
    const __m256 idv = _mm256_set1_ps(id);
    __m256i q[4];
    for (int i = 0; i < 4; ++i) q[i] = _mm256_cvtps_epi32(_mm256_mul_ps(v[i], idv));
    // packs interleave 128-bit lanes; the permute restores element order.
    const __m256i p16a = _mm256_packs_epi32(q[0], q[1]);
    const __m256i p16b = _mm256_packs_epi32(q[2], q[3]);
    const __m256i p8 = _mm256_packs_epi16(p16a, p16b);
    const __m256i ordered = _mm256_permutevar8x32_epi32(p8, _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7));
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(out[b].qs), ordered);
  }
}

// Bit-exact with the references: vcvtps2ph rounds to nearest even (imm 0) like f32_to_f16;
// bf16 is the same integer rounding as f32_to_bf16, NaN made quiet.
void widen_row_f16_avx2(const void* x, float* y, int64_t n) {
  const auto* in = static_cast<const uint16_t*>(x);
  int64_t i = 0;
  for (; i + 8 <= n; i += 8) {
    _mm256_storeu_ps(y + i, _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(in + i))));
  }
  if (i < n) widen_row_f16_ref(in + i, y + i, n - i);
}

void widen_row_bf16_avx2(const void* x, float* y, int64_t n) {
  const auto* in = static_cast<const uint16_t*>(x);
  int64_t i = 0;
  for (; i + 8 <= n; i += 8) {
    const __m256i w = _mm256_cvtepu16_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(in + i)));
    _mm256_storeu_ps(y + i, _mm256_castsi256_ps(_mm256_slli_epi32(w, 16)));
  }
  if (i < n) widen_row_bf16_ref(in + i, y + i, n - i);
}

void quantize_row_f16_avx2(const float* x, void* y, int64_t n) {
  uint16_t* out = static_cast<uint16_t*>(y);
  int64_t i = 0;
  for (; i + 8 <= n; i += 8) {
    _mm_storeu_si128(reinterpret_cast<__m128i*>(out + i), _mm256_cvtps_ph(_mm256_loadu_ps(x + i), _MM_FROUND_TO_NEAREST_INT));
  }
  if (i < n) quantize_row_f16_ref(x + i, out + i, n - i);
}

void quantize_row_bf16_avx2(const float* x, void* y, int64_t n) {
  uint16_t* out = static_cast<uint16_t*>(y);
  const __m256i abs_mask = _mm256_set1_epi32(0x7fffffff), inf = _mm256_set1_epi32(0x7f800000);
  const __m256i one = _mm256_set1_epi32(1), bias = _mm256_set1_epi32(0x7fff), quiet = _mm256_set1_epi32(64 << 16);
  int64_t i = 0;
  for (; i + 8 <= n; i += 8) {
    const __m256i u = _mm256_castps_si256(_mm256_loadu_ps(x + i));
    const __m256i nan = _mm256_cmpgt_epi32(_mm256_and_si256(u, abs_mask), inf);
    const __m256i lsb = _mm256_and_si256(_mm256_srli_epi32(u, 16), one);
    const __m256i rounded = _mm256_add_epi32(u, _mm256_add_epi32(bias, lsb));
    const __m256i r = _mm256_srli_epi32(_mm256_blendv_epi8(rounded, _mm256_or_si256(u, quiet), nan), 16);
    const __m128i packed = _mm_packus_epi32(_mm256_castsi256_si128(r), _mm256_extracti128_si256(r, 1));
    _mm_storeu_si128(reinterpret_cast<__m128i*>(out + i), packed);
  }
  if (i < n) quantize_row_bf16_ref(x + i, out + i, n - i);
}

void fill_avx2(Kernels& k) {
  auto set = [&](TensorType w, DotFn dot) { k.dot[static_cast<uint32_t>(w)].dot = dot; };
  using T = TensorType;
  set(T::F32, dot_f32_f32_avx2);
  set(T::F16, dot_f16_f16_avx2);
  set(T::BF16, dot_bf16_bf16_avx2);
  set(T::Q4_0, dot_q4_0_q8_0_avx2);
  set(T::Q4_1, dot_q4_1_q8_1_avx2);
  set(T::Q5_0, dot_q5_0_q8_0_avx2);
  set(T::Q5_1, dot_q5_1_q8_1_avx2);
  set(T::Q8_0, dot_q8_0_q8_0_avx2);
  set(T::Q4_K, dot_q4_K_q8_K_avx2);
  set(T::Q5_K, dot_q5_K_q8_K_avx2);
  set(T::Q6_K, dot_q6_K_q8_K_avx2);
  k.quantize_q8_0 = quantize_row_q8_0_avx2;
  k.quantize_f16 = quantize_row_f16_avx2;
  k.quantize_bf16 = quantize_row_bf16_avx2;
  k.widen_f16 = widen_row_f16_avx2;
  k.widen_bf16 = widen_row_bf16_avx2;
  k.rms_norm = rms_norm_avx2;
  k.softmax = softmax_avx2;
  k.silu = silu_avx2;
  k.swiglu = swiglu_avx2;
  k.axpy_rows = axpy_rows_avx2;
  k.attention_group = attention_group_avx2;
}

}  // namespace owl::kernels
