// AVX2 row ops and attention. Tails (n % 8) call the reference on the remaining elements,
// except in the reductions, where the scalar remainder is folded into the same sums.
#include <immintrin.h>

#include <cmath>

#include "core/result.h"
#include "kernels/avx2/avx2.h"
#include "kernels/ref/ref.h"
#include "quant/half.h"

namespace owl::kernels {
namespace {

inline float hsum_ps(__m256 v) {
  __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  s = _mm_add_ps(s, _mm_movehl_ps(s, s));
  s = _mm_add_ss(s, _mm_movehdup_ps(s));
  return _mm_cvtss_f32(s);
}

inline float hmax_ps(__m256 v) {
  __m128 s = _mm_max_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  s = _mm_max_ps(s, _mm_movehl_ps(s, s));
  s = _mm_max_ss(s, _mm_movehdup_ps(s));
  return _mm_cvtss_f32(s);
}

// exp(x) to about 2 ulp (Cephes expf polynomial); 0 below -87.3 (so exp(-inf) = 0).
inline __m256 exp_ps(__m256 x) {
  const __m256 zero_mask = _mm256_cmp_ps(x, _mm256_set1_ps(-87.33f), _CMP_LT_OQ);
  x = _mm256_max_ps(_mm256_min_ps(x, _mm256_set1_ps(88.3f)), _mm256_set1_ps(-87.33f));
  const __m256 n = _mm256_round_ps(_mm256_mul_ps(x, _mm256_set1_ps(1.44269504088896341f)),
                                   _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
  __m256 r = _mm256_fnmadd_ps(n, _mm256_set1_ps(0.693359375f), x);
  r = _mm256_fnmadd_ps(n, _mm256_set1_ps(-2.12194440e-4f), r);
  __m256 p = _mm256_set1_ps(1.9875691500e-4f);
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.3981999507e-3f));
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(8.3334519073e-3f));
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(4.1665795894e-2f));
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.6666665459e-1f));
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(5.0000001201e-1f));
  p = _mm256_fmadd_ps(p, _mm256_mul_ps(r, r), _mm256_add_ps(r, _mm256_set1_ps(1.0f)));
  const __m256i e = _mm256_slli_epi32(_mm256_add_epi32(_mm256_cvtps_epi32(n), _mm256_set1_epi32(127)), 23);
  return _mm256_andnot_ps(zero_mask, _mm256_mul_ps(p, _mm256_castsi256_ps(e)));
}

inline __m256 silu_ps(__m256 x) {
  const __m256 e = exp_ps(_mm256_sub_ps(_mm256_setzero_ps(), x));
  return _mm256_div_ps(x, _mm256_add_ps(_mm256_set1_ps(1.0f), e));
}

inline __m256 round_f16_ps(__m256 v) {
  return _mm256_cvtph_ps(_mm256_cvtps_ph(v, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC));
}

}  // namespace

void rms_norm_avx2(const float* x, const float* w, float* y, int64_t n, float eps) {
  __m256d s0 = _mm256_setzero_pd(), s1 = _mm256_setzero_pd();
  int64_t i = 0;
  for (; i + 8 <= n; i += 8) {
    const __m256 v = _mm256_loadu_ps(x + i);
    const __m256 sq = _mm256_mul_ps(v, v);
    s0 = _mm256_add_pd(s0, _mm256_cvtps_pd(_mm256_castps256_ps128(sq)));
    s1 = _mm256_add_pd(s1, _mm256_cvtps_pd(_mm256_extractf128_ps(sq, 1)));
  }
  alignas(32) double parts[4];
  _mm256_store_pd(parts, _mm256_add_pd(s0, s1));
  double sum = (parts[0] + parts[1]) + (parts[2] + parts[3]);
  for (int64_t j = i; j < n; ++j) sum += static_cast<double>(x[j] * x[j]);
  const float mean = static_cast<float>(sum / static_cast<double>(n));
  const float scale = 1.0f / std::sqrt(mean + eps);
  const __m256 sv = _mm256_set1_ps(scale);
  for (i = 0; i + 8 <= n; i += 8) {
    __m256 v = _mm256_mul_ps(_mm256_loadu_ps(x + i), sv);
    if (w) v = _mm256_mul_ps(v, _mm256_loadu_ps(w + i));
    _mm256_storeu_ps(y + i, v);
  }
  for (; i < n; ++i) y[i] = w ? (x[i] * scale) * w[i] : x[i] * scale;
}

void softmax_avx2(float* x, int64_t n, float scale, const float* mask) {
  const __m256 sv = _mm256_set1_ps(scale);
  __m256 mx = _mm256_set1_ps(-INFINITY);
  int64_t i = 0;
  for (; i + 8 <= n; i += 8) {
    __m256 v = _mm256_mul_ps(_mm256_loadu_ps(x + i), sv);
    if (mask) v = _mm256_add_ps(v, _mm256_loadu_ps(mask + i));
    _mm256_storeu_ps(x + i, v);
    mx = _mm256_max_ps(mx, v);
  }
  float max = hmax_ps(mx);
  for (; i < n; ++i) {
    x[i] = mask ? x[i] * scale + mask[i] : x[i] * scale;
    max = std::fmax(max, x[i]);
  }
  if (max == -INFINITY) {
    for (i = 0; i < n; ++i) x[i] = 0.0f;
    return;
  }
  const __m256 maxv = _mm256_set1_ps(max);
  __m256 sum = _mm256_setzero_ps();
  for (i = 0; i + 8 <= n; i += 8) {
    const __m256 e = exp_ps(_mm256_sub_ps(_mm256_loadu_ps(x + i), maxv));
    _mm256_storeu_ps(x + i, e);
    sum = _mm256_add_ps(sum, e);
  }
  float total = hsum_ps(sum);
  for (int64_t j = i; j < n; ++j) {
    x[j] = std::exp(x[j] - max);
    total += x[j];
  }
  const float inv = 1.0f / total;
  const __m256 invv = _mm256_set1_ps(inv);
  for (i = 0; i + 8 <= n; i += 8) _mm256_storeu_ps(x + i, _mm256_mul_ps(_mm256_loadu_ps(x + i), invv));
  for (; i < n; ++i) x[i] *= inv;
}

void silu_avx2(const float* x, float* y, int64_t n) {
  int64_t i = 0;
  for (; i + 8 <= n; i += 8) _mm256_storeu_ps(y + i, silu_ps(_mm256_loadu_ps(x + i)));
  if (i < n) silu_ref(x + i, y + i, n - i);
}

void swiglu_avx2(const float* gate, const float* up, float* y, int64_t n) {
  int64_t i = 0;
  for (; i + 8 <= n; i += 8) {
    _mm256_storeu_ps(y + i, _mm256_mul_ps(silu_ps(_mm256_loadu_ps(gate + i)), _mm256_loadu_ps(up + i)));
  }
  if (i < n) swiglu_ref(gate + i, up + i, y + i, n - i);
}

// 32 columns at a time in four accumulators (independent FMA chains over j), then 8, then the
// reference for the last n % 8.
void axpy_rows_avx2(float* y, int64_t n, const float* c, const float* w, int64_t w_stride, int64_t k) {
  int64_t i = 0;
  for (; i + 32 <= n; i += 32) {
    __m256 a0 = _mm256_loadu_ps(y + i), a1 = _mm256_loadu_ps(y + i + 8);
    __m256 a2 = _mm256_loadu_ps(y + i + 16), a3 = _mm256_loadu_ps(y + i + 24);
    for (int64_t j = 0; j < k; ++j) {
      const __m256 cj = _mm256_set1_ps(c[j]);
      const float* wj = w + j * w_stride + i;
      a0 = _mm256_fmadd_ps(cj, _mm256_loadu_ps(wj), a0);
      a1 = _mm256_fmadd_ps(cj, _mm256_loadu_ps(wj + 8), a1);
      a2 = _mm256_fmadd_ps(cj, _mm256_loadu_ps(wj + 16), a2);
      a3 = _mm256_fmadd_ps(cj, _mm256_loadu_ps(wj + 24), a3);
    }
    _mm256_storeu_ps(y + i, a0);
    _mm256_storeu_ps(y + i + 8, a1);
    _mm256_storeu_ps(y + i + 16, a2);
    _mm256_storeu_ps(y + i + 24, a3);
  }
  for (; i + 8 <= n; i += 8) {
    __m256 a = _mm256_loadu_ps(y + i);
    for (int64_t j = 0; j < k; ++j) a = _mm256_fmadd_ps(_mm256_set1_ps(c[j]), _mm256_loadu_ps(w + j * w_stride + i), a);
    _mm256_storeu_ps(y + i, a);
  }
  if (i < n) axpy_rows_ref(y + i, n - i, c, w + i, w_stride, k);
}

// attention_group_ref on 8-lane vectors; each K/V row is loaded once for the whole group.
void attention_group_avx2(const AttentionArgs& a, int64_t t, int kv_head) {
  const int n_group = a.n_head / a.n_head_kv;
  const int hd = a.head_dim;
  if (hd % 8 != 0 || hd > 512 || n_group > 16) return attention_group_ref(a, t, kv_head);
  const int64_t q_stride = a.q_stride ? a.q_stride : int64_t{a.n_head} * hd;
  const int64_t kv_stride = a.kv_stride ? a.kv_stride : int64_t{a.n_head_kv} * hd;
  const int64_t out_stride = a.out_stride ? a.out_stride : int64_t{a.n_head} * hd;
  const float scale = a.softcap > 0.0f ? a.scale / a.softcap : a.scale;
  alignas(32) float q[16 * 512];
  alignas(32) float acc[16 * 512];
  float m[16], sum[16];
  for (int g = 0; g < n_group; ++g) {
    const float* qh = a.q + t * q_stride + int64_t{kv_head * n_group + g} * hd;
    for (int d = 0; d < hd; d += 8) {
      __m256 v = _mm256_loadu_ps(qh + d);
      if (a.q_f16) v = round_f16_ps(v);
      _mm256_store_ps(q + g * hd + d, v);
      _mm256_store_ps(acc + g * hd + d, _mm256_setzero_ps());
    }
    m[g] = -INFINITY;
    sum[g] = 0.0f;
  }
  for (int64_t j = 0; j < a.n_kv; ++j) {
    float mv;
    if (!attention_visible(a, t, j, &mv)) continue;
    const uint16_t* k = a.k + j * kv_stride + int64_t{kv_head} * hd;
    const uint16_t* v = a.v + j * kv_stride + int64_t{kv_head} * hd;
    for (int g = 0; g < n_group; ++g) {
      const float* qg = q + g * hd;
      __m256 dot = _mm256_setzero_ps();
      for (int d = 0; d < hd; d += 8) {
        const __m256 kv = _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(k + d)));
        dot = _mm256_fmadd_ps(_mm256_load_ps(qg + d), kv, dot);
      }
      float s = hsum_ps(dot) * scale;
      if (a.softcap > 0.0f) s = a.softcap * std::tanh(s);
      s += mv;
      float ms = 1.0f, vs = 1.0f;
      if (s > m[g]) {
        ms = std::exp(m[g] - s);
        m[g] = s;
      } else {
        vs = std::exp(s - m[g]);
      }
      const __m256 msv = _mm256_set1_ps(ms), vsv = _mm256_set1_ps(vs);
      float* ag = acc + g * hd;
      for (int d = 0; d < hd; d += 8) {
        const __m256 vv = _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(v + d)));
        __m256 u = _mm256_load_ps(ag + d);
        if (ms != 1.0f) {
          u = _mm256_mul_ps(u, msv);
          if (a.v_acc_f16) u = round_f16_ps(u);
        }
        u = _mm256_fmadd_ps(vv, vsv, u);
        if (a.v_acc_f16) u = round_f16_ps(u);
        _mm256_store_ps(ag + d, u);
      }
      sum[g] = sum[g] * ms + vs;
    }
  }
  for (int g = 0; g < n_group; ++g) {
    const __m256 inv = _mm256_set1_ps(sum[g] == 0.0f ? 0.0f : 1.0f / sum[g]);
    float* o = a.out + t * out_stride + int64_t{kv_head * n_group + g} * hd;
    for (int d = 0; d < hd; d += 8) _mm256_storeu_ps(o + d, _mm256_mul_ps(_mm256_load_ps(acc + g * hd + d), inv));
  }
}

}  // namespace owl::kernels
