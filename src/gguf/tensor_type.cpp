#include "gguf/tensor_type.h"

#include <array>
#include <cctype>

#include "core/result.h"

namespace owl::gguf {
namespace {

constexpr int64_t kQK = 32;     // block size of the 32-element formats
constexpr int64_t kQK_K = 256;  // block size of the K-quant super-blocks

// Sizes follow ggml's block structs (ggml-common.h); quant/blocks.h static_asserts them.
constexpr std::array<TensorTypeInfo, 20> kTypes = {{
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

}  // namespace

const TensorTypeInfo* find_type_info(uint32_t raw_type) {
  for (const TensorTypeInfo& info : kTypes) {
    if (static_cast<uint32_t>(info.type) == raw_type) return &info;
  }
  return nullptr;
}

const TensorTypeInfo& type_info(TensorType type) {
  const TensorTypeInfo* info = find_type_info(static_cast<uint32_t>(type));
  OWL_CHECK(info != nullptr);
  return *info;
}

std::optional<TensorType> type_from_name(std::string_view name) {
  for (const TensorTypeInfo& info : kTypes) {
    if (info.name.size() != name.size()) continue;
    bool same = true;
    for (size_t i = 0; i < name.size() && same; ++i) {
      same = std::tolower(static_cast<unsigned char>(name[i])) == info.name[i];
    }
    if (same) return info.type;
  }
  return std::nullopt;
}

}  // namespace owl::gguf
