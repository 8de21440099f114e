// Tensor element types as numbered by GGUF (ggml_type) and the size of one block of each.
// This is the only table of type sizes; quant/ adds block structs that static_assert
// against it, and the kernel table that dispatches on type lives in kernels/.
#pragma once

#include <cstddef>
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

// Returns nullptr for a type owl does not know (the raw id is then reported by the caller).
const TensorTypeInfo* find_type_info(uint32_t raw_type);
const TensorTypeInfo& type_info(TensorType type);
std::optional<TensorType> type_from_name(std::string_view name);  // case-insensitive

// Bytes needed by a row of n elements; n must be a multiple of the block size.
inline int64_t row_bytes(TensorType type, int64_t n) {
  const TensorTypeInfo& info = type_info(type);
  return n / info.block_size * info.type_size;
}

}  // namespace owl::gguf
