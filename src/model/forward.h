// forward(): one pass of the transformer over a batch of tokens from any number of sequences.
// Prefill (many tokens of one sequence), decode (one token each of many sequences) and mixed
// batches all take this path.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "core/result.h"
#include "core/thread_pool.h"
#include "kernels/kernels.h"
#include "kernels/self_attention.h"
#include "model/adapter.h"
#include "model/kv_cache.h"
#include "model/model.h"
#include "model/profile.h"

namespace owl::model {

// Tokens with their positions and sequence ids; `logits` marks the rows whose logits are wanted;
// `adapters` the LoRA adapters of each row (null: the base model), or empty when no row has any.
struct Batch {
  std::vector<int32_t> token;
  std::vector<int32_t> pos;
  std::vector<int32_t> seq;
  std::vector<uint8_t> logits;
  std::vector<const AdapterSet*> adapters;

  void clear() {
    token.clear();
    pos.clear();
    seq.clear();
    logits.clear();
    adapters.clear();
  }
  void add(int32_t t, int32_t p, int32_t s, bool want_logits, const AdapterSet* lora = nullptr) {
    if (lora != nullptr && adapters.size() < token.size()) adapters.resize(token.size(), nullptr);
    token.push_back(t);
    pos.push_back(p);
    seq.push_back(s);
    logits.push_back(want_logits ? 1 : 0);
    if (lora != nullptr || !adapters.empty()) adapters.push_back(lora);
  }
  int64_t size() const { return static_cast<int64_t>(token.size()); }
  int64_t n_logits() const;
};

inline constexpr int kMaxThreads = 512;  // compute threads a context may start

struct ContextOptions {
  int64_t n_ctx = 0;     // positions per sequence; 0: the model's training context, at most 4096
  int n_seq = 1;         // sequences the KV cache holds
  int64_t n_batch = 512; // tokens per internal step; larger batches are split
  int n_threads = 0;     // 0: all cores
  // A sequence's logits the same bits whatever else the batch holds (other sequences, prompt
  // chunks of any length, its place among the rows) and on any thread count; see
  // kernels::MatmulArgs::batch_invariant for what it costs. Off, the logits depend on the
  // batch in float rounding only. Thread counts never change them.
  bool batch_invariant = false;
  // Attention in f32 over the step's own rows (kernels/self_attention.h) instead of the f16 KV
  // cache: what training uses, so that its gradients are those of an f32 model. Every sequence
  // of a batch must then be whole (rows contiguous, positions 0, 1, 2...) and fit one step. Such a
  // context keeps no KV cache.
  bool exact_attention = false;
};

// Sees the input of every weight matmul: the hook importance matrices (owl imatrix) use.
// Called on the thread that runs forward(), before the matmul; must not keep the pointer.
struct ActivationObserver {
  virtual ~ActivationObserver() = default;
  // x: [n_rows] rows of w.n_in floats, row i at x + i * x_stride.
  virtual void observe(const Weight& w, const float* x, int64_t x_stride, int64_t n_rows) const = 0;
};

// What a backward pass needs from one forward pass (llm.c's ActivationTensors): per layer, the
// activations its ops read, copied as forward() computes them. Rows are the batch's tokens.
struct LayerTape {
  std::vector<float> x;         // [n][n_embd] the residual stream entering the layer
  std::vector<float> attn_in;   // [n][n_embd] attn_norm(x): input of Q, K, V
  std::vector<float> qk_raw;    // [n][n_q + n_kv] q | k before their norms (qk_norm models only)
  std::vector<float> qkv;       // [n][n_q + 2 n_kv] after bias, q/k norms, RoPE and q scaling
  std::vector<float> attn;      // [n][n_q] attention output: input of attn_output
  std::vector<float> attn_out;  // [n][n_embd] attn_output's result (before post_attention_norm)
  std::vector<float> ffn_in;    // [n][n_embd] ffn_norm(x + attention): input of gate and up
  std::vector<float> gate_up;   // [n][2 n_ff] gate | up, before the activation
  std::vector<float> act;       // [n][n_ff] act(gate) * up: input of ffn_down
  std::vector<float> ffn_out;   // [n][n_embd] ffn_down's result (before post_ffw_norm)
};
struct Tape {
  // Record only each layer's input `x` (and x_final): the backward pass recomputes the rest of a
  // layer with recompute_layer() when it gets there (activation checkpointing). A layer's full
  // record is 4-20 times the size of its input.
  bool inputs_only = false;
  int64_t n_tokens = 0;
  std::vector<LayerTape> layers;  // [n_layer]
  std::vector<float> x_final;     // [n][n_embd] the residual stream after the last layer
};

// Bytes of one token's full LayerTape (every field), for sizing decisions.
int64_t layer_tape_bytes_per_token(const ModelConfig& c);

// Everything forward() needs besides the weights: the kernels, the threads, the KV cache and
// scratch buffers sized once for n_batch tokens, so forward() does not allocate.
// Not thread-safe: one thread calls forward() at a time.
struct Context {
  Context(const Model& model, const ContextOptions& options);

  ContextOptions options;
  kernels::Kernels kernels;
  core::ThreadPool pool;
  core::ThreadPool one_thread{1};  // runs inline: for work too small to hand off
  KvCache kv;
  // Activations of one step: [n_batch][width] each.
  std::vector<float> x, cur, qkv, attn, ffn;
  std::vector<uint8_t> matmul_scratch;
  std::vector<float> lora_x, lora_u, lora_bt;  // LoRA's masked input, A x, B^T: sized when adapters first run
  std::vector<int64_t> seq_used;    // [n_seq] positions each sequence holds, while a batch is checked
  const ActivationObserver* observer = nullptr;  // optional; not owned
  StepProfile* profile = nullptr;                 // optional; not owned: forward() adds its times to it
  // Optional; not owned. When set, forward() records into it what a backward pass needs; the
  // batch must then fit one step (n_batch tokens).
  Tape* tape = nullptr;
};

core::Result<std::unique_ptr<Context>> make_context(const Model& model, const ContextOptions& options);

// What forward() writes for each row that asks: its logits [n_vocab], or its hidden state after
// the final norm [n_embd] (what embeddings pool; the output projection is skipped).
enum class Output { kLogits, kHidden };

// A layer's RoPE (n_head left to the caller; stride: a row of q | k | v) and its f32
// self-attention over n_tokens rows of q | k | v: what forward() uses and the backward pass inverts.
kernels::RopeParams layer_rope(const Model& model, int64_t il);
kernels::SelfAttentionArgs layer_self_attention(const ModelConfig& c, int64_t il, const float* qkv, int64_t n_tokens);

// Runs the batch: writes K/V of every token into its sequence's cache slot at its position and
// the output of each row that asks, in batch order, to `out` [batch.n_logits()][n_vocab or n_embd].
// A token's position may not skip ahead of what its sequence holds; positions already held
// are overwritten and everything after them is forgotten (rollback).
core::Status forward(const Model& model, const Batch& batch, Context& ctx, float* out, Output kind = Output::kLogits);

// The logits of rows of forward()'s Output::kHidden (at most n_batch rows at a time): what
// Output::kLogits would have written for them.
core::Status output_logits(const Model& model, Context& ctx, const float* hidden, int64_t n_rows, float* logits);

// Runs layer `il` of `batch` again from its input as `tape` recorded it (by a forward() of the same
// batch on `ctx`), writing every field of `out` but x (the tape has it): the same values, bit for
// bit, as a full record.
core::Status recompute_layer(const Model& model, const Batch& batch, Context& ctx, const Tape& tape, int64_t il,
                             LayerTape& out);

}  // namespace owl::model
