// Metadata values and the typed getters of GgufFile.
#include <cmath>

#include "gguf/gguf.h"

namespace owl::gguf {

using core::make_error;

std::string_view value_type_name(ValueType type) {
  switch (type) {
    case ValueType::U8: return "u8";
    case ValueType::I8: return "i8";
    case ValueType::U16: return "u16";
    case ValueType::I16: return "i16";
    case ValueType::U32: return "u32";
    case ValueType::I32: return "i32";
    case ValueType::F32: return "f32";
    case ValueType::BOOL: return "bool";
    case ValueType::STRING: return "string";
    case ValueType::ARRAY: return "array";
    case ValueType::U64: return "u64";
    case ValueType::I64: return "i64";
    case ValueType::F64: return "f64";
  }
  return "unknown";
}

bool Value::is_integer() const {
  return std::holds_alternative<uint64_t>(data) || std::holds_alternative<int64_t>(data);
}

std::optional<int64_t> Value::as_int() const {
  if (const auto* u = std::get_if<uint64_t>(&data)) {
    if (*u > static_cast<uint64_t>(INT64_MAX)) return std::nullopt;
    return static_cast<int64_t>(*u);
  }
  if (const auto* i = std::get_if<int64_t>(&data)) return *i;
  return std::nullopt;
}

std::optional<double> Value::as_float() const {
  if (const auto* d = std::get_if<double>(&data)) return *d;
  if (const auto* u = std::get_if<uint64_t>(&data)) return static_cast<double>(*u);
  if (const auto* i = std::get_if<int64_t>(&data)) return static_cast<double>(*i);
  return std::nullopt;
}

const std::string* Value::as_string() const { return std::get_if<std::string>(&data); }
const Array* Value::as_array() const { return std::get_if<Array>(&data); }

std::string Value::to_display(size_t max_items) const {
  if (const auto* u = std::get_if<uint64_t>(&data)) return std::to_string(*u);
  if (const auto* i = std::get_if<int64_t>(&data)) return std::to_string(*i);
  if (const auto* d = std::get_if<double>(&data)) return fmt::format("{:g}", *d);
  if (const auto* b = std::get_if<bool>(&data)) return *b ? "true" : "false";
  if (const auto* s = std::get_if<std::string>(&data)) {
    constexpr size_t kMaxChars = 60;
    std::string shown = s->size() > kMaxChars ? s->substr(0, kMaxChars) + "..." : *s;
    for (char& c : shown) {
      if (c == '\n' || c == '\r' || c == '\t') c = ' ';
    }
    return fmt::format("\"{}\"", shown);
  }
  const Array& a = std::get<Array>(data);
  std::string out = fmt::format("[{} x {}: ", a.items.size(), value_type_name(a.element_type));
  for (size_t i = 0; i < a.items.size() && i < max_items; ++i) {
    if (i > 0) out += ", ";
    out += a.items[i].to_display(max_items);
  }
  if (a.items.size() > max_items) out += ", ...";
  return out + "]";
}

const Value* GgufFile::find(std::string_view key) const {
  auto it = metadata_index_.find(std::string(key));
  return it == metadata_index_.end() ? nullptr : &metadata_[it->second].value;
}

const TensorInfo* GgufFile::find_tensor(std::string_view name) const {
  auto it = tensor_index_.find(std::string(name));
  return it == tensor_index_.end() ? nullptr : &tensors_[it->second];
}

namespace {

core::Error missing(const GgufFile& file, std::string_view key) {
  return make_error("gguf: {}: missing metadata '{}'", file.path(), key);
}

core::Error wrong_type(const GgufFile& file, std::string_view key, const Value& v,
                       std::string_view expected) {
  return make_error("gguf: {}: metadata '{}' has type {} (expected {})", file.path(), key,
                    value_type_name(v.type), expected);
}

template <typename T, typename Convert>
Result<std::vector<T>> get_array(const GgufFile& file, std::string_view key, std::string_view what,
                                 Convert convert) {
  const Value* v = file.find(key);
  if (v == nullptr) return missing(file, key);
  const Array* array = v->as_array();
  if (array == nullptr) return wrong_type(file, key, *v, what);
  std::vector<T> out;
  out.reserve(array->items.size());
  for (size_t i = 0; i < array->items.size(); ++i) {
    auto item = convert(array->items[i]);
    if (!item) {
      return make_error("gguf: {}: metadata '{}'[{}] has type {} (expected {})", file.path(), key,
                        i, value_type_name(array->items[i].type), what);
    }
    out.push_back(std::move(*item));
  }
  return out;
}

}  // namespace

Result<std::string> GgufFile::get_string(std::string_view key) const {
  const Value* v = find(key);
  if (v == nullptr) return missing(*this, key);
  if (const std::string* s = v->as_string()) return *s;
  return wrong_type(*this, key, *v, "string");
}

Result<int64_t> GgufFile::get_int(std::string_view key) const {
  const Value* v = find(key);
  if (v == nullptr) return missing(*this, key);
  if (auto i = v->as_int()) return *i;
  return wrong_type(*this, key, *v, "integer");
}

Result<double> GgufFile::get_float(std::string_view key) const {
  const Value* v = find(key);
  if (v == nullptr) return missing(*this, key);
  if (auto d = v->as_float()) return *d;
  return wrong_type(*this, key, *v, "number");
}

Result<bool> GgufFile::get_bool(std::string_view key) const {
  const Value* v = find(key);
  if (v == nullptr) return missing(*this, key);
  if (const bool* b = std::get_if<bool>(&v->data)) return *b;
  return wrong_type(*this, key, *v, "bool");
}

Result<std::vector<std::string>> GgufFile::get_string_array(std::string_view key) const {
  return get_array<std::string>(*this, key, "string", [](const Value& item) {
    const std::string* s = item.as_string();
    return s ? std::optional<std::string>(*s) : std::nullopt;
  });
}

Result<std::vector<double>> GgufFile::get_float_array(std::string_view key) const {
  return get_array<double>(*this, key, "number", [](const Value& item) { return item.as_float(); });
}

Result<std::vector<int64_t>> GgufFile::get_int_array(std::string_view key) const {
  return get_array<int64_t>(*this, key, "integer", [](const Value& item) { return item.as_int(); });
}

Result<std::string> GgufFile::get_string_or(std::string_view key, std::string fallback) const {
  return find(key) ? get_string(key) : Result<std::string>(std::move(fallback));
}
Result<int64_t> GgufFile::get_int_or(std::string_view key, int64_t fallback) const {
  return find(key) ? get_int(key) : Result<int64_t>(fallback);
}
Result<double> GgufFile::get_float_or(std::string_view key, double fallback) const {
  return find(key) ? get_float(key) : Result<double>(fallback);
}
Result<bool> GgufFile::get_bool_or(std::string_view key, bool fallback) const {
  return find(key) ? get_bool(key) : Result<bool>(fallback);
}

}  // namespace owl::gguf
