// safetensors files (https://github.com/huggingface/safetensors): u64 little-endian header
// length N, N bytes of JSON {"__metadata__": {str: str}, "<name>": {"dtype": "F32",
// "shape": [d0, d1, ...], "data_offsets": [begin, end]}, ...}, then the data, row-major with
// the last dimension contiguous. Offsets are relative to the end of the header.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "core/files.h"
#include "core/result.h"
#include "gguf/tensor_type.h"

namespace owl::convert {

struct SafeTensor {
  std::string name;
  std::string dtype;           // "F32", "F16", "BF16", ...
  std::vector<int64_t> shape;  // outermost first: a matrix is [rows][columns]
  std::span<const uint8_t> data;

  int64_t n_elements() const;
};

// Bytes per element of a safetensors dtype; 0 for an unknown one.
int64_t safetensors_dtype_size(std::string_view dtype);

struct SafetensorsHeader {
  std::vector<SafeTensor> tensors;  // in header order; data spans point into the parsed bytes
  std::map<std::string, std::string> metadata;
};

// Validates everything a hostile file can get wrong: the header length, the JSON, every dtype,
// shape (non-negative, no overflow) and offset pair (inside the data, matching the shape).
core::Result<SafetensorsHeader> parse_safetensors(std::span<const uint8_t> bytes, const std::string& name);

// A mapped safetensors file; tensor spans live as long as the object.
class SafetensorsFile {
 public:
  static core::Result<SafetensorsFile> open(const std::string& path);
  const SafetensorsHeader& header() const { return header_; }

 private:
  std::shared_ptr<core::MappedFile> map_;
  SafetensorsHeader header_;
};

struct SafeTensorOut {
  std::string name;
  std::string dtype;
  std::vector<int64_t> shape;
  std::span<const uint8_t> data;  // borrowed until write_safetensors returns
};

// Writes atomically; the header is padded with spaces to a multiple of 8 bytes.
core::Status write_safetensors(const std::string& path, const std::vector<SafeTensorOut>& tensors,
                               const std::map<std::string, std::string>& metadata);

}  // namespace owl::convert
