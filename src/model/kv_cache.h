// The KV cache: K and V of every layer for up to n_seq sequences of n_ctx positions each,
// stored as F16 (as llama.cpp's default cache). Each sequence owns a fixed slot, so a
// sequence's keys are contiguous by position and attention needs no mask beyond causality.
#pragma once

#include <cstdint>
#include <vector>

#include "core/result.h"

namespace owl::model {

// Not thread-safe: one engine thread owns it.
class KvCache {
 public:
  KvCache() = default;
  KvCache(int64_t n_layer, int64_t n_embd_kv, int64_t n_ctx, int n_seq);

  int64_t n_ctx() const { return n_ctx_; }
  int n_seq() const { return n_seq_; }
  int64_t n_embd_kv() const { return n_embd_kv_; }
  size_t bytes() const { return (k_.size() + v_.size()) * sizeof(uint16_t); }
  // What bytes() is for a cache of this shape, before making one.
  static uint64_t bytes_for(int64_t n_layer, int64_t n_embd_kv, int64_t n_ctx, int n_seq) {
    return 2 * static_cast<uint64_t>(elements(n_layer, n_embd_kv, n_ctx, n_seq)) * sizeof(uint16_t);
  }

  // [n_ctx][n_embd_kv] f16 of one layer and sequence.
  uint16_t* k(int64_t il, int seq) { return k_.data() + offset(il, seq); }
  uint16_t* v(int64_t il, int seq) { return v_.data() + offset(il, seq); }
  const uint16_t* k(int64_t il, int seq) const { return k_.data() + offset(il, seq); }
  const uint16_t* v(int64_t il, int seq) const { return v_.data() + offset(il, seq); }

  // Positions [0, used) of the sequence hold valid entries.
  int64_t used(int seq) const { return used_[static_cast<size_t>(seq)]; }
  void set_used(int seq, int64_t n) { used_[static_cast<size_t>(seq)] = n; }
  // Keeps positions [0, n) and forgets the rest (rollback, or a new conversation with n = 0).
  void truncate(int seq, int64_t n);
  void clear() { std::fill(used_.begin(), used_.end(), 0); }
  // Copies positions [0, n) of src into dst (prefix reuse); dst keeps exactly those.
  void copy_prefix(int src, int dst, int64_t n);

 private:
  // Of K, and of V: [n_layer][n_seq][n_ctx][n_embd_kv].
  static size_t elements(int64_t n_layer, int64_t n_embd_kv, int64_t n_ctx, int n_seq) {
    return static_cast<size_t>(n_layer * n_seq * n_ctx * n_embd_kv);
  }
  size_t offset(int64_t il, int seq) const {
    return static_cast<size_t>((il * n_seq_ + seq) * n_ctx_ * n_embd_kv_);
  }
  int64_t n_layer_ = 0;
  int64_t n_embd_kv_ = 0;
  int64_t n_ctx_ = 0;
  int n_seq_ = 0;
  std::vector<uint16_t> k_;
  std::vector<uint16_t> v_;
  std::vector<int64_t> used_;
};

}  // namespace owl::model
