// Embeddings: a text's vector, pooled from the model's hidden states after the final norm (the
// output projection is skipped) and L2-normalized, as llama.cpp's llama-embedding computes them.
#pragma once

#include <cstdint>
#include <memory>
#include <mutex>
#include <span>
#include <string_view>
#include <vector>

#include "core/result.h"
#include "model/forward.h"

namespace owl::engine {

enum class Pooling { kMean, kLast, kCls };

// "mean", "last", "cls"; the error lists them.
core::Result<Pooling> parse_pooling(std::string_view name);
const char* pooling_name(Pooling pooling);
// The model's own (`<arch>.pooling_type`: 1 mean, 2 cls, 3 last); mean when it names none.
Pooling model_pooling(const model::Model& model);

struct EmbedderOptions {
  int64_t n_ctx = 0;     // the longest input in tokens; 0: the model's, at most 4096
  int n_threads = 0;     // 0: all cores
  Pooling pooling = Pooling::kMean;
  bool normalize = true; // L2
};

// Computes embeddings on a context of its own: several inputs per forward pass, each its own
// sequence (as many as fit in a KV cache of max(n_ctx, 8192) positions, at most 16).
// Threading: embed() may be called from any thread; the calls run one after another.
class Embedder {
 public:
  static core::Result<std::unique_ptr<Embedder>> make(const model::Model& model, const EmbedderOptions& options);

  // The vector [n_embd] of one tokenized input (1..n_ctx() tokens).
  core::Result<std::vector<float>> embed(std::span<const int32_t> tokens);
  // The vectors of several inputs, in order, computed in batches of n_seq() inputs.
  core::Result<std::vector<std::vector<float>>> embed(std::span<const std::vector<int32_t>> inputs);
  int n_seq() const { return ctx_->kv.n_seq(); }

  int64_t n_embd() const { return model_.config.n_embd; }
  int64_t n_ctx() const { return ctx_->kv.n_ctx(); }
  Pooling pooling() const { return options_.pooling; }

 private:
  Embedder(const model::Model& model, const EmbedderOptions& options, std::unique_ptr<model::Context> ctx)
      : model_(model), options_(options), ctx_(std::move(ctx)) {}

  const model::Model& model_;
  EmbedderOptions options_;
  std::mutex mutex_;
  std::unique_ptr<model::Context> ctx_;  // guarded by mutex_
  model::Batch batch_;                   // guarded by mutex_
  std::vector<float> hidden_;            // guarded by mutex_
  // One forward pass over inputs [first, last) of `inputs`, appending their vectors to `out`.
  core::Status embed_batch(std::span<const std::vector<int32_t>> inputs, std::vector<std::vector<float>>& out);
};

}  // namespace owl::engine
