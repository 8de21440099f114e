// The architecture table: one row per `general.architecture` owl runs, with everything that
// differs between architectures — how the generic block is configured (apply), whether the
// output matrix is always token_embd, and how Hugging Face lays the model out (convert/ reads
// these for import and export). No other file switches on the architecture name.
#pragma once

#include <span>
#include <string>
#include <string_view>

#include "core/result.h"
#include "gguf/gguf.h"
#include "model/config.h"

namespace owl::model {

struct ArchInfo {
  std::string_view name;  // general.architecture
  // Sets the block options of the architecture, after the hyper-parameters every one has.
  core::Status (*apply)(const gguf::GgufFile& file, ModelConfig& c) = nullptr;
  bool tied_output = false;  // output.weight is never read: the logits use token_embd (gemma)

  // Hugging Face conversion; an empty hf_class: none.
  std::string_view hf_class;           // config.json architectures[0]
  std::string_view hf_model_type;      // config.json model_type
  bool hf_permute_qk = false;          // llama: HF's rotate-half Q/K rows are interleaved in GGUF
  bool hf_norm_plus_one = false;       // gemma: HF stores w for x * (1 + w); GGUF stores 1 + w
  bool hf_sandwich_norms = false;      // gemma2: pre/post_feedforward_layernorm around the FFN
  bool hf_fused_gate_up = false;       // phi3: mlp.gate_up_proj is GGUF's ffn_up (gate rows first)
  bool hf_window_softcap = false;      // gemma2: config.json has sliding_window, the logit soft-caps,
                                       // query_pre_attn_scalar and hidden_activation
};

std::span<const ArchInfo> architectures();
// nullptr when owl does not run the architecture.
const ArchInfo* find_arch(std::string_view name);
// By config.json's class name or model_type; nullptr when none converts from it.
const ArchInfo* find_arch_by_hf(std::string_view hf_class_or_model_type);
// "llama, qwen2, ...": every architecture, or those with a Hugging Face mapping (for errors).
std::string arch_names(bool with_hf_only = false);

}  // namespace owl::model
