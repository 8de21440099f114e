// The format-traits table (traits.h), and quantize_row / dequantize_row, which look it up.
#include "quant/traits.h"

#include <array>
#include <cstring>

#include "core/result.h"
#include "quant/half.h"
#include "quant/quant.h"
#include "quant/weighted.h"

namespace owl::quant {
namespace {

using gguf::TensorType;

// The typed reference functions as table entries.
template <typename Block, void (*F)(const float*, Block*, int64_t)>
void quantize_as(const float* x, void* y, int64_t n) {
  F(x, static_cast<Block*>(y), n);
}
template <typename Block, void (*F)(const Block*, float*, int64_t)>
void dequantize_as(const void* x, float* y, int64_t n) {
  F(static_cast<const Block*>(x), y, n);
}
template <typename Block, void (*F)(const float*, const float*, Block&)>
void weighted_as(const float* x, const float* w, void* y) {
  F(x, w, *static_cast<Block*>(y));
}

// The plain float types: conversions, element by element.
void quantize_f32(const float* x, void* y, int64_t n) { std::memcpy(y, x, static_cast<size_t>(n) * sizeof(float)); }
void dequantize_f32(const void* x, float* y, int64_t n) { std::memcpy(y, x, static_cast<size_t>(n) * sizeof(float)); }

template <uint16_t (*F)(float)>
void quantize_16bit(const float* x, void* y, int64_t n) {
  auto* out = static_cast<uint16_t*>(y);
  for (int64_t i = 0; i < n; ++i) out[i] = F(x[i]);
}
template <float (*F)(uint16_t)>
void dequantize_16bit(const void* x, float* y, int64_t n) {
  const auto* in = static_cast<const uint16_t*>(x);
  for (int64_t i = 0; i < n; ++i) y[i] = F(in[i]);
}

void dequantize_f64(const void* x, float* y, int64_t n) {  // narrowed to float, as ggml does
  const auto* in = static_cast<const double*>(x);
  for (int64_t i = 0; i < n; ++i) y[i] = static_cast<float>(in[i]);
}

// The weight formats: 32-element blocks (formats_32.cpp, q8.cpp), K-quants (kquants.cpp), their
// importance-weighted fits (weighted.cpp). Q8_1 and Q8_K are activation formats of the dot
// products; I8..I64 are integer tensors without a float meaning. The weight types come in the
// order `owl synth --help` lists them.
constexpr FormatTraits kTable[] = {
    {TensorType::F32, quantize_f32, dequantize_f32, nullptr, true, true},
    {TensorType::F16, quantize_16bit<f32_to_f16>, dequantize_16bit<f16_to_f32>, nullptr, true, true},
    {TensorType::BF16, quantize_16bit<f32_to_bf16>, dequantize_16bit<bf16_to_f32>, nullptr, true, true},
    {TensorType::Q8_0, quantize_as<BlockQ8_0, quantize_row_q8_0>, dequantize_as<BlockQ8_0, dequantize_row_q8_0>,
     nullptr, true, true},
    {TensorType::Q4_0, quantize_as<BlockQ4_0, quantize_row_q4_0>, dequantize_as<BlockQ4_0, dequantize_row_q4_0>,
     weighted_as<BlockQ4_0, detail::weighted_block_q4_0>, true, true},
    {TensorType::Q4_1, quantize_as<BlockQ4_1, quantize_row_q4_1>, dequantize_as<BlockQ4_1, dequantize_row_q4_1>,
     weighted_as<BlockQ4_1, detail::weighted_block_q4_1>, true, true},
    {TensorType::Q5_0, quantize_as<BlockQ5_0, quantize_row_q5_0>, dequantize_as<BlockQ5_0, dequantize_row_q5_0>,
     weighted_as<BlockQ5_0, detail::weighted_block_q5_0>, true, true},
    {TensorType::Q5_1, quantize_as<BlockQ5_1, quantize_row_q5_1>, dequantize_as<BlockQ5_1, dequantize_row_q5_1>,
     weighted_as<BlockQ5_1, detail::weighted_block_q5_1>, true, true},
    {TensorType::Q8_1, quantize_as<BlockQ8_1, quantize_row_q8_1>, dequantize_as<BlockQ8_1, dequantize_row_q8_1>,
     nullptr, false, true},
    {TensorType::Q2_K, quantize_as<BlockQ2_K, quantize_row_q2_K>, dequantize_as<BlockQ2_K, dequantize_row_q2_K>,
     weighted_as<BlockQ2_K, detail::weighted_block_q2_k>, true, true},
    {TensorType::Q3_K, quantize_as<BlockQ3_K, quantize_row_q3_K>, dequantize_as<BlockQ3_K, dequantize_row_q3_K>,
     weighted_as<BlockQ3_K, detail::weighted_block_q3_k>, true, true},
    {TensorType::Q4_K, quantize_as<BlockQ4_K, quantize_row_q4_K>, dequantize_as<BlockQ4_K, dequantize_row_q4_K>,
     weighted_as<BlockQ4_K, detail::weighted_block_q4_k>, true, true},
    {TensorType::Q5_K, quantize_as<BlockQ5_K, quantize_row_q5_K>, dequantize_as<BlockQ5_K, dequantize_row_q5_K>,
     weighted_as<BlockQ5_K, detail::weighted_block_q5_k>, true, true},
    {TensorType::Q6_K, quantize_as<BlockQ6_K, quantize_row_q6_K>, dequantize_as<BlockQ6_K, dequantize_row_q6_K>,
     weighted_as<BlockQ6_K, detail::weighted_block_q6_k>, true, true},
    {TensorType::Q8_K, quantize_as<BlockQ8_K, quantize_row_q8_K>, dequantize_as<BlockQ8_K, dequantize_row_q8_K>,
     nullptr, false, false},
    {TensorType::I8},
    {TensorType::I16},
    {TensorType::I32},
    {TensorType::I64},
    {TensorType::F64, nullptr, dequantize_f64},
};

// kTable by raw type value; null for ids GGUF does not define.
constexpr std::array<const FormatTraits*, gguf::kTensorTypeSlots> make_index() {
  std::array<const FormatTraits*, gguf::kTensorTypeSlots> index{};
  for (const FormatTraits& t : kTable) index[static_cast<uint32_t>(t.type)] = &t;
  return index;
}
constexpr std::array<const FormatTraits*, gguf::kTensorTypeSlots> kIndex = make_index();

// Every type of gguf's size table has its traits, and nothing else does.
constexpr bool same_types_as_gguf() {
  if (std::size(kTable) != gguf::kTensorTypes.size()) return false;
  for (const gguf::TensorTypeInfo& info : gguf::kTensorTypes) {
    if (kIndex[static_cast<uint32_t>(info.type)] == nullptr) return false;
  }
  return true;
}
static_assert(same_types_as_gguf());

}  // namespace

std::span<const FormatTraits> all_format_traits() { return kTable; }

const FormatTraits* find_format_traits(TensorType type) {
  const auto raw = static_cast<uint32_t>(type);
  return raw < kIndex.size() ? kIndex[raw] : nullptr;
}

const FormatTraits& format_traits(TensorType type) {
  const FormatTraits* t = find_format_traits(type);
  OWL_CHECK(t != nullptr);
  return *t;
}

bool quantize_row(TensorType type, const float* src, void* dst, int64_t n) {
  const FormatTraits* t = find_format_traits(type);
  if (t == nullptr || t->quantize == nullptr) return false;
  t->quantize(src, dst, n);
  return true;
}

bool dequantize_row(TensorType type, const void* src, float* dst, int64_t n) {
  const FormatTraits* t = find_format_traits(type);
  if (t == nullptr || t->dequantize == nullptr) return false;
  t->dequantize(src, dst, n);
  return true;
}

}  // namespace owl::quant
