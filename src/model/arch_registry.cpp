// The architecture registry (arch_registry.h): how each supported `general.architecture` maps
// onto the generic block's options, and the table of everything else that differs. Numerical
// rules follow llama.cpp (see ../shared/reference/synthetic/README.md).
#include "model/arch_registry.h"

#include <cmath>

#include "gguf/keys.h"

namespace owl::model {

namespace keys = gguf::keys;

namespace {

using core::make_error;
using kernels::RopeMode;

template <typename T, typename U>
core::Status read_into(const core::Result<T>& result, U& out) {
  if (!result) return result.error();
  out = static_cast<U>(*result);
  return {};
}

core::Status read_common(const gguf::GgufFile& f, ModelConfig& c) {
  const std::string& a = c.arch;
  auto need = [&](const char* suffix, int64_t& out) -> core::Status {
    const std::string key = keys::arch_key(a, suffix);
    auto v = f.get_int(key);
    if (!v) return v.error();
    if (*v <= 0 || *v > (int64_t{1} << 24)) return make_error("model: {} = {} out of range", key, *v);
    out = *v;
    return {};
  };
  OWL_TRY(need(keys::kEmbeddingLength, c.n_embd));
  OWL_TRY(need(keys::kBlockCount, c.n_layer));
  OWL_TRY(need(keys::kHeadCount, c.n_head));
  OWL_TRY(need(keys::kFeedForwardLength, c.n_ff));
  auto kv = f.get_int_or(keys::arch_key(a, keys::kHeadCountKv), c.n_head);
  if (!kv) return kv.error();
  c.n_head_kv = *kv;
  if (c.n_head_kv <= 0 || c.n_head % c.n_head_kv != 0) {
    return make_error("model: head_count {} is not a multiple of head_count_kv {}", c.n_head, c.n_head_kv);
  }
  auto head_dim = f.get_int_or(keys::arch_key(a, keys::kKeyLength), c.n_embd / c.n_head);
  auto value_dim = f.get_int_or(keys::arch_key(a, keys::kValueLength), head_dim ? *head_dim : 0);
  if (!head_dim) return head_dim.error();
  if (!value_dim) return value_dim.error();
  if (*head_dim != *value_dim) {
    return make_error("model: key_length {} != value_length {} is not supported", *head_dim, *value_dim);
  }
  c.head_dim = *head_dim;
  if (c.head_dim <= 0 || c.head_dim % 2 != 0 || c.head_dim > 1024) {
    return make_error("model: head dimension {} out of range", c.head_dim);
  }
  auto n_ctx = f.get_int_or(keys::arch_key(a, keys::kContextLength), 2048);
  auto eps = f.get_float_or(keys::arch_key(a, keys::kLayerNormRmsEpsilon), 1e-5);
  auto n_rot = f.get_int_or(keys::arch_key(a, keys::kRopeDimensionCount), c.head_dim);
  auto base = f.get_float_or(keys::arch_key(a, keys::kRopeFreqBase), 10000.0);
  if (!n_ctx) return n_ctx.error();
  if (!eps) return eps.error();
  if (!n_rot) return n_rot.error();
  if (!base) return base.error();
  c.n_ctx_train = *n_ctx;
  c.norm_eps = static_cast<float>(*eps);
  c.n_rot = *n_rot;
  if (c.n_rot <= 0 || c.n_rot > c.head_dim || c.n_rot % 2 != 0) {
    return make_error("model: rope.dimension_count {} invalid for head dimension {}", c.n_rot, c.head_dim);
  }
  c.rope_freq_base = static_cast<float>(*base);
  auto base_swa = f.get_float_or(keys::arch_key(a, keys::kRopeFreqBaseSwa), *base);
  if (!base_swa) return base_swa.error();
  c.rope_freq_base_swa = static_cast<float>(*base_swa);

  auto scaling = f.get_string_or(keys::arch_key(a, keys::kRopeScalingType), "none");
  if (!scaling) return scaling.error();
  if (*scaling == "linear") {
    auto factor = f.get_float(keys::arch_key(a, keys::kRopeScalingFactor));
    if (!factor) return factor.error();
    if (*factor <= 0) return make_error("model: rope.scaling.factor {} must be positive", *factor);
    c.rope_freq_scale = static_cast<float>(1.0 / *factor);
  } else if (*scaling != "none") {
    return make_error("model: rope scaling type '{}' is not supported (none, linear)", *scaling);
  }
  c.kq_scale = 1.0f / std::sqrt(static_cast<float>(c.head_dim));
  return {};
}

core::Status apply_gemma(const gguf::GgufFile& f, ModelConfig& c) {
  c.rope_mode = RopeMode::kNeox;
  c.activation = Activation::kGeluTanh;
  c.post_norms = true;
  c.embd_scale = std::sqrt(static_cast<float>(c.n_embd));
  // Q is scaled by 1/sqrt(head_dim) before attention (query_pre_attn_scalar), kq_scale = 1.
  c.q_scale = 1.0f / std::sqrt(static_cast<float>(c.head_dim));
  c.kq_scale = 1.0f;
  return read_into(f.get_int_or(keys::arch_key(c.arch, keys::kSlidingWindow), 0), c.sliding_window);
}

core::Status apply_llama(const gguf::GgufFile&, ModelConfig& c) {
  c.rope_mode = RopeMode::kNormal;
  return {};
}

core::Status apply_qwen2(const gguf::GgufFile&, ModelConfig& c) {
  c.rope_mode = RopeMode::kNeox;
  c.qkv_bias = true;
  return {};
}

core::Status apply_qwen3(const gguf::GgufFile&, ModelConfig& c) {
  c.rope_mode = RopeMode::kNeox;
  c.qk_norm = true;
  return {};
}

core::Status apply_phi3(const gguf::GgufFile&, ModelConfig& c) {
  c.rope_mode = RopeMode::kNeox;
  c.q_scale = c.kq_scale;  // phi3 scales Q, not the scores
  c.kq_scale = 1.0f;
  return {};
}

core::Status apply_gemma2(const gguf::GgufFile& f, ModelConfig& c) {
  OWL_TRY(apply_gemma(f, c));
  c.swa_pattern = 2;
  OWL_TRY(read_into(f.get_float_or(keys::arch_key(c.arch, keys::kAttnLogitSoftcapping), 0.0), c.attn_softcap));
  return read_into(f.get_float_or(keys::arch_key(c.arch, keys::kFinalLogitSoftcapping), 0.0), c.final_softcap);
}

core::Status apply_gemma3(const gguf::GgufFile& f, ModelConfig& c) {
  OWL_TRY(apply_gemma(f, c));
  c.qk_norm = true;
  c.swa_pattern = 6;
  c.rope_freq_base_swa = 10000.0f;
  return {};
}

// Hugging Face names: llama.cpp's convert_hf_to_gguf.py (the classes it registers per
// architecture) and gguf-py/gguf/tensor_mapping.py.
constexpr ArchInfo kArchs[] = {
    {.name = "llama", .apply = apply_llama, .hf_class = "LlamaForCausalLM", .hf_model_type = "llama",
     .hf_permute_qk = true},
    {.name = "qwen2", .apply = apply_qwen2, .hf_class = "Qwen2ForCausalLM", .hf_model_type = "qwen2"},
    {.name = "qwen3", .apply = apply_qwen3, .hf_class = "Qwen3ForCausalLM", .hf_model_type = "qwen3"},
    {.name = "phi3", .apply = apply_phi3, .hf_class = "Phi3ForCausalLM", .hf_model_type = "phi3",
     .hf_fused_gate_up = true},
    {.name = "gemma2", .apply = apply_gemma2, .tied_output = true, .hf_class = "Gemma2ForCausalLM",
     .hf_model_type = "gemma2", .hf_norm_plus_one = true, .hf_sandwich_norms = true, .hf_window_softcap = true},
    {.name = "gemma3", .apply = apply_gemma3, .tied_output = true},
};

}  // namespace

std::span<const ArchInfo> architectures() { return kArchs; }

const ArchInfo* find_arch(std::string_view name) {
  for (const ArchInfo& a : kArchs) {
    if (a.name == name) return &a;
  }
  return nullptr;
}

const ArchInfo* find_arch_by_hf(std::string_view name) {
  for (const ArchInfo& a : kArchs) {
    if (!a.hf_class.empty() && (a.hf_class == name || a.hf_model_type == name)) return &a;
  }
  return nullptr;
}

std::string arch_names(bool with_hf_only) {
  std::string names;
  for (const ArchInfo& a : kArchs) {
    if (with_hf_only && a.hf_class.empty()) continue;
    names += std::string(names.empty() ? "" : ", ") + std::string(a.name);
  }
  return names;
}

core::Result<ModelConfig> load_config(const gguf::GgufFile& f) {
  ModelConfig c;
  auto name = f.get_string(keys::kGeneralArchitecture);
  if (!name) return name.error();
  c.arch = *name;
  const ArchInfo* arch = find_arch(c.arch);
  if (arch == nullptr) return make_error("model: architecture '{}' is not supported ({})", c.arch, arch_names());
  OWL_TRY(read_common(f, c));
  OWL_TRY(arch->apply(f, c));
  c.tied_output = arch->tied_output;
  auto tokens = f.find(keys::kTokenizerTokens);
  if (tokens != nullptr && tokens->as_array() != nullptr) {
    c.n_vocab = static_cast<int64_t>(tokens->as_array()->items.size());
  }
  return c;
}

}  // namespace owl::model
