// Python operator semantics as jinja2 templates see them (jinja2/runtime.py, sandbox.py).
#include <cmath>
#include <limits>

#include <fmt/format.h>

#include "template/interpreter.h"

namespace owl::tmpl {

void require_defined(const Value& v) {
  if (const std::string* hint = v.undefined_hint()) throw_error(*hint);
  if (v.is_undefined()) throw_error("value is undefined");
}

std::vector<Value> iterate(const Value& v) {
  switch (v.type()) {
    case Value::Type::Undefined: return {};
    case Value::Type::List: return v.as_list().items;
    case Value::Type::Dict: {
      if (v.as_dict().kind != Dict::Kind::Plain) break;
      std::vector<Value> keys;
      keys.reserve(v.as_dict().items.size());
      for (const auto& item : v.as_dict().items) keys.push_back(item.first);
      return keys;
    }
    case Value::Type::String: {
      std::vector<Value> chars;
      for (std::string_view cp : split_code_points(v.as_string())) chars.emplace_back(cp);
      return chars;
    }
    default: break;
  }
  throw_error(fmt::format("'{}' object is not iterable", v.type_name()));
}

int64_t length(const Value& v) {
  switch (v.type()) {
    case Value::Type::Undefined: return 0;
    case Value::Type::String: return static_cast<int64_t>(count_code_points(v.as_string()));
    case Value::Type::List: return static_cast<int64_t>(v.as_list().items.size());
    case Value::Type::Dict:
      if (v.as_dict().kind == Dict::Kind::Namespace) break;
      return static_cast<int64_t>(v.as_dict().items.size());
    default: break;
  }
  throw_error(fmt::format("object of type '{}' has no len()", v.type_name()));
}

bool contains(const Value& container, const Value& item) {
  switch (container.type()) {
    case Value::Type::Undefined: return false;
    case Value::Type::String:
      if (!item.is_string()) {
        throw_error(fmt::format("'in <string>' requires string as left operand, not {}", item.type_name()));
      }
      return container.as_string().find(item.as_string()) != std::string::npos;
    case Value::Type::List:
      for (const Value& v : container.as_list().items) {
        if (v.equals(item)) return true;
      }
      return false;
    case Value::Type::Dict:
      if (container.as_dict().kind != Dict::Kind::Plain) break;
      return container.as_dict().find(item) != nullptr;
    default: break;
  }
  throw_error(fmt::format("argument of type '{}' is not iterable", container.type_name()));
}

namespace {

[[noreturn]] void unsupported(std::string_view op, const Value& a, const Value& b) {
  throw_error(fmt::format("unsupported operand type(s) for {}: '{}' and '{}'", op, a.type_name(), b.type_name()));
}

int64_t int_of(const Value& v) { return v.is_bool() ? (v.as_bool() ? 1 : 0) : v.as_int(); }

Value repeat(Interpreter& in, const Value& seq, int64_t n) {
  if (n <= 0) return seq.is_string() ? Value(std::string()) : Value::make_list({}, seq.as_list().is_tuple);
  if (seq.is_string()) {
    const std::string& s = seq.as_string();
    if (!s.empty() && static_cast<uint64_t>(n) > in.options().limits.max_output_bytes / s.size()) {
      throw_error("string repetition too large");
    }
    in.charge(s.size() * static_cast<size_t>(n));
    std::string out;
    out.reserve(s.size() * static_cast<size_t>(n));
    for (int64_t i = 0; i < n; ++i) out += s;
    return Value(std::move(out));
  }
  const auto& items = seq.as_list().items;
  if (!items.empty() && static_cast<uint64_t>(n) > (uint64_t{1} << 20) / items.size()) {
    throw_error("list repetition too large");
  }
  std::vector<Value> out;
  for (int64_t i = 0; i < n; ++i) out.insert(out.end(), items.begin(), items.end());
  return Value::make_list(std::move(out), seq.as_list().is_tuple);
}

double floor_mod(double a, double b) {
  double m = std::fmod(a, b);
  if (m != 0 && ((m < 0) != (b < 0))) m += b;
  return m;
}

Value arithmetic(std::string_view op, const Value& a, const Value& b) {
  bool floats = a.is_float() || b.is_float();
  if (op == "/") {
    if (b.to_double() == 0) throw_error("division by zero");
    return Value(a.to_double() / b.to_double());
  }
  if (floats) {
    double x = a.to_double(), y = b.to_double();
    if (op == "+") return Value(x + y);
    if (op == "-") return Value(x - y);
    if (op == "*") return Value(x * y);
    if (op == "**") return Value(std::pow(x, y));
    if (y == 0) throw_error("float division by zero");
    if (op == "//") return Value(std::floor(x / y));
    return Value(floor_mod(x, y));  // %
  }
  int64_t x = int_of(a), y = int_of(b), r = 0;
  bool overflow = false;
  if (op == "+") {
    overflow = __builtin_add_overflow(x, y, &r);
  } else if (op == "-") {
    overflow = __builtin_sub_overflow(x, y, &r);
  } else if (op == "*") {
    overflow = __builtin_mul_overflow(x, y, &r);
  } else if (op == "**") {
    if (y < 0) return Value(std::pow(static_cast<double>(x), static_cast<double>(y)));
    r = 1;
    for (int64_t i = 0; i < y && !overflow; ++i) {
      overflow = __builtin_mul_overflow(r, x, &r);
      if (r == 0 || r == 1) break;
    }
    if (x == -1) r = (y % 2) ? -1 : 1;
  } else {
    if (y == 0) throw_error("integer division or modulo by zero");
    if (x == std::numeric_limits<int64_t>::min() && y == -1) throw_error("integer overflow");
    int64_t q = x / y, m = x % y;
    if (m != 0 && ((m < 0) != (y < 0))) {
      q -= 1;
      m += y;
    }
    r = op == "//" ? q : m;
  }
  if (overflow) throw_error(fmt::format("integer overflow in {} {} {}", x, op, y));
  return Value(r);
}

}  // namespace

Value binary_op(Interpreter& in, std::string_view op, const Value& a, const Value& b) {
  if (op == "~") {
    std::string out = a.str();
    std::string right = b.str();
    in.charge(out.size() + right.size());
    out += right;
    return Value(std::move(out));
  }
  require_defined(a);
  require_defined(b);
  if (a.is_number() && b.is_number()) return arithmetic(op, a, b);
  if (op == "+") {
    if (a.is_string() && b.is_string()) {
      in.charge(a.as_string().size() + b.as_string().size());
      if (a.is_markup() == b.is_markup()) return Value::string_like(a, a.as_string() + b.as_string());
      // Markup + str escapes the str (markupsafe.Markup.__add__ / __radd__).
      return Value::markup(a.is_markup() ? a.as_string() + html_escape(b.as_string())
                                         : html_escape(a.as_string()) + b.as_string());
    }
    if (a.is_list() && b.is_list() && a.as_list().is_tuple == b.as_list().is_tuple) {
      std::vector<Value> items = a.as_list().items;
      items.insert(items.end(), b.as_list().items.begin(), b.as_list().items.end());
      return Value::make_list(std::move(items), a.as_list().is_tuple);
    }
    if (a.is_string()) throw_error(fmt::format("can only concatenate str (not \"{}\") to str", b.type_name()));
    if (a.is_list()) {
      throw_error(fmt::format("can only concatenate {0} (not \"{1}\") to {0}", a.type_name(), b.type_name()));
    }
  }
  if (op == "*") {
    if ((a.is_string() || a.is_list()) && (b.is_int() || b.is_bool())) return repeat(in, a, int_of(b));
    if ((b.is_string() || b.is_list()) && (a.is_int() || a.is_bool())) return repeat(in, b, int_of(a));
  }
  if (op == "%" && a.is_string()) return Value(percent_format(in, a.as_string(), b));
  unsupported(op, a, b);
}

Value negate(const Value& v) {
  require_defined(v);
  if (v.is_float()) return Value(-v.as_float());
  if (v.is_int() || v.is_bool()) {
    int64_t x = int_of(v);
    if (x == std::numeric_limits<int64_t>::min()) throw_error("integer overflow");
    return Value(-x);
  }
  throw_error(fmt::format("bad operand type for unary -: '{}'", v.type_name()));
}

namespace {

// Python's slice.indices(): clamps start/stop for a sequence of `n` items.
void slice_indices(int64_t n, const Value& start_v, const Value& stop_v, int64_t step, int64_t& start,
                   int64_t& stop) {
  auto read = [&](const Value& v, int64_t fallback) -> int64_t {
    if (v.is_undefined() || v.is_none()) return fallback;
    if (!v.is_int() && !v.is_bool()) throw_error("slice indices must be integers or None");
    int64_t i = int_of(v);
    if (i < 0) i += n;
    if (step > 0) return std::clamp<int64_t>(i, 0, n);
    return std::clamp<int64_t>(i, -1, n - 1);
  };
  start = read(start_v, step > 0 ? 0 : n - 1);
  stop = read(stop_v, step > 0 ? n : -1);
}

}  // namespace

Value slice(const Value& obj, const Value& start_v, const Value& stop_v, const Value& step_v) {
  require_defined(obj);
  int64_t step = 1;
  if (!step_v.is_undefined() && !step_v.is_none()) {
    if (!step_v.is_int()) throw_error("slice indices must be integers or None");
    step = step_v.as_int();
  }
  if (step == 0) throw_error("slice step cannot be zero");
  if (!obj.is_string() && !obj.is_list()) throw_error(fmt::format("'{}' object is not subscriptable", obj.type_name()));
  std::vector<std::string_view> chars;
  if (obj.is_string()) chars = split_code_points(obj.as_string());
  int64_t n = obj.is_string() ? static_cast<int64_t>(chars.size()) : static_cast<int64_t>(obj.as_list().items.size());
  int64_t start = 0, stop = 0;
  slice_indices(n, start_v, stop_v, step, start, stop);
  std::string text;
  std::vector<Value> items;
  for (int64_t i = start; step > 0 ? i < stop : i > stop; i += step) {
    if (obj.is_string()) {
      text += chars[static_cast<size_t>(i)];
    } else {
      items.push_back(obj.as_list().items[static_cast<size_t>(i)]);
    }
  }
  if (obj.is_string()) return Value(std::move(text));
  return Value::make_list(std::move(items), obj.as_list().is_tuple);
}

Value get_item(const Value& obj, const Value& key) {
  require_defined(obj);
  switch (obj.type()) {
    case Value::Type::List:
      if (key.is_int() || key.is_bool()) {
        const auto& items = obj.as_list().items;
        int64_t i = int_of(key);
        if (i < 0) i += static_cast<int64_t>(items.size());
        if (i >= 0 && i < static_cast<int64_t>(items.size())) return items[static_cast<size_t>(i)];
        return Value::undefined(fmt::format("{} object has no element {}", obj.type_name(), key.repr()));
      }
      break;
    case Value::Type::String:
      if (key.is_int() || key.is_bool()) {
        auto chars = split_code_points(obj.as_string());
        int64_t i = int_of(key);
        if (i < 0) i += static_cast<int64_t>(chars.size());
        if (i >= 0 && i < static_cast<int64_t>(chars.size())) return Value(chars[static_cast<size_t>(i)]);
        return Value::undefined(fmt::format("str object has no element {}", key.repr()));
      }
      break;
    case Value::Type::Dict:
      if (obj.as_dict().kind == Dict::Kind::Plain) {
        if (const Value* found = obj.as_dict().find(key)) return *found;
      }
      break;
    default: break;
  }
  if (key.is_string()) {
    Value method = find_method(obj, key.as_string());
    if (!method.is_undefined()) return method;
    if (obj.is_dict() && obj.as_dict().kind != Dict::Kind::Plain) return get_attribute(obj, key.as_string());
  }
  return Value::undefined(fmt::format("'{}' has no attribute {}",
                                      obj.is_dict() ? "dict object" : obj.type_name() + " object", key.repr()));
}

Value get_attribute(const Value& obj, const std::string& name) {
  require_defined(obj);
  Value method = find_method(obj, name);
  if (!method.is_undefined()) return method;
  if (obj.is_dict()) {
    const Dict& d = obj.as_dict();
    if (const Value* found = d.find(std::string_view(name))) return *found;
    const char* what = d.kind == Dict::Kind::Namespace ? "'jinja2.utils.Namespace object'"
                       : d.kind == Dict::Kind::Loop    ? "'jinja2.runtime.LoopContext object'"
                                                       : "'dict object'";
    return Value::undefined(fmt::format("{} has no attribute '{}'", what, name));
  }
  if (obj.is_list() && name.find_first_not_of("0123456789") == std::string::npos && !name.empty()) {
    return get_item(obj, Value(static_cast<int64_t>(std::stoll(name))));
  }
  std::string what = obj.is_none() ? "None" : "'" + obj.type_name() + " object'";
  return Value::undefined(fmt::format("{} has no attribute '{}'", what, name));
}

std::string percent_format(Interpreter& in, const std::string& format, const Value& args) {
  std::vector<Value> values;
  if (args.is_list() && args.as_list().is_tuple) {
    values = args.as_list().items;
  } else {
    values.push_back(args);
  }
  std::string out;
  size_t next = 0;
  for (size_t i = 0; i < format.size(); ++i) {
    if (format[i] != '%') {
      out += format[i];
      continue;
    }
    if (++i >= format.size()) throw_error("incomplete format");
    std::string spec = "%";
    while (i < format.size() && std::string_view("-+ #0123456789.").find(format[i]) != std::string_view::npos) {
      spec += format[i++];
    }
    if (i >= format.size()) throw_error("incomplete format");
    char conv = format[i];
    if (conv == '%') {
      out += '%';
      continue;
    }
    if (next >= values.size()) throw_error("not enough arguments for format string");
    const Value& v = values[next++];
    size_t run = 0;
    for (char ch : spec) {
      run = (ch >= '0' && ch <= '9') ? run + 1 : 0;
      if (run > 3) throw_error("format width or precision too large");
    }
    char buf[2048];
    if (conv == 's' || conv == 'r') {
      std::string s = conv == 's' ? v.str() : v.repr();
      if (spec == "%") {
        out += s;
      } else {
        std::snprintf(buf, sizeof(buf), (spec + "s").c_str(), s.c_str());
        out += buf;
      }
    } else if (conv == 'd' || conv == 'i' || conv == 'x' || conv == 'X' || conv == 'o') {
      if (!v.is_number()) throw_error(fmt::format("%{} format: a real number is required, not {}", conv, v.type_name()));
      int64_t n = v.is_float() ? static_cast<int64_t>(v.as_float()) : int_of(v);
      std::snprintf(buf, sizeof(buf), (spec + "ll" + (conv == 'i' ? 'd' : conv)).c_str(), static_cast<long long>(n));
      out += buf;
    } else if (conv == 'f' || conv == 'F' || conv == 'e' || conv == 'E' || conv == 'g' || conv == 'G') {
      if (!v.is_number()) throw_error(fmt::format("must be real number, not {}", v.type_name()));
      std::snprintf(buf, sizeof(buf), (spec + conv).c_str(), v.to_double());
      out += buf;
    } else {
      throw_error(fmt::format("unsupported format character '{}'", conv));
    }
    in.charge(out.size());
  }
  if (next < values.size() && args.is_list() && args.as_list().is_tuple) {
    throw_error("not all arguments converted during string formatting");
  }
  return out;
}

}  // namespace owl::tmpl
