// AVX2 dot products: 256-bit FMAs for float weights, x86/quant_dot.inc (maddubs/madd) for
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

// y[r] = sum_i w[i] x_r[i] over whole 8-lane vectors; the tail (n % 8) goes to the reference.
template <int NX, typename LoadW>
void dot_float_nx(int64_t n, LoadW load_w, const void* x, size_t x_stride, float* y) {
  constexpr int U = NX == 1 ? 4 : 2;
  const float* xr[NX];
  __m256 acc[NX][U];
  for (int r = 0; r < NX; ++r) {
    xr[r] = row_at<float>(x, x_stride, r);
    for (int u = 0; u < U; ++u) acc[r][u] = _mm256_setzero_ps();
  }
  int64_t i = 0;
  for (; i + 8 * U <= n; i += 8 * U) {
    for (int u = 0; u < U; ++u) {
      const __m256 wv = load_w(i + 8 * u);
      for (int r = 0; r < NX; ++r) acc[r][u] = _mm256_fmadd_ps(wv, _mm256_loadu_ps(xr[r] + i + 8 * u), acc[r][u]);
    }
  }
  for (; i + 8 <= n; i += 8) {
    const __m256 wv = load_w(i);
    for (int r = 0; r < NX; ++r) acc[r][0] = _mm256_fmadd_ps(wv, _mm256_loadu_ps(xr[r] + i), acc[r][0]);
  }
  for (int r = 0; r < NX; ++r) {
    for (int u = 1; u < U; ++u) acc[r][0] = _mm256_add_ps(acc[r][0], acc[r][u]);
    y[r] = hsum_ps(acc[r][0]);
  }
  if (i < n) {
    float tail[kMaxDotRows];
    load_w.tail(n - i, i, static_cast<const uint8_t*>(x) + i * sizeof(float), x_stride, NX, tail);
    for (int r = 0; r < NX; ++r) y[r] += tail[r];
  }
}

struct LoadF32 {
  const float* w;
  __m256 operator()(int64_t i) const { return _mm256_loadu_ps(w + i); }
  void tail(int64_t n, int64_t i, const void* x, size_t s, int nx, float* y) const { dot_f32_f32_ref(n, w + i, x, s, nx, y); }
};
struct LoadF16 {
  const uint16_t* w;
  __m256 operator()(int64_t i) const { return _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(w + i))); }
  void tail(int64_t n, int64_t i, const void* x, size_t s, int nx, float* y) const { dot_f16_f32_ref(n, w + i, x, s, nx, y); }
};
struct LoadBF16 {
  const uint16_t* w;
  __m256 operator()(int64_t i) const {
    const __m256i v = _mm256_cvtepu16_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(w + i)));
    return _mm256_castsi256_ps(_mm256_slli_epi32(v, 16));
  }
  void tail(int64_t n, int64_t i, const void* x, size_t s, int nx, float* y) const { dot_bf16_f32_ref(n, w + i, x, s, nx, y); }
};

}  // namespace

void dot_f32_f32_avx2(int64_t n, const void* w, const void* x, size_t x_stride, int n_x, float* y) {
  by_rows(n_x, [&](auto nx) { dot_float_nx<nx()>(n, LoadF32{static_cast<const float*>(w)}, x, x_stride, y); });
}
void dot_f16_f32_avx2(int64_t n, const void* w, const void* x, size_t x_stride, int n_x, float* y) {
  by_rows(n_x, [&](auto nx) { dot_float_nx<nx()>(n, LoadF16{static_cast<const uint16_t*>(w)}, x, x_stride, y); });
}
void dot_bf16_f32_avx2(int64_t n, const void* w, const void* x, size_t x_stride, int n_x, float* y) {
  by_rows(n_x, [&](auto nx) { dot_float_nx<nx()>(n, LoadBF16{static_cast<const uint16_t*>(w)}, x, x_stride, y); });
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

void fill_avx2(Kernels& k) {
  auto set = [&](TensorType w, DotFn dot) { k.dot[static_cast<uint32_t>(w)].dot = dot; };
  using T = TensorType;
  set(T::F32, dot_f32_f32_avx2);
  set(T::F16, dot_f16_f32_avx2);
  set(T::BF16, dot_bf16_f32_avx2);
  set(T::Q4_0, dot_q4_0_q8_0_avx2);
  set(T::Q4_1, dot_q4_1_q8_1_avx2);
  set(T::Q5_0, dot_q5_0_q8_0_avx2);
  set(T::Q5_1, dot_q5_1_q8_1_avx2);
  set(T::Q8_0, dot_q8_0_q8_0_avx2);
  set(T::Q4_K, dot_q4_K_q8_K_avx2);
  set(T::Q5_K, dot_q5_K_q8_K_avx2);
  set(T::Q6_K, dot_q6_K_q8_K_avx2);
  k.quantize_q8_0 = quantize_row_q8_0_avx2;
  k.rms_norm = rms_norm_avx2;
  k.softmax = softmax_avx2;
  k.silu = silu_avx2;
  k.swiglu = swiglu_avx2;
  k.attention_group = attention_group_avx2;
}

}  // namespace owl::kernels
