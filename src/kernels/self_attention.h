// Causal attention of whole sequences over their own rows, in f32 throughout: what training
// uses (forward() with ContextOptions::exact_attention records it, the backward pass inverts it).
// Row t of a sequence is its position t; keys come from the same rows, not from the KV cache.
#pragma once

#include <cstdint>

#include "core/thread_pool.h"
#include "kernels/kernels.h"

namespace owl::kernels {

struct SelfAttentionArgs {
  const float* qkv = nullptr;  // [n_tokens][stride]: q heads at 0, k heads at k_offset, v at v_offset
  int64_t stride = 0;
  int64_t k_offset = 0;
  int64_t v_offset = 0;
  int64_t n_tokens = 0;
  int n_head = 0;
  int n_head_kv = 0;           // query head h uses KV head h / (n_head / n_head_kv)
  int head_dim = 0;
  int32_t window = 0;          // > 0: row t sees rows t - window + 1 .. t
  float scale = 1.0f;          // s = scale * q.k
  float softcap = 0.0f;        // > 0: s = softcap * tanh(s / softcap)
};

// out [n_tokens][out_stride] (head h at out + h * head_dim) = softmax(s) v, per query head.
void self_attention(const Kernels& k, core::ThreadPool& pool, const SelfAttentionArgs& a, float* out,
                    int64_t out_stride);

// Given d_out, the gradients of q, k and v, added into d_qkv (laid out as qkv, same stride).
// The scores are recomputed from qkv.
void self_attention_backward(const Kernels& k, core::ThreadPool& pool, const SelfAttentionArgs& a,
                             const float* d_out, int64_t d_out_stride, float* d_qkv);

}  // namespace owl::kernels
