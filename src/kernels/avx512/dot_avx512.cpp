// AVX-512 dot products. F32 weights use 512-bit FMAs (F16 and BF16: tile_avx512.cpp, which
// also holds the register tiles matmul uses for F16, BF16, Q4_0, Q8_0 and Q4_K); the other
// quantized weights share the 256-bit integer kernels of x86/quant_dot.inc, which here compile
// to VNNI (vpdpbusd / vpdpwssd).
#include <immintrin.h>

#include <cstring>
#include <type_traits>

#include "kernels/avx512/avx512.h"
#include "kernels/ref/ref.h"
#include "kernels/variants.h"
#include "quant/blocks.h"
#include "quant/half.h"

namespace owl::kernels {
namespace {

#include "kernels/x86/quant_dot.inc"

// y[r] = sum_i w[i] x_r[i] over whole 16-lane vectors; the tail (n % 16) goes to the
// reference. U independent accumulators per row hide FMA latency; U is the same for every NX,
// so that a row's sum does not depend on how many rows come with it (batch invariance).
template <int NX, typename LoadW>
void dot_float_nx(int64_t n, LoadW load_w, const void* x, size_t x_stride, float* y) {
  constexpr int U = 4;
  const float* xr[NX];
  __m512 acc[NX][U];
  for (int r = 0; r < NX; ++r) {
    xr[r] = row_at<float>(x, x_stride, r);
    for (int u = 0; u < U; ++u) acc[r][u] = _mm512_setzero_ps();
  }
  int64_t i = 0;
  for (; i + 16 * U <= n; i += 16 * U) {
    for (int u = 0; u < U; ++u) {
      const __m512 wv = load_w(i + 16 * u);
      for (int r = 0; r < NX; ++r) acc[r][u] = _mm512_fmadd_ps(wv, _mm512_loadu_ps(xr[r] + i + 16 * u), acc[r][u]);
    }
  }
  for (; i + 16 <= n; i += 16) {
    const __m512 wv = load_w(i);
    for (int r = 0; r < NX; ++r) acc[r][0] = _mm512_fmadd_ps(wv, _mm512_loadu_ps(xr[r] + i), acc[r][0]);
  }
  for (int r = 0; r < NX; ++r) {
    for (int u = 1; u < U; ++u) acc[r][0] = _mm512_add_ps(acc[r][0], acc[r][u]);
    y[r] = _mm512_reduce_add_ps(acc[r][0]);
  }
  if (i < n) {
    float tail[kMaxDotRows];
    load_w.tail(n - i, i, static_cast<const uint8_t*>(x) + i * sizeof(float), x_stride, NX, tail);
    for (int r = 0; r < NX; ++r) y[r] += tail[r];
  }
}

struct LoadF32 {
  const float* w;
  __m512 operator()(int64_t i) const { return _mm512_loadu_ps(w + i); }
  void tail(int64_t n, int64_t i, const void* x, size_t s, int nx, float* y) const { dot_f32_f32_ref(n, w + i, x, s, nx, y); }
};
}  // namespace

void dot_f32_f32_avx512(int64_t n, const void* w, const void* x, size_t x_stride, int n_x, float* y) {
  by_rows(n_x, [&](auto nx) { dot_float_nx<nx()>(n, LoadF32{static_cast<const float*>(w)}, x, x_stride, y); });
}
void dot_q4_0_q8_0_avx512(int64_t n, const void* w, const void* x, size_t x_stride, int n_x, float* y) {
  by_rows(n_x, [&](auto nx) { dot_q4_0_q8_0_nx<nx()>(n, w, x, x_stride, y); });
}
void dot_q4_1_q8_1_avx512(int64_t n, const void* w, const void* x, size_t x_stride, int n_x, float* y) {
  by_rows(n_x, [&](auto nx) { dot_q4_1_q8_1_nx<nx()>(n, w, x, x_stride, y); });
}
void dot_q5_0_q8_0_avx512(int64_t n, const void* w, const void* x, size_t x_stride, int n_x, float* y) {
  by_rows(n_x, [&](auto nx) { dot_q5_0_q8_0_nx<nx()>(n, w, x, x_stride, y); });
}
void dot_q5_1_q8_1_avx512(int64_t n, const void* w, const void* x, size_t x_stride, int n_x, float* y) {
  by_rows(n_x, [&](auto nx) { dot_q5_1_q8_1_nx<nx()>(n, w, x, x_stride, y); });
}
void dot_q8_0_q8_0_avx512(int64_t n, const void* w, const void* x, size_t x_stride, int n_x, float* y) {
  by_rows(n_x, [&](auto nx) { dot_q8_0_q8_0_nx<nx()>(n, w, x, x_stride, y); });
}
void dot_q4_K_q8_K_avx512(int64_t n, const void* w, const void* x, size_t x_stride, int n_x, float* y) {
  by_rows(n_x, [&](auto nx) { dot_q4_K_q8_K_nx<nx()>(n, w, x, x_stride, y); });
}
void dot_q5_K_q8_K_avx512(int64_t n, const void* w, const void* x, size_t x_stride, int n_x, float* y) {
  by_rows(n_x, [&](auto nx) { dot_q5_K_q8_K_nx<nx()>(n, w, x, x_stride, y); });
}
void dot_q6_K_q8_K_avx512(int64_t n, const void* w, const void* x, size_t x_stride, int n_x, float* y) {
  by_rows(n_x, [&](auto nx) { dot_q6_K_q8_K_nx<nx()>(n, w, x, x_stride, y); });
}

// One 32-block of Q8_0, bit-exact with quantize_row_q8_0_ref: the max of |x| is exact in any
// order, 127 / amax is the same scalar division, x * id and round-half-even (vcvtps2dq in the
// default rounding mode) are the same IEEE operations. Returns amax / 127 (the scale before its
// f16 rounding); q holds the 32 signed bytes.
namespace {
inline float quantize_block_q8_0(const float* x, __m256i& q) {
  const __m512 v0 = _mm512_loadu_ps(x);
  const __m512 v1 = _mm512_loadu_ps(x + 16);
  const float amax = _mm512_reduce_max_ps(_mm512_max_ps(_mm512_abs_ps(v0), _mm512_abs_ps(v1)));
  const __m512 id = _mm512_set1_ps(amax != 0.0f ? 127.0f / amax : 0.0f);
  const __m128i q0 = _mm512_cvtsepi32_epi8(_mm512_cvtps_epi32(_mm512_mul_ps(v0, id)));
  const __m128i q1 = _mm512_cvtsepi32_epi8(_mm512_cvtps_epi32(_mm512_mul_ps(v1, id)));
  q = _mm256_inserti128_si256(_mm256_castsi128_si256(q0), q1, 1);
  return amax / 127.0f;
}
}  // namespace

void quantize_row_q8_0_avx512(const float* x, void* y, int64_t n) {
  quant::BlockQ8_0* out = static_cast<quant::BlockQ8_0*>(y);
  for (int64_t b = 0; b < n / quant::kQK; ++b, x += quant::kQK) {
    __m256i q;
    out[b].d = quant::f32_to_f16(quantize_block_q8_0(x, q));
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(out[b].qs), q);
  }
}

// Bit-exact with quantize_row_panel_q8_0_ref: the blocks above, their bytes biased by one xor
// and their scales rounded to f16 by vcvtps2ph (quant/half.h gives the same bits) and stored
// as f32.
void quantize_row_panel_q8_0_avx512(const float* x, void* y, int64_t n) {
  uint8_t* values = static_cast<uint8_t*>(y);
  uint8_t* scales = values + n;
  const __m256i bias = _mm256_set1_epi8(static_cast<char>(0x80));
  for (int64_t b = 0; b < n / quant::kQK; ++b, x += quant::kQK) {
    __m256i q;
    const float d = _cvtsh_ss(_cvtss_sh(quantize_block_q8_0(x, q), _MM_FROUND_TO_NEAREST_INT));
    std::memcpy(scales + b * 4, &d, 4);
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(values + b * quant::kQK), _mm256_xor_si256(q, bias));
  }
}

// Bit-exact with quantize_row_q8_K_ref: the max magnitude is exact in any order, the first
// element reaching it is found by a compare mask, and x * iscale, round-half-even
// (vcvtps2dq) and min(127, q) are the reference's own operations.
void quantize_row_q8_K_avx512(const float* x, void* y, int64_t n) {
  quant::BlockQ8_K* out = static_cast<quant::BlockQ8_K*>(y);
  for (int64_t b = 0; b < n / quant::kQK_K; ++b, x += quant::kQK_K) {
    __m512 amax_v = _mm512_setzero_ps();
    for (int i = 0; i < quant::kQK_K; i += 16) amax_v = _mm512_max_ps(amax_v, _mm512_abs_ps(_mm512_loadu_ps(x + i)));
    const float amax = _mm512_reduce_max_ps(amax_v);
    if (amax == 0.0f) {
      std::memset(&out[b], 0, sizeof(quant::BlockQ8_K));
      continue;
    }
    float max = 0.0f;
    for (int i = 0; i < quant::kQK_K; i += 16) {
      const __mmask16 hit = _mm512_cmpeq_ps_mask(_mm512_abs_ps(_mm512_loadu_ps(x + i)), _mm512_set1_ps(amax));
      if (hit != 0) {
        max = x[i + __builtin_ctz(hit)];
        break;
      }
    }
    const float iscale = -127.0f / max;
    const __m512 is = _mm512_set1_ps(iscale);
    for (int g = 0; g < quant::kQK_K / 16; ++g) {
      __m512i q = _mm512_cvtps_epi32(_mm512_mul_ps(is, _mm512_loadu_ps(x + 16 * g)));
      q = _mm512_min_epi32(q, _mm512_set1_epi32(127));
      _mm_storeu_si128(reinterpret_cast<__m128i*>(out[b].qs + 16 * g), _mm512_cvtsepi32_epi8(q));
      out[b].bsums[g] = static_cast<int16_t>(_mm512_reduce_add_epi32(q));
    }
    out[b].d = 1.0f / iscale;
  }
}

// Bit-exact with the references: vcvtps2ph rounds to nearest even like f32_to_f16; bf16 uses
// f32_to_bf16's integer rounding (vcvtneps2bf16 would flush denormals to zero).
void quantize_row_f16_avx512(const float* x, void* y, int64_t n) {
  uint16_t* out = static_cast<uint16_t*>(y);
  for (int64_t i = 0; i < n; i += 16) {
    const __mmask16 m = n - i >= 16 ? 0xFFFF : static_cast<__mmask16>((1u << (n - i)) - 1);
    const __m256i h = _mm512_cvtps_ph(_mm512_maskz_loadu_ps(m, x + i), _MM_FROUND_TO_NEAREST_INT);
    _mm256_mask_storeu_epi16(out + i, m, h);
  }
}

void widen_row_f16_avx512(const void* x, float* y, int64_t n) {
  const auto* in = static_cast<const uint16_t*>(x);
  for (int64_t i = 0; i < n; i += 16) {
    const __mmask16 m = n - i >= 16 ? 0xFFFF : static_cast<__mmask16>((1u << (n - i)) - 1);
    _mm512_mask_storeu_ps(y + i, m, _mm512_cvtph_ps(_mm256_maskz_loadu_epi16(m, in + i)));
  }
}

void widen_row_bf16_avx512(const void* x, float* y, int64_t n) {
  const auto* in = static_cast<const uint16_t*>(x);
  for (int64_t i = 0; i < n; i += 16) {
    const __mmask16 m = n - i >= 16 ? 0xFFFF : static_cast<__mmask16>((1u << (n - i)) - 1);
    const __m512i w = _mm512_cvtepu16_epi32(_mm256_maskz_loadu_epi16(m, in + i));
    _mm512_mask_storeu_ps(y + i, m, _mm512_castsi512_ps(_mm512_slli_epi32(w, 16)));
  }
}

void quantize_row_bf16_avx512(const float* x, void* y, int64_t n) {
  uint16_t* out = static_cast<uint16_t*>(y);
  const __m512i abs_mask = _mm512_set1_epi32(0x7fffffff), inf = _mm512_set1_epi32(0x7f800000);
  for (int64_t i = 0; i < n; i += 16) {
    const __mmask16 m = n - i >= 16 ? 0xFFFF : static_cast<__mmask16>((1u << (n - i)) - 1);
    const __m512i u = _mm512_castps_si512(_mm512_maskz_loadu_ps(m, x + i));
    const __mmask16 nan = _mm512_cmpgt_epi32_mask(_mm512_and_si512(u, abs_mask), inf);
    const __m512i lsb = _mm512_and_si512(_mm512_srli_epi32(u, 16), _mm512_set1_epi32(1));
    __m512i r = _mm512_add_epi32(u, _mm512_add_epi32(_mm512_set1_epi32(0x7fff), lsb));
    r = _mm512_mask_or_epi32(r, nan, u, _mm512_set1_epi32(64 << 16));
    _mm256_mask_storeu_epi16(out + i, m, _mm512_cvtepi32_epi16(_mm512_srli_epi32(r, 16)));
  }
}

void fill_avx512(Kernels& k) {
  auto set = [&](TensorType w, DotFn dot) { k.dot[static_cast<uint32_t>(w)].dot = dot; };
  using T = TensorType;
  set(T::F32, dot_f32_f32_avx512);
  set(T::F16, dot_f16_f16_avx512);
  set(T::Q4_0, dot_q4_0_q8_0_avx512);
  set(T::Q4_1, dot_q4_1_q8_1_avx512);
  set(T::Q5_0, dot_q5_0_q8_0_avx512);
  set(T::Q5_1, dot_q5_1_q8_1_avx512);
  set(T::Q8_0, dot_q8_0_q8_0_avx512);
  set(T::Q4_K, dot_q4_K_q8_K_avx512);
  set(T::Q5_K, dot_q5_K_q8_K_avx512);
  set(T::Q6_K, dot_q6_K_q8_K_avx512);
  auto set_tile = [&](TensorType w, TileFn tile) { k.dot[static_cast<uint32_t>(w)].tile = tile; };
  set_tile(T::F16, tile_f16_f16_avx512);
  set_tile(T::Q4_0, tile_q4_0_q8_0_avx512);
  set_tile(T::Q8_0, tile_q8_0_q8_0_avx512);
  set_tile(T::Q4_K, tile_q4_K_q8_K_avx512);
  k.dot[static_cast<uint32_t>(T::Q4_0)].panel = panel_q4_0_q8_0_avx512;
  k.dot[static_cast<uint32_t>(T::Q4_0)].panel_w = 2 * kPanelW;  // two panels per call
  k.dot[static_cast<uint32_t>(T::Q4_0)].packed_rows = packed_rows_q4_0_q8_0_avx512;
  k.dot[static_cast<uint32_t>(T::Q4_0)].packed_panel = packed_panel_q4_0_q8_0_avx512;
  k.dot[static_cast<uint32_t>(T::Q4_0)].pack = pack_q4_0_avx512;
  k.dot[static_cast<uint32_t>(T::Q8_0)].panel_w = 2 * kPanelW;
  k.dot[static_cast<uint32_t>(T::Q8_0)].panel = panel_q8_0_q8_0_avx512;
  k.dot[static_cast<uint32_t>(T::Q4_K)].panel = panel_q4_K_q8_K_avx512;
  k.dot[static_cast<uint32_t>(T::Q6_K)].panel = panel_q6_K_q8_K_avx512;
  k.dot[static_cast<uint32_t>(T::F16)].panel = panel_f16_f16_avx512;
  k.dot[static_cast<uint32_t>(T::F16)].panel_w = 2 * kPanelW;
  // A decode step of up to 16 sequences reads F16 weights faster through tiles (the panel's
  // widening pays off over more rows); the quantized panels win from 5 rows on.
  k.dot[static_cast<uint32_t>(T::F16)].panel_above = 16;
  // vdpbf16ps where the CPU has AVX512_BF16; otherwise BF16 keeps the AVX2 shift-and-FMA.
  if (detect_cpu_features().avx512_bf16) {
    set(T::BF16, dot_bf16_bf16_avx512);
    set_tile(T::BF16, tile_bf16_bf16_avx512);
  }
  {  // BF16 prefill widens to f32 as F16 does (a shift): AVX-512F only
    DotKernel& bf16 = k.dot[static_cast<uint32_t>(T::BF16)];
    bf16.panel = panel_bf16_bf16_avx512;
    bf16.panel_w = 2 * kPanelW;
    bf16.panel_above = 16;
  }
  k.quantize_q8_0 = quantize_row_q8_0_avx512;
  k.quantize_panel_q8_0 = quantize_row_panel_q8_0_avx512;
  k.quantize_q8_K = quantize_row_q8_K_avx512;
  k.quantize_f16 = quantize_row_f16_avx512;
  k.quantize_bf16 = quantize_row_bf16_avx512;
  k.widen_f16 = widen_row_f16_avx512;
  k.widen_bf16 = widen_row_bf16_avx512;
  fill_quantize_avx512(k);
  k.rms_norm = rms_norm_avx512;
  k.softmax = softmax_avx512;
  k.silu = silu_avx512;
  k.swiglu = swiglu_avx512;
  k.axpy_rows = axpy_rows_avx512;
  k.attention_group = attention_group_avx512;
}

}  // namespace owl::kernels
