// Embeddings: a text's vector, pooled from the model's hidden states after the final norm (the
// output projection is skipped) and L2-normalized, as llama.cpp's llama-embedding computes them.
#pragma once

#include <condition_variable>
#include <cstdint>
#include <deque>
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
// Threading: embed() may be called from any thread. Calls that arrive while a forward pass runs
// wait in a queue and share the next passes: inputs of several callers go into one batch, in the
// order they arrived, so concurrent requests of one input each cost one pass, not one each.
class Embedder {
 public:
  static core::Result<std::unique_ptr<Embedder>> make(const model::Model& model, const EmbedderOptions& options);

  // The vector [n_embd] of one tokenized input (1..n_ctx() tokens).
  core::Result<std::vector<float>> embed(std::span<const int32_t> tokens);
  // The vectors of several inputs, in order, computed in batches of n_seq() inputs.
  core::Result<std::vector<std::vector<float>>> embed(std::span<const std::vector<int32_t>> inputs);
  int n_seq() const { return ctx_->kv.n_seq(); }
  // Forward passes run so far (batches of up to n_seq() inputs, from one caller or several).
  int64_t passes() const;

  int64_t n_embd() const { return model_.config.n_embd; }
  int64_t n_ctx() const { return ctx_->kv.n_ctx(); }
  Pooling pooling() const { return options_.pooling; }

 private:
  Embedder(const model::Model& model, const EmbedderOptions& options, std::unique_ptr<model::Context> ctx)
      : model_(model), options_(options), ctx_(std::move(ctx)) {}

  // One caller's inputs, their vectors as passes compute them, and how the call ended.
  struct Call {
    std::span<const std::vector<int32_t>> inputs;
    std::vector<std::vector<float>> out;
    size_t next = 0;  // the first input not yet taken into a batch
    size_t left = 0;  // inputs taken or not whose vectors are missing
    core::Status status;
    bool done = false;
  };
  // Runs passes over the queue's inputs until it is empty; called by one caller at a time.
  void drain(std::unique_lock<std::mutex>& lock);

  const model::Model& model_;
  EmbedderOptions options_;
  mutable std::mutex mutex_;
  std::condition_variable done_;
  std::deque<Call*> queue_;  // guarded by mutex_: calls with inputs not yet taken, in arrival order
  bool running_ = false;     // guarded by mutex_: a caller is draining the queue
  int64_t passes_ = 0;       // guarded by mutex_
  // Owned by the draining caller.
  std::unique_ptr<model::Context> ctx_;
  model::Batch batch_;
  std::vector<float> hidden_;
  // One forward pass over `inputs`, one sequence each, writing input i's vector to *out[i].
  core::Status embed_batch(std::span<const std::span<const int32_t>> inputs, std::span<std::vector<float>* const> out);
};

}  // namespace owl::engine
