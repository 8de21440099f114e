// What `owl inspect` reports about a GGUF model, computed from its header alone (no weights read).
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>

#include "gguf/gguf.h"
#include "model/config.h"

namespace owl::model {

struct TypeUsage {
  int64_t tensors = 0;
  int64_t elements = 0;
  uint64_t bytes = 0;
};

struct ModelInfo {
  std::string path;
  uint64_t file_size = 0;
  uint32_t gguf_version = 0;
  std::string architecture;
  std::string name;
  std::string license;
  // The configuration the runtime would run the model with (load_config); empty, with the
  // reason in config_error, when owl does not run it.
  std::optional<ModelConfig> config;
  std::string config_error;
  int64_t n_params = 0;         // elements of every tensor
  uint64_t tensor_bytes = 0;
  int64_t n_tensors = 0;
  std::map<std::string, TypeUsage> types;  // by type name: "q4_0"
  std::string tokenizer_model;  // tokenizer.ggml.model: "llama", "gpt2", ...
  std::string tokenizer_kind;   // human name: "SentencePiece (llama)", "byte-level BPE (gpt2)"
  std::string tokenizer_pre;    // tokenizer.ggml.pre, empty when absent
  int64_t vocab_size = 0;
  bool has_chat_template = false;
};

// Resident memory to run the model at a context length, as the runtime allocates it: the
// weights (mapped in place), the F16 KV cache of one sequence (KvCache) and a default Context's
// activation buffers (ContextOptions::n_batch tokens) with the logits of one row. Without a
// configuration only the weights and the logits count. The matmul scratch is not counted.
struct MemoryEstimate {
  int64_t n_ctx = 0;
  uint64_t weights = 0;
  uint64_t kv_cache = 0;
  uint64_t activations = 0;
  uint64_t total() const { return weights + kv_cache + activations; }
};
MemoryEstimate estimate_memory(const ModelInfo& info, int64_t n_ctx);

// Never fails on a file the reader accepted: absent keys stay empty.
ModelInfo describe_model(const gguf::GgufFile& file);

}  // namespace owl::model
