// The one per-sequence decode step every front end uses (the scheduler, and through it the
// server, `owl run`, `owl chat`, `owl logits` and eval): sample a token from the sequence's
// logits, detokenize it into whole UTF-8 text, hold back what may begin a stop string, and say
// whether the sequence ends here.
#pragma once

#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "engine/request.h"
#include "sample/sampler.h"
#include "tokenizer/tokenizer.h"

namespace owl::engine {

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

// Not thread-safe: one per sequence, on the thread that samples it.
class SequenceDecoder {
 public:
  // `prompt` feeds the sampler's penalties.
  SequenceDecoder(const tokenizer::Tokenizer& tokenizer, const GenerateParams& params, int64_t n_vocab,
                  std::span<const int32_t> prompt);

  struct Output {
    sample::Sampled sampled;
    std::string text;                    // whole UTF-8 text completed now (may be empty)
    bool eog = false;                    // an end-of-generation token: not part of the text
    std::optional<FinishReason> finish;  // set when the sequence ends with this token
  };
  // Samples from `logits` [n_vocab]. `n_held` is the positions the sequence's cache holds: the
  // sampled token would be computed at position n_held, so the sequence ends with kLength when
  // that is outside the context of `n_ctx` positions, or at max_tokens.
  Output next(const float* logits, int64_t n_held, int64_t n_ctx);
  int64_t n_generated() const { return n_generated_; }

 private:
  const tokenizer::Tokenizer& tokenizer_;
  int64_t max_tokens_;
  bool ignore_eos_;
  sample::Sampler sampler_;
  tokenizer::Detokenizer detok_;
  StopMatcher stop_;
  int64_t n_generated_ = 0;
};

}  // namespace owl::engine
