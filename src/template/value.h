// The value type of the template interpreter: Python objects as jinja2 sees them.
// Lists and dicts are shared by reference (as in Python), so `ns.x = ...`, `list.append()` and
// aliasing behave like jinja2. Strings are UTF-8; operations that Python defines on code points
// (len, slicing, indexing) convert.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <variant>
#include <vector>

#include <nlohmann/json.hpp>

namespace owl::tmpl {

// An error while rendering; `line`/`column` are 1-based, 0 when unknown (filled in by the
// evaluator from the node being evaluated). `raised` marks raise_exception() from the template.
struct RenderError {
  std::string message;
  int line = 0;
  int column = 0;
  bool raised = false;
};

[[noreturn]] void throw_error(std::string message);

class Value;
struct List;
struct Dict;
struct Callable;
struct JsonStyle;
class Interpreter;

struct NoneTag {};
// An undefined value; `hint` is the message jinja2 gives when it is used strictly
// ("'x' is undefined", "'dict object' has no attribute 'y'").
struct Undefined {
  std::shared_ptr<const std::string> hint;
};

class Value {
 public:
  enum class Type : uint8_t { Undefined, None, Bool, Int, Float, String, List, Dict, Callable };

  Value() = default;  // undefined
  Value(NoneTag) : data_(NoneTag{}) {}                     // NOLINT
  Value(bool b) : data_(b) {}                              // NOLINT
  Value(int v) : data_(int64_t{v}) {}                      // NOLINT
  Value(int64_t v) : data_(v) {}                           // NOLINT
  Value(size_t v) : data_(static_cast<int64_t>(v)) {}      // NOLINT
  Value(double v) : data_(v) {}                            // NOLINT
  Value(std::string s) : data_(std::move(s)) {}            // NOLINT
  Value(std::string_view s) : data_(std::string(s)) {}     // NOLINT
  Value(const char* s) : data_(std::string(s)) {}          // NOLINT
  Value(std::shared_ptr<List> l) : data_(std::move(l)) {}  // NOLINT
  Value(std::shared_ptr<Dict> d) : data_(std::move(d)) {}  // NOLINT
  Value(std::shared_ptr<Callable> c) : data_(std::move(c)) {}  // NOLINT

  static Value none() { return Value(NoneTag{}); }
  // A string marked safe (markupsafe.Markup): `markup + str` HTML-escapes the str operand.
  static Value markup(std::string s);
  // `text` as a Markup when `like` is one (methods and filters that keep Markup's type).
  static Value string_like(const Value& like, std::string text);
  static Value undefined(std::string hint);
  static Value make_list(std::vector<Value> items = {}, bool tuple = false);
  static Value make_dict();
  static Value from_json(const nlohmann::ordered_json& j);

  Type type() const { return static_cast<Type>(data_.index()); }
  bool is_undefined() const { return type() == Type::Undefined; }
  bool is_none() const { return type() == Type::None; }
  bool is_bool() const { return type() == Type::Bool; }
  bool is_int() const { return type() == Type::Int; }
  bool is_float() const { return type() == Type::Float; }
  bool is_number() const { return is_int() || is_float() || is_bool(); }
  bool is_string() const { return type() == Type::String; }
  bool is_list() const { return type() == Type::List; }
  bool is_dict() const { return type() == Type::Dict; }
  bool is_callable() const { return type() == Type::Callable; }
  bool is_markup() const { return markup_ && is_string(); }

  bool as_bool() const { return std::get<bool>(data_); }
  int64_t as_int() const { return std::get<int64_t>(data_); }
  double as_float() const { return std::get<double>(data_); }
  // Int, Bool or Float as double (callers check is_number()).
  double to_double() const;
  const std::string& as_string() const { return std::get<std::string>(data_); }
  List& as_list() const { return *std::get<std::shared_ptr<List>>(data_); }
  Dict& as_dict() const { return *std::get<std::shared_ptr<Dict>>(data_); }
  Callable& as_callable() const { return *std::get<std::shared_ptr<Callable>>(data_); }
  const std::string* undefined_hint() const;

  // Python's bool(x).
  bool truthy() const;
  // Python's str(x); undefined prints as "".
  std::string str() const;
  // Python's repr(x).
  std::string repr() const;
  // The Python type name used in error messages ("str", "int", "dict", "NoneType").
  std::string type_name() const;

  // Python's == (1 == 1.0 == True; lists and dicts compare by content).
  bool equals(const Value& other) const;
  // Python's <, with TypeError for mixed types; returns -1, 0, 1.
  int compare(const Value& other) const;

  // JSON as Python's json.dumps(ensure_ascii=False) writes it. Undefined values, callables and
  // namespaces throw "Object of type X is not JSON serializable".
  std::string to_json(const JsonStyle& style) const;

 private:
  std::variant<Undefined, NoneTag, bool, int64_t, double, std::string, std::shared_ptr<List>,
               std::shared_ptr<Dict>, std::shared_ptr<Callable>>
      data_;
  bool markup_ = false;
};

// json.dumps options: indent < 0 is the one-line form; separators default as in Python
// (", " and ": " on one line, "," and ": " with an indent).
struct JsonStyle {
  int indent = -1;
  bool sort_keys = false;
  bool ensure_ascii = false;
  std::string item_separator;
  std::string key_separator;
  bool custom_separators = false;
};

struct List {
  std::vector<Value> items;
  bool is_tuple = false;
};

// An insertion-ordered dict. Lookup is linear: template dicts are small.
struct Dict {
  enum class Kind : uint8_t { Plain, Namespace, Loop };
  std::vector<std::pair<Value, Value>> items;
  Kind kind = Kind::Plain;

  const Value* find(const Value& key) const;
  const Value* find(std::string_view key) const;
  void set(Value key, Value value);
  bool erase(const Value& key);
};

// Arguments of a call: positional then keyword, in source order.
struct CallArgs {
  std::vector<Value> positional;
  std::vector<std::pair<std::string, Value>> keyword;

  const Value* find_keyword(std::string_view name) const;
};

// A builtin function, bound method or macro.
struct Callable {
  std::string name;
  std::function<Value(Interpreter&, CallArgs&)> fn;
};

Value make_callable(std::string name, std::function<Value(Interpreter&, CallArgs&)> fn);

// markupsafe.escape: & < > " ' as HTML entities.
std::string html_escape(std::string_view s);

// Python's repr(float) / str(float): shortest round-trip digits, "1.0", "1e+20", "inf".
std::string format_float(double v);
// Python's repr(str): single quotes unless the string has ' and no ".
std::string repr_string(std::string_view s);

// UTF-8 helpers: code points of a (possibly invalid) UTF-8 string; invalid bytes stand alone.
std::vector<std::string_view> split_code_points(std::string_view s);
size_t count_code_points(std::string_view s);

}  // namespace owl::tmpl
