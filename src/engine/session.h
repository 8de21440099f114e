// One sequence generated on the caller's thread, for `owl run`, `owl chat` and `owl logits`: a
// one-slot Scheduler over the caller's Context, so the CLI decodes exactly as the server does.
// The slot keeps its tokens between calls: a prompt that shares a prefix with what the cache
// holds (a chat's earlier turns) computes only the rest.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string_view>
#include <vector>

#include "core/result.h"
#include "engine/request.h"
#include "engine/scheduler.h"

namespace owl::engine {

struct GenerateStats {
  int64_t n_prompt = 0;    // tokens prefilled (after prefix reuse)
  int64_t n_reused = 0;    // prompt tokens already in the cache
  int64_t n_generated = 0;
  double prompt_ms = 0;    // admission to the first token
  double generate_ms = 0;  // the first token to the last
  FinishReason finish = FinishReason::kLength;
};

// Called for every sampled token (end-of-generation included, with no text) with the whole
// UTF-8 text it completes (may be empty while a character or a possible stop string is held
// back). Returning false cancels the sequence.
using TokenCallback = std::function<bool(std::string_view text, const sample::Sampled& sampled)>;

// Not thread-safe: one thread uses a session. `model`, `tokenizer` and `ctx` must outlive it;
// the session uses sequence 0 of `ctx`.
class Session {
 public:
  Session(const model::Model& model, const tokenizer::Tokenizer& tokenizer, model::Context& ctx);

  core::Result<GenerateStats> generate(SequenceRequest request, const TokenCallback& on_token);
  // The caller computed `tokens` into sequence 0 of the context under `adapters` (null: the base
  // model); the next prompt with the same adapters reuses them.
  void assume_cached(std::vector<int32_t> tokens, const model::AdapterSet* adapters = nullptr) {
    scheduler_.assume_cached(std::move(tokens), model::adapter_key(adapters));
  }

 private:
  const model::Model& model_;
  Scheduler scheduler_;
};

}  // namespace owl::engine
