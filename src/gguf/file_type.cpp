#include "gguf/file_type.h"

#include <array>
#include <cctype>
#include <string>

namespace owl::gguf {
namespace {

using T = TensorType;
using F = FileType;

constexpr std::array<FileTypeInfo, 17> kFileTypes = {{
    {F::F32, "f32", T::F32, true},        {F::F16, "f16", T::F16, true},
    {F::BF16, "bf16", T::BF16, true},     {F::Q8_0, "q8_0", T::Q8_0, true},
    {F::Q6_K, "q6_k", T::Q6_K, true},     {F::Q5_K_M, "q5_k_m", T::Q5_K, true},
    {F::Q5_K_S, "q5_k_s", T::Q5_K, false}, {F::Q5_0, "q5_0", T::Q5_0, true},
    {F::Q5_1, "q5_1", T::Q5_1, true},     {F::Q4_K_M, "q4_k_m", T::Q4_K, true},
    {F::Q4_K_S, "q4_k_s", T::Q4_K, false}, {F::Q4_0, "q4_0", T::Q4_0, true},
    {F::Q4_1, "q4_1", T::Q4_1, true},     {F::Q3_K_L, "q3_k_l", T::Q3_K, false},
    {F::Q3_K_M, "q3_k_m", T::Q3_K, true}, {F::Q3_K_S, "q3_k_s", T::Q3_K, false},
    {F::Q2_K, "q2_k", T::Q2_K, true},
}};

}  // namespace

std::span<const FileTypeInfo> file_types() { return kFileTypes; }

const FileTypeInfo* find_file_type(std::string_view name) {
  std::string lower(name);
  for (char& ch : lower) ch = static_cast<char>(std::tolower(static_cast<unsigned char>(ch)));
  for (const FileTypeInfo& f : kFileTypes) {
    if (f.name == lower) return &f;
  }
  return nullptr;
}

FileType file_type_of_weights(TensorType type) {
  for (const FileTypeInfo& f : kFileTypes) {
    if (f.base == type && f.inferred_from_base) return f.file_type;
  }
  return FileType::F32;
}

}  // namespace owl::gguf
