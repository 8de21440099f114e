// owl merge: LoRA adapters folded into a model's weights, W' = W + Σ scale · alpha/rank · B A
// (the sum model::AdapterSet applies at run time, computed once), written as a complete GGUF
// model: the base's metadata and tokenizer, each tensor in the base's type or in a preset's mix.
#pragma once

#include <cstdint>
#include <functional>
#include <optional>
#include <string>

#include "core/result.h"
#include "gguf/file_type.h"
#include "model/adapter.h"
#include "model/model.h"
#include "quantize/quantize.h"

namespace owl::quantize {

struct MergeOptions {
  const model::Model* base = nullptr;             // its file holds every tensor and key written
  const model::AdapterSet* adapters = nullptr;    // loaded for `base` (model::load_lora)
  std::string output;
  // The type mix of owl quantize (f16, q8_0, q4_k_m, ...); none: every tensor keeps its type,
  // and tensors no adapter touches are copied byte for byte.
  std::optional<gguf::FileTypeInfo> preset;
  int n_threads = 0;  // 0: all cores
  std::function<void(const QuantizeProgress&)> on_progress;  // called on the calling thread
};

struct MergeSummary {
  int64_t n_tensors = 0;
  int64_t n_merged = 0;     // tensors an adapter changed
  int64_t n_converted = 0;  // tensors without an adapter written in another type
  uint64_t output_file_size = 0;
  double seconds = 0;
};

// Writes options.output atomically (temporary name, fsync, rename). With a preset, the metadata
// gets general.file_type and general.quantization_version as owl quantize sets them and the
// tensors are in llama.cpp's order; without, the base's keys and tensor order are kept. A pair
// whose shape does not fit its tensor, or a type that cannot be converted, is an error naming
// the adapter and the tensor; nothing is written then.
core::Result<MergeSummary> merge_lora(const MergeOptions& options);

}  // namespace owl::quantize
