#include "model/adapter.h"

#include <cmath>
#include <optional>
#include <string_view>

#include <fmt/format.h>

#include "gguf/gguf.h"
#include "gguf/keys.h"
#include "model/model.h"
#include "quant/quant.h"

namespace owl::model {

const char* linear_kind_name(LinearKind kind) {
  switch (kind) {
    case LinearKind::kAttnQ: return "attn_q";
    case LinearKind::kAttnK: return "attn_k";
    case LinearKind::kAttnV: return "attn_v";
    case LinearKind::kAttnQkv: return "attn_qkv";
    case LinearKind::kAttnOutput: return "attn_output";
    case LinearKind::kFfnGate: return "ffn_gate";
    case LinearKind::kFfnUp: return "ffn_up";
    case LinearKind::kFfnDown: return "ffn_down";
    case LinearKind::kCount: break;
  }
  return "unknown";
}

const Weight* layer_weight(const Model& model, WeightId id) {
  if (id.layer < 0 || id.layer >= static_cast<int32_t>(model.weights.layers.size())) return nullptr;
  const LayerWeights& l = model.weights.layers[static_cast<size_t>(id.layer)];
  const Weight* w = nullptr;
  switch (id.kind) {
    case LinearKind::kAttnQ: w = &l.attn_q; break;
    case LinearKind::kAttnK: w = &l.attn_k; break;
    case LinearKind::kAttnV: w = &l.attn_v; break;
    case LinearKind::kAttnQkv: w = &l.attn_qkv; break;
    case LinearKind::kAttnOutput: w = &l.attn_output; break;
    case LinearKind::kFfnGate: w = &l.ffn_gate; break;
    case LinearKind::kFfnUp: w = &l.ffn_up; break;
    case LinearKind::kFfnDown: w = &l.ffn_down; break;
    case LinearKind::kCount: break;
  }
  return w != nullptr && w->present() ? w : nullptr;
}

core::Status Adapter::set(WeightId id, std::vector<float> a, std::vector<float> b, int64_t rank, int64_t n_in,
                          int64_t n_out) {
  const size_t i = static_cast<size_t>(id.layer) * static_cast<size_t>(LinearKind::kCount) + static_cast<size_t>(id.kind);
  const std::string what = fmt::format("adapter {}: blk.{}.{}", name, id.layer, linear_kind_name(id.kind));
  if (id.layer < 0 || i >= pairs.size()) return core::make_error("{}: no such layer weight", what);
  if (rank < 1 || rank > kMaxLoraRank) return core::make_error("{}: rank {} outside 1..{}", what, rank, kMaxLoraRank);
  if (a.size() != static_cast<size_t>(rank * n_in) || b.size() != static_cast<size_t>(n_out * rank)) {
    return core::make_error("{}: A holds {} and B {} values, not {} x {} and {} x {}", what, a.size(), b.size(), rank,
                            n_in, n_out, rank);
  }
  storage.push_back(std::move(a));
  const float* pa = storage.back().data();
  storage.push_back(std::move(b));
  pairs[i] = LoraPair{.a = pa, .b = storage.back().data(), .rank = rank, .n_in = n_in, .n_out = n_out};
  return {};
}

namespace {

// The layer weight a base tensor name ("blk.3.attn_q.weight") names.
std::optional<WeightId> weight_of(std::string_view base) {
  if (!base.starts_with("blk.") || !base.ends_with(".weight")) return std::nullopt;
  base.remove_prefix(4);
  base.remove_suffix(7);
  const size_t dot = base.find('.');
  if (dot == std::string_view::npos || dot == 0 || dot > 6) return std::nullopt;
  int32_t layer = 0;
  for (char c : base.substr(0, dot)) {
    if (c < '0' || c > '9') return std::nullopt;
    layer = layer * 10 + (c - '0');
  }
  const std::string_view kind = base.substr(dot + 1);
  for (int32_t k = 0; k < static_cast<int32_t>(LinearKind::kCount); ++k) {
    if (kind == linear_kind_name(static_cast<LinearKind>(k))) return WeightId{layer, static_cast<LinearKind>(k)};
  }
  return std::nullopt;
}

core::Result<std::vector<float>> read_f32(const gguf::TensorInfo& t, const std::string& path) {
  std::vector<float> out(static_cast<size_t>(t.n_elements()));
  if (t.type != gguf::TensorType::F32 && t.type != gguf::TensorType::F16 && t.type != gguf::TensorType::BF16) {
    return core::make_error("{}: tensor {} is {}; LoRA tensors must be F32, F16 or BF16", path, t.name,
                            gguf::type_info(t.type).name);
  }
  if (!quant::dequantize_row(t.type, t.data, out.data(), t.n_elements())) {
    return core::make_error("{}: tensor {}: cannot read {} values", path, t.name, t.n_elements());
  }
  for (float v : out) {
    if (!std::isfinite(v)) return core::make_error("{}: tensor {} holds a value that is not finite", path, t.name);
  }
  return out;
}

}  // namespace

core::Result<std::shared_ptr<Adapter>> load_lora(const std::string& path, const Model& model) {
  auto file = gguf::GgufFile::open(path);
  if (!file) return file.error();
  auto type = file->get_string_or("general.type", "");
  if (!type) return type.error();
  if (*type != "adapter") {
    return core::make_error("{}: general.type is '{}', not 'adapter': this is not a LoRA adapter", path, *type);
  }
  auto adapter_type = file->get_string_or("adapter.type", "");
  if (!adapter_type) return adapter_type.error();
  if (*adapter_type != "lora") return core::make_error("{}: adapter.type is '{}'; owl reads 'lora' adapters", path, *adapter_type);
  auto arch = file->get_string_or(gguf::keys::kGeneralArchitecture, "");
  if (!arch) return arch.error();
  auto model_arch = model.file.get_string_or(gguf::keys::kGeneralArchitecture, "");
  if (model_arch && *arch != *model_arch) {
    return core::make_error("{}: an adapter for architecture '{}', but the model is '{}'", path, *arch, *model_arch);
  }
  auto alpha = file->get_float_or("adapter.lora.alpha", 0);
  if (!alpha) return alpha.error();
  if (!std::isfinite(*alpha) || *alpha < 0) return core::make_error("{}: adapter.lora.alpha {} is not a valid alpha", path, *alpha);

  auto adapter = std::make_shared<Adapter>(model.config.n_layer);
  const std::string_view name = std::string_view(path).substr(path.find_last_of('/') == std::string::npos ? 0 : path.find_last_of('/') + 1);
  adapter->name = std::string(name);
  int64_t rank_seen = 0;
  size_t n_pairs = 0;
  for (const gguf::TensorInfo& a : file->tensors()) {
    if (a.name.ends_with(".lora_b")) continue;
    if (!a.name.ends_with(".lora_a")) return core::make_error("{}: tensor {} is neither .lora_a nor .lora_b", path, a.name);
    const std::string base = a.name.substr(0, a.name.size() - 7);
    const gguf::TensorInfo* b = file->find_tensor(base + ".lora_b");
    if (b == nullptr) return core::make_error("{}: {} has no {}.lora_b", path, a.name, base);
    const std::optional<WeightId> id = weight_of(base);
    const Weight* w = id ? layer_weight(model, *id) : nullptr;
    if (w == nullptr) return core::make_error("{}: {} adapts {}, which the model does not have", path, a.name, base);
    const int64_t rank = a.ne[1];
    if (a.n_dims != 2 || b->n_dims != 2 || a.ne[0] != w->n_in || b->ne[1] != w->n_out || b->ne[0] != rank) {
      return core::make_error("{}: {} is [{}, {}] and {} [{}, {}]; {} ({} -> {}) needs [{}, r] and [r, {}]", path, a.name,
                              a.ne[0], a.ne[1], b->name, b->ne[0], b->ne[1], base, w->n_in, w->n_out, w->n_in, w->n_out);
    }
    auto av = read_f32(a, path);
    if (!av) return av.error();
    auto bv = read_f32(*b, path);
    if (!bv) return bv.error();
    if (rank_seen != 0 && rank != rank_seen) {
      return core::make_error("{}: {} has rank {} but earlier pairs rank {}; owl reads adapters of one rank", path, a.name, rank, rank_seen);
    }
    OWL_TRY(adapter->set(*id, std::move(*av), std::move(*bv), rank, w->n_in, w->n_out));
    rank_seen = rank;
    ++n_pairs;
  }
  for (const gguf::TensorInfo& b : file->tensors()) {
    if (b.name.ends_with(".lora_b") && file->find_tensor(b.name.substr(0, b.name.size() - 7) + ".lora_a") == nullptr) {
      return core::make_error("{}: {} has no matching .lora_a", path, b.name);
    }
  }
  if (n_pairs == 0) return core::make_error("{}: the adapter holds no LoRA tensors", path);
  // llama.cpp: scale = alpha / rank, and alpha 0 means scale 1.
  adapter->alpha_scale = *alpha > 0 ? static_cast<float>(*alpha / static_cast<double>(rank_seen)) : 1.0f;
  return adapter;
}

std::string AdapterSet::key() const {
  std::string k;
  for (const auto& [adapter, scale] : adapters) {
    // The address tells two loads of one file apart: their weights may differ after a reload.
    k += fmt::format("{}@{}*{};", adapter->name, static_cast<const void*>(adapter.get()), scale);
  }
  return k;
}

}  // namespace owl::model
