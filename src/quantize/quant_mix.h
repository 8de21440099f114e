// Which type each tensor of a model gets when the model is quantized to a preset such as
// q4_k_m: llama.cpp's per-tensor mixes (src/llama-quant.cpp, llama_tensor_get_type), restated
// for the architectures owl runs, and the fallback for rows that fit no block of a type.
#pragma once

#include <cstdint>
#include <regex>
#include <string>
#include <string_view>
#include <vector>

#include "core/result.h"
#include "gguf/file_type.h"
#include "gguf/gguf.h"

namespace owl::quantize {

// `--tensor-type PATTERN=TYPE`: tensors whose name the regex matches (anywhere) get TYPE.
struct TensorTypeOverride {
  std::string pattern;
  std::regex regex;
  gguf::TensorType type;
};
core::Result<TensorTypeOverride> parse_tensor_type_override(std::string_view spec);

// The patterns of `overrides` that match no tensor name of `file` (a typo there quantizes nothing
// differently, silently).
std::vector<std::string> unmatched_overrides(const gguf::GgufFile& file, const std::vector<TensorTypeOverride>& overrides);

// The shape facts the mixes depend on, read from the file's metadata.
struct MixModel {
  std::string arch;
  int64_t n_layer = 0;
  int64_t n_head = 0;
  int64_t n_head_kv = 0;
  bool has_output = false;  // false: token_embd doubles as the output matrix (tied)
};

struct TensorPlan {
  const gguf::TensorInfo* tensor = nullptr;
  gguf::TensorType target = gguf::TensorType::F32;
  bool quantize = false;   // false: copied unchanged
  bool fallback = false;   // the mix's type did not fit the rows; `target` is the fallback
  bool manual = false;     // chosen by a --tensor-type override
};

struct MixOptions {
  gguf::FileTypeInfo preset;  // the file type asked for (gguf/file_type.h)
  std::vector<TensorTypeOverride> overrides;
  bool has_imatrix = false;
};

// llama.cpp's tensor order (non-layer tensors first, then by layer number, by name within
// each), which the counters of the mixes and the output file follow.
std::vector<const gguf::TensorInfo*> quantize_order(const gguf::GgufFile& file);

core::Result<MixModel> read_mix_model(const gguf::GgufFile& file);

// One plan per tensor, in quantize_order. An error names a tensor whose type cannot be read
// as floats or whose rows fit no block even after the fallback.
core::Result<std::vector<TensorPlan>> plan_quantization(const gguf::GgufFile& file, const MixOptions& options);

}  // namespace owl::quantize
