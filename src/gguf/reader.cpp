// GGUF reader. Every read is bounds-checked against the file size, every count is checked
// against the bytes that remain before anything is allocated, and every error names the field.
#include <algorithm>
#include <cstring>
#include <limits>

#include "gguf/gguf.h"
#include "gguf/keys.h"

namespace owl::gguf {

using core::make_error;

// Walks the header bytes. Each read_* names the field it reads so errors can say where.
class Parser {
 public:
  Parser(std::span<const uint8_t> bytes, std::string name, const ReadLimits& limits)
      : bytes_(bytes), name_(std::move(name)), limits_(limits) {}

  Result<GgufFile> parse() {
    GgufFile file;
    file.path_ = name_;
    file.size_ = bytes_.size();
    OWL_TRY(read_preamble(file));
    uint64_t n_tensors = 0;
    uint64_t n_kv = 0;
    OWL_TRY(read_scalar(n_tensors, "tensor count"));
    OWL_TRY(read_scalar(n_kv, "metadata count"));
    // A metadata entry takes at least 8 (key length) + 4 (type) + 1 bytes; a tensor info
    // 8 + 4 + 8 + 4 + 8. Counts that cannot fit in the file are refused before allocating.
    if (n_kv > remaining() / 13) {
      return fail("metadata count {} cannot fit in {} remaining bytes", n_kv, remaining());
    }
    file.metadata_.reserve(n_kv);
    for (uint64_t i = 0; i < n_kv; ++i) OWL_TRY(read_entry(file, i));
    OWL_TRY(read_alignment(file));
    if (n_tensors > remaining() / 32) {
      return fail("tensor count {} cannot fit in {} remaining bytes", n_tensors, remaining());
    }
    file.tensors_.reserve(n_tensors);
    for (uint64_t i = 0; i < n_tensors; ++i) OWL_TRY(read_tensor_info(file, i));
    const uint64_t data_offset = align_up(pos_, file.alignment_);
    if (n_tensors > 0 && data_offset > bytes_.size()) {
      return fail("data section at offset {} beyond file size {}", data_offset, bytes_.size());
    }
    file.data_offset_ = data_offset;
    OWL_TRY(place_tensors(file));
    return file;
  }

 private:
  template <typename... Args>
  core::Error fail(fmt::format_string<Args...> format, Args&&... args) const {
    return core::Error{fmt::format("gguf: {}: ", name_) +
                       fmt::format(format, std::forward<Args>(args)...)};
  }

  uint64_t remaining() const { return bytes_.size() - pos_; }
  static uint64_t align_up(uint64_t x, uint64_t a) { return (x + a - 1) / a * a; }

  template <typename T>
  Status read_scalar(T& out, std::string_view what) {
    if (remaining() < sizeof(T)) {
      return fail("truncated at offset {} reading {} ({} bytes needed, {} left)", pos_, what,
                  sizeof(T), remaining());
    }
    std::memcpy(&out, bytes_.data() + pos_, sizeof(T));
    pos_ += sizeof(T);
    return {};
  }

  Status read_string(std::string& out, std::string_view what) {
    uint64_t length = 0;
    OWL_TRY(read_scalar(length, what));
    if (length > limits_.max_string_bytes || length > remaining()) {
      return fail("{}: string length {} at offset {} exceeds the {} bytes left", what, length,
                  pos_ - 8, remaining());
    }
    out.assign(reinterpret_cast<const char*>(bytes_.data() + pos_), length);
    pos_ += length;
    return {};
  }

  Status read_preamble(GgufFile& file) {
    uint32_t magic = 0;
    OWL_TRY(read_scalar(magic, "magic"));
    if (magic != kMagic) return fail("bad magic 0x{:08x} (expected 0x{:08x} \"GGUF\")", magic, kMagic);
    OWL_TRY(read_scalar(file.version_, "version"));
    if (file.version_ != 2 && file.version_ != 3) {
      return fail("unsupported version {} (owl reads versions 2 and 3)", file.version_);
    }
    return {};
  }

  Status read_entry(GgufFile& file, uint64_t index) {
    MetadataEntry entry;
    OWL_TRY(read_string(entry.key, fmt::format("metadata key #{}", index)));
    uint32_t raw_type = 0;
    OWL_TRY(read_scalar(raw_type, fmt::format("type of metadata '{}'", entry.key)));
    OWL_TRY(read_value(entry.value, raw_type, entry.key, 0));
    if (file.metadata_index_.count(entry.key) != 0) return fail("duplicate metadata key '{}'", entry.key);
    file.metadata_index_.emplace(entry.key, file.metadata_.size());
    file.metadata_.push_back(std::move(entry));
    return {};
  }

  static int64_t min_value_bytes(ValueType type) {
    switch (type) {
      case ValueType::U8: case ValueType::I8: case ValueType::BOOL: return 1;
      case ValueType::U16: case ValueType::I16: return 2;
      case ValueType::U32: case ValueType::I32: case ValueType::F32: return 4;
      case ValueType::U64: case ValueType::I64: case ValueType::F64: return 8;
      case ValueType::STRING: return 8;
      case ValueType::ARRAY: return 12;
    }
    return 1;
  }

  template <typename Stored, typename Raw>
  Status read_as(Value& value, ValueType type, const std::string& key) {
    Raw raw{};
    OWL_TRY(read_scalar(raw, fmt::format("value of metadata '{}'", key)));
    value.type = type;
    value.data = static_cast<Stored>(raw);
    return {};
  }

  Status read_value(Value& value, uint32_t raw_type, const std::string& key, int depth) {
    if (raw_type > static_cast<uint32_t>(ValueType::F64)) {
      return fail("metadata '{}': unknown value type {}", key, raw_type);
    }
    const auto type = static_cast<ValueType>(raw_type);
    switch (type) {
      case ValueType::U8: return read_as<uint64_t, uint8_t>(value, type, key);
      case ValueType::U16: return read_as<uint64_t, uint16_t>(value, type, key);
      case ValueType::U32: return read_as<uint64_t, uint32_t>(value, type, key);
      case ValueType::U64: return read_as<uint64_t, uint64_t>(value, type, key);
      case ValueType::I8: return read_as<int64_t, int8_t>(value, type, key);
      case ValueType::I16: return read_as<int64_t, int16_t>(value, type, key);
      case ValueType::I32: return read_as<int64_t, int32_t>(value, type, key);
      case ValueType::I64: return read_as<int64_t, int64_t>(value, type, key);
      case ValueType::F32: return read_as<double, float>(value, type, key);
      case ValueType::F64: return read_as<double, double>(value, type, key);
      case ValueType::BOOL: {
        uint8_t raw = 0;
        OWL_TRY(read_scalar(raw, fmt::format("value of metadata '{}'", key)));
        if (raw > 1) return fail("metadata '{}': invalid bool value {}", key, raw);
        value = Value::boolean(raw != 0);
        return {};
      }
      case ValueType::STRING: {
        std::string s;
        OWL_TRY(read_string(s, fmt::format("value of metadata '{}'", key)));
        value = Value::string(std::move(s));
        return {};
      }
      case ValueType::ARRAY: return read_array(value, key, depth);
    }
    return {};
  }

  Status read_array(Value& value, const std::string& key, int depth) {
    if (depth >= limits_.max_array_depth) {
      return fail("metadata '{}': arrays nested deeper than {}", key, limits_.max_array_depth);
    }
    uint32_t raw_elem = 0;
    uint64_t count = 0;
    OWL_TRY(read_scalar(raw_elem, fmt::format("element type of metadata '{}'", key)));
    OWL_TRY(read_scalar(count, fmt::format("length of metadata '{}'", key)));
    if (raw_elem > static_cast<uint32_t>(ValueType::F64)) {
      return fail("metadata '{}': unknown array element type {}", key, raw_elem);
    }
    const auto elem = static_cast<ValueType>(raw_elem);
    const uint64_t min_bytes = static_cast<uint64_t>(min_value_bytes(elem));
    if (count > limits_.max_array_items || count > remaining() / min_bytes) {
      return fail("metadata '{}': array length {} cannot fit in the {} bytes left", key, count,
                  remaining());
    }
    Array array;
    array.element_type = elem;
    array.items.resize(count);
    for (uint64_t i = 0; i < count; ++i) {
      OWL_TRY(read_value(array.items[i], raw_elem, key, depth + 1));
    }
    value = Value::array(std::move(array));
    return {};
  }

  Status read_alignment(GgufFile& file) {
    const Value* value = file.find(keys::kGeneralAlignment);
    if (value == nullptr) return {};
    const std::optional<int64_t> a = value->as_int();
    if (value->type != ValueType::U32 || !a) {
      return fail("{} has type {} (expected u32)", keys::kGeneralAlignment, value_type_name(value->type));
    }
    if (*a == 0 || (*a & (*a - 1)) != 0) return fail("{} {} is not a power of two", keys::kGeneralAlignment, *a);
    file.alignment_ = static_cast<uint32_t>(*a);
    return {};
  }

  Status read_tensor_info(GgufFile& file, uint64_t index) {
    TensorInfo info;
    OWL_TRY(read_string(info.name, fmt::format("name of tensor #{}", index)));
    uint32_t n_dims = 0;
    OWL_TRY(read_scalar(n_dims, fmt::format("n_dims of tensor '{}'", info.name)));
    if (n_dims == 0 || n_dims > kMaxDims) {
      return fail("tensor '{}': n_dims {} out of range 1..{}", info.name, n_dims, kMaxDims);
    }
    info.n_dims = static_cast<int>(n_dims);
    for (uint32_t d = 0; d < n_dims; ++d) {
      uint64_t ne = 0;
      OWL_TRY(read_scalar(ne, fmt::format("ne[{}] of tensor '{}'", d, info.name)));
      if (ne == 0 || ne > static_cast<uint64_t>(std::numeric_limits<int64_t>::max())) {
        return fail("tensor '{}': ne[{}] = {} out of range", info.name, d, ne);
      }
      info.ne[d] = static_cast<int64_t>(ne);
    }
    uint32_t raw_type = 0;
    OWL_TRY(read_scalar(raw_type, fmt::format("type of tensor '{}'", info.name)));
    OWL_TRY(read_scalar(info.offset, fmt::format("offset of tensor '{}'", info.name)));
    const TensorTypeInfo* type = find_type_info(raw_type);
    if (type == nullptr) return fail("tensor '{}': unknown tensor type {}", info.name, raw_type);
    info.type = type->type;
    OWL_TRY(compute_size(info, *type));
    if (file.tensor_index_.count(info.name) != 0) return fail("duplicate tensor name '{}'", info.name);
    file.tensor_index_.emplace(info.name, file.tensors_.size());
    file.tensors_.push_back(std::move(info));
    return {};
  }

  Status compute_size(TensorInfo& info, const TensorTypeInfo& type) const {
    if (info.ne[0] % type.block_size != 0) {
      return fail("tensor '{}': row length {} is not a multiple of the {} block size {}", info.name,
                  info.ne[0], type.name, type.block_size);
    }
    // The whole tensor must fit in the file, so bound the products by the file size.
    const auto limit = static_cast<uint64_t>(bytes_.size());
    uint64_t elements = 1;
    for (int d = 0; d < info.n_dims; ++d) {
      const auto ne = static_cast<uint64_t>(info.ne[d]);
      if (elements > std::numeric_limits<uint64_t>::max() / ne ||
          elements * ne > static_cast<uint64_t>(std::numeric_limits<int64_t>::max())) {
        return fail("tensor '{}': element count overflows ({} x {})", info.name, elements, ne);
      }
      elements *= ne;
    }
    const uint64_t blocks = elements / static_cast<uint64_t>(type.block_size);
    const auto block_bytes = static_cast<uint64_t>(type.type_size);
    if (blocks > limit / block_bytes + 1) {
      return fail("tensor '{}': {} elements of {} ({} blocks) exceed file size {}", info.name,
                  elements, type.name, blocks, limit);
    }
    info.n_bytes = blocks * block_bytes;
    return {};
  }

  Status place_tensors(GgufFile& file) {
    const uint64_t data_size = bytes_.size() - std::min<uint64_t>(file.data_offset_, bytes_.size());
    std::vector<std::pair<uint64_t, size_t>> order;
    order.reserve(file.tensors_.size());
    for (size_t i = 0; i < file.tensors_.size(); ++i) {
      TensorInfo& t = file.tensors_[i];
      if (t.offset % file.alignment_ != 0) {
        return fail("tensor '{}': data offset {} is not a multiple of the alignment {}", t.name,
                    t.offset, file.alignment_);
      }
      if (t.offset > data_size || t.n_bytes > data_size - t.offset) {
        return fail("tensor '{}': data at offset {} + {} bytes beyond the {} bytes of data", t.name,
                    t.offset, t.n_bytes, data_size);
      }
      t.data = bytes_.data() + file.data_offset_ + t.offset;
      order.emplace_back(t.offset, i);
    }
    std::sort(order.begin(), order.end());
    for (size_t k = 1; k < order.size(); ++k) {
      const TensorInfo& prev = file.tensors_[order[k - 1].second];
      const TensorInfo& cur = file.tensors_[order[k].second];
      if (prev.offset + prev.n_bytes > cur.offset) {
        return fail("tensor '{}': data at offset {} overlaps tensor '{}' ({} bytes at {})", cur.name,
                    cur.offset, prev.name, prev.n_bytes, prev.offset);
      }
    }
    return {};
  }

  std::span<const uint8_t> bytes_;
  std::string name_;
  ReadLimits limits_;
  uint64_t pos_ = 0;
};

Result<GgufFile> GgufFile::parse(std::span<const uint8_t> bytes, const std::string& name,
                                 const ReadLimits& limits) {
  return Parser(bytes, name, limits).parse();
}

Result<GgufFile> GgufFile::open(const std::string& path, const OpenOptions& options) {
  auto map = core::MappedFile::open(path, options.populate);
  if (!map) return core::Error{"gguf: " + map.message()};
  auto shared = std::make_shared<core::MappedFile>(std::move(*map));
  auto file = parse(std::span<const uint8_t>(shared->data(), shared->size()), path, options.limits);
  if (!file) return file.error();
  file->map_ = std::move(shared);
  return file;
}

}  // namespace owl::gguf
