// LoRA adapters, applied per row inside forward()'s one matmul on weights: for a row whose
// sequence carries an AdapterSet, y += scale · B (A x) for every adapter with a pair for that
// weight (Hu et al. 2021; llama.cpp's build_lora_mm does the same in one place). Rows of other
// sequences in the same batch are untouched, so one batch can mix adapters and the base model.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "core/result.h"

namespace owl::model {
struct Model;
}

namespace owl::model {

inline constexpr int64_t kMaxLoraRank = 512;

// The weights a LoRA pair can attach to, by their GGUF names.
enum class LinearKind : int32_t {
  kAttnQ, kAttnK, kAttnV, kAttnQkv, kAttnOutput, kFfnGate, kFfnUp, kFfnDown,
  kCount
};
const char* linear_kind_name(LinearKind kind);  // "attn_q", ... as in blk.N.<name>.weight

// A weight matrix's identity: which layer, which matrix.
struct WeightId {
  int32_t layer = -1;  // -1: not a layer weight (output); no adapter applies
  LinearKind kind = LinearKind::kCount;
};

struct Weight;
// The weight an id names in `model`; null when the model has none there.
const Weight* layer_weight(const Model& model, WeightId id);

// One low-rank pair for W [n_out][n_in]: A [rank][n_in] and B [n_out][rank], row-major f32.
struct LoraPair {
  const float* a = nullptr;
  const float* b = nullptr;
  int64_t rank = 0;
  int64_t n_in = 0;
  int64_t n_out = 0;

  bool present() const { return a != nullptr; }
};

// One adapter: its pairs indexed by layer and kind, and the data they point into.
struct Adapter {
  std::string name;
  float alpha_scale = 1.0f;  // alpha / rank, from training
  std::vector<LoraPair> pairs;               // [n_layer * LinearKind::kCount]
  std::vector<std::vector<float>> storage;   // owns what the pairs point to

  explicit Adapter(int64_t n_layer) : pairs(static_cast<size_t>(n_layer) * static_cast<size_t>(LinearKind::kCount)) {}
  const LoraPair* find(WeightId id) const {
    if (id.layer < 0) return nullptr;
    const size_t i = static_cast<size_t>(id.layer) * static_cast<size_t>(LinearKind::kCount) + static_cast<size_t>(id.kind);
    return i < pairs.size() && pairs[i].present() ? &pairs[i] : nullptr;
  }
  // Takes ownership of A and B (shapes as in LoraPair) for one weight; the error names the
  // weight and the size that does not fit.
  core::Status set(WeightId id, std::vector<float> a, std::vector<float> b, int64_t rank, int64_t n_in, int64_t n_out);
};

// The adapters one sequence runs with, each with the user's scale (PEFT's and llama.cpp's
// --lora-scaled): the effective factor is scale × alpha / rank.
struct AdapterSet {
  std::vector<std::pair<std::shared_ptr<const Adapter>, float>> adapters;

  // Identity for prefix reuse: sequences share KV only when their keys are equal.
  std::string key() const;
};

// Reads a LoRA adapter in llama.cpp's GGUF format (general.type = adapter, adapter.type = lora,
// adapter.lora.alpha; tensors <weight name>.lora_a with ne [n_in, r] and .lora_b with ne [r, n_out],
// F32, F16 or BF16) for `model`: its architecture must match, and every pair must fit the weight
// it names. The error names the file and the tensor or key at fault.
core::Result<std::shared_ptr<Adapter>> load_lora(const std::string& path, const Model& model);

// The key of a sequence's adapters; "" for the base model.
inline std::string adapter_key(const AdapterSet* set) { return set ? set->key() : std::string(); }

}  // namespace owl::model
