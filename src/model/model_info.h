// What `owl inspect` reports about a GGUF model, computed from its header alone (no weights read).
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>

#include "gguf/gguf.h"

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
  std::optional<int64_t> context_length;
  std::optional<int64_t> n_embd;
  std::optional<int64_t> n_layer;
  std::optional<int64_t> n_head;
  std::optional<int64_t> n_head_kv;
  std::optional<int64_t> n_ff;
  int64_t n_params = 0;         // elements of every tensor
  uint64_t tensor_bytes = 0;
  int64_t n_tensors = 0;
  std::map<std::string, TypeUsage> types;  // by type name: "q4_0"
  std::string tokenizer_model;  // tokenizer.ggml.model: "llama", "gpt2", ...
  std::string tokenizer_kind;   // human name: "SentencePiece (llama)", "byte-level BPE (gpt2)"
  std::string tokenizer_pre;    // tokenizer.ggml.pre, empty when absent
  int64_t vocab_size = 0;
  bool has_chat_template = false;
  int64_t kv_bytes_per_token = 0;  // F16 K and V of every layer; 0 when the shape is unknown
};

// Resident memory to run the model at a context length: the weights (mapped in place), the F16
// KV cache, and activations for a 512-token batch.
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
