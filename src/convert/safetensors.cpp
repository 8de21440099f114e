// safetensors reader (validated, over a memory map) and atomic writer.
#include "convert/safetensors.h"

#include <nlohmann/json.hpp>

namespace owl::convert {

using core::make_error;

namespace {

constexpr uint64_t kMaxHeaderBytes = uint64_t{100} << 20;  // the format's own limit
constexpr int kMaxJsonDepth = 16;

// The deepest nesting of [ and { outside strings, so that the JSON parser's recursion stays
// bounded on hostile input.
int json_depth(std::string_view s) {
  int depth = 0, max_depth = 0;
  bool in_string = false;
  for (size_t i = 0; i < s.size(); ++i) {
    const char c = s[i];
    if (in_string) {
      if (c == '\\') ++i;
      else if (c == '"') in_string = false;
    } else if (c == '"') {
      in_string = true;
    } else if (c == '[' || c == '{') {
      max_depth = std::max(max_depth, ++depth);
    } else if (c == ']' || c == '}') {
      --depth;
    }
  }
  return max_depth;
}

core::Result<SafeTensor> parse_entry(const std::string& file, const std::string& key, const nlohmann::json& v,
                                     std::span<const uint8_t> data) {
  if (!v.is_object()) return make_error("safetensors {}: tensor '{}' is not an object", file, key);
  auto dtype = v.find("dtype");
  auto shape = v.find("shape");
  auto offsets = v.find("data_offsets");
  if (dtype == v.end() || !dtype->is_string() || shape == v.end() || !shape->is_array() || offsets == v.end() ||
      !offsets->is_array() || offsets->size() != 2) {
    return make_error("safetensors {}: tensor '{}' needs dtype, shape and data_offsets [begin, end]", file, key);
  }
  SafeTensor t;
  t.name = key;
  t.dtype = dtype->get<std::string>();
  const int64_t elem = safetensors_dtype_size(t.dtype);
  if (elem == 0) return make_error("safetensors {}: tensor '{}': unknown dtype '{}'", file, key, t.dtype);
  if (shape->size() > 8) return make_error("safetensors {}: tensor '{}' has {} dimensions", file, key, shape->size());
  uint64_t n = 1;
  for (const auto& d : *shape) {
    if (!d.is_number_unsigned()) return make_error("safetensors {}: tensor '{}': a dimension is not an unsigned integer", file, key);
    const uint64_t dim = d.get<uint64_t>();
    if (dim > (uint64_t{1} << 40) || (dim != 0 && n > (uint64_t{1} << 50) / dim)) {
      return make_error("safetensors {}: tensor '{}': shape too large", file, key);
    }
    n *= dim;
    t.shape.push_back(static_cast<int64_t>(dim));
  }
  if (!(*offsets)[0].is_number_unsigned() || !(*offsets)[1].is_number_unsigned()) {
    return make_error("safetensors {}: tensor '{}': data_offsets must be unsigned integers", file, key);
  }
  const uint64_t begin = (*offsets)[0].get<uint64_t>(), end = (*offsets)[1].get<uint64_t>();
  if (begin > end || end > data.size()) {
    return make_error("safetensors {}: tensor '{}': data_offsets [{}, {}] outside the {} data bytes", file, key, begin,
                      end, data.size());
  }
  if (end - begin != n * static_cast<uint64_t>(elem)) {
    return make_error("safetensors {}: tensor '{}': {} bytes for {} elements of {}", file, key, end - begin, n, t.dtype);
  }
  t.data = data.subspan(begin, end - begin);
  return t;
}

}  // namespace

int64_t SafeTensor::n_elements() const {
  int64_t n = 1;
  for (int64_t d : shape) n *= d;
  return n;
}

int64_t safetensors_dtype_size(std::string_view dtype) {
  if (dtype == "F64" || dtype == "I64" || dtype == "U64") return 8;
  if (dtype == "F32" || dtype == "I32" || dtype == "U32") return 4;
  if (dtype == "F16" || dtype == "BF16" || dtype == "I16" || dtype == "U16") return 2;
  if (dtype == "I8" || dtype == "U8" || dtype == "BOOL" || dtype == "F8_E4M3" || dtype == "F8_E5M2") return 1;
  return 0;
}

core::Result<SafetensorsHeader> parse_safetensors(std::span<const uint8_t> bytes, const std::string& name) {
  if (bytes.size() < 8) return make_error("safetensors {}: {} bytes, too short for a header", name, bytes.size());
  uint64_t n = 0;
  for (int i = 7; i >= 0; --i) n = (n << 8) | bytes[static_cast<size_t>(i)];
  if (n > kMaxHeaderBytes || n > bytes.size() - 8) {
    return make_error("safetensors {}: header length {} beyond the file size {}", name, n, bytes.size());
  }
  const std::string_view text(reinterpret_cast<const char*>(bytes.data() + 8), static_cast<size_t>(n));
  if (json_depth(text) > kMaxJsonDepth) return make_error("safetensors {}: header nested too deeply", name);
  nlohmann::json j = nlohmann::json::parse(text, nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded() || !j.is_object()) return make_error("safetensors {}: header is not a JSON object", name);
  const std::span<const uint8_t> data = bytes.subspan(8 + static_cast<size_t>(n));
  SafetensorsHeader h;
  for (auto it = j.begin(); it != j.end(); ++it) {
    if (it.key() == "__metadata__") {
      if (!it->is_object()) return make_error("safetensors {}: __metadata__ is not an object", name);
      for (auto m = it->begin(); m != it->end(); ++m) {
        if (m->is_string()) h.metadata[m.key()] = m->get<std::string>();
      }
      continue;
    }
    auto t = parse_entry(name, it.key(), *it, data);
    if (!t) return t.error();
    h.tensors.push_back(std::move(*t));
  }
  return h;
}

core::Result<SafetensorsFile> SafetensorsFile::open(const std::string& path) {
  auto map = core::MappedFile::open(path);
  if (!map) return map.error();
  SafetensorsFile f;
  f.map_ = std::make_shared<core::MappedFile>(std::move(*map));
  auto h = parse_safetensors({f.map_->data(), f.map_->size()}, path);
  if (!h) return h.error();
  f.header_ = std::move(*h);
  return f;
}

core::Status write_safetensors(const std::string& path, const std::vector<SafeTensorOut>& tensors,
                               const std::map<std::string, std::string>& metadata) {
  nlohmann::ordered_json j;
  if (!metadata.empty()) j["__metadata__"] = metadata;
  uint64_t offset = 0;
  for (const SafeTensorOut& t : tensors) {
    j[t.name] = {{"dtype", t.dtype}, {"shape", t.shape}, {"data_offsets", {offset, offset + t.data.size()}}};
    offset += t.data.size();
  }
  std::string header = j.dump();
  header.append((8 - header.size() % 8) % 8, ' ');
  auto file = core::AtomicFile::create(path);
  if (!file) return file.error();
  uint8_t len[8];
  for (int i = 0; i < 8; ++i) len[i] = static_cast<uint8_t>(static_cast<uint64_t>(header.size()) >> (8 * i));
  OWL_TRY(file->write(len, 8));
  OWL_TRY(file->write(header));
  for (const SafeTensorOut& t : tensors) OWL_TRY(file->write(t.data.data(), t.data.size()));
  return file->commit();
}

}  // namespace owl::convert
