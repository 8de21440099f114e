// forward(): one pass of the transformer over a batch of tokens from any number of sequences.
// Prefill (many tokens of one sequence), decode (one token each of many sequences) and mixed
// batches all take this path.
#pragma once

#include <cstdint>
#include <memory>
#include <vector>

#include "core/result.h"
#include "core/thread_pool.h"
#include "kernels/kernels.h"
#include "model/kv_cache.h"
#include "model/model.h"

namespace owl::model {

// Tokens with their positions and sequence ids; `logits` marks the rows whose logits are wanted.
struct Batch {
  std::vector<int32_t> token;
  std::vector<int32_t> pos;
  std::vector<int32_t> seq;
  std::vector<uint8_t> logits;

  void clear() {
    token.clear();
    pos.clear();
    seq.clear();
    logits.clear();
  }
  void add(int32_t t, int32_t p, int32_t s, bool want_logits) {
    token.push_back(t);
    pos.push_back(p);
    seq.push_back(s);
    logits.push_back(want_logits ? 1 : 0);
  }
  int64_t size() const { return static_cast<int64_t>(token.size()); }
  int64_t n_logits() const;
};

struct ContextOptions {
  int64_t n_ctx = 0;     // positions per sequence; 0: the model's training context, at most 4096
  int n_seq = 1;         // sequences the KV cache holds
  int64_t n_batch = 512; // tokens per internal step; larger batches are split
  int n_threads = 0;     // 0: all cores
};

// Sees the input of every weight matmul: the hook importance matrices (owl imatrix) use.
// Called on the thread that runs forward(), before the matmul; must not keep the pointer.
struct ActivationObserver {
  virtual ~ActivationObserver() = default;
  // x: [n_rows] rows of w.n_in floats, row i at x + i * x_stride.
  virtual void observe(const Weight& w, const float* x, int64_t x_stride, int64_t n_rows) const = 0;
};

// Everything forward() needs besides the weights: the kernels, the threads, the KV cache and
// scratch buffers sized once for n_batch tokens, so forward() does not allocate.
// Not thread-safe: one thread calls forward() at a time.
struct Context {
  Context(const Model& model, const ContextOptions& options);

  ContextOptions options;
  kernels::Kernels kernels;
  core::ThreadPool pool;
  KvCache kv;
  // Activations of one step: [n_batch][width] each.
  std::vector<float> x, cur, qkv, attn, ffn;
  std::vector<uint8_t> matmul_scratch;
  std::vector<int64_t> seq_used;    // [n_seq] positions each sequence holds, while a batch is checked
  const ActivationObserver* observer = nullptr;  // optional; not owned
};

core::Result<std::unique_ptr<Context>> make_context(const Model& model, const ContextOptions& options);

// Runs the batch: writes K/V of every token into its sequence's cache slot at its position and
// the logits of each row that asks, in batch order, to `logits` [batch.n_logits()][n_vocab].
// A token's position may not skip ahead of what its sequence holds; positions already held
// are overwritten and everything after them is forgotten (rollback).
core::Status forward(const Model& model, const Batch& batch, Context& ctx, float* logits);

}  // namespace owl::model
