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

// LoRA dropout while training (PEFT's lora_dropout): every pair sees its input x with each
// element zeroed with probability p and the others scaled by 1 / (1 - p). The mask is a hash of
// (seed, row, weight, element), so the backward pass and a recomputed forward draw the same one
// without storing it; the trainer gives each micro-batch its own seed. Serving never sets one.
struct LoraDropout {
  float p = 0.0f;
  uint64_t seed = 0;

  // The mask of one row's input to weight `id`: a hash per element, drawn from `row_key`.
  uint64_t row_key(int64_t row, WeightId id) const {
    return mix(seed ^ mix(static_cast<uint64_t>(row) * 0x9e3779b97f4a7c15ULL ^
                          (static_cast<uint64_t>(static_cast<uint32_t>(id.layer)) << 8) ^
                          static_cast<uint64_t>(id.kind)));
  }
  // 0 or 1 / (1 - p) for element i of the row whose key is `key`.
  float factor(uint64_t key, int64_t i) const {
    const auto u = static_cast<uint32_t>(mix(key + static_cast<uint64_t>(i) * 0xbf58476d1ce4e5b9ULL) >> 32);
    return static_cast<double>(u) < static_cast<double>(p) * 4294967296.0 ? 0.0f : 1.0f / (1.0f - p);
  }
  // y[i] = x[i] · factor(key, i) over n elements.
  void apply(uint64_t key, const float* x, float* y, int64_t n) const {
    for (int64_t i = 0; i < n; ++i) y[i] = x[i] * factor(key, i);
  }
  static uint64_t mix(uint64_t z) {  // splitmix64's finalizer
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
  }
};

// The adapters one sequence runs with, each with the user's scale (PEFT's and llama.cpp's
// --lora-scaled): the effective factor is scale × alpha / rank.
struct AdapterSet {
  std::vector<std::pair<std::shared_ptr<const Adapter>, float>> adapters;
  const LoraDropout* dropout = nullptr;  // training only; not owned

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
