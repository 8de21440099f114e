// Tensor-name table for Hugging Face conversion (see hf_names.h).
// Reference: llama.cpp gguf-py/gguf/tensor_mapping.py and convert_hf_to_gguf.py.
#include "convert/hf_names.h"

#include <cstdlib>
#include <vector>

namespace owl::convert::detail {
namespace {

struct NamePair {
  std::string_view hf;
  std::string_view gguf;
};

const NamePair kGlobal[] = {
    {"model.embed_tokens.weight", "token_embd.weight"},
    {"model.norm.weight", "output_norm.weight"},
    {"lm_head.weight", "output.weight"},
};

// Per layer: "model.layers.N." + hf <-> "blk.N." + gguf.
std::vector<NamePair> layer_names(const model::ArchInfo& arch) {
  std::vector<NamePair> v = {
      {"input_layernorm.weight", "attn_norm.weight"},
      {"self_attn.q_proj.weight", "attn_q.weight"},
      {"self_attn.k_proj.weight", "attn_k.weight"},
      {"self_attn.v_proj.weight", "attn_v.weight"},
      {"self_attn.q_proj.bias", "attn_q.bias"},
      {"self_attn.k_proj.bias", "attn_k.bias"},
      {"self_attn.v_proj.bias", "attn_v.bias"},
      {"self_attn.qkv_proj.weight", "attn_qkv.weight"},
      {"self_attn.o_proj.weight", "attn_output.weight"},
      {"self_attn.q_norm.weight", "attn_q_norm.weight"},
      {"self_attn.k_norm.weight", "attn_k_norm.weight"},
      {"mlp.gate_proj.weight", "ffn_gate.weight"},
      {"mlp.up_proj.weight", "ffn_up.weight"},
      {"mlp.gate_up_proj.weight", "ffn_up.weight"},  // phi3: gate and up in one matrix
      {"mlp.down_proj.weight", "ffn_down.weight"},
  };
  if (arch.hf_sandwich_norms) {
    v.push_back({"post_attention_layernorm.weight", "post_attention_norm.weight"});
    v.push_back({"pre_feedforward_layernorm.weight", "ffn_norm.weight"});
    v.push_back({"post_feedforward_layernorm.weight", "post_ffw_norm.weight"});
  } else {
    v.push_back({"post_attention_layernorm.weight", "ffn_norm.weight"});
  }
  return v;
}

// "<prefix>N.<rest>" -> (N, rest)
std::optional<std::pair<int, std::string_view>> split_layer(std::string_view name, std::string_view prefix) {
  if (name.substr(0, prefix.size()) != prefix) return std::nullopt;
  name.remove_prefix(prefix.size());
  const size_t dot = name.find('.');
  if (dot == 0 || dot == std::string_view::npos || dot > 6) return std::nullopt;
  int layer = 0;
  for (char c : name.substr(0, dot)) {
    if (c < '0' || c > '9') return std::nullopt;
    layer = layer * 10 + (c - '0');
  }
  return std::make_pair(layer, name.substr(dot + 1));
}

}  // namespace

std::optional<std::string> hf_to_gguf_name(const model::ArchInfo& arch, std::string_view hf_name) {
  for (const NamePair& p : kGlobal) {
    if (p.hf == hf_name) return std::string(p.gguf);
  }
  auto l = split_layer(hf_name, "model.layers.");
  if (!l) return std::nullopt;
  for (const NamePair& p : layer_names(arch)) {
    if (p.hf == l->second) return "blk." + std::to_string(l->first) + "." + std::string(p.gguf);
  }
  return std::nullopt;
}

std::optional<std::string> gguf_to_hf_name(const model::ArchInfo& arch, std::string_view gguf_name) {
  for (const NamePair& p : kGlobal) {
    if (p.gguf == gguf_name) return std::string(p.hf);
  }
  auto l = split_layer(gguf_name, "blk.");
  if (!l) return std::nullopt;
  for (const NamePair& p : layer_names(arch)) {
    if (p.gguf != l->second) continue;
    if (p.hf == "mlp.up_proj.weight" && arch.hf_fused_gate_up) continue;  // ffn_up is gate_up_proj
    return "model.layers." + std::to_string(l->first) + "." + std::string(p.hf);
  }
  return std::nullopt;
}

}  // namespace owl::convert::detail
