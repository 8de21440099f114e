// Token sampling: the constraint's mask (constraint.h), logit bias, repetition/frequency/presence
// penalties, top-k, typical, top-p, min-p, temperature, then a seeded draw (or argmax at
// temperature 0), in llama.cpp's order.
// Log-probabilities are reported from the model's own distribution: a log-softmax over the
// full vocabulary of the raw logits, before any of the transformations above except the
// constraint's mask (under a grammar, the distribution over the tokens it allows).
#pragma once

#include <cstdint>
#include <memory>
#include <random>
#include <span>
#include <string>
#include <utility>
#include <vector>

#include "core/result.h"
#include "sample/constraint.h"

namespace owl::sample {

struct SamplingParams {
  float temperature = 0.8f;  // <= 0: greedy
  int top_k = 40;            // <= 0: off
  float top_p = 0.95f;       // >= 1: off
  float min_p = 0.05f;       // <= 0: off
  float typical_p = 1.0f;    // >= 1: off
  float repeat_penalty = 1.0f;    // 1: off; divides positive logits / multiplies negative ones
  int repeat_last_n = 64;         // tokens of history the penalties look at; -1: all
  float frequency_penalty = 0.0f; // minus count * penalty
  float presence_penalty = 0.0f;  // minus penalty once a token appeared
  std::vector<std::pair<int32_t, float>> logit_bias;  // added to the raw logits
  uint64_t seed = 0xdecafbadull;
  // Report the sampled token's log-probability and the n_probs most likely tokens with theirs
  // (a log-softmax over the whole vocabulary: half of a sample's time, so only on request).
  bool logprobs = false;
  int n_probs = 0;
};

// The ranges every front end accepts (the OpenAI API's where it has one): temperature [0, 2],
// top_k >= 0, top_p, min_p and typical_p [0, 1] (typical_p 0 excluded), repeat_penalty (0, 10],
// frequency and presence penalties [-2, 2], repeat_last_n >= -1, n_probs 0..100. Needs no model,
// so options are checked before one is loaded. Names the parameter and the value.
core::Status validate_ranges(const SamplingParams& params);
// validate_ranges, and the logit_bias tokens within the vocabulary.
core::Status validate(const SamplingParams& params, int64_t n_vocab);

// The seed of choice `index` among a request's n: the request's own seed for choice 0 (so n = 1
// samples as the command line does with that seed), an independent stream (SplitMix64 of the
// seed and the index) for the others, so that choice 1 of seed s is not choice 0 of seed s + 1.
uint64_t choice_seed(uint64_t seed, int index);

struct TokenLogprob {
  int32_t token = 0;
  float logprob = 0.0f;
  std::string piece;               // the token's text when it has no id here (a hosted model's); else ""
};

struct Sampled {
  int32_t token = 0;
  float logprob = 0.0f;            // of `token` under the model's distribution (if logprobs)
  std::vector<TokenLogprob> top;   // n_probs entries, most likely first (if logprobs)
  std::string piece;               // as TokenLogprob::piece
};

// The log-probability of out.token under `logits` [n_vocab] (a log-softmax over the whole
// vocabulary) and the n_top most likely tokens with theirs; `order` is scratch.
void token_logprobs(const float* logits, int64_t n_vocab, int n_top, Sampled& out, std::vector<int32_t>& order);

// One per sequence: holds the history for penalties, the random stream and the constraint.
// Not thread-safe; sample() reuses internal buffers.
class Sampler {
 public:
  Sampler(SamplingParams params, int64_t n_vocab, std::unique_ptr<Constraint> constraint = nullptr);

  // Picks the next token from one row of logits [n_vocab]; does not record it (see accept).
  Sampled sample(const float* logits);
  // Records the prompt for the penalties (the constraint never sees prompt tokens).
  void accept_prompt(std::span<const int32_t> tokens);
  // Records a generated token: for the penalties, and the constraint advances over it.
  void accept(int32_t token);
  void reset();
  const SamplingParams& params() const { return params_; }

  struct Candidate {
    int32_t token;
    float logit;
    float p;
  };

 private:
  float max_logit() const;
  void apply_penalties();
  void top_k(size_t k);
  void softmax();
  void typical(float p);
  void top_p(float p);
  void min_p(float p);
  void report_logprobs(const float* logits, Sampled& out);

  SamplingParams params_;
  int64_t n_vocab_;
  std::mt19937_64 rng_;
  std::vector<int32_t> history_;
  std::vector<Candidate> cand_;
  std::vector<int32_t> counts_;
  std::vector<int32_t> order_;
  std::unique_ptr<Constraint> constraint_;
  std::vector<float> masked_;  // the logits after the constraint's mask
};

}  // namespace owl::sample
