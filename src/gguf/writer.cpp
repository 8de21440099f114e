// GGUF writer: version 3, tensors in insertion order, each aligned, zero padding.
#include <cstring>

#include "gguf/gguf.h"
#include "gguf/keys.h"

namespace owl::gguf {

using core::make_error;

namespace {

// Serializes the header into memory; the data follows it straight from the tensors' buffers.
class HeaderBuilder {
 public:
  template <typename T>
  void scalar(T v) {
    const auto* p = reinterpret_cast<const uint8_t*>(&v);
    out_.insert(out_.end(), p, p + sizeof(T));
  }
  void string(std::string_view s) {
    scalar<uint64_t>(s.size());
    out_.insert(out_.end(), s.begin(), s.end());
  }
  void value(const Value& v) {
    switch (v.type) {
      case ValueType::U8: scalar<uint8_t>(static_cast<uint8_t>(std::get<uint64_t>(v.data))); break;
      case ValueType::U16: scalar<uint16_t>(static_cast<uint16_t>(std::get<uint64_t>(v.data))); break;
      case ValueType::U32: scalar<uint32_t>(static_cast<uint32_t>(std::get<uint64_t>(v.data))); break;
      case ValueType::U64: scalar<uint64_t>(std::get<uint64_t>(v.data)); break;
      case ValueType::I8: scalar<int8_t>(static_cast<int8_t>(std::get<int64_t>(v.data))); break;
      case ValueType::I16: scalar<int16_t>(static_cast<int16_t>(std::get<int64_t>(v.data))); break;
      case ValueType::I32: scalar<int32_t>(static_cast<int32_t>(std::get<int64_t>(v.data))); break;
      case ValueType::I64: scalar<int64_t>(std::get<int64_t>(v.data)); break;
      case ValueType::F32: scalar<float>(static_cast<float>(std::get<double>(v.data))); break;
      case ValueType::F64: scalar<double>(std::get<double>(v.data)); break;
      case ValueType::BOOL: scalar<uint8_t>(std::get<bool>(v.data) ? 1 : 0); break;
      case ValueType::STRING: string(std::get<std::string>(v.data)); break;
      case ValueType::ARRAY: {
        const Array& a = std::get<Array>(v.data);
        scalar<uint32_t>(static_cast<uint32_t>(a.element_type));
        scalar<uint64_t>(a.items.size());
        for (const Value& item : a.items) value(item);
        break;
      }
    }
  }
  std::vector<uint8_t>& bytes() { return out_; }

 private:
  std::vector<uint8_t> out_;
};

uint64_t align_up(uint64_t x, uint64_t a) { return (x + a - 1) / a * a; }

}  // namespace

void GgufWriter::set(std::string key, Value value) {
  for (MetadataEntry& entry : metadata_) {
    if (entry.key == key) {
      entry.value = std::move(value);
      return;
    }
  }
  metadata_.push_back({std::move(key), std::move(value)});
}

void GgufWriter::copy_metadata(const GgufFile& file) {
  for (const MetadataEntry& entry : file.metadata()) set(entry.key, entry.value);
}

Status GgufWriter::add_tensor(std::string name, TensorType type, std::span<const int64_t> shape,
                              std::span<const uint8_t> data) {
  return add(std::move(name), type, shape, data, false);
}

Status GgufWriter::add_tensor_later(std::string name, TensorType type, std::span<const int64_t> shape) {
  return add(std::move(name), type, shape, {}, true);
}

Status GgufWriter::add(std::string name, TensorType type, std::span<const int64_t> shape, std::span<const uint8_t> data,
                       bool later) {
  if (shape.empty() || shape.size() > static_cast<size_t>(kMaxDims)) {
    return make_error("gguf writer: tensor '{}': {} dimensions (1..{} allowed)", name, shape.size(),
                      kMaxDims);
  }
  for (const PendingTensor& t : tensors_) {
    if (t.info.name == name) return make_error("gguf writer: duplicate tensor name '{}'", name);
  }
  TensorInfo info;
  info.name = std::move(name);
  info.type = type;
  info.n_dims = static_cast<int>(shape.size());
  for (size_t d = 0; d < shape.size(); ++d) info.ne[d] = shape[d];
  const TensorTypeInfo& ti = type_info(type);
  if (info.ne[0] % ti.block_size != 0) {
    return make_error("gguf writer: tensor '{}': row length {} is not a multiple of the {} block size {}",
                      info.name, info.ne[0], ti.name, ti.block_size);
  }
  info.n_bytes = static_cast<uint64_t>(info.n_elements() / ti.block_size * ti.type_size);
  if (!later && data.size() != info.n_bytes) {
    return make_error("gguf writer: tensor '{}': {} bytes given, {} expected for {} {} elements",
                      info.name, data.size(), info.n_bytes, info.n_elements(), ti.name);
  }
  tensors_.push_back({std::move(info), data, later});
  return {};
}

Status GgufWriter::write(const std::string& path, const LaterData& later) const {
  uint64_t alignment = kDefaultAlignment;
  for (const MetadataEntry& entry : metadata_) {
    if (entry.key != keys::kGeneralAlignment) continue;
    const auto a = entry.value.as_int();
    if (entry.value.type != ValueType::U32 || !a || *a <= 0 || (*a & (*a - 1)) != 0) {
      return make_error("gguf writer: {} {} is not a power-of-two u32", keys::kGeneralAlignment,
                        entry.value.to_display());
    }
    alignment = static_cast<uint64_t>(*a);
  }
  HeaderBuilder header;
  header.scalar<uint32_t>(kMagic);
  header.scalar<uint32_t>(3);
  header.scalar<uint64_t>(tensors_.size());
  header.scalar<uint64_t>(metadata_.size());
  for (const MetadataEntry& entry : metadata_) {
    header.string(entry.key);
    header.scalar<uint32_t>(static_cast<uint32_t>(entry.value.type));
    header.value(entry.value);
  }
  uint64_t offset = 0;
  for (const PendingTensor& t : tensors_) {
    header.string(t.info.name);
    header.scalar<uint32_t>(static_cast<uint32_t>(t.info.n_dims));
    for (int d = 0; d < t.info.n_dims; ++d) header.scalar<uint64_t>(static_cast<uint64_t>(t.info.ne[d]));
    header.scalar<uint32_t>(static_cast<uint32_t>(t.info.type));
    header.scalar<uint64_t>(offset);
    offset = align_up(offset + t.info.n_bytes, alignment);
  }
  auto file = core::AtomicFile::create(path, file_mode_);
  if (!file) return file.error();
  std::vector<uint8_t>& bytes = header.bytes();
  OWL_TRY(file->write(bytes.data(), bytes.size()));
  if (!tensors_.empty()) {  // as llama.cpp: a file without tensors ends after its metadata
    OWL_TRY(file->write_zeros(align_up(bytes.size(), alignment) - bytes.size()));
  }
  for (size_t i = 0; i < tensors_.size(); ++i) {
    const PendingTensor& t = tensors_[i];
    std::span<const uint8_t> data = t.data;
    if (t.later) {
      if (!later) return make_error("gguf writer: tensor '{}' has no data (nothing gives it)", t.info.name);
      auto given = later(i);
      if (!given) return given.error();
      data = *given;
      if (data.size() != t.info.n_bytes) {
        return make_error("gguf writer: tensor '{}': {} bytes given, {} expected", t.info.name, data.size(), t.info.n_bytes);
      }
    }
    OWL_TRY(file->write(data.data(), data.size()));
    OWL_TRY(file->write_zeros(align_up(data.size(), alignment) - data.size()));
  }
  return file->commit();
}

}  // namespace owl::gguf
