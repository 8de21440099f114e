// AVX-512 row ops and attention. Tails (n % 16) use masked loads/stores, with identical math.
#include <immintrin.h>

#include <algorithm>
#include <cmath>
#include <type_traits>

#include "core/result.h"
#include "kernels/avx512/avx512.h"
#include "kernels/ref/ref.h"
#include "quant/half.h"

namespace owl::kernels {
namespace {

inline __mmask16 tail_mask(int64_t left) { return left >= 16 ? 0xFFFF : static_cast<__mmask16>((1u << left) - 1); }

// exp(x) to about 2 ulp: x = n ln2 + r, |r| <= ln2 / 2, Cephes expf polynomial for e^r,
// scaled by 2^n with vscalefps (0 below -104, so exp(-inf) = 0; inf above 88.73).
inline __m512 exp_ps(__m512 x) {
  x = _mm512_max_ps(_mm512_min_ps(x, _mm512_set1_ps(89.0f)), _mm512_set1_ps(-104.0f));
  const __m512 n = _mm512_roundscale_ps(_mm512_mul_ps(x, _mm512_set1_ps(1.44269504088896341f)),
                                        _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
  __m512 r = _mm512_fnmadd_ps(n, _mm512_set1_ps(0.693359375f), x);
  r = _mm512_fnmadd_ps(n, _mm512_set1_ps(-2.12194440e-4f), r);
  __m512 p = _mm512_set1_ps(1.9875691500e-4f);
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.3981999507e-3f));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(8.3334519073e-3f));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(4.1665795894e-2f));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.6666665459e-1f));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(5.0000001201e-1f));
  p = _mm512_fmadd_ps(p, _mm512_mul_ps(r, r), _mm512_add_ps(r, _mm512_set1_ps(1.0f)));
  return _mm512_scalef_ps(p, n);
}

inline __m512 silu_ps(__m512 x) {
  const __m512 e = exp_ps(_mm512_sub_ps(_mm512_setzero_ps(), x));
  return _mm512_div_ps(x, _mm512_add_ps(_mm512_set1_ps(1.0f), e));
}

inline __m512 round_f16_ps(__m512 v) {
  return _mm512_cvtph_ps(_mm512_cvtps_ph(v, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC));
}

}  // namespace

// As rms_norm_ref: f32 squares summed in f64 lanes.
void rms_norm_avx512(const float* x, const float* w, float* y, int64_t n, float eps) {
  __m512d s0 = _mm512_setzero_pd(), s1 = _mm512_setzero_pd();
  for (int64_t i = 0; i < n; i += 16) {
    const __m512 v = _mm512_maskz_loadu_ps(tail_mask(n - i), x + i);
    const __m512 sq = _mm512_mul_ps(v, v);
    s0 = _mm512_add_pd(s0, _mm512_cvtps_pd(_mm512_castps512_ps256(sq)));
    s1 = _mm512_add_pd(s1, _mm512_cvtps_pd(_mm256_castpd_ps(_mm512_extractf64x4_pd(_mm512_castps_pd(sq), 1))));
  }
  const double sum = _mm512_reduce_add_pd(_mm512_add_pd(s0, s1));
  const float mean = static_cast<float>(sum / static_cast<double>(n));
  const __m512 scale = _mm512_set1_ps(1.0f / std::sqrt(mean + eps));
  for (int64_t i = 0; i < n; i += 16) {
    const __mmask16 m = tail_mask(n - i);
    __m512 v = _mm512_mul_ps(_mm512_maskz_loadu_ps(m, x + i), scale);
    if (w) v = _mm512_mul_ps(v, _mm512_maskz_loadu_ps(m, w + i));
    _mm512_mask_storeu_ps(y + i, m, v);
  }
}

void softmax_avx512(float* x, int64_t n, float scale, const float* mask) {
  const __m512 sv = _mm512_set1_ps(scale);
  __m512 mx = _mm512_set1_ps(-INFINITY);
  for (int64_t i = 0; i < n; i += 16) {
    const __mmask16 m = tail_mask(n - i);
    __m512 v = _mm512_mul_ps(_mm512_maskz_loadu_ps(m, x + i), sv);
    if (mask) v = _mm512_add_ps(v, _mm512_maskz_loadu_ps(m, mask + i));
    _mm512_mask_storeu_ps(x + i, m, v);
    mx = _mm512_mask_max_ps(mx, m, mx, v);
  }
  const float max = _mm512_reduce_max_ps(mx);
  if (max == -INFINITY) {
    for (int64_t i = 0; i < n; ++i) x[i] = 0.0f;
    return;
  }
  const __m512 maxv = _mm512_set1_ps(max);
  __m512 sum = _mm512_setzero_ps();
  for (int64_t i = 0; i < n; i += 16) {
    const __mmask16 m = tail_mask(n - i);
    const __m512 e = exp_ps(_mm512_sub_ps(_mm512_maskz_loadu_ps(m, x + i), maxv));
    _mm512_mask_storeu_ps(x + i, m, e);
    sum = _mm512_mask_add_ps(sum, m, sum, e);
  }
  const __m512 inv = _mm512_set1_ps(1.0f / _mm512_reduce_add_ps(sum));
  for (int64_t i = 0; i < n; i += 16) {
    const __mmask16 m = tail_mask(n - i);
    _mm512_mask_storeu_ps(x + i, m, _mm512_mul_ps(_mm512_maskz_loadu_ps(m, x + i), inv));
  }
}

void silu_avx512(const float* x, float* y, int64_t n) {
  for (int64_t i = 0; i < n; i += 16) {
    const __mmask16 m = tail_mask(n - i);
    _mm512_mask_storeu_ps(y + i, m, silu_ps(_mm512_maskz_loadu_ps(m, x + i)));
  }
}

void swiglu_avx512(const float* gate, const float* up, float* y, int64_t n) {
  for (int64_t i = 0; i < n; i += 16) {
    const __mmask16 m = tail_mask(n - i);
    const __m512 g = silu_ps(_mm512_maskz_loadu_ps(m, gate + i));
    _mm512_mask_storeu_ps(y + i, m, _mm512_mul_ps(g, _mm512_maskz_loadu_ps(m, up + i)));
  }
}

// 64 columns at a time in four accumulators (independent FMA chains over j), then 16 with a
// mask for the tail.
void axpy_rows_avx512(float* y, int64_t n, const float* c, const float* w, int64_t w_stride, int64_t k) {
  int64_t i = 0;
  for (; i + 64 <= n; i += 64) {
    __m512 a0 = _mm512_loadu_ps(y + i), a1 = _mm512_loadu_ps(y + i + 16);
    __m512 a2 = _mm512_loadu_ps(y + i + 32), a3 = _mm512_loadu_ps(y + i + 48);
    for (int64_t j = 0; j < k; ++j) {
      const __m512 cj = _mm512_set1_ps(c[j]);
      const float* wj = w + j * w_stride + i;
      a0 = _mm512_fmadd_ps(cj, _mm512_loadu_ps(wj), a0);
      a1 = _mm512_fmadd_ps(cj, _mm512_loadu_ps(wj + 16), a1);
      a2 = _mm512_fmadd_ps(cj, _mm512_loadu_ps(wj + 32), a2);
      a3 = _mm512_fmadd_ps(cj, _mm512_loadu_ps(wj + 48), a3);
    }
    _mm512_storeu_ps(y + i, a0);
    _mm512_storeu_ps(y + i + 16, a1);
    _mm512_storeu_ps(y + i + 32, a2);
    _mm512_storeu_ps(y + i + 48, a3);
  }
  for (; i < n; i += 16) {
    const __mmask16 m = tail_mask(n - i);
    __m512 a = _mm512_maskz_loadu_ps(m, y + i);
    for (int64_t j = 0; j < k; ++j) {
      a = _mm512_fmadd_ps(_mm512_set1_ps(c[j]), _mm512_maskz_loadu_ps(m, w + j * w_stride + i), a);
    }
    _mm512_mask_storeu_ps(y + i, m, a);
  }
}

// ---- attention -------------------------------------------------------------------------------
// Keys are taken in blocks of kKeyBlock, in three passes per block:
//   1. the group's scores of each visible key (S[j][g]);
//   2. the online softmax factors of every member at once, key by key in the reference's order:
//      the running max, ms (the accumulator's rescale) and vs (the key's weight), and the sums;
//   3. the accumulators of kMembers members at a time in registers, key by key, with the
//      reference's updates (acc = acc ms, acc += v vs, each rounded to f16 under emulation).
// Pass 3's chains (one per 16 dims per member) are independent, so the f16 round trips of one
// member overlap another's instead of bounding the loop. A rescale by ms = 1 is exact, so it is
// applied unconditionally rather than skipped as the reference does.
namespace {

constexpr int kKeyBlock = 128;

template <int NV, bool kRound>
void attention_group_blocked(const AttentionArgs& a, int64_t t, int kv_head) {
  constexpr int hd = 16 * NV;
  constexpr int kMembers = NV <= 4 ? 4 : 2;  // accumulators in registers: kMembers x NV zmm
  const int n_group = a.n_head / a.n_head_kv;
  const int64_t q_stride = a.q_stride ? a.q_stride : int64_t{a.n_head} * hd;
  const int64_t kv_stride = a.kv_stride ? a.kv_stride : int64_t{a.n_head_kv} * hd;
  const int64_t out_stride = a.out_stride ? a.out_stride : int64_t{a.n_head} * hd;
  const float scale = a.softcap > 0.0f ? a.scale / a.softcap : a.scale;
  __m512 q[16][NV];
  alignas(64) float acc[16][hd];
  for (int g = 0; g < n_group; ++g) {
    const float* qh = a.q + t * q_stride + int64_t{kv_head * n_group + g} * hd;
#pragma GCC unroll 8
    for (int n = 0; n < NV; ++n) {
      __m512 v = _mm512_loadu_ps(qh + 16 * n);
      if (a.q_f16) v = round_f16_ps(v);
      q[g][n] = v;
      _mm512_store_ps(acc[g] + 16 * n, _mm512_setzero_ps());
    }
  }
  alignas(64) float S[kKeyBlock][16], MS[kKeyBlock][16], VS[kKeyBlock][16];
  int64_t key[kKeyBlock];
  const __mmask16 live = static_cast<__mmask16>((1u << n_group) - 1);
  __m512 mvec = _mm512_set1_ps(-INFINITY);
  __m512 sum = _mm512_setzero_ps();
  const __m512 one = _mm512_set1_ps(1.0f);
  for (int64_t j0 = 0; j0 < a.n_kv;) {
    // Pass 1: scores of the next kKeyBlock visible keys.
    int nk = 0;
    for (; j0 < a.n_kv && nk < kKeyBlock; ++j0) {
      float mv;
      if (!attention_visible(a, t, j0, &mv)) continue;
      const uint16_t* k = a.k + j0 * kv_stride + int64_t{kv_head} * hd;
      __m512 kf[NV];
#pragma GCC unroll 8
      for (int n = 0; n < NV; ++n) kf[n] = _mm512_cvtph_ps(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(k + 16 * n)));
      for (int g = 0; g < n_group; ++g) {
        __m512 dot = _mm512_mul_ps(q[g][0], kf[0]);
#pragma GCC unroll 8
        for (int n = 1; n < NV; ++n) dot = _mm512_fmadd_ps(q[g][n], kf[n], dot);
        float sc = _mm512_reduce_add_ps(dot) * scale;
        if (a.softcap > 0.0f) sc = a.softcap * std::tanh(sc);
        S[nk][g] = sc + mv;
      }
      key[nk++] = j0;
    }
    // Pass 2: s > m: ms = exp(m - s), m = s, vs = 1; else ms = 1, vs = exp(s - m).
    for (int i = 0; i < nk; ++i) {
      const __m512 sv = _mm512_maskz_load_ps(live, S[i]);
      const __mmask16 up = _mm512_mask_cmp_ps_mask(live, sv, mvec, _CMP_GT_OQ);
      const __m512 e = exp_ps(_mm512_mask_sub_ps(_mm512_sub_ps(sv, mvec), up, mvec, sv));
      const __m512 ms = _mm512_mask_blend_ps(up, one, e), vs = _mm512_mask_blend_ps(up, e, one);
      _mm512_store_ps(MS[i], ms);
      _mm512_store_ps(VS[i], vs);
      mvec = _mm512_mask_mov_ps(mvec, up, sv);
      sum = _mm512_add_ps(_mm512_mul_ps(sum, ms), vs);
    }
    // Pass 3: the accumulators, kMembers members at a time.
    for (int g0 = 0; g0 < n_group; g0 += kMembers) {
      const int nm = std::min(kMembers, n_group - g0);
      __m512 u[kMembers][NV];
#pragma GCC unroll 4
      for (int b = 0; b < kMembers; ++b)
#pragma GCC unroll 8
        for (int n = 0; n < NV; ++n) u[b][n] = b < nm ? _mm512_load_ps(acc[g0 + b] + 16 * n) : _mm512_setzero_ps();
      for (int i = 0; i < nk; ++i) {
        const uint16_t* v = a.v + key[i] * kv_stride + int64_t{kv_head} * hd;
        __m512 vf[NV];
#pragma GCC unroll 8
        for (int n = 0; n < NV; ++n) vf[n] = _mm512_cvtph_ps(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(v + 16 * n)));
#pragma GCC unroll 4
        for (int b = 0; b < kMembers; ++b) {
          const __m512 msv = _mm512_set1_ps(MS[i][g0 + b]), vsv = _mm512_set1_ps(VS[i][g0 + b]);
#pragma GCC unroll 8
          for (int n = 0; n < NV; ++n) {
            __m512 x = _mm512_mul_ps(u[b][n], msv);
            if constexpr (kRound) x = round_f16_ps(x);
            x = _mm512_fmadd_ps(vf[n], vsv, x);
            if constexpr (kRound) x = round_f16_ps(x);
            u[b][n] = x;
          }
        }
      }
      for (int b = 0; b < nm; ++b)
#pragma GCC unroll 8
        for (int n = 0; n < NV; ++n) _mm512_store_ps(acc[g0 + b] + 16 * n, u[b][n]);
    }
  }
  alignas(64) float sums[16];
  _mm512_store_ps(sums, sum);
  for (int g = 0; g < n_group; ++g) {
    const __m512 inv = _mm512_set1_ps(sums[g] == 0.0f ? 0.0f : 1.0f / sums[g]);
    float* o = a.out + t * out_stride + int64_t{kv_head * n_group + g} * hd;
#pragma GCC unroll 8
    for (int n = 0; n < NV; ++n) _mm512_storeu_ps(o + 16 * n, _mm512_mul_ps(_mm512_load_ps(acc[g] + 16 * n), inv));
  }
}

}  // namespace

// attention_group_ref with the head_dim loops on 16-lane vectors: the group's query rows
// stay in registers' reach (stack, L1) and each K/V row is loaded once for the whole group.
// Head sizes of 64, 96 and 128 take the blocked version above.
void attention_group_avx512(const AttentionArgs& a, int64_t t, int kv_head) {
  const int n_group = a.n_head / a.n_head_kv;
  const int hd = a.head_dim;
  if (hd % 16 != 0 || hd > 512 || n_group > 16) return attention_group_ref(a, t, kv_head);
  if (hd == 64 || hd == 96 || hd == 128) {
    const auto run = [&]<int NV>(std::integral_constant<int, NV>) {
      a.v_acc_f16 ? attention_group_blocked<NV, true>(a, t, kv_head) : attention_group_blocked<NV, false>(a, t, kv_head);
    };
    if (hd == 64) return run(std::integral_constant<int, 4>{});
    if (hd == 96) return run(std::integral_constant<int, 6>{});
    return run(std::integral_constant<int, 8>{});
  }
  const int64_t q_stride = a.q_stride ? a.q_stride : int64_t{a.n_head} * hd;
  const int64_t kv_stride = a.kv_stride ? a.kv_stride : int64_t{a.n_head_kv} * hd;
  const int64_t out_stride = a.out_stride ? a.out_stride : int64_t{a.n_head} * hd;
  const float scale = a.softcap > 0.0f ? a.scale / a.softcap : a.scale;
  alignas(64) float q[16 * 512];
  alignas(64) float acc[16 * 512];
  float sum[16];
  for (int g = 0; g < n_group; ++g) {
    const float* qh = a.q + t * q_stride + int64_t{kv_head * n_group + g} * hd;
    for (int d = 0; d < hd; d += 16) {
      __m512 v = _mm512_loadu_ps(qh + d);
      if (a.q_f16) v = round_f16_ps(v);
      _mm512_store_ps(q + g * hd + d, v);
      _mm512_store_ps(acc + g * hd + d, _mm512_setzero_ps());
    }
    sum[g] = 0.0f;
  }
  // Per key: the K and V rows are converted once for the whole group, the group's scores form
  // one vector (lane g) and its online-softmax factors come from one vector exp (exp_ps,
  // 2 ulp, where the reference calls std::exp); the accumulator updates are the reference's,
  // in its order.
  alignas(64) float kf[512], vf[512], sc[16], msa[16], vsa[16];
  const __mmask16 live = static_cast<__mmask16>((1u << n_group) - 1);
  __m512 mvec = _mm512_set1_ps(-INFINITY);
  for (int64_t j = 0; j < a.n_kv; ++j) {
    float mv;
    if (!attention_visible(a, t, j, &mv)) continue;
    const uint16_t* k = a.k + j * kv_stride + int64_t{kv_head} * hd;
    const uint16_t* v = a.v + j * kv_stride + int64_t{kv_head} * hd;
    for (int d = 0; d < hd; d += 16) {
      _mm512_store_ps(kf + d, _mm512_cvtph_ps(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(k + d))));
      _mm512_store_ps(vf + d, _mm512_cvtph_ps(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(v + d))));
    }
    for (int g = 0; g < n_group; ++g) {
      const float* qg = q + g * hd;
      __m512 dot = _mm512_setzero_ps();
      for (int d = 0; d < hd; d += 16) dot = _mm512_fmadd_ps(_mm512_load_ps(qg + d), _mm512_load_ps(kf + d), dot);
      float s = _mm512_reduce_add_ps(dot) * scale;
      if (a.softcap > 0.0f) s = a.softcap * std::tanh(s);
      sc[g] = s + mv;
    }
    // s > m: ms = exp(m - s), m = s, vs = 1; else ms = 1, vs = exp(s - m).
    const __m512 sv = _mm512_maskz_load_ps(live, sc);
    const __mmask16 up = _mm512_mask_cmp_ps_mask(live, sv, mvec, _CMP_GT_OQ);
    const __m512 e = exp_ps(_mm512_mask_sub_ps(_mm512_sub_ps(sv, mvec), up, mvec, sv));
    const __m512 one = _mm512_set1_ps(1.0f);
    _mm512_store_ps(msa, _mm512_mask_blend_ps(up, one, e));
    _mm512_store_ps(vsa, _mm512_mask_blend_ps(up, e, one));
    mvec = _mm512_mask_mov_ps(mvec, up, sv);
    for (int g = 0; g < n_group; ++g) {
      const float ms = msa[g], vs = vsa[g];
      const __m512 msv = _mm512_set1_ps(ms), vsv = _mm512_set1_ps(vs);
      float* ag = acc + g * hd;
      for (int d = 0; d < hd; d += 16) {
        __m512 u = _mm512_load_ps(ag + d);
        if (ms != 1.0f) {
          u = _mm512_mul_ps(u, msv);
          if (a.v_acc_f16) u = round_f16_ps(u);
        }
        u = _mm512_fmadd_ps(_mm512_load_ps(vf + d), vsv, u);
        if (a.v_acc_f16) u = round_f16_ps(u);
        _mm512_store_ps(ag + d, u);
      }
      sum[g] = sum[g] * ms + vs;
    }
  }
  for (int g = 0; g < n_group; ++g) {
    const __m512 inv = _mm512_set1_ps(sum[g] == 0.0f ? 0.0f : 1.0f / sum[g]);
    float* o = a.out + t * out_stride + int64_t{kv_head * n_group + g} * hd;
    for (int d = 0; d < hd; d += 16) _mm512_storeu_ps(o + d, _mm512_mul_ps(_mm512_load_ps(acc + g * hd + d), inv));
  }
}

}  // namespace owl::kernels
