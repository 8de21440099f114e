// Random-weight models of any llama shape, for benchmarks and tests at sizes no shipped file has.
#pragma once

#include <cstdint>
#include <string>

#include "core/result.h"
#include "gguf/tensor_type.h"

namespace owl::convert {

struct SynthOptions {
  std::string arch = "llama";
  int64_t n_embd = 256;
  int64_t n_layer = 2;
  int64_t n_head = 4;
  int64_t n_head_kv = 4;
  int64_t n_ff = 768;
  int64_t n_ctx = 4096;
  int64_t n_vocab = 32000;        // used when vocab_from is empty
  std::string vocab_from;         // GGUF file whose tokenizer.* metadata is copied
  gguf::TensorType type = gguf::TensorType::Q4_0;
  uint64_t seed = 1;
  int n_threads = 2;
  std::string output;
};

// Weights ~ N(0, 0.02), norm weights 1 + N(0, 0.1); matrices whose rows fit no block of `type`
// are stored as F16, norms as F32. The file is written atomically.
core::Status synthesize_model(const SynthOptions& options);

}  // namespace owl::convert
