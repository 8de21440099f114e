// The per-tensor mixes of llama.cpp's quantizer (src/llama-quant.cpp: llama_tensor_get_type,
// tensor_type_fallback, tensor_allows_quantization), for dense (non-MoE) models.
#include "quantize/quant_mix.h"

#include <algorithm>
#include <cstdlib>

#include "gguf/keys.h"
#include "quant/traits.h"

namespace owl::quantize {

namespace keys = gguf::keys;

using core::make_error;
using gguf::FileType;
using gguf::TensorType;

namespace {

enum class Category { kTokenEmbd, kOutput, kAttnQ, kAttnK, kAttnV, kAttnQkv, kAttnOutput, kFfnUp, kFfnGate, kFfnDown, kOther };

bool contains(std::string_view s, std::string_view part) { return s.find(part) != std::string_view::npos; }

Category category_of(std::string_view name) {
  if (name == "output.weight") return Category::kOutput;
  if (name == "token_embd.weight") return Category::kTokenEmbd;
  if (contains(name, "attn_qkv.weight")) return Category::kAttnQkv;
  if (contains(name, "attn_v.weight")) return Category::kAttnV;
  if (contains(name, "attn_k.weight")) return Category::kAttnK;
  if (contains(name, "attn_q.weight")) return Category::kAttnQ;
  if (contains(name, "attn_output.weight")) return Category::kAttnOutput;
  if (contains(name, "ffn_up")) return Category::kFfnUp;
  if (contains(name, "ffn_gate")) return Category::kFfnGate;
  if (contains(name, "ffn_down")) return Category::kFfnDown;
  return Category::kOther;
}

// Weights only: 2-D or more, named *weight, not a norm, not a positional/gating table.
bool allows_quantization(const gguf::TensorInfo& t) {
  if (t.n_dims < 2) return false;
  const std::string_view name = t.name;
  if (name.size() < 6 || name.substr(name.size() - 6) != "weight") return false;
  for (std::string_view skip : {"_norm.weight", "ffn_gate_inp.weight", "position_embd", "token_types", "ssm_conv1d",
                                "attn_rel_b.weight"}) {
    if (contains(name, skip)) return false;
  }
  return true;
}

// Layers that get more bits in the _M mixes: the first and last eighth and every third between.
bool use_more_bits(int i_layer, int n_layer) {
  return i_layer < n_layer / 8 || i_layer >= 7 * n_layer / 8 || (i_layer - n_layer / 8) % 3 == 2;
}

int64_t block_of(TensorType t) { return gguf::type_info(t).block_size; }

// Running counters of the mix, in quantize_order (llama.cpp's quantize_state_impl).
struct MixState {
  const MixModel& model;
  FileType preset;
  bool has_imatrix;
  int n_attention_wv = 0;
  int i_attention_wv = 0;
  int i_ffn_down = 0;
};

TensorType output_type(const gguf::TensorInfo& t, TensorType type) {
  if (t.ne[0] % block_of(type) != 0) return TensorType::Q8_0;
  return type == TensorType::Q8_0 ? type : TensorType::Q6_K;
}

TensorType attn_v_type(MixState& s, TensorType type) {
  const FileType p = s.preset;
  const int64_t n_gqa = s.model.n_head_kv > 0 ? s.model.n_head / s.model.n_head_kv : 1;
  if (p == FileType::Q2_K) {
    type = n_gqa >= 4 ? TensorType::Q4_K : TensorType::Q3_K;
  } else if (p == FileType::Q3_K_M) {
    type = s.i_attention_wv < 2 ? TensorType::Q5_K : TensorType::Q4_K;
  } else if (p == FileType::Q3_K_L) {
    type = TensorType::Q5_K;
  } else if ((p == FileType::Q4_K_M || p == FileType::Q5_K_M) && use_more_bits(s.i_attention_wv, s.n_attention_wv)) {
    type = TensorType::Q6_K;
  } else if (p == FileType::Q4_K_S && s.i_attention_wv < 4) {
    type = TensorType::Q5_K;
  }
  // 70B llama: 8 query heads share each V head, so V is small and gets more bits cheaply.
  if (s.model.arch == "llama" && s.model.n_layer == 80 && (type == TensorType::Q3_K || type == TensorType::Q4_K)) {
    type = TensorType::Q5_K;
  }
  ++s.i_attention_wv;
  return type;
}

TensorType ffn_down_type(MixState& s, TensorType type) {
  const FileType p = s.preset;
  const int i = s.i_ffn_down++;
  const int n = static_cast<int>(s.model.n_layer);
  if (p == FileType::Q2_K) return TensorType::Q3_K;
  if (p == FileType::Q3_K_M) return i < n / 16 ? TensorType::Q5_K : TensorType::Q4_K;
  if (p == FileType::Q3_K_L) return TensorType::Q5_K;
  if (p == FileType::Q4_K_M) return use_more_bits(i, n) ? TensorType::Q6_K : type;
  if (p == FileType::Q5_K_M) return use_more_bits(i, n) ? TensorType::Q6_K : type;
  if (p == FileType::Q4_K_S) return i < n / 8 ? TensorType::Q5_K : type;
  // With an imatrix the first ffn_down layers of Q4_0/Q5_0 get the offset formats.
  if ((p == FileType::Q4_0 || p == FileType::Q5_0) && s.has_imatrix && i < n / 8) {
    return p == FileType::Q4_0 ? TensorType::Q4_1 : TensorType::Q5_1;
  }
  return type;
}

TensorType mix_type(MixState& s, const gguf::TensorInfo& t, Category c, TensorType type) {
  const FileType p = s.preset;
  if (c == Category::kOutput || (!s.model.has_output && c == Category::kTokenEmbd)) return output_type(t, type);
  switch (c) {
    case Category::kAttnV: return attn_v_type(s, type);
    case Category::kFfnDown: return ffn_down_type(s, type);
    case Category::kAttnOutput:
      if (p == FileType::Q2_K) return TensorType::Q3_K;
      if (p == FileType::Q3_K_M) return TensorType::Q4_K;
      if (p == FileType::Q3_K_L) return TensorType::Q5_K;
      return type;
    case Category::kAttnQkv:
      if (p == FileType::Q3_K_M || p == FileType::Q3_K_L) return TensorType::Q4_K;
      if (p == FileType::Q4_K_M) return TensorType::Q5_K;
      if (p == FileType::Q5_K_M) return TensorType::Q6_K;
      return type;
    default: return type;
  }
}

// A type whose block does not divide the row length falls back to a 32-block type of about
// the same size, and to F16 when even that does not fit (stories260K's 172-wide ffn_down).
// llama.cpp sends Q2_K/Q3_K to IQ4_NL, which owl does not write; Q4_0 is its size class.
TensorType fallback_type(TensorType type, int64_t n_cols) {
  TensorType out = TensorType::F16;
  switch (type) {
    case TensorType::Q2_K:
    case TensorType::Q3_K: out = TensorType::Q4_0; break;
    case TensorType::Q4_K: out = TensorType::Q5_0; break;
    case TensorType::Q5_K: out = TensorType::Q5_1; break;
    case TensorType::Q6_K: out = TensorType::Q8_0; break;
    default: break;
  }
  return n_cols % block_of(out) == 0 ? out : TensorType::F16;
}

int layer_of(std::string_view name) {
  if (name.substr(0, 4) != "blk.") return -1;
  return std::atoi(std::string(name.substr(4)).c_str());
}

}  // namespace

core::Result<TensorTypeOverride> parse_tensor_type_override(std::string_view spec) {
  const size_t eq = spec.rfind('=');
  if (eq == std::string_view::npos || eq == 0 || eq + 1 == spec.size()) {
    return make_error("--tensor-type '{}': expected PATTERN=TYPE", spec);
  }
  const std::string pattern(spec.substr(0, eq));
  const auto type = gguf::type_from_name(spec.substr(eq + 1));
  if (!type || !quant::format_traits(*type).weight) {
    return make_error("--tensor-type '{}': '{}' is not a weight type owl writes", spec, spec.substr(eq + 1));
  }
  try {
    return TensorTypeOverride{pattern, std::regex(pattern), *type};
  } catch (const std::regex_error& e) {
    return make_error("--tensor-type '{}': bad regular expression: {}", spec, e.what());
  }
}

std::vector<const gguf::TensorInfo*> quantize_order(const gguf::GgufFile& file) {
  std::vector<const gguf::TensorInfo*> order;
  for (const gguf::TensorInfo& t : file.tensors()) order.push_back(&t);
  std::stable_sort(order.begin(), order.end(), [](const gguf::TensorInfo* a, const gguf::TensorInfo* b) {
    const int la = layer_of(a->name), lb = layer_of(b->name);
    if (la != lb) return la < lb;
    return a->name < b->name;
  });
  return order;
}

core::Result<MixModel> read_mix_model(const gguf::GgufFile& file) {
  MixModel m;
  auto arch = file.get_string(keys::kGeneralArchitecture);
  if (!arch) return arch.error();
  m.arch = *arch;
  auto get = [&](const char* suffix, int64_t fallback) {
    return file.get_int_or(keys::arch_key(m.arch, suffix), fallback);
  };
  auto n_layer = get(keys::kBlockCount, 0);
  auto n_head = get(keys::kHeadCount, 1);
  if (!n_layer) return n_layer.error();
  if (!n_head) return n_head.error();
  auto n_head_kv = get(keys::kHeadCountKv, *n_head);
  if (!n_head_kv) return n_head_kv.error();
  m.n_layer = *n_layer;
  m.n_head = *n_head;
  m.n_head_kv = *n_head_kv;
  m.has_output = file.find_tensor("output.weight") != nullptr;
  return m;
}

core::Result<std::vector<TensorPlan>> plan_quantization(const gguf::GgufFile& file, const MixOptions& options) {
  auto model = read_mix_model(file);
  if (!model) return model.error();
  const auto order = quantize_order(file);
  MixState state{*model, options.preset.file_type, options.has_imatrix};
  for (const gguf::TensorInfo* t : order) {
    const Category c = category_of(t->name);
    if (c == Category::kAttnV || c == Category::kAttnQkv) ++state.n_attention_wv;
  }
  const TensorType base = options.preset.base;
  const bool mixed = gguf::type_info(base).quantized;
  std::vector<TensorPlan> plans;
  for (const gguf::TensorInfo* t : order) {
    TensorPlan plan{t, t->type};
    if (allows_quantization(*t)) {
      TensorType type = base;
      if (mixed) {
        for (const TensorTypeOverride& o : options.overrides) {
          if (std::regex_search(t->name, o.regex)) {
            type = o.type;
            plan.manual = true;
            break;
          }
        }
        if (!plan.manual) type = mix_type(state, *t, category_of(t->name), type);
        if (t->ne[0] % block_of(type) != 0) {
          type = fallback_type(type, t->ne[0]);
          plan.fallback = true;
        }
      }
      plan.target = type;
    }
    plan.quantize = plan.target != t->type;
    if (plan.quantize) {
      const quant::FormatTraits* traits = quant::find_format_traits(t->type);
      if (traits == nullptr || !traits->quantize_input) {
        return make_error("quantize: tensor {}: cannot convert type {} to {}", t->name, gguf::type_info(t->type).name,
                          gguf::type_info(plan.target).name);
      }
    }
    plans.push_back(plan);
  }
  return plans;
}

std::vector<std::string> unmatched_overrides(const gguf::GgufFile& file, const std::vector<TensorTypeOverride>& overrides) {
  std::vector<std::string> unmatched;
  for (const TensorTypeOverride& o : overrides) {
    const auto& tensors = file.tensors();
    const bool any = std::any_of(tensors.begin(), tensors.end(),
                                 [&](const gguf::TensorInfo& t) { return std::regex_search(t.name, o.regex); });
    if (!any) unmatched.push_back(o.pattern);
  }
  return unmatched;
}

}  // namespace owl::quantize
