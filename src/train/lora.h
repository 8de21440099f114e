// The adapter being trained: a model::Adapter whose storage is the parameters (A and B of each
// target weight, f32), so forward() applies it through the same per-row adapter seam that serves
// adapters, and the optimizer updates it in place.
#pragma once

#include <cstdint>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "core/result.h"
#include "model/adapter.h"
#include "model/model.h"

namespace owl::train {

// One trained pair: the weight it adapts and where its A and B sit in Adapter::storage.
struct LoraSlot {
  model::WeightId id;
  size_t a = 0;  // storage index of A [rank][n_in]
  size_t b = 0;  // storage index of B [n_out][rank]
  int64_t rank = 0, n_in = 0, n_out = 0;
};

struct TrainableLora {
  std::shared_ptr<model::Adapter> adapter;
  std::vector<LoraSlot> slots;
  float alpha = 0;    // adapter.lora.alpha as written
  int64_t rank = 0;

  // y += scale · B A x: alpha / rank (the user's scale is 1 while training).
  float scale() const { return adapter->alpha_scale; }
  // The same shapes as Adapter::storage, zero: what gradients and the optimizer's moments use.
  std::vector<std::vector<float>> zeros_like() const;
  int64_t n_params() const;
};

// The weights LoRA pairs can attach to in `model`, by the short names --targets takes
// (q, k, v, qkv, o, gate, up, down); the error names an unknown or absent one.
core::Result<std::vector<model::LinearKind>> parse_targets(const std::string& list, const model::Model& model);

// A new adapter: PEFT's initialisation (A uniform in ±1/sqrt(n_in), Kaiming-uniform with
// a = sqrt(5); B zero, so training starts from the base model) for every layer's target weights.
core::Result<TrainableLora> make_lora(const model::Model& model, const std::vector<model::LinearKind>& targets,
                                      int64_t rank, float alpha, std::mt19937_64& rng, const std::string& name);

// An adapter read from a file (load_lora's checks), to train further.
core::Result<TrainableLora> lora_from_file(const std::string& path, const model::Model& model);

// Writes the adapter in llama.cpp's LoRA GGUF format (general.type = adapter, adapter.type =
// lora, adapter.lora.alpha, <weight>.lora_a ne [n_in, r] and .lora_b ne [r, n_out], F32), to a
// temporary name renamed over `path`. `extra` metadata (training settings) is added as given.
core::Status save_lora(const TrainableLora& lora, const model::Model& model, const std::string& path,
                       const std::vector<std::pair<std::string, std::string>>& extra = {});

}  // namespace owl::train
