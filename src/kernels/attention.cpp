// attention: the parallel driver over (token, KV head) pairs; the per-group math is the
// table's attention_group (ref/attention_ref.cpp and its SIMD variants).
#include "core/result.h"
#include "kernels/kernels.h"

namespace owl::kernels {

void attention(const Kernels& k, core::ThreadPool& pool, const AttentionArgs& a) {
  OWL_CHECK(a.n_head_kv > 0 && a.n_head % a.n_head_kv == 0);
  auto task = [&](int64_t i, int) { k.attention_group(a, i / a.n_head_kv, static_cast<int>(i % a.n_head_kv)); };
  pool.parallel_for(a.n_tokens * a.n_head_kv, task);
}

}  // namespace owl::kernels
