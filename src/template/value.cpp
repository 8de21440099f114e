#include "template/value.h"

#include <algorithm>
#include <charconv>
#include <cmath>
#include <cstring>

#include <fmt/format.h>

namespace owl::tmpl {

void throw_error(std::string message) { throw RenderError{std::move(message)}; }

Value Value::undefined(std::string hint) {
  Value v;
  v.data_ = Undefined{std::make_shared<const std::string>(std::move(hint))};
  return v;
}

Value Value::make_list(std::vector<Value> items, bool tuple) {
  auto list = std::make_shared<List>();
  list->items = std::move(items);
  list->is_tuple = tuple;
  return Value(std::move(list));
}

Value Value::markup(std::string s) {
  Value v(std::move(s));
  v.markup_ = true;
  return v;
}

Value Value::string_like(const Value& like, std::string text) {
  return like.is_markup() ? markup(std::move(text)) : Value(std::move(text));
}

std::string html_escape(std::string_view s) {
  std::string out;
  out.reserve(s.size());
  for (char c : s) {
    switch (c) {
      case '&': out += "&amp;"; break;
      case '<': out += "&lt;"; break;
      case '>': out += "&gt;"; break;
      case '"': out += "&#34;"; break;
      case '\'': out += "&#39;"; break;
      default: out += c;
    }
  }
  return out;
}

Value Value::make_dict() { return Value(std::make_shared<Dict>()); }

Value Value::from_json(const nlohmann::ordered_json& j) {
  switch (j.type()) {
    case nlohmann::ordered_json::value_t::null: return none();
    case nlohmann::ordered_json::value_t::boolean: return Value(j.get<bool>());
    case nlohmann::ordered_json::value_t::number_integer: return Value(j.get<int64_t>());
    case nlohmann::ordered_json::value_t::number_unsigned: {
      uint64_t u = j.get<uint64_t>();
      if (u <= static_cast<uint64_t>(INT64_MAX)) return Value(static_cast<int64_t>(u));
      return Value(static_cast<double>(u));
    }
    case nlohmann::ordered_json::value_t::number_float: return Value(j.get<double>());
    case nlohmann::ordered_json::value_t::string: return Value(j.get<std::string>());
    case nlohmann::ordered_json::value_t::array: {
      std::vector<Value> items;
      items.reserve(j.size());
      for (const auto& item : j) items.push_back(from_json(item));
      return make_list(std::move(items));
    }
    case nlohmann::ordered_json::value_t::object: {
      Value d = make_dict();
      for (const auto& [key, item] : j.items()) d.as_dict().items.emplace_back(Value(key), from_json(item));
      return d;
    }
    default: return none();  // binary and discarded values do not come from JSON text
  }
}

double Value::to_double() const {
  if (is_int()) return static_cast<double>(as_int());
  if (is_bool()) return as_bool() ? 1.0 : 0.0;
  return as_float();
}

const std::string* Value::undefined_hint() const {
  if (!is_undefined()) return nullptr;
  return std::get<Undefined>(data_).hint.get();
}

bool Value::truthy() const {
  switch (type()) {
    case Type::Undefined:
    case Type::None: return false;
    case Type::Bool: return as_bool();
    case Type::Int: return as_int() != 0;
    case Type::Float: return as_float() != 0.0;
    case Type::String: return !as_string().empty();
    case Type::List: return !as_list().items.empty();
    case Type::Dict: return as_dict().kind != Dict::Kind::Plain || !as_dict().items.empty();
    case Type::Callable: return true;
  }
  return false;
}

std::string format_float(double v) {
  if (std::isnan(v)) return "nan";
  if (std::isinf(v)) return v > 0 ? "inf" : "-inf";
  // Shortest round-trip digits in scientific form, then laid out as Python's repr does:
  // positional for exponents in [-4, 16), scientific otherwise.
  char buf[64];
  auto res = std::to_chars(buf, buf + sizeof(buf), v, std::chars_format::scientific);
  std::string sci(buf, res.ptr);
  bool negative = sci[0] == '-';
  if (negative) sci.erase(0, 1);
  size_t e_pos = sci.find('e');
  int exponent = std::stoi(sci.substr(e_pos + 1));
  std::string digits;
  for (char c : sci.substr(0, e_pos)) {
    if (c != '.') digits += c;
  }
  while (digits.size() > 1 && digits.back() == '0') digits.pop_back();
  std::string out = negative ? "-" : "";
  if (exponent >= -4 && exponent < 16) {
    if (exponent < 0) {
      out += "0." + std::string(static_cast<size_t>(-exponent - 1), '0') + digits;
    } else if (static_cast<int>(digits.size()) <= exponent + 1) {
      out += digits + std::string(static_cast<size_t>(exponent + 1) - digits.size(), '0') + ".0";
    } else {
      out += digits.substr(0, static_cast<size_t>(exponent + 1)) + "." +
             digits.substr(static_cast<size_t>(exponent + 1));
    }
    return out;
  }
  out += digits.substr(0, 1);
  if (digits.size() > 1) out += "." + digits.substr(1);
  out += fmt::format("e{}{:02d}", exponent < 0 ? '-' : '+', std::abs(exponent));
  return out;
}

std::vector<std::string_view> split_code_points(std::string_view s) {
  std::vector<std::string_view> out;
  out.reserve(s.size());
  size_t i = 0;
  while (i < s.size()) {
    auto c = static_cast<unsigned char>(s[i]);
    size_t n = c < 0x80 ? 1 : (c >> 5) == 0x6 ? 2 : (c >> 4) == 0xE ? 3 : (c >> 3) == 0x1E ? 4 : 1;
    if (i + n > s.size()) n = 1;
    for (size_t k = 1; k < n; ++k) {
      if ((static_cast<unsigned char>(s[i + k]) & 0xC0) != 0x80) {
        n = 1;
        break;
      }
    }
    out.push_back(s.substr(i, n));
    i += n;
  }
  return out;
}

size_t count_code_points(std::string_view s) {
  size_t n = 0;
  for (char c : s) n += (static_cast<unsigned char>(c) & 0xC0) != 0x80;
  return n;
}

std::string repr_string(std::string_view s) {
  bool has_single = s.find('\'') != std::string_view::npos;
  bool has_double = s.find('"') != std::string_view::npos;
  char quote = has_single && !has_double ? '"' : '\'';
  std::string out(1, quote);
  for (char ch : s) {
    auto c = static_cast<unsigned char>(ch);
    if (ch == quote || ch == '\\') {
      out += '\\';
      out += ch;
    } else if (ch == '\n') {
      out += "\\n";
    } else if (ch == '\r') {
      out += "\\r";
    } else if (ch == '\t') {
      out += "\\t";
    } else if (c < 0x20 || c == 0x7f) {
      out += fmt::format("\\x{:02x}", c);
    } else {
      out += ch;
    }
  }
  out += quote;
  return out;
}

namespace {

std::string repr_items(const List& list) {
  std::string out = list.is_tuple ? "(" : "[";
  for (size_t i = 0; i < list.items.size(); ++i) {
    if (i) out += ", ";
    out += list.items[i].repr();
  }
  if (list.is_tuple && list.items.size() == 1) out += ",";
  out += list.is_tuple ? ")" : "]";
  return out;
}

std::string repr_dict(const Dict& dict) {
  std::string out = "{";
  for (size_t i = 0; i < dict.items.size(); ++i) {
    if (i) out += ", ";
    out += dict.items[i].first.repr() + ": " + dict.items[i].second.repr();
  }
  return out + "}";
}

}  // namespace

std::string Value::str() const {
  switch (type()) {
    case Type::Undefined: return "";
    case Type::String: return as_string();
    default: return repr();
  }
}

std::string Value::repr() const {
  switch (type()) {
    case Type::Undefined: return "Undefined";
    case Type::None: return "None";
    case Type::Bool: return as_bool() ? "True" : "False";
    case Type::Int: return std::to_string(as_int());
    case Type::Float: return format_float(as_float());
    case Type::String: return repr_string(as_string());
    case Type::List: return repr_items(as_list());
    case Type::Dict: {
      const Dict& d = as_dict();
      if (d.kind == Dict::Kind::Namespace) return "<Namespace " + repr_dict(d) + ">";
      if (d.kind == Dict::Kind::Loop) return "<LoopContext>";
      return repr_dict(d);
    }
    case Type::Callable: return "<function " + as_callable().name + ">";
  }
  return "";
}

std::string Value::type_name() const {
  switch (type()) {
    case Type::Undefined: return "Undefined";
    case Type::None: return "NoneType";
    case Type::Bool: return "bool";
    case Type::Int: return "int";
    case Type::Float: return "float";
    case Type::String: return "str";
    case Type::List: return as_list().is_tuple ? "tuple" : "list";
    case Type::Dict:
      return as_dict().kind == Dict::Kind::Namespace ? "Namespace"
             : as_dict().kind == Dict::Kind::Loop    ? "LoopContext"
                                                     : "dict";
    case Type::Callable: return "function";
  }
  return "object";
}

bool Value::equals(const Value& other) const {
  if (is_number() && other.is_number()) {
    if (is_float() || other.is_float()) return to_double() == other.to_double();
    int64_t a = is_bool() ? as_bool() : as_int();
    int64_t b = other.is_bool() ? other.as_bool() : other.as_int();
    return a == b;
  }
  if (type() != other.type()) return false;
  switch (type()) {
    case Type::Undefined:
    case Type::None: return true;
    case Type::String: return as_string() == other.as_string();
    case Type::List: {
      const List& a = as_list();
      const List& b = other.as_list();
      if (a.is_tuple != b.is_tuple || a.items.size() != b.items.size()) return false;
      for (size_t i = 0; i < a.items.size(); ++i) {
        if (!a.items[i].equals(b.items[i])) return false;
      }
      return true;
    }
    case Type::Dict: {
      const Dict& a = as_dict();
      const Dict& b = other.as_dict();
      if (a.kind != Dict::Kind::Plain || b.kind != Dict::Kind::Plain) return &a == &b;
      if (a.items.size() != b.items.size()) return false;
      for (const auto& [key, value] : a.items) {
        const Value* found = b.find(key);
        if (!found || !found->equals(value)) return false;
      }
      return true;
    }
    case Type::Callable: return &as_callable() == &other.as_callable();
    default: return false;
  }
}

int Value::compare(const Value& other) const {
  if (is_number() && other.is_number()) {
    if (is_float() || other.is_float()) {
      double a = to_double(), b = other.to_double();
      return a < b ? -1 : a > b ? 1 : 0;
    }
    int64_t a = is_bool() ? as_bool() : as_int();
    int64_t b = other.is_bool() ? other.as_bool() : other.as_int();
    return a < b ? -1 : a > b ? 1 : 0;
  }
  if (is_string() && other.is_string()) {
    int c = as_string().compare(other.as_string());
    return c < 0 ? -1 : c > 0 ? 1 : 0;
  }
  if (is_list() && other.is_list() && as_list().is_tuple == other.as_list().is_tuple) {
    const auto& a = as_list().items;
    const auto& b = other.as_list().items;
    for (size_t i = 0; i < a.size() && i < b.size(); ++i) {
      if (a[i].equals(b[i])) continue;
      return a[i].compare(b[i]);
    }
    return a.size() < b.size() ? -1 : a.size() > b.size() ? 1 : 0;
  }
  throw_error(fmt::format("'<' not supported between instances of '{}' and '{}'", type_name(),
                          other.type_name()));
}

const Value* Dict::find(const Value& key) const {
  if (key.is_string()) return find(std::string_view(key.as_string()));
  for (const auto& item : items) {
    if (item.first.equals(key)) return &item.second;
  }
  return nullptr;
}

const Value* Dict::find(std::string_view key) const {
  for (const auto& item : items) {
    if (item.first.is_string() && item.first.as_string() == key) return &item.second;
  }
  return nullptr;
}

void Dict::set(Value key, Value value) {
  for (auto& item : items) {
    if (item.first.equals(key)) {
      item.second = std::move(value);
      return;
    }
  }
  items.emplace_back(std::move(key), std::move(value));
}

bool Dict::erase(const Value& key) {
  for (auto it = items.begin(); it != items.end(); ++it) {
    if (it->first.equals(key)) {
      items.erase(it);
      return true;
    }
  }
  return false;
}

const Value* CallArgs::find_keyword(std::string_view name) const {
  for (const auto& [key, value] : keyword) {
    if (key == name) return &value;
  }
  return nullptr;
}

Value make_callable(std::string name, std::function<Value(Interpreter&, CallArgs&)> fn) {
  auto c = std::make_shared<Callable>();
  c->name = std::move(name);
  c->fn = std::move(fn);
  return Value(std::move(c));
}

// ---- JSON as Python's json.dumps(ensure_ascii=False) writes it ----

namespace {

// One JSON string; with `ensure_ascii` every non-ASCII code point becomes \uXXXX (surrogate
// pairs above the BMP), as json.dumps does by default.
void json_string(std::string& out, std::string_view s, bool ensure_ascii) {
  out += '"';
  for (std::string_view cp : split_code_points(s)) {
    auto c = static_cast<unsigned char>(cp[0]);
    if (c >= 0x80) {
      if (!ensure_ascii) {
        out += cp;
        continue;
      }
      uint32_t v = cp.size() == 2 ? (c & 0x1F) : cp.size() == 3 ? (c & 0x0F) : cp.size() == 4 ? (c & 0x07) : 0xFFFD;
      for (size_t k = 1; k < cp.size(); ++k) v = (v << 6) | (static_cast<unsigned char>(cp[k]) & 0x3F);
      if (v >= 0x10000) {
        v -= 0x10000;
        out += fmt::format("\\u{:04x}\\u{:04x}", 0xD800 + (v >> 10), 0xDC00 + (v & 0x3FF));
      } else {
        out += fmt::format("\\u{:04x}", v);
      }
      continue;
    }
    switch (cp[0]) {
      case '"': out += "\\\""; break;
      case '\\': out += "\\\\"; break;
      case '\n': out += "\\n"; break;
      case '\r': out += "\\r"; break;
      case '\t': out += "\\t"; break;
      case '\b': out += "\\b"; break;
      case '\f': out += "\\f"; break;
      default:
        if (c < 0x20) {
          out += fmt::format("\\u{:04x}", c);
        } else {
          out += cp;
        }
    }
  }
  out += '"';
}

std::string json_float(double v) {
  if (std::isnan(v)) return "NaN";
  if (std::isinf(v)) return v > 0 ? "Infinity" : "-Infinity";
  return format_float(v);
}

// A dict key as json.dumps converts it: strings as they are, numbers, bools and None as text.
std::string json_key(const Value& key) {
  switch (key.type()) {
    case Value::Type::String: return key.as_string();
    case Value::Type::Int: return std::to_string(key.as_int());
    case Value::Type::Float: return json_float(key.as_float());
    case Value::Type::Bool: return key.as_bool() ? "true" : "false";
    case Value::Type::None: return "null";
    default: throw_error("keys must be str, int, float, bool or None, not " + key.type_name());
  }
}

void write_json(std::string& out, const Value& v, const JsonStyle& style, int depth) {
  if (depth > 512) throw_error("tojson: value nested too deeply");
  const std::string& item_sep = style.item_separator;
  auto newline = [&](int level) {
    if (style.indent < 0) return;
    out += '\n';
    out.append(static_cast<size_t>(style.indent) * static_cast<size_t>(level), ' ');
  };
  switch (v.type()) {
    case Value::Type::None: out += "null"; return;
    case Value::Type::Bool: out += v.as_bool() ? "true" : "false"; return;
    case Value::Type::Int: out += std::to_string(v.as_int()); return;
    case Value::Type::Float: out += json_float(v.as_float()); return;
    case Value::Type::String: json_string(out, v.as_string(), style.ensure_ascii); return;
    case Value::Type::List: {
      const auto& items = v.as_list().items;
      if (items.empty()) {
        out += "[]";
        return;
      }
      out += '[';
      for (size_t i = 0; i < items.size(); ++i) {
        if (i) out += item_sep;
        newline(depth + 1);
        write_json(out, items[i], style, depth + 1);
      }
      newline(depth);
      out += ']';
      return;
    }
    case Value::Type::Dict: {
      const Dict& d = v.as_dict();
      if (d.kind != Dict::Kind::Plain) break;
      if (d.items.empty()) {
        out += "{}";
        return;
      }
      std::vector<std::pair<std::string, const Value*>> entries;
      for (const auto& [key, item] : d.items) entries.emplace_back(json_key(key), &item);
      if (style.sort_keys) {
        std::stable_sort(entries.begin(), entries.end(),
                         [](const auto& a, const auto& b) { return a.first < b.first; });
      }
      out += '{';
      for (size_t i = 0; i < entries.size(); ++i) {
        if (i) out += item_sep;
        newline(depth + 1);
        json_string(out, entries[i].first, style.ensure_ascii);
        out += style.key_separator;
        write_json(out, *entries[i].second, style, depth + 1);
      }
      newline(depth);
      out += '}';
      return;
    }
    default: break;
  }
  throw_error("Object of type " + v.type_name() + " is not JSON serializable");
}

}  // namespace

std::string Value::to_json(const JsonStyle& style) const {
  JsonStyle s = style;
  if (!s.custom_separators) {
    s.item_separator = s.indent < 0 ? ", " : ",";
    s.key_separator = ": ";
  }
  std::string out;
  write_json(out, *this, s, 0);
  return out;
}

}  // namespace owl::tmpl
