#include "model/kv_cache.h"

#include <algorithm>
#include <cstring>

namespace owl::model {

KvCache::KvCache(int64_t n_layer, int64_t n_embd_kv, int64_t n_ctx, int n_seq)
    : n_layer_(n_layer), n_embd_kv_(n_embd_kv), n_ctx_(n_ctx), n_seq_(n_seq),
      k_(elements(n_layer, n_embd_kv, n_ctx, n_seq)),
      v_(k_.size()),
      used_(static_cast<size_t>(n_seq), 0) {}

void KvCache::truncate(int seq, int64_t n) {
  used_[static_cast<size_t>(seq)] = std::min(used(seq), std::max<int64_t>(n, 0));
}

void KvCache::copy_prefix(int src, int dst, int64_t n) {
  n = std::min(n, used(src));
  if (src != dst) {
    const size_t bytes = static_cast<size_t>(n * n_embd_kv_) * sizeof(uint16_t);
    for (int64_t il = 0; il < n_layer_; ++il) {
      std::memcpy(k(il, dst), k(il, src), bytes);
      std::memcpy(v(il, dst), v(il, src), bytes);
    }
  }
  used_[static_cast<size_t>(dst)] = n;
}

}  // namespace owl::model
