// llama.cpp's file types (enum llama_ftype, include/llama.h): the number written to
// general.file_type, the name `owl quantize` takes, and the tensor type most weights get.
// This is the only table of them; quantize's per-tensor mixes start from `base`.
#pragma once

#include <cstdint>
#include <span>
#include <string_view>

#include "gguf/tensor_type.h"

namespace owl::gguf {

enum class FileType : uint32_t {
  F32 = 0,  // "all F32"
  F16 = 1,  // the rest: "mostly <type>"
  Q4_0 = 2,
  Q4_1 = 3,
  Q8_0 = 7,
  Q5_0 = 8,
  Q5_1 = 9,
  Q2_K = 10,
  Q3_K_S = 11,
  Q3_K_M = 12,
  Q3_K_L = 13,
  Q4_K_S = 14,
  Q4_K_M = 15,
  Q5_K_S = 16,
  Q5_K_M = 17,
  Q6_K = 18,
  BF16 = 32,
};

struct FileTypeInfo {
  FileType file_type;
  std::string_view name;  // lower case: "q4_k_m"
  TensorType base;        // the type most tensors get
  // The file type llama.cpp's loader infers for a model whose weights are all `base` (the _M
  // mix of a K-quant type): one row per base type has it.
  bool inferred_from_base;
};

// The file types owl writes, in the order `owl quantize --help` lists them.
std::span<const FileTypeInfo> file_types();
// Case-insensitive; nullptr for an unknown name.
const FileTypeInfo* find_file_type(std::string_view name);
// What general.file_type says of a model whose weight matrices are all `type`, as llama.cpp's
// loader infers it; F32 for a type that is no file type's base.
FileType file_type_of_weights(TensorType type);

}  // namespace owl::gguf
