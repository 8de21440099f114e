// The format-traits table (as ggml's type_traits): for every GGUF tensor type, the reference
// functions that define it and the roles owl gives it. This is the one place that maps a type
// to its quantizers; quantize_row / dequantize_row / quantize_row_weighted look it up. Names
// and block sizes are gguf's (gguf/tensor_type.h), read through info(), never repeated here.
#pragma once

#include <cstdint>
#include <span>

#include "gguf/tensor_type.h"

namespace owl::quant {

// f32 [n] -> n elements of the type, n a multiple of its block size.
using QuantizeRowFn = void (*)(const float* x, void* y, int64_t n);
// n elements of the type -> f32 [n].
using DequantizeRowFn = void (*)(const void* x, float* y, int64_t n);
// One block of the type fitted to x [block size] under per-element weights w (see weighted.h).
using WeightedBlockFn = void (*)(const float* x, const float* w, void* y);

struct FormatTraits {
  gguf::TensorType type = gguf::TensorType::F32;
  QuantizeRowFn quantize = nullptr;      // llama.cpp's quantize_row_<type>_ref; null: none (I8..F64)
  DequantizeRowFn dequantize = nullptr;  // ggml's dequantize_row_<type>; null: no float meaning (I8..I64)
  WeightedBlockFn quantize_block_weighted = nullptr;  // the imatrix fit; null: none
  bool weight = false;          // owl writes it as a weight type (quantize --tensor-type, synth --type)
  bool quantize_input = false;  // owl quantize converts tensors of this type to another

  const gguf::TensorTypeInfo& info() const { return gguf::type_info(type); }
};

// Every type gguf knows, weight types first.
std::span<const FormatTraits> all_format_traits();
// nullptr for a type owl does not know.
const FormatTraits* find_format_traits(gguf::TensorType type);
// The traits of a known type (an invariant: GgufFile only holds known types).
const FormatTraits& format_traits(gguf::TensorType type);

}  // namespace owl::quant
