// Hugging Face model directories <-> GGUF: config.json, safetensors (one file or shards with
// model.safetensors.index.json), tokenizer.json / tokenizer_config.json (chat template
// included); and llama2.c checkpoints -> GGUF.
// Architectures: those of model/arch_registry.h with a Hugging Face class (llama, qwen2, qwen3,
// phi3, gemma2).
#pragma once

#include <cstdint>
#include <string>

#include "core/result.h"

namespace owl::convert {

struct ImportOptions {
  std::string hf_dir;
  std::string output;
  std::string type;   // "" : keep F32/F16/BF16 as stored; else any quantize preset (f16, q8_0, q4_k_m, ...)
  int n_threads = 0;
};

struct ImportSummary {
  std::string arch;
  int64_t n_tensors = 0;
  int64_t n_params = 0;
  std::string tokenizer;  // "llama" (SentencePiece) or "gpt2" (byte-level BPE)
  std::string pre;        // the BPE pre-tokenizer name
  bool chat_template = false;
};

// config.json is checked against the tensors: hidden_size, num_hidden_layers (no blk.N beyond
// it, none missing), num_attention_heads, num_key_value_heads and intermediate_size must match
// their shapes; an error names the key, the config's value and what the tensors hold.
core::Result<ImportSummary> import_hf(const ImportOptions& options);

struct ExportOptions {
  std::string model;
  std::string out_dir;
  std::string dtype = "auto";  // f32, f16, bf16; auto: the weights' own float type, F32 for quantized ones
};

struct ExportSummary {
  std::string arch;
  int64_t n_tensors = 0;
  std::string dtype;
};

// Writes model.safetensors, config.json, tokenizer.json and tokenizer_config.json into out_dir
// (created when missing). Quantized weights are dequantized.
core::Result<ExportSummary> export_hf(const ExportOptions& options);

struct Llama2cOptions {
  std::string checkpoint;  // llama2.c run.c format (legacy version 0)
  std::string vocab_from;  // GGUF file whose tokenizer is copied
  std::string output;
  std::string name = "llama2.c";
  std::string type;  // as ImportOptions::type: "" keeps F32
  int n_threads = 0;
};

core::Status import_llama2c(const Llama2cOptions& options);

}  // namespace owl::convert
