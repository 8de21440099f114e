// f32 self-attention and its backward on the kernels' row ops (axpy_rows, softmax), parallel
// over KV heads (a task owns the q heads of its group and the group's k and v columns, so no
// two tasks write the same gradient).
#include "kernels/self_attention.h"

#include <algorithm>
#include <cmath>
#include <vector>

#include "core/result.h"

namespace owl::kernels {
namespace {

// K or V of KV head g, transposed: out[i * n_tokens + j] = row j's element i.
void transpose_head(const SelfAttentionArgs& a, int64_t offset, int g, float* out) {
  const int64_t hd = a.head_dim, n = a.n_tokens;
  for (int64_t j = 0; j < n; ++j) {
    const float* src = a.qkv + j * a.stride + offset + g * hd;
    for (int64_t i = 0; i < hd; ++i) out[i * n + j] = src[i];
  }
}

// Softmax probabilities of query row t of head h over rows j0..t into p[j - j0], from kt (the
// group's K transposed); the capped scores (before softmax) into s when softcapping.
void probabilities(const Kernels& k, const SelfAttentionArgs& a, const float* kt, int64_t h, int64_t t, int64_t j0,
                   float* p, float* s) {
  const int64_t n = t - j0 + 1, hd = a.head_dim;
  std::fill_n(p, n, 0.0f);
  k.axpy_rows(p, n, a.qkv + t * a.stride + h * hd, kt + j0, a.n_tokens, hd);  // q . k_j
  if (a.softcap > 0.0f) {
    for (int64_t j = 0; j < n; ++j) {
      p[j] = a.softcap * std::tanh(p[j] * a.scale / a.softcap);
      s[j] = p[j];
    }
    k.softmax(p, n, 1.0f, nullptr);
  } else {
    k.softmax(p, n, a.scale, nullptr);
  }
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

int64_t first_key(const SelfAttentionArgs& a, int64_t t) {
  return a.window > 0 ? std::max<int64_t>(0, t - a.window + 1) : 0;
}

}  // namespace

void self_attention(const Kernels& k, core::ThreadPool& pool, const SelfAttentionArgs& a, float* out,
                    int64_t out_stride) {
  const int64_t group = a.n_head / a.n_head_kv, hd = a.head_dim, n = a.n_tokens;
  for_kv_heads(pool, a, [&](int g) {
    std::vector<float> kt(static_cast<size_t>(hd * n)), p(static_cast<size_t>(n)), s(p.size());
    transpose_head(a, a.k_offset, g, kt.data());
    for (int64_t h = g * group; h < (g + 1) * group; ++h) {
      for (int64_t t = 0; t < n; ++t) {
        const int64_t j0 = first_key(a, t);
        probabilities(k, a, kt.data(), h, t, j0, p.data(), s.data());
        float* o = out + t * out_stride + h * hd;
        std::fill_n(o, hd, 0.0f);
        k.axpy_rows(o, hd, p.data(), a.qkv + j0 * a.stride + a.v_offset + g * hd, a.stride, t - j0 + 1);
      }
    }
  });
}

// Per query row t of head h, with p its probabilities and dp_j = d_out_t . v_j:
//   ds_j = scale p_j (dp_j - Σ_j' p_j' dp_j') (times 1 - tanh^2 under softcapping),
//   dq_t += Σ_j ds_j k_j,  dk_j += ds_j q_t,  dv_j += p_j d_out_t.
// dk and dv of the group gather transposed ([hd][n_tokens]) and are added at the end.
void self_attention_backward(const Kernels& k, core::ThreadPool& pool, const SelfAttentionArgs& a,
                             const float* d_out, int64_t d_out_stride, float* d_qkv) {
  const int64_t group = a.n_head / a.n_head_kv, hd = a.head_dim, n = a.n_tokens;
  for_kv_heads(pool, a, [&](int g) {
    const auto size = static_cast<size_t>(hd * n);
    std::vector<float> kt(size), vt(size), dkt(size, 0.0f), dvt(size, 0.0f);
    std::vector<float> p(static_cast<size_t>(n)), s(p.size()), dp(p.size());
    transpose_head(a, a.k_offset, g, kt.data());
    transpose_head(a, a.v_offset, g, vt.data());
    for (int64_t h = g * group; h < (g + 1) * group; ++h) {
      for (int64_t t = 0; t < n; ++t) {
        const int64_t j0 = first_key(a, t), m = t - j0 + 1;
        probabilities(k, a, kt.data(), h, t, j0, p.data(), s.data());
        const float* q = a.qkv + t * a.stride + h * hd;
        const float* dout = d_out + t * d_out_stride + h * hd;
        std::fill_n(dp.data(), m, 0.0f);
        k.axpy_rows(dp.data(), m, dout, vt.data() + j0, n, hd);
        double dsum = 0;  // Σ_j p_j dp_j
        for (int64_t j = 0; j < m; ++j) dsum += static_cast<double>(p[static_cast<size_t>(j)]) * dp[static_cast<size_t>(j)];
        float* ds = dp.data();  // in place
        for (int64_t j = 0; j < m; ++j) {
          const auto jj = static_cast<size_t>(j);
          float d = p[jj] * (dp[jj] - static_cast<float>(dsum));
          if (a.softcap > 0.0f) {
            const float th = s[jj] / a.softcap;
            d *= 1.0f - th * th;
          }
          ds[jj] = d * a.scale;
        }
        k.axpy_rows(d_qkv + t * a.stride + h * hd, hd, ds, a.qkv + j0 * a.stride + a.k_offset + g * hd, a.stride, m);
        for (int64_t i = 0; i < hd; ++i) {
          k.axpy_rows(dkt.data() + i * n + j0, m, q + i, ds, 0, 1);
          k.axpy_rows(dvt.data() + i * n + j0, m, dout + i, p.data(), 0, 1);
        }
      }
    }
    for (int64_t j = 0; j < n; ++j) {
      float* dk = d_qkv + j * a.stride + a.k_offset + g * hd;
      float* dv = d_qkv + j * a.stride + a.v_offset + g * hd;
      for (int64_t i = 0; i < hd; ++i) {
        dk[i] += dkt[static_cast<size_t>(i * n + j)];
        dv[i] += dvt[static_cast<size_t>(i * n + j)];
      }
    }
  });
}

}  // namespace owl::kernels
