// Scalar reference attention for one token and one KV head group, the math of llama.cpp's
// ggml_compute_forward_flash_attn_ext_f16_one_chunk with f32 accumulation:
//   s_j = scale * q.k_j (softcap: c * tanh(s_j / c)) + mask_j, over visible keys j;
//   out = sum_j exp(s_j - M) v_j / sum_j exp(s_j - M), by online softmax (M = running max).
#include <cmath>

#include "core/result.h"
#include "kernels/ref/ref.h"
#include "quant/half.h"

namespace owl::kernels {

bool attention_visible(const AttentionArgs& a, int64_t t, int64_t j, float* mask_value) {
  *mask_value = a.mask ? a.mask[t * a.n_kv + j] : 0.0f;
  if (*mask_value == -INFINITY) return false;
  if (a.q_pos) {
    const int32_t qp = a.q_pos[t];
    const int32_t kp = a.kv_pos ? a.kv_pos[j] : static_cast<int32_t>(j);
    if (kp > qp) return false;
    if (a.window > 0 && qp - kp >= a.window) return false;
  }
  return true;
}

namespace {

inline float round_f16(float v) { return quant::f16_to_f32(quant::f32_to_f16(v)); }

}  // namespace

void attention_group_ref(const AttentionArgs& a, int64_t t, int kv_head) {
  OWL_CHECK(a.head_dim <= 1024 && a.n_head % a.n_head_kv == 0);
  const int n_group = a.n_head / a.n_head_kv;
  const int64_t q_stride = a.q_stride ? a.q_stride : int64_t{a.n_head} * a.head_dim;
  const int64_t kv_stride = a.kv_stride ? a.kv_stride : int64_t{a.n_head_kv} * a.head_dim;
  const int64_t out_stride = a.out_stride ? a.out_stride : int64_t{a.n_head} * a.head_dim;
  const float scale = a.softcap > 0.0f ? a.scale / a.softcap : a.scale;
  float q[1024], acc[1024];
  for (int hg = 0; hg < n_group; ++hg) {
    const int h = kv_head * n_group + hg;
    const float* qh = a.q + t * q_stride + int64_t{h} * a.head_dim;
    for (int d = 0; d < a.head_dim; ++d) {
      q[d] = a.q_f16 ? round_f16(qh[d]) : qh[d];
      acc[d] = 0.0f;
    }
    float m = -INFINITY;
    float sum = 0.0f;
    for (int64_t j = 0; j < a.n_kv; ++j) {
      float mv;
      if (!attention_visible(a, t, j, &mv)) continue;
      const uint16_t* k = a.k + j * kv_stride + int64_t{kv_head} * a.head_dim;
      const uint16_t* v = a.v + j * kv_stride + int64_t{kv_head} * a.head_dim;
      float s = 0.0f;
      for (int d = 0; d < a.head_dim; ++d) s += q[d] * quant::f16_to_f32(k[d]);
      s *= scale;
      if (a.softcap > 0.0f) s = a.softcap * std::tanh(s);
      s += mv;
      float ms = 1.0f;  // rescales the old accumulator
      float vs = 1.0f;  // weight of v_j
      if (s > m) {
        const float m_old = m;
        m = s;
        ms = std::exp(m_old - m);
        for (int d = 0; d < a.head_dim; ++d) acc[d] = a.v_acc_f16 ? round_f16(acc[d] * ms) : acc[d] * ms;
      } else {
        vs = std::exp(s - m);
      }
      for (int d = 0; d < a.head_dim; ++d) {
        const float u = acc[d] + quant::f16_to_f32(v[d]) * vs;
        acc[d] = a.v_acc_f16 ? round_f16(u) : u;
      }
      sum = sum * ms + vs;
    }
    const float inv = sum == 0.0f ? 0.0f : 1.0f / sum;
    float* o = a.out + t * out_stride + int64_t{h} * a.head_dim;
    for (int d = 0; d < a.head_dim; ++d) o[d] = acc[d] * inv;
  }
}

}  // namespace owl::kernels
