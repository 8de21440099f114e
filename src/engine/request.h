// What a sequence to generate asks for, the same for every front end (the server, `owl run`,
// `owl chat`, `owl logits`, eval): its prompt tokens, how to sample, when to stop.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "model/adapter.h"
#include "sample/sampler.h"

namespace owl::engine {

enum class FinishReason { kStop, kLength, kCancelled };
const char* finish_reason_name(FinishReason reason);  // "stop", "length", "cancelled"

struct GenerateParams {
  sample::SamplingParams sampling;
  std::vector<std::string> stop;   // text that ends generation; not part of the output
  int64_t max_tokens = -1;         // tokens to generate at most; < 0: until the context is full
  bool ignore_eos = false;
  // Makes the sequence's constraint (grammar, JSON schema); null: unconstrained.
  sample::ConstraintFactory constraint;
};

struct SequenceRequest {
  std::vector<int32_t> prompt;
  GenerateParams params;
  // LoRA adapters applied to this sequence's rows; null: the base model. Part of the prefix key:
  // KV computed under other adapters is never reused.
  std::shared_ptr<const model::AdapterSet> adapters;
  // The log-probabilities of the prompt's own tokens from this index on (each under the logits of
  // the position before it; OpenAI's echo with logprobs, a choice scorer's label): -1 for none,
  // else >= 1. The first event of the sequence carries them. Positions from here on are computed
  // even when a cached prefix holds them.
  int64_t prompt_logprobs_from = -1;
  int prompt_top_logprobs = 0;  // the most likely tokens reported at each of those positions
};

}  // namespace owl::engine
