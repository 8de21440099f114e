// GGUF files (versions 2 and 3): a validated reader over a memory map and a crash-safe writer.
// Spec: https://github.com/ggml-org/ggml/blob/master/docs/gguf.md
//
// Layout: magic "GGUF", u32 version, u64 n_tensors, u64 n_kv, n_kv metadata entries
// (string key, u32 value type, value), n_tensors tensor infos (string name, u32 n_dims,
// u64 ne[n_dims], u32 type, u64 offset), padding to `general.alignment` (default 32), data.
// Tensor offsets are relative to the start of the data section and aligned.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <unordered_map>
#include <variant>
#include <vector>

#include "core/files.h"
#include "core/result.h"
#include "gguf/tensor_type.h"

namespace owl::gguf {

using core::Result;
using core::Status;

inline constexpr uint32_t kMagic = 0x46554747;  // "GGUF" little-endian
inline constexpr uint32_t kDefaultAlignment = 32;
inline constexpr int kMaxDims = 4;

enum class ValueType : uint32_t {
  U8 = 0, I8 = 1, U16 = 2, I16 = 3, U32 = 4, I32 = 5, F32 = 6, BOOL = 7,
  STRING = 8, ARRAY = 9, U64 = 10, I64 = 11, F64 = 12,
};
std::string_view value_type_name(ValueType type);

struct Value;
struct Array {
  ValueType element_type = ValueType::U8;
  std::vector<Value> items;
};

// One metadata value. Integers of every width are kept with their GGUF type so that a file
// read and written again is byte-identical.
struct Value {
  ValueType type = ValueType::U8;
  std::variant<uint64_t, int64_t, double, bool, std::string, Array> data;

  static Value u8(uint8_t v) { return {ValueType::U8, uint64_t{v}}; }
  static Value u16(uint16_t v) { return {ValueType::U16, uint64_t{v}}; }
  static Value u32(uint32_t v) { return {ValueType::U32, uint64_t{v}}; }
  static Value u64(uint64_t v) { return {ValueType::U64, v}; }
  static Value i8(int8_t v) { return {ValueType::I8, int64_t{v}}; }
  static Value i16(int16_t v) { return {ValueType::I16, int64_t{v}}; }
  static Value i32(int32_t v) { return {ValueType::I32, int64_t{v}}; }
  static Value i64(int64_t v) { return {ValueType::I64, v}; }
  static Value f32(float v) { return {ValueType::F32, double{v}}; }
  static Value f64(double v) { return {ValueType::F64, v}; }
  static Value boolean(bool v) { return {ValueType::BOOL, v}; }
  static Value string(std::string v) { return {ValueType::STRING, std::move(v)}; }
  static Value array(Array v) { return {ValueType::ARRAY, std::move(v)}; }

  bool is_integer() const;
  bool is_float() const { return type == ValueType::F32 || type == ValueType::F64; }
  // Conversions for readers; nullopt when the type does not convert without loss.
  std::optional<int64_t> as_int() const;
  std::optional<double> as_float() const;  // integers convert too
  const std::string* as_string() const;
  const Array* as_array() const;
  std::string to_display(size_t max_items = 8) const;  // short human-readable form
};

struct MetadataEntry {
  std::string key;
  Value value;
};

struct TensorInfo {
  std::string name;
  TensorType type = TensorType::F32;
  int n_dims = 0;
  int64_t ne[kMaxDims] = {1, 1, 1, 1};  // ne[0] is the contiguous (row) dimension
  uint64_t offset = 0;                   // relative to the data section
  uint64_t n_bytes = 0;
  const uint8_t* data = nullptr;         // into the map; valid while the GgufFile lives

  int64_t n_elements() const { return ne[0] * ne[1] * ne[2] * ne[3]; }
  int64_t n_rows() const { return ne[1] * ne[2] * ne[3]; }
};

// Limits that keep a hostile file from making the reader allocate or loop without bound.
struct ReadLimits {
  uint64_t max_string_bytes = uint64_t{1} << 30;
  uint64_t max_array_items = uint64_t{1} << 30;
  int max_array_depth = 8;
};

struct OpenOptions {
  ReadLimits limits;
  bool populate = false;  // map all tensor data up front (for inference; see core::MappedFile)
};

// A parsed GGUF file. Tensor data is not copied: TensorInfo::data points into the file map.
class GgufFile {
 public:
  static Result<GgufFile> open(const std::string& path, const OpenOptions& options = {});
  // Parses bytes that the caller keeps alive (used by tests and the fuzzer).
  static Result<GgufFile> parse(std::span<const uint8_t> bytes, const std::string& name = "<memory>",
                                const ReadLimits& limits = {});

  uint32_t version() const { return version_; }
  uint32_t alignment() const { return alignment_; }
  uint64_t data_offset() const { return data_offset_; }  // start of the data section
  uint64_t file_size() const { return size_; }
  const std::string& path() const { return path_; }
  // Bytes of the file in memory now (0 for parsed bytes): see core::MappedFile::resident_bytes.
  size_t resident_bytes() const { return map_ ? map_->resident_bytes() : 0; }
  // Drops the whole pages of [p, p + bytes) from the file map: see core::MappedFile::release.
  void release(const void* p, size_t bytes) const {
    if (map_) map_->release(p, bytes);
  }

  const std::vector<MetadataEntry>& metadata() const { return metadata_; }
  const std::vector<TensorInfo>& tensors() const { return tensors_; }
  const Value* find(std::string_view key) const;
  const TensorInfo* find_tensor(std::string_view name) const;

  // Typed getters: an error names the key and what was found instead.
  Result<std::string> get_string(std::string_view key) const;
  Result<int64_t> get_int(std::string_view key) const;
  Result<double> get_float(std::string_view key) const;
  Result<bool> get_bool(std::string_view key) const;
  Result<std::vector<std::string>> get_string_array(std::string_view key) const;
  Result<std::vector<double>> get_float_array(std::string_view key) const;
  Result<std::vector<int64_t>> get_int_array(std::string_view key) const;
  // The same, with a default when the key is absent (a present key of the wrong type is an error).
  Result<std::string> get_string_or(std::string_view key, std::string fallback) const;
  Result<int64_t> get_int_or(std::string_view key, int64_t fallback) const;
  Result<double> get_float_or(std::string_view key, double fallback) const;
  Result<bool> get_bool_or(std::string_view key, bool fallback) const;

 private:
  friend class Parser;
  std::shared_ptr<core::MappedFile> map_;  // shared so that GgufFile stays cheap to move
  std::string path_;
  uint64_t size_ = 0;
  uint32_t version_ = 0;
  uint32_t alignment_ = kDefaultAlignment;
  uint64_t data_offset_ = 0;
  std::vector<MetadataEntry> metadata_;
  std::vector<TensorInfo> tensors_;
  std::unordered_map<std::string, size_t> metadata_index_;
  std::unordered_map<std::string, size_t> tensor_index_;
};

// Builds a GGUF file (version 3). Tensor data is borrowed: it must stay alive until write().
// The data alignment is `general.alignment` when set (a u32 power of two), else 32.
class GgufWriter {
 public:

  // Sets (or replaces) a metadata entry; entries keep the order of first insertion.
  void set(std::string key, Value value);
  Status add_tensor(std::string name, TensorType type, std::span<const int64_t> shape,
                    std::span<const uint8_t> data);
  // Copies metadata (not tensors) from an opened file.
  void copy_metadata(const GgufFile& file);

  // A tensor whose bytes come while the file is written (write's `later`), so that producing
  // one tensor can overlap writing the one before.
  Status add_tensor_later(std::string name, TensorType type, std::span<const int64_t> shape);

  // Writes to a temporary name in the same directory, fsyncs and renames. Tensors added with
  // add_tensor_later are asked of `later` (with their index among all tensors) in file order,
  // each when its turn comes; a span of the wrong size or an error abandons the file.
  using LaterData = std::function<core::Result<std::span<const uint8_t>>(size_t index)>;
  Status write(const std::string& path, const LaterData& later = nullptr) const;
  // The written file's permissions (0644 unless set): 0600 for what was learned from a user's
  // data (adapters, training checkpoints).
  void set_file_mode(unsigned mode) { file_mode_ = mode; }

 private:
  struct PendingTensor {
    TensorInfo info;
    std::span<const uint8_t> data;
    bool later = false;
  };
  Status add(std::string name, TensorType type, std::span<const int64_t> shape, std::span<const uint8_t> data, bool later);
  std::vector<MetadataEntry> metadata_;
  std::vector<PendingTensor> tensors_;
  unsigned file_mode_ = 0644;
};

}  // namespace owl::gguf
