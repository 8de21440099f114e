// AVX-512 weight quantizers for owl quantize: the bytes of quant::quantize_row_<type> (llama.cpp's
// quantize_row_<type>_ref), each float operation the reference's own, in its order, on 16 lanes
// at once. Compiled without fused multiply-add (CMakeLists.txt): a fused x * y + z rounds once
// where the reference rounds twice.
//
// Q4_0 and Q8_0 work on one 32-element block at a time (maxima are exact in any order; the first
// element of largest magnitude is found by a compare mask). A block holding a NaN goes to the
// reference, whose comparisons skip it. Q6_K runs the reference's scale search for the 16
// sub-blocks of a super-block side by side, one per lane, each lane summing its sub-block's
// elements in the reference's order; Q4_K and Q5_K do the same for the 16 sub-blocks of two
// super-blocks.
#include <immintrin.h>

#include <bit>
#include <cstring>

#include "kernels/ref/ref.h"
#include "kernels/variants.h"
#include "quant/blocks.h"
#include "quant/half.h"
#include "quant/kquant_search.h"
#include "quant/quant.h"

namespace owl::kernels {
namespace {

using quant::BlockQ4_0;
using quant::BlockQ6_K;
using quant::BlockQ8_0;
using quant::kQK;
using quant::kQK_K;

// Each 32-element block of a row as two vectors, with its largest magnitude (exact in any order),
// to `body`. A block holding a NaN goes to the reference quantizer, whose comparisons skip it.
template <typename Block, typename Body>
void for_each_block(const float* x, void* y, int64_t n, void (*reference)(const float*, Block*, int64_t), Body body) {
  Block* out = static_cast<Block*>(y);
  for (int64_t b = 0; b < n / kQK; ++b, x += kQK) {
    const __m512 lo = _mm512_loadu_ps(x);
    const __m512 hi = _mm512_loadu_ps(x + 16);
    if ((_mm512_cmp_ps_mask(lo, lo, _CMP_UNORD_Q) | _mm512_cmp_ps_mask(hi, hi, _CMP_UNORD_Q)) != 0) {
      reference(x, &out[b], kQK);
      continue;
    }
    const float amax = _mm512_reduce_max_ps(_mm512_max_ps(_mm512_abs_ps(lo), _mm512_abs_ps(hi)));
    body(x, lo, hi, amax, out[b]);
  }
}

// x = d * (q - 8), d = max / -8 with max the first element of largest magnitude.
void quantize_weight_q4_0_avx512(const float* x, void* y, int64_t n) {
  for_each_block(x, y, n, quant::quantize_row_q4_0, [](const float* xb, __m512 lo, __m512 hi, float amax, BlockQ4_0& out) {
    float max = 0.0f;  // the reference keeps +0 when every element is zero
    if (amax != 0.0f) {
      const __m512 a = _mm512_set1_ps(amax);
      const uint32_t hit = _mm512_cmpeq_ps_mask(_mm512_abs_ps(lo), a) | (uint32_t{_mm512_cmpeq_ps_mask(_mm512_abs_ps(hi), a)} << 16);
      max = xb[std::countr_zero(hit)];
    }
    const float d = max / -8.0f;
    const float id = d != 0.0f ? 1.0f / d : 0.0f;
    out.d = quant::f32_to_f16(d);
    const __m512 vid = _mm512_set1_ps(id);
    const __m512 half = _mm512_set1_ps(8.5f);
    const __m512i fifteen = _mm512_set1_epi32(15);
    const __m512i q0 = _mm512_min_epi32(fifteen, _mm512_cvttps_epi32(_mm512_add_ps(_mm512_mul_ps(lo, vid), half)));
    const __m512i q1 = _mm512_min_epi32(fifteen, _mm512_cvttps_epi32(_mm512_add_ps(_mm512_mul_ps(hi, vid), half)));
    const __m512i packed = _mm512_or_si512(_mm512_and_si512(q0, fifteen), _mm512_slli_epi32(_mm512_and_si512(q1, fifteen), 4));
    _mm_storeu_si128(reinterpret_cast<__m128i*>(out.qs), _mm512_cvtepi32_epi8(packed));
  });
}

// round(r), halves away from zero, as std::round: the truncation plus one step away from zero
// where the dropped fraction is at least one half (r - trunc(r) is exact).
__m512 round_half_away(__m512 r) {
  const __m512 t = _mm512_roundscale_ps(r, _MM_FROUND_TO_ZERO | _MM_FROUND_NO_EXC);
  const __mmask16 up = _mm512_cmp_ps_mask(_mm512_abs_ps(_mm512_sub_ps(r, t)), _mm512_set1_ps(0.5f), _CMP_GE_OQ);
  const __m512 one = _mm512_or_ps(_mm512_set1_ps(1.0f), _mm512_and_ps(r, _mm512_set1_ps(-0.0f)));
  return _mm512_mask_add_ps(t, up, t, one);
}

// x = d * q, d = amax / 127, q = round(x / d) (as the reference: x * (1 / d)).
void quantize_weight_q8_0_avx512(const float* x, void* y, int64_t n) {
  for_each_block(x, y, n, quant::quantize_row_q8_0, [](const float*, __m512 lo, __m512 hi, float amax, BlockQ8_0& out) {
    const float d = amax / 127.0f;
    const float id = d != 0.0f ? 1.0f / d : 0.0f;
    out.d = quant::f32_to_f16(d);
    const __m512 vid = _mm512_set1_ps(id);
    const __m512i q0 = _mm512_cvttps_epi32(round_half_away(_mm512_mul_ps(lo, vid)));
    const __m512i q1 = _mm512_cvttps_epi32(round_half_away(_mm512_mul_ps(hi, vid)));
    _mm_storeu_si128(reinterpret_cast<__m128i*>(out.qs), _mm512_cvtepi32_epi8(q0));
    _mm_storeu_si128(reinterpret_cast<__m128i*>(out.qs + 16), _mm512_cvtepi32_epi8(q1));
  });
}

constexpr int kQ6Nmax = 32;

// clamp(nearest_int(iscale * x), -nmax, nmax - 1) per lane (quant::nearest_int's bit trick).
__m512i symmetric_quant(__m512 iscale, __m512 x) {
  const __m512 shifted = _mm512_add_ps(_mm512_mul_ps(iscale, x), _mm512_set1_ps(12582912.0f));
  const __m512i l = _mm512_sub_epi32(_mm512_and_si512(_mm512_castps_si512(shifted), _mm512_set1_epi32(0x007fffff)),
                                     _mm512_set1_epi32(0x00400000));
  return _mm512_max_epi32(_mm512_set1_epi32(-kQ6Nmax), _mm512_min_epi32(_mm512_set1_epi32(kQ6Nmax - 1), l));
}

// sum_lx = sum w x l and sum_l2 = sum w l l with w = x^2, per lane, element by element.
struct LaneSums {
  __m512 lx;
  __m512 l2;
};
LaneSums symmetric_sums(const __m512* xt, __m512 iscale) {
  __m512 lx = _mm512_setzero_ps();
  __m512 l2 = _mm512_setzero_ps();
  for (int i = 0; i < 16; ++i) {
    const __m512 l = _mm512_cvtepi32_ps(symmetric_quant(iscale, xt[i]));
    const __m512 w = _mm512_mul_ps(xt[i], xt[i]);
    lx = _mm512_add_ps(lx, _mm512_mul_ps(_mm512_mul_ps(w, xt[i]), l));
    l2 = _mm512_add_ps(l2, _mm512_mul_ps(_mm512_mul_ps(w, l), l));
  }
  return {lx, l2};
}

// fit_symmetric_rmse(16, 32, ...) on the 16 sub-blocks of one super-block, lane j = sub-block j.
void fit_q6_K_groups_avx512(const float* x, float* scales, int8_t* L) {
  const __m512i rows = _mm512_mullo_epi32(_mm512_set_epi32(15, 14, 13, 12, 11, 10, 9, 8, 7, 6, 5, 4, 3, 2, 1, 0), _mm512_set1_epi32(16));
  __m512 xt[16];  // xt[i] lane j = x[16 j + i]
  for (int i = 0; i < 16; ++i) xt[i] = _mm512_i32gather_ps(_mm512_add_epi32(rows, _mm512_set1_epi32(i)), x, 4);
  // The first element of largest magnitude per lane (a NaN never compares greater).
  __m512 amax = _mm512_setzero_ps();
  __m512 max = _mm512_setzero_ps();
  for (int i = 0; i < 16; ++i) {
    const __m512 ax = _mm512_abs_ps(xt[i]);
    const __mmask16 greater = _mm512_cmp_ps_mask(ax, amax, _CMP_GT_OQ);
    amax = _mm512_mask_mov_ps(amax, greater, ax);
    max = _mm512_mask_mov_ps(max, greater, xt[i]);
  }
  const __mmask16 live = _mm512_cmp_ps_mask(amax, _mm512_set1_ps(quant::detail::kGroupMaxEps), _CMP_GE_OQ);
  __m512 iscale = _mm512_div_ps(_mm512_set1_ps(static_cast<float>(-kQ6Nmax)), max);
  LaneSums s = symmetric_sums(xt, iscale);
  const __m512 zero = _mm512_setzero_ps();
  __m512 scale = _mm512_mask_div_ps(zero, _mm512_cmp_ps_mask(s.l2, zero, _CMP_NEQ_UQ), s.lx, s.l2);
  __m512 best = _mm512_mul_ps(scale, s.lx);
  __m512 best_iscale = iscale;
  for (int k = -9; k <= 9; ++k) {
    if (k == 0) continue;
    const float step = -(static_cast<float>(kQ6Nmax) + 0.1f * static_cast<float>(k));
    iscale = _mm512_div_ps(_mm512_set1_ps(step), max);
    s = symmetric_sums(xt, iscale);
    const __mmask16 better = _mm512_cmp_ps_mask(s.l2, zero, _CMP_GT_OQ) &
                             _mm512_cmp_ps_mask(_mm512_mul_ps(s.lx, s.lx), _mm512_mul_ps(best, s.l2), _CMP_GT_OQ);
    scale = _mm512_mask_div_ps(scale, better, s.lx, s.l2);
    best = _mm512_mask_mul_ps(best, better, scale, s.lx);
    best_iscale = _mm512_mask_mov_ps(best_iscale, better, iscale);
  }
  _mm512_storeu_ps(scales, _mm512_maskz_mov_ps(live, scale));
  // L of the best candidate, transposed back to element order; all-zero sub-blocks get L = 0.
  alignas(64) int8_t lt[16][16];  // lt[i][j] = L[16 j + i]
  for (int i = 0; i < 16; ++i) {
    const __m512i l = _mm512_maskz_add_epi32(live, symmetric_quant(best_iscale, xt[i]), _mm512_set1_epi32(kQ6Nmax));
    _mm_store_si128(reinterpret_cast<__m128i*>(lt[i]), _mm512_cvtepi32_epi8(l));
  }
  for (int j = 0; j < 16; ++j) {
    for (int i = 0; i < 16; ++i) L[16 * j + i] = lt[i][j];
  }
}

void quantize_weight_q6_K_avx512(const float* x, void* y, int64_t n) {
  quant::quantize_row_q6_K_with(x, static_cast<BlockQ6_K*>(y), n, fit_q6_K_groups_avx512);
}

// clamp(nearest_int(iscale * (x - min)), 0, nmax) per lane (round_to_grid).
__m512i grid_quant(__m512 iscale, __m512 x, __m512 min, __m512i nmax) {
  const __m512 shifted = _mm512_add_ps(_mm512_mul_ps(iscale, _mm512_sub_ps(x, min)), _mm512_set1_ps(12582912.0f));
  const __m512i l = _mm512_sub_epi32(_mm512_and_si512(_mm512_castps_si512(shifted), _mm512_set1_epi32(0x007fffff)),
                                     _mm512_set1_epi32(0x00400000));
  return _mm512_max_epi32(_mm512_setzero_si512(), _mm512_min_epi32(nmax, l));
}

// sum w (scale l + min - x)^2 per lane, element by element (weighted_error, use_mad off).
__m512 grid_error(const __m512* xt, const __m512* w, const __m512* l, __m512 scale, __m512 min) {
  __m512 error = _mm512_setzero_ps();
  for (int i = 0; i < 32; ++i) {
    const __m512 diff = _mm512_sub_ps(_mm512_add_ps(_mm512_mul_ps(scale, l[i]), min), xt[i]);
    error = _mm512_add_ps(error, _mm512_mul_ps(w[i], _mm512_mul_ps(diff, diff)));
  }
  return error;
}

// Step 1 of Q4_K / Q5_K (quant::detail::fit_q45_k, with fit_scale_and_min's search) on up to 16
// sub-blocks of 32 at once, lane j = sub-block j.
void fit_q45_k_avx512(const float* x, int n_sub, int nmax, quant::detail::ScaleGrid grid, uint8_t* L, float* scales, float* mins) {
  const __mmask16 lanes = static_cast<__mmask16>((1u << n_sub) - 1u);
  const __m512i rows = _mm512_mullo_epi32(_mm512_set_epi32(15, 14, 13, 12, 11, 10, 9, 8, 7, 6, 5, 4, 3, 2, 1, 0), _mm512_set1_epi32(32));
  __m512 xt[32];  // xt[i] lane j = x[32 j + i]
  for (int i = 0; i < 32; ++i) {
    xt[i] = _mm512_mask_i32gather_ps(_mm512_setzero_ps(), lanes, _mm512_add_epi32(rows, _mm512_set1_epi32(i)), x, 4);
  }
  __m512 sum_x2 = _mm512_setzero_ps();
  for (int i = 0; i < 32; ++i) sum_x2 = _mm512_add_ps(sum_x2, _mm512_mul_ps(xt[i], xt[i]));
  const __m512 av_x = _mm512_sqrt_ps(_mm512_div_ps(sum_x2, _mm512_set1_ps(32.0f)));
  __m512 w[32];
  for (int i = 0; i < 32; ++i) w[i] = _mm512_add_ps(av_x, _mm512_abs_ps(xt[i]));

  __m512 min = xt[0];
  __m512 max = xt[0];
  __m512 sum_w = w[0];
  __m512 sum_x = _mm512_mul_ps(sum_w, xt[0]);
  for (int i = 1; i < 32; ++i) {
    min = _mm512_mask_mov_ps(min, _mm512_cmp_ps_mask(xt[i], min, _CMP_LT_OQ), xt[i]);
    max = _mm512_mask_mov_ps(max, _mm512_cmp_ps_mask(xt[i], max, _CMP_GT_OQ), xt[i]);
    sum_w = _mm512_add_ps(sum_w, w[i]);
    sum_x = _mm512_add_ps(sum_x, _mm512_mul_ps(w[i], xt[i]));
  }
  const __m512 zero = _mm512_setzero_ps();
  min = _mm512_mask_mov_ps(min, _mm512_cmp_ps_mask(min, zero, _CMP_GT_OQ), zero);
  const __mmask16 flat = _mm512_cmp_ps_mask(max, min, _CMP_EQ_OQ);
  const __m512i vnmax = _mm512_set1_epi32(nmax);
  __m512 iscale = _mm512_div_ps(_mm512_set1_ps(static_cast<float>(nmax)), _mm512_sub_ps(max, min));
  __m512 scale = _mm512_div_ps(_mm512_set1_ps(1.0f), iscale);
  __m512 best_l[32];
  for (int i = 0; i < 32; ++i) best_l[i] = _mm512_cvtepi32_ps(grid_quant(iscale, xt[i], min, vnmax));
  __m512 best_error = grid_error(xt, w, best_l, scale, min);
  for (int k = 0; k <= grid.nstep; ++k) {
    const float step = grid.rmin + grid.rdelta * static_cast<float>(k) + static_cast<float>(nmax);
    iscale = _mm512_div_ps(_mm512_set1_ps(step), _mm512_sub_ps(max, min));
    __m512 l[32];
    __m512 sum_l = zero;
    __m512 sum_l2 = zero;
    __m512 sum_xl = zero;
    for (int i = 0; i < 32; ++i) {
      l[i] = _mm512_cvtepi32_ps(grid_quant(iscale, xt[i], min, vnmax));
      const __m512 wl = _mm512_mul_ps(w[i], l[i]);
      sum_l = _mm512_add_ps(sum_l, wl);
      sum_l2 = _mm512_add_ps(sum_l2, _mm512_mul_ps(wl, l[i]));
      sum_xl = _mm512_add_ps(sum_xl, _mm512_mul_ps(wl, xt[i]));
    }
    const __m512 D = _mm512_sub_ps(_mm512_mul_ps(sum_w, sum_l2), _mm512_mul_ps(sum_l, sum_l));
    const __mmask16 solvable = _mm512_cmp_ps_mask(D, zero, _CMP_GT_OQ);
    if (solvable == 0) continue;
    __m512 this_scale = _mm512_div_ps(_mm512_sub_ps(_mm512_mul_ps(sum_w, sum_xl), _mm512_mul_ps(sum_x, sum_l)), D);
    __m512 this_min = _mm512_div_ps(_mm512_sub_ps(_mm512_mul_ps(sum_l2, sum_x), _mm512_mul_ps(sum_l, sum_xl)), D);
    const __mmask16 positive = _mm512_cmp_ps_mask(this_min, zero, _CMP_GT_OQ);
    this_min = _mm512_mask_mov_ps(this_min, positive, zero);
    this_scale = _mm512_mask_div_ps(this_scale, positive, sum_xl, sum_l2);
    const __m512 error = grid_error(xt, w, l, this_scale, this_min);
    const __mmask16 better = solvable & _mm512_cmp_ps_mask(error, best_error, _CMP_LT_OQ);
    for (int i = 0; i < 32; ++i) best_l[i] = _mm512_mask_mov_ps(best_l[i], better, l[i]);
    best_error = _mm512_mask_mov_ps(best_error, better, error);
    scale = _mm512_mask_mov_ps(scale, better, this_scale);
    min = _mm512_mask_mov_ps(min, better, this_min);
  }
  // A flat sub-block (max == min after the offset) has L = 0 and scale 0.
  alignas(64) float out_scale[16];
  alignas(64) float out_min[16];
  _mm512_store_ps(out_scale, _mm512_mask_mov_ps(scale, flat, zero));
  _mm512_store_ps(out_min, _mm512_xor_ps(min, _mm512_set1_ps(-0.0f)));  // -min, signed zeros included
  alignas(64) uint8_t lt[32][16];  // lt[i][j] = L[32 j + i]
  for (int i = 0; i < 32; ++i) {
    const __m512i q = _mm512_maskz_cvttps_epi32(static_cast<__mmask16>(~flat), best_l[i]);
    _mm_store_si128(reinterpret_cast<__m128i*>(lt[i]), _mm512_cvtepi32_epi8(q));
  }
  for (int j = 0; j < n_sub; ++j) {
    scales[j] = out_scale[j];
    mins[j] = out_min[j];
    for (int i = 0; i < 32; ++i) L[32 * j + i] = lt[i][j];
  }
}

void quantize_weight_q4_K_avx512(const float* x, void* y, int64_t n) {
  quant::quantize_row_q4_K_with(x, static_cast<quant::BlockQ4_K*>(y), n, fit_q45_k_avx512);
}

void quantize_weight_q5_K_avx512(const float* x, void* y, int64_t n) {
  quant::quantize_row_q5_K_with(x, static_cast<quant::BlockQ5_K*>(y), n, fit_q45_k_avx512);
}

}  // namespace

void fill_quantize_avx512(Kernels& k) {
  k.quantize_weights[static_cast<uint32_t>(TensorType::Q4_0)] = quantize_weight_q4_0_avx512;
  k.quantize_weights[static_cast<uint32_t>(TensorType::Q8_0)] = quantize_weight_q8_0_avx512;
  k.quantize_weights[static_cast<uint32_t>(TensorType::Q4_K)] = quantize_weight_q4_K_avx512;
  k.quantize_weights[static_cast<uint32_t>(TensorType::Q5_K)] = quantize_weight_q5_K_avx512;
  k.quantize_weights[static_cast<uint32_t>(TensorType::Q6_K)] = quantize_weight_q6_K_avx512;
}

}  // namespace owl::kernels
