// The generation loop shared by `owl run`, `owl chat` and the server: prefill a prompt into one
// sequence of a Context, then sample, stream whole-UTF-8 text, and stop at end-of-generation,
// a stop string, the token limit, or when the caller asks.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <string_view>
#include <vector>

#include "core/result.h"
#include "model/forward.h"
#include "sample/sampler.h"
#include "tokenizer/tokenizer.h"

namespace owl::sample {

struct GenerateOptions {
  int64_t n_predict = 128;         // tokens to generate at most; < 0: until the context is full
  SamplingParams sampling;
  std::vector<std::string> stop;   // text that ends generation; not part of the output
  bool ignore_eos = false;
};

enum class FinishReason { kStop, kLength, kCancelled };
const char* finish_reason_name(FinishReason reason);  // "stop", "length", "cancelled"

struct GenerateStats {
  int64_t n_prompt = 0;    // tokens prefilled (after prefix reuse)
  int64_t n_reused = 0;    // prompt tokens already in the cache
  int64_t n_generated = 0;
  double prompt_ms = 0;
  double generate_ms = 0;
  FinishReason finish = FinishReason::kLength;
};

// Called for every generated token with the text it completes (may be empty while a UTF-8
// character or a possible stop string is held back). Returning false stops generation.
using TokenCallback = std::function<bool(std::string_view text, const Sampled& sampled)>;

// The tokens one sequence of a Context holds, so that a new prompt sharing a prefix with them
// (a chat's earlier turns, a system prompt) only computes the rest.
struct SequenceState {
  int seq = 0;
  std::vector<int32_t> tokens;  // what the KV cache holds for `seq`, positions 0..size-1
};

// Keeps the longest common prefix of state.tokens and `prompt` in the cache (at least one prompt
// token is always recomputed, to get its logits), prefills the rest of the prompt, then generates.
// On return state.tokens is what the cache holds: the prompt and every generated token but the last.
core::Result<GenerateStats> generate(const model::Model& model, model::Context& ctx,
                                     const tokenizer::Tokenizer& tokenizer, SequenceState& state,
                                     const std::vector<int32_t>& prompt, const GenerateOptions& options,
                                     const TokenCallback& on_token);

// Holds back text that might begin a stop string; see StopMatcher::push.
class StopMatcher {
 public:
  explicit StopMatcher(std::vector<std::string> stop) : stop_(std::move(stop)) {}
  // Appends `text`; returns what can be emitted now. Sets stopped() once a stop string appears
  // (the text before it is returned, the rest dropped).
  std::string push(std::string_view text);
  std::string flush();  // what is held back, at the end of generation
  bool stopped() const { return stopped_; }

 private:
  std::vector<std::string> stop_;
  std::string held_;
  bool stopped_ = false;
};

}  // namespace owl::sample
