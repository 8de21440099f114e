// owl compare: what a quantization (or any change of weights) costs on a given text — the
// candidate's next-token distributions against the base's, position by position.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "core/result.h"

namespace owl::eval {

struct CompareOptions {
  std::string base;
  std::string candidate;
  std::string text;
  int64_t n_ctx = 512;      // tokens per chunk; every chunk starts fresh with BOS
  int64_t max_chunks = 0;   // 0: the whole text
  int n_threads = 0;
  int64_t n_gen = 32;       // decode steps timed per model; 0: skip the speed measurement
  std::function<void(int64_t done, int64_t total)> on_progress;  // after each chunk, on the calling thread
};

struct ModelSide {
  std::string path;
  uint64_t file_size = 0;
  double perplexity = 0;
  double gen_tokens_per_s = 0;  // single-sequence decode, tokens per second
};

struct CompareReport {
  ModelSide base, candidate;
  int64_t n_tokens = 0;     // positions scored
  double kl_mean = 0;       // mean KL(base || candidate), nats
  double kl_p99 = 0;
  double kl_max = 0;
  double top1_agreement = 0;  // fraction of positions where both argmaxes agree
  double ppl_ratio = 0;       // candidate / base
};

// Both models must share the vocabulary (same size; the base's tokenizer is used).
core::Result<CompareReport> compare_models(const CompareOptions& options);

// Statistics over per-position values, exposed for tests: mean and the q-quantile
// (nearest-rank, q in [0, 1]).
double mean_of(const std::vector<double>& v);
double quantile_of(std::vector<double> v, double q);

}  // namespace owl::eval
