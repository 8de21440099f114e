// Tensor element types as numbered by GGUF (ggml_type) and the size of one block of each.
// This is the only table of type sizes: the reader and writer validate with it, quant/'s block
// structs static_assert against it and its format-traits table (quant/traits.h) reads it.
#pragma once

#include <cstddef>
#include <array>
#include <cstdint>
#include <optional>
#include <string_view>

namespace owl::gguf {

enum class TensorType : uint32_t {
  F32 = 0,
  F16 = 1,
  Q4_0 = 2,
  Q4_1 = 3,
  Q5_0 = 6,
  Q5_1 = 7,
  Q8_0 = 8,
  Q8_1 = 9,
  Q2_K = 10,
  Q3_K = 11,
  Q4_K = 12,
  Q5_K = 13,
  Q6_K = 14,
  Q8_K = 15,
  I8 = 24,
  I16 = 25,
  I32 = 26,
  I64 = 27,
  F64 = 28,
  BF16 = 30,
};

struct TensorTypeInfo {
  TensorType type;
  std::string_view name;  // lower case, as llama.cpp prints it: "q4_k"
  int64_t block_size;     // elements per block (1 for plain types)
  int64_t type_size;      // bytes per block
  bool quantized;
};

inline constexpr int kQK = 32;     // block size of the 32-element formats
inline constexpr int kQK_K = 256;  // block size of the K-quant super-blocks

// Sizes follow ggml's block structs (ggml-common.h).
inline constexpr std::array<TensorTypeInfo, 20> kTensorTypes = {{
    {TensorType::F32, "f32", 1, 4, false},
    {TensorType::F16, "f16", 1, 2, false},
    {TensorType::Q4_0, "q4_0", kQK, 2 + kQK / 2, true},
    {TensorType::Q4_1, "q4_1", kQK, 4 + kQK / 2, true},
    {TensorType::Q5_0, "q5_0", kQK, 2 + 4 + kQK / 2, true},
    {TensorType::Q5_1, "q5_1", kQK, 4 + 4 + kQK / 2, true},
    {TensorType::Q8_0, "q8_0", kQK, 2 + kQK, true},
    {TensorType::Q8_1, "q8_1", kQK, 4 + kQK, true},
    {TensorType::Q2_K, "q2_k", kQK_K, kQK_K / 16 + kQK_K / 4 + 4, true},
    {TensorType::Q3_K, "q3_k", kQK_K, kQK_K / 8 + kQK_K / 4 + 12 + 2, true},
    {TensorType::Q4_K, "q4_k", kQK_K, 4 + 12 + kQK_K / 2, true},
    {TensorType::Q5_K, "q5_k", kQK_K, 4 + 12 + kQK_K / 8 + kQK_K / 2, true},
    {TensorType::Q6_K, "q6_k", kQK_K, kQK_K / 2 + kQK_K / 4 + kQK_K / 16 + 2, true},
    {TensorType::Q8_K, "q8_k", kQK_K, 4 + kQK_K + kQK_K / 16 * 2, true},
    {TensorType::I8, "i8", 1, 1, false},
    {TensorType::I16, "i16", 1, 2, false},
    {TensorType::I32, "i32", 1, 4, false},
    {TensorType::I64, "i64", 1, 8, false},
    {TensorType::F64, "f64", 1, 8, false},
    {TensorType::BF16, "bf16", 1, 2, false},
}};

// Every TensorType's raw value is below this: tables indexed by type have this many slots.
inline constexpr uint32_t kTensorTypeSlots = 31;

// Returns nullptr for a type owl does not know (the raw id is then reported by the caller).
constexpr const TensorTypeInfo* find_type_info(uint32_t raw_type) {
  for (const TensorTypeInfo& info : kTensorTypes) {
    if (static_cast<uint32_t>(info.type) == raw_type) return &info;
  }
  return nullptr;
}
// Bytes per block of `type`; 0 for a type owl does not know. A value, not a pointer, so that
// static_asserts can use it under UBSan (GCC does not fold its checked pointer comparisons).
constexpr int64_t block_bytes(TensorType type) {
  for (const TensorTypeInfo& info : kTensorTypes) {
    if (info.type == type) return info.type_size;
  }
  return 0;
}
const TensorTypeInfo& type_info(TensorType type);
std::optional<TensorType> type_from_name(std::string_view name);  // case-insensitive

// Bytes needed by a row of n elements; n must be a multiple of the block size.
inline int64_t row_bytes(TensorType type, int64_t n) {
  const TensorTypeInfo& info = type_info(type);
  return n / info.block_size * info.type_size;
}

}  // namespace owl::gguf
