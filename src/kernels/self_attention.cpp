// Scalar f32 self-attention and its backward, parallel over KV heads (a task owns the q heads
// of its group and the group's k and v columns, so no two tasks write the same gradient).
#include "kernels/self_attention.h"

#include <algorithm>
#include <cmath>
#include <vector>

#include "core/result.h"

namespace owl::kernels {
namespace {

// Softmax probabilities of query row t of head h over rows j0..t into p[j - j0]; the capped
// scores (before softmax) into s when it is not null.
void probabilities(const SelfAttentionArgs& a, int64_t h, int64_t t, int64_t j0, float* p, float* s) {
  const int64_t group = a.n_head / a.n_head_kv, g = h / group, hd = a.head_dim;
  const float* q = a.qkv + t * a.stride + h * hd;
  float max = -INFINITY;
  for (int64_t j = j0; j <= t; ++j) {
    const float* k = a.qkv + j * a.stride + a.k_offset + g * hd;
    float dot = 0;
    for (int64_t i = 0; i < hd; ++i) dot += q[i] * k[i];
    float v = dot * a.scale;
    if (a.softcap > 0.0f) v = a.softcap * std::tanh(v / a.softcap);
    p[j - j0] = v;
    if (s != nullptr) s[j - j0] = v;
    max = std::max(max, v);
  }
  double sum = 0;
  for (int64_t j = j0; j <= t; ++j) {
    p[j - j0] = std::exp(p[j - j0] - max);
    sum += p[j - j0];
  }
  const auto inv = static_cast<float>(1.0 / sum);
  for (int64_t j = j0; j <= t; ++j) p[j - j0] *= inv;
}

template <typename F>
void for_kv_heads(core::ThreadPool& pool, const SelfAttentionArgs& a, F&& fn) {
  OWL_CHECK(a.n_head_kv > 0 && a.n_head % a.n_head_kv == 0);
  if (pool.n_threads() == 1 || a.n_head_kv == 1) {
    for (int g = 0; g < a.n_head_kv; ++g) fn(g);
  } else {
    pool.parallel_for(a.n_head_kv, [&](int64_t g, int) { fn(static_cast<int>(g)); });
  }
}

}  // namespace

void self_attention(core::ThreadPool& pool, const SelfAttentionArgs& a, float* out, int64_t out_stride) {
  const int64_t group = a.n_head / a.n_head_kv, hd = a.head_dim;
  for_kv_heads(pool, a, [&](int g) {
    std::vector<float> p(static_cast<size_t>(a.n_tokens));
    for (int64_t h = g * group; h < (g + 1) * group; ++h) {
      for (int64_t t = 0; t < a.n_tokens; ++t) {
        const int64_t j0 = a.window > 0 ? std::max<int64_t>(0, t - a.window + 1) : 0;
        probabilities(a, h, t, j0, p.data(), nullptr);
        float* o = out + t * out_stride + h * hd;
        std::fill_n(o, hd, 0.0f);
        for (int64_t j = j0; j <= t; ++j) {
          const float* v = a.qkv + j * a.stride + a.v_offset + g * hd;
          const float pj = p[static_cast<size_t>(j - j0)];
          for (int64_t i = 0; i < hd; ++i) o[i] += pj * v[i];
        }
      }
    }
  });
}

void self_attention_backward(core::ThreadPool& pool, const SelfAttentionArgs& a, const float* d_out,
                             int64_t d_out_stride, float* d_qkv) {
  const int64_t group = a.n_head / a.n_head_kv, hd = a.head_dim;
  for_kv_heads(pool, a, [&](int g) {
    std::vector<float> p(static_cast<size_t>(a.n_tokens)), s(p.size()), dp(p.size());
    for (int64_t h = g * group; h < (g + 1) * group; ++h) {
      for (int64_t t = 0; t < a.n_tokens; ++t) {
        const int64_t j0 = a.window > 0 ? std::max<int64_t>(0, t - a.window + 1) : 0;
        probabilities(a, h, t, j0, p.data(), s.data());
        const float* q = a.qkv + t * a.stride + h * hd;
        const float* dout = d_out + t * d_out_stride + h * hd;
        double dsum = 0;  // Σ_j p_j dp_j
        for (int64_t j = j0; j <= t; ++j) {
          const float* v = a.qkv + j * a.stride + a.v_offset + g * hd;
          float d = 0;
          for (int64_t i = 0; i < hd; ++i) d += dout[i] * v[i];
          dp[static_cast<size_t>(j - j0)] = d;
          dsum += static_cast<double>(p[static_cast<size_t>(j - j0)]) * d;
        }
        float* dq = d_qkv + t * a.stride + h * hd;
        for (int64_t j = j0; j <= t; ++j) {
          const size_t jj = static_cast<size_t>(j - j0);
          float ds = p[jj] * (dp[jj] - static_cast<float>(dsum));
          if (a.softcap > 0.0f) {
            const float th = s[jj] / a.softcap;
            ds *= 1.0f - th * th;
          }
          ds *= a.scale;
          const float* k = a.qkv + j * a.stride + a.k_offset + g * hd;
          float* dk = d_qkv + j * a.stride + a.k_offset + g * hd;
          float* dv = d_qkv + j * a.stride + a.v_offset + g * hd;
          for (int64_t i = 0; i < hd; ++i) {
            dq[i] += ds * k[i];
            dk[i] += ds * q[i];
            dv[i] += p[jj] * dout[i];
          }
        }
      }
    }
  });
}

}  // namespace owl::kernels
