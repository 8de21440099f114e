#include "train/lora.h"

#include <cmath>
#include <span>
#include <string_view>

#include <fmt/format.h>

#include "gguf/gguf.h"
#include "gguf/keys.h"

namespace owl::train {

using core::make_error;

std::vector<std::vector<float>> TrainableLora::zeros_like() const {
  std::vector<std::vector<float>> z;
  z.reserve(adapter->storage.size());
  for (const auto& s : adapter->storage) z.emplace_back(s.size(), 0.0f);
  return z;
}

int64_t TrainableLora::n_params() const {
  int64_t n = 0;
  for (const auto& s : adapter->storage) n += static_cast<int64_t>(s.size());
  return n;
}

core::Result<std::vector<model::LinearKind>> parse_targets(const std::string& list, const model::Model& model) {
  using model::LinearKind;
  struct Name {
    std::string_view name;
    LinearKind kind;
  };
  static constexpr Name kNames[] = {{"q", LinearKind::kAttnQ},      {"k", LinearKind::kAttnK},
                                    {"v", LinearKind::kAttnV},      {"qkv", LinearKind::kAttnQkv},
                                    {"o", LinearKind::kAttnOutput}, {"gate", LinearKind::kFfnGate},
                                    {"up", LinearKind::kFfnUp},     {"down", LinearKind::kFfnDown}};
  std::vector<LinearKind> out;
  std::string_view rest(list);
  while (!rest.empty()) {
    const size_t comma = rest.find(',');
    const std::string_view item = rest.substr(0, comma);
    rest = comma == std::string_view::npos ? std::string_view() : rest.substr(comma + 1);
    const Name* found = nullptr;
    for (const Name& n : kNames) {
      if (n.name == item) found = &n;
    }
    if (found == nullptr) {
      return make_error("--targets: unknown weight '{}' (known: q, k, v, qkv, o, gate, up, down)", item);
    }
    // Fused weights stand in for their parts: q, k, v on a model with attn_qkv train attn_qkv.
    LinearKind kind = found->kind;
    if (model::layer_weight(model, {0, kind}) == nullptr) {
      const bool fused_qkv = model::layer_weight(model, {0, LinearKind::kAttnQkv}) != nullptr;
      if (fused_qkv && (kind == LinearKind::kAttnQ || kind == LinearKind::kAttnK || kind == LinearKind::kAttnV)) {
        kind = LinearKind::kAttnQkv;
      } else if (kind == LinearKind::kFfnGate && model::layer_weight(model, {0, LinearKind::kFfnUp}) != nullptr) {
        kind = LinearKind::kFfnUp;  // phi3: ffn_up holds gate and up
      } else {
        return make_error("--targets: the model has no {} weight ('{}')", model::linear_kind_name(kind), item);
      }
    }
    bool seen = false;
    for (LinearKind k : out) seen |= k == kind;
    if (!seen) out.push_back(kind);
  }
  if (out.empty()) return make_error("--targets: no weights named");
  return out;
}

core::Result<TrainableLora> make_lora(const model::Model& model, const std::vector<model::LinearKind>& targets,
                                      int64_t rank, float alpha, std::mt19937_64& rng, const std::string& name) {
  if (rank < 1 || rank > model::kMaxLoraRank) return make_error("--rank {} outside 1..{}", rank, model::kMaxLoraRank);
  if (!std::isfinite(alpha) || alpha <= 0) return make_error("--alpha {} must be a positive number", alpha);
  TrainableLora lora;
  lora.adapter = std::make_shared<model::Adapter>(model.config.n_layer);
  lora.adapter->name = name;
  lora.adapter->alpha_scale = alpha / static_cast<float>(rank);
  lora.alpha = alpha;
  lora.rank = rank;
  for (int32_t il = 0; il < static_cast<int32_t>(model.config.n_layer); ++il) {
    for (model::LinearKind kind : targets) {
      const model::WeightId id{il, kind};
      const model::Weight* w = model::layer_weight(model, id);
      if (w == nullptr) return make_error("layer {} has no {} weight", il, model::linear_kind_name(kind));
      std::vector<float> a(static_cast<size_t>(rank * w->n_in));
      const float bound = 1.0f / std::sqrt(static_cast<float>(w->n_in));
      std::uniform_real_distribution<float> dist(-bound, bound);
      for (float& v : a) v = dist(rng);
      std::vector<float> b(static_cast<size_t>(w->n_out * rank), 0.0f);
      OWL_TRY(lora.adapter->set(id, std::move(a), std::move(b), rank, w->n_in, w->n_out));
      const size_t n = lora.adapter->storage.size();
      lora.slots.push_back({id, n - 2, n - 1, rank, w->n_in, w->n_out});
    }
  }
  return lora;
}

core::Result<TrainableLora> lora_from_file(const std::string& path, const model::Model& model) {
  auto loaded = model::load_lora(path, model);
  if (!loaded) return loaded.error();
  auto adapter = std::const_pointer_cast<model::Adapter>(std::shared_ptr<const model::Adapter>(std::move(*loaded)));
  TrainableLora lora;
  lora.adapter = adapter;
  for (int32_t il = 0; il < static_cast<int32_t>(model.config.n_layer); ++il) {
    for (int32_t k = 0; k < static_cast<int32_t>(model::LinearKind::kCount); ++k) {
      const model::WeightId id{il, static_cast<model::LinearKind>(k)};
      const model::LoraPair* pair = adapter->find(id);
      if (pair == nullptr) continue;
      LoraSlot slot{id, 0, 0, pair->rank, pair->n_in, pair->n_out};
      for (size_t i = 0; i < adapter->storage.size(); ++i) {
        if (adapter->storage[i].data() == pair->a) slot.a = i;
        if (adapter->storage[i].data() == pair->b) slot.b = i;
      }
      lora.slots.push_back(slot);
      lora.rank = pair->rank;
    }
  }
  lora.alpha = adapter->alpha_scale * static_cast<float>(lora.rank);
  return lora;
}

core::Status save_lora(const TrainableLora& lora, const model::Model& model, const std::string& path,
                       const std::vector<std::pair<std::string, std::string>>& extra) {
  gguf::GgufWriter w;
  w.set_file_mode(0600);  // learned from the user's data
  auto arch = model.file.get_string(gguf::keys::kGeneralArchitecture);
  if (!arch) return arch.error();
  w.set("general.architecture", gguf::Value::string(*arch));
  w.set("general.type", gguf::Value::string("adapter"));
  w.set("general.name", gguf::Value::string(lora.adapter->name));
  w.set("adapter.type", gguf::Value::string("lora"));
  w.set("adapter.lora.alpha", gguf::Value::f32(lora.alpha));
  for (const auto& [key, value] : extra) w.set(key, gguf::Value::string(value));
  for (const LoraSlot& s : lora.slots) {
    const std::string base = fmt::format("blk.{}.{}.weight", s.id.layer, model::linear_kind_name(s.id.kind));
    const std::vector<float>& a = lora.adapter->storage[s.a];
    const std::vector<float>& b = lora.adapter->storage[s.b];
    const int64_t shape_a[2] = {s.n_in, s.rank};
    const int64_t shape_b[2] = {s.rank, s.n_out};
    OWL_TRY(w.add_tensor(base + ".lora_a", gguf::TensorType::F32, shape_a,
                         std::span(reinterpret_cast<const uint8_t*>(a.data()), a.size() * sizeof(float))));
    OWL_TRY(w.add_tensor(base + ".lora_b", gguf::TensorType::F32, shape_b,
                         std::span(reinterpret_cast<const uint8_t*>(b.data()), b.size() * sizeof(float))));
  }
  return w.write(path);
}

}  // namespace owl::train
