// jinja2's builtin filters and tests (jinja2/filters.py, jinja2/tests.py) with Hugging Face's
// `tojson` (json.dumps with ensure_ascii=False, keys in insertion order).
#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <unordered_map>

#include <fmt/format.h>

#include "template/interpreter.h"
#include "template/strings.h"

namespace owl::tmpl {

namespace {

using Args = CallArgs;

// jinja2's make_attrgetter: "a.b.0" looks each part up with getitem semantics.
Value get_path(const Value& item, const std::string& path) {
  Value v = item;
  size_t pos = 0;
  while (true) {
    size_t dot = path.find('.', pos);
    std::string part = path.substr(pos, dot == std::string::npos ? std::string::npos : dot - pos);
    bool numeric = !part.empty() && part.find_first_not_of("0123456789") == std::string::npos && part.size() < 18;
    v = get_item(v, numeric ? Value(static_cast<int64_t>(std::stoll(part))) : Value(part));
    if (dot == std::string::npos) return v;
    pos = dot + 1;
  }
}

// The sort/unique key: lower-cased strings unless case_sensitive.
Value sort_key(const Value& v, bool case_sensitive) {
  if (!case_sensitive && v.is_string()) return Value(py_lower_str(v.as_string()));
  return v;
}

Value f_default(Interpreter&, const Value& v, Args& a) {
  ArgBinder b(a, "default", {"default_value", "boolean"});
  bool use_default = v.is_undefined() || (b.get_bool(1, false) && !v.truthy());
  return use_default ? b.get_or(0, Value(std::string())) : v;
}

Value f_length(Interpreter&, const Value& v, Args&) { return Value(length(v)); }

// Filters built on jinja2's soft_str keep a Markup input's type (string_like).
Value f_string(Interpreter&, const Value& v, Args&) { return Value::string_like(v, v.str()); }
Value f_safe(Interpreter&, const Value& v, Args&) { return v.is_markup() ? v : Value::markup(v.str()); }
Value f_escape(Interpreter&, const Value& v, Args&) { return v.is_markup() ? v : Value::markup(html_escape(v.str())); }
Value f_forceescape(Interpreter&, const Value& v, Args&) { return Value::markup(html_escape(v.str())); }
Value f_pprint(Interpreter&, const Value& v, Args&) { return Value(v.repr()); }
Value f_upper(Interpreter&, const Value& v, Args&) { return Value::string_like(v, py_upper_str(v.str())); }
Value f_lower(Interpreter&, const Value& v, Args&) { return Value::string_like(v, py_lower_str(v.str())); }
Value f_title(Interpreter&, const Value& v, Args&) { return Value(jinja_title(v.str())); }
Value f_capitalize(Interpreter&, const Value& v, Args&) { return Value::string_like(v, py_capitalize(v.str())); }

Value f_trim(Interpreter&, const Value& v, Args& a) {
  ArgBinder b(a, "trim", {"chars"});
  std::optional<std::string> chars;
  if (b.has(0) && !b.get(0).is_none()) chars = b.get(0).str();
  return Value::string_like(v, py_strip(v.str(), chars, StripSide::Both));
}

Value f_replace(Interpreter& in, const Value& v, Args& a) {
  ArgBinder b(a, "replace", {"old", "new", "count"});
  std::string s = v.str();
  std::string old = b.get(0).str(), repl = b.get(1).str();
  int64_t count = b.has(2) && !b.get(2).is_none() ? b.get_int(2, -1) : -1;
  std::string out = py_replace(s, old, repl, count);
  in.charge(out.size());
  return Value(std::move(out));
}

Value f_tojson(Interpreter& in, const Value& v, Args& a) {
  ArgBinder b(a, "tojson", {"ensure_ascii", "indent", "separators", "sort_keys"});
  JsonStyle style;
  style.ensure_ascii = b.get_bool(0, false);
  if (b.has(1) && !b.get(1).is_none()) {
    if (b.get(1).is_string()) throw_error("tojson: a string indent is not supported");
    style.indent = static_cast<int>(std::clamp<int64_t>(b.get_int(1, 0), 0, 64));
  }
  if (b.has(2) && !b.get(2).is_none()) {
    const Value& seps = b.get(2);
    if (!seps.is_list() || seps.as_list().items.size() != 2) throw_error("tojson: separators must be a pair");
    style.item_separator = seps.as_list().items[0].str();
    style.key_separator = seps.as_list().items[1].str();
    style.custom_separators = true;
  }
  style.sort_keys = b.get_bool(3, false);
  std::string out = v.to_json(style);
  in.charge(out.size());
  return Value(std::move(out));
}

Value f_join(Interpreter& in, const Value& v, Args& a) {
  ArgBinder b(a, "join", {"d", "attribute"});
  std::string sep = b.get_string(0, "");
  std::string out;
  bool first = true;
  for (const Value& item : iterate(v)) {
    if (!first) out += sep;
    first = false;
    out += b.has(1) ? get_path(item, b.get(1).str()).str() : item.str();
    in.charge(out.size());
  }
  return Value(std::move(out));
}

Value f_items(Interpreter&, const Value& v, Args&) {
  if (v.is_undefined()) return Value::make_list();
  if (!v.is_dict() || v.as_dict().kind != Dict::Kind::Plain) throw_error("Can only get item pairs from a mapping.");
  std::vector<Value> pairs;
  for (const auto& [k, val] : v.as_dict().items) pairs.push_back(Value::make_list({k, val}, true));
  return Value::make_list(std::move(pairs));
}

Value f_list(Interpreter&, const Value& v, Args&) { return Value::make_list(iterate(v)); }

Value f_first(Interpreter&, const Value& v, Args&) {
  std::vector<Value> items = iterate(v);
  if (items.empty()) return Value::undefined("No first item, sequence was empty.");
  return items.front();
}

Value f_last(Interpreter&, const Value& v, Args&) {
  std::vector<Value> items = iterate(v);
  if (items.empty()) return Value::undefined("No last item, sequence was empty.");
  return items.back();
}

Value f_reverse(Interpreter&, const Value& v, Args&) {
  if (v.is_string()) {
    auto cps = decode_utf8(v.as_string());
    std::reverse(cps.begin(), cps.end());
    return Value(encode_utf8(cps));
  }
  std::vector<Value> items = iterate(v);
  std::reverse(items.begin(), items.end());
  return Value::make_list(std::move(items));
}

// Applies test `name` (or truthiness when empty) to `v`; `a` holds the test's extra arguments.
bool run_test(Interpreter& in, const std::string& name, const Value& v, Args& a) {
  if (name.empty()) return v.truthy();
  TestFn fn = find_test(name);
  if (!fn) throw_error(fmt::format("No test named '{}'.", name));
  return fn(in, v, a);
}

// select/reject/selectattr/rejectattr share this: args are [attr,] [test, test args...].
Value select_common(Interpreter& in, const Value& v, Args& a, bool with_attr, bool keep) {
  if (!v.truthy()) return Value::make_list();  // jinja2: `if value:` guards the generator
  Args rest;
  std::string attr, test;
  size_t i = 0;
  if (with_attr) {
    if (a.positional.empty()) throw_error("selectattr/rejectattr: missing attribute");
    attr = a.positional[i++].str();
  }
  if (i < a.positional.size()) test = a.positional[i++].str();
  rest.positional.assign(a.positional.begin() + static_cast<std::ptrdiff_t>(i), a.positional.end());
  rest.keyword = a.keyword;
  std::vector<Value> out;
  for (const Value& item : iterate(v)) {
    Value subject = with_attr ? get_path(item, attr) : item;
    if (run_test(in, test, subject, rest) == keep) out.push_back(item);
  }
  return Value::make_list(std::move(out));
}

Value f_select(Interpreter& in, const Value& v, Args& a) { return select_common(in, v, a, false, true); }
Value f_reject(Interpreter& in, const Value& v, Args& a) { return select_common(in, v, a, false, false); }
Value f_selectattr(Interpreter& in, const Value& v, Args& a) { return select_common(in, v, a, true, true); }
Value f_rejectattr(Interpreter& in, const Value& v, Args& a) { return select_common(in, v, a, true, false); }

Value f_map(Interpreter& in, const Value& v, Args& a) {
  std::vector<Value> out;
  if (!v.truthy()) return Value::make_list();  // jinja2: `if value:` guards the generator
  if (const Value* attr = a.find_keyword("attribute")) {
    const Value* fallback = a.find_keyword("default");
    for (const Value& item : iterate(v)) {
      Value x = get_path(item, attr->str());
      out.push_back(x.is_undefined() && fallback ? *fallback : x);
    }
    return Value::make_list(std::move(out));
  }
  if (a.positional.empty()) throw_error("map: a filter name or attribute= is required");
  std::string name = a.positional[0].str();
  FilterFn fn = find_filter(name);
  if (!fn) throw_error(fmt::format("No filter named '{}'.", name));
  Args rest;
  rest.positional.assign(a.positional.begin() + 1, a.positional.end());
  rest.keyword = a.keyword;
  for (const Value& item : iterate(v)) {
    Args copy = rest;
    out.push_back(fn(in, item, copy));
  }
  return Value::make_list(std::move(out));
}

std::vector<Value> sorted_items(const Value& v, bool reverse, bool case_sensitive, const Value& attribute) {
  std::vector<Value> items = iterate(v);
  std::vector<std::pair<Value, size_t>> keyed;
  for (size_t i = 0; i < items.size(); ++i) {
    Value key = attribute.is_undefined() || attribute.is_none() ? items[i] : get_path(items[i], attribute.str());
    keyed.emplace_back(sort_key(key, case_sensitive), i);
  }
  std::stable_sort(keyed.begin(), keyed.end(), [reverse](const auto& x, const auto& y) {
    int c = x.first.compare(y.first);
    return reverse ? c > 0 : c < 0;
  });
  std::vector<Value> out;
  for (const auto& k : keyed) out.push_back(items[k.second]);
  return out;
}

Value f_sort(Interpreter&, const Value& v, Args& a) {
  ArgBinder b(a, "sort", {"reverse", "case_sensitive", "attribute"});
  return Value::make_list(sorted_items(v, b.get_bool(0, false), b.get_bool(1, false), b.get(2)));
}

Value f_dictsort(Interpreter&, const Value& v, Args& a) {
  ArgBinder b(a, "dictsort", {"case_sensitive", "by", "reverse"});
  if (!v.is_dict()) throw_error("dictsort: value is not a mapping");
  bool by_value = b.get_string(1, "key") == "value";
  std::vector<Value> pairs;
  for (const auto& [k, val] : v.as_dict().items) pairs.push_back(Value::make_list({k, val}, true));
  bool cs = b.get_bool(0, false);
  bool reverse = b.get_bool(2, false);
  std::stable_sort(pairs.begin(), pairs.end(), [&](const Value& x, const Value& y) {
    size_t i = by_value ? 1 : 0;
    int c = sort_key(x.as_list().items[i], cs).compare(sort_key(y.as_list().items[i], cs));
    return reverse ? c > 0 : c < 0;
  });
  return Value::make_list(std::move(pairs));
}

Value f_unique(Interpreter&, const Value& v, Args& a) {
  ArgBinder b(a, "unique", {"case_sensitive", "attribute"});
  std::vector<Value> out, seen;
  for (const Value& item : iterate(v)) {
    Value key = sort_key(b.has(1) ? get_path(item, b.get(1).str()) : item, b.get_bool(0, false));
    if (std::any_of(seen.begin(), seen.end(), [&](const Value& s) { return s.equals(key); })) continue;
    seen.push_back(key);
    out.push_back(item);
  }
  return Value::make_list(std::move(out));
}

Value min_max(const Value& v, Args& a, bool want_max) {
  ArgBinder b(a, want_max ? "max" : "min", {"case_sensitive", "attribute"});
  std::vector<Value> items = iterate(v);
  if (items.empty()) return Value::undefined("No aggregated item, sequence was empty.");
  bool cs = b.get_bool(0, false);
  auto key = [&](const Value& x) { return sort_key(b.has(1) ? get_path(x, b.get(1).str()) : x, cs); };
  size_t best = 0;
  for (size_t i = 1; i < items.size(); ++i) {
    int c = key(items[i]).compare(key(items[best]));
    if (want_max ? c > 0 : c < 0) best = i;
  }
  return items[best];
}

Value f_min(Interpreter&, const Value& v, Args& a) { return min_max(v, a, false); }
Value f_max(Interpreter&, const Value& v, Args& a) { return min_max(v, a, true); }

Value f_sum(Interpreter& in, const Value& v, Args& a) {
  ArgBinder b(a, "sum", {"attribute", "start"});
  Value total = b.get_or(1, Value(0));
  for (const Value& item : iterate(v)) {
    total = binary_op(in, "+", total, b.has(0) ? get_path(item, b.get(0).str()) : item);
  }
  return total;
}

// Python int(str): optional sign, digits with single underscores, surrounding whitespace.
bool parse_py_int(const std::string& text, int64_t base, int64_t& out) {
  std::string s = py_strip(text, std::nullopt, StripSide::Both);
  std::string digits;
  for (size_t i = 0; i < s.size(); ++i) {
    if (s[i] == '_' && i > 0 && i + 1 < s.size() && s[i - 1] != '_' && s[i - 1] != '-' && s[i - 1] != '+') continue;
    digits += s[i];
  }
  if (digits.empty() || base < 2 || base > 36) return false;
  char* end = nullptr;
  errno = 0;
  long long v = std::strtoll(digits.c_str(), &end, static_cast<int>(base));
  if (errno != 0 || *end != '\0' || std::isspace(static_cast<unsigned char>(digits[0]))) return false;
  out = v;
  return true;
}

bool parse_py_float(const std::string& text, double& out) {
  std::string s = py_strip(text, std::nullopt, StripSide::Both);
  if (s.empty() || s.find('_') != std::string::npos || s.find_first_of("xXpP") != std::string::npos) return false;
  char* end = nullptr;
  out = std::strtod(s.c_str(), &end);
  return *end == '\0';
}

Value f_int(Interpreter&, const Value& v, Args& a) {
  ArgBinder b(a, "int", {"default", "base"});
  Value fallback = b.get_or(0, Value(0));
  if (v.is_int()) return v;
  if (v.is_bool()) return Value(static_cast<int64_t>(v.as_bool()));
  if (v.is_float()) {
    double d = v.as_float();
    if (!std::isfinite(d) || std::fabs(d) > 9.2e18) return fallback;
    return Value(static_cast<int64_t>(d));
  }
  if (v.is_string()) {
    int64_t out = 0;
    if (parse_py_int(v.as_string(), b.get_int(1, 10), out)) return Value(out);
    double d = 0;
    if (parse_py_float(v.as_string(), d) && std::isfinite(d) && std::fabs(d) < 9.2e18) {
      return Value(static_cast<int64_t>(d));
    }
  }
  return fallback;
}

Value f_float(Interpreter&, const Value& v, Args& a) {
  ArgBinder b(a, "float", {"default"});
  if (v.is_number()) return Value(v.to_double());
  double d = 0;
  if (v.is_string() && parse_py_float(v.as_string(), d)) return Value(d);
  return b.get_or(0, Value(0.0));
}

Value f_abs(Interpreter&, const Value& v, Args&) {
  if (v.is_float()) return Value(std::fabs(v.as_float()));
  if (v.is_int() || v.is_bool()) {
    int64_t x = v.is_bool() ? v.as_bool() : v.as_int();
    if (x == INT64_MIN) throw_error("integer overflow");
    return Value(x < 0 ? -x : x);
  }
  throw_error(fmt::format("bad operand type for abs(): '{}'", v.type_name()));
}

Value f_round(Interpreter&, const Value& v, Args& a) {
  ArgBinder b(a, "round", {"precision", "method"});
  if (!v.is_number()) throw_error(fmt::format("type {} doesn't define __round__ method", v.type_name()));
  int64_t precision = std::clamp<int64_t>(b.get_int(0, 0), -20, 20);
  std::string method = b.get_string(1, "common");
  double x = v.to_double();
  double scale = std::pow(10.0, static_cast<double>(precision));
  if (method == "ceil") return Value(std::ceil(x * scale) / scale);
  if (method == "floor") return Value(std::floor(x * scale) / scale);
  if (method != "common") throw_error("method must be 'common', 'ceil' or 'floor'");
  if (v.is_int()) return v;
  if (precision <= 0) return Value(std::nearbyint(x / std::pow(10.0, static_cast<double>(-precision))) *
                                   std::pow(10.0, static_cast<double>(-precision)));
  // Correctly rounded, half to even on the exact binary value, as Python's round().
  char buf[512];
  std::snprintf(buf, sizeof(buf), "%.*f", static_cast<int>(precision), x);
  return Value(std::strtod(buf, nullptr));
}

Value f_indent(Interpreter& in, const Value& v, Args& a) {
  ArgBinder b(a, "indent", {"width", "first", "blank"});
  std::string indention = b.has(0) && b.get(0).is_string()
                              ? b.get(0).as_string()
                              : std::string(static_cast<size_t>(std::clamp<int64_t>(b.get_int(0, 4), 0, 256)), ' ');
  std::vector<std::string> lines = py_splitlines(v.str() + "\n");
  std::string out;
  for (size_t i = 0; i < lines.size(); ++i) {
    if (i > 0) out += "\n";
    bool indent_line = (i > 0 || b.get_bool(1, false)) && (b.get_bool(2, false) || !lines[i].empty() || i == 0);
    if (indent_line) out += indention;
    out += lines[i];
    in.charge(out.size());
  }
  return Value::string_like(v, std::move(out));
}

Value f_wordcount(Interpreter&, const Value& v, Args&) {
  int64_t count = 0;
  bool in_word = false;
  for (uint32_t cp : decode_utf8(v.str())) {
    bool word = py_isalnum(cp) || cp == '_' || (cp >= 0x80 && !py_isspace(cp));
    if (word && !in_word) ++count;
    in_word = word;
  }
  return Value(count);
}

Value f_center(Interpreter& in, const Value& v, Args& a) {
  ArgBinder b(a, "center", {"width"});
  std::string s = v.str();
  int64_t width = std::min<int64_t>(b.get_int(0, 80), 1 << 20);
  auto n = static_cast<int64_t>(count_code_points(s));
  if (width <= n) return Value(s);
  int64_t pad = width - n;
  int64_t left = pad / 2 + (pad & width & 1);
  in.charge(static_cast<size_t>(width));
  return Value::string_like(
      v, std::string(static_cast<size_t>(left), ' ') + s + std::string(static_cast<size_t>(pad - left), ' '));
}

Value f_batch(Interpreter&, const Value& v, Args& a) {
  ArgBinder b(a, "batch", {"linecount", "fill_with"});
  int64_t size = b.get_int(0, 1);
  if (size <= 0) throw_error("batch: linecount must be positive");
  std::vector<Value> out, current;
  for (const Value& item : iterate(v)) {
    current.push_back(item);
    if (static_cast<int64_t>(current.size()) == size) out.push_back(Value::make_list(std::exchange(current, {})));
  }
  if (!current.empty()) {
    if (b.has(1)) {
      while (static_cast<int64_t>(current.size()) < size) current.push_back(b.get(1));
    }
    out.push_back(Value::make_list(std::move(current)));
  }
  return Value::make_list(std::move(out));
}

Value f_format(Interpreter& in, const Value& v, Args& a) {
  if (!a.keyword.empty()) throw_error("format: keyword arguments are not supported");
  return Value(percent_format(in, v.str(), Value::make_list(a.positional, true)));
}

Value f_attr(Interpreter&, const Value& v, Args& a) {
  ArgBinder b(a, "attr", {"name"});
  return get_attribute(v, b.get(0).str());
}

Value f_truncate(Interpreter&, const Value& v, Args& a) {
  ArgBinder b(a, "truncate", {"length", "killwords", "end", "leeway"});
  std::string s = v.str();
  int64_t len = b.get_int(0, 255);
  std::string end = b.get_string(2, "...");
  int64_t leeway = b.get_int(3, 5);
  auto cps = decode_utf8(s);
  if (static_cast<int64_t>(cps.size()) <= len + leeway) return Value(s);
  int64_t keep = std::max<int64_t>(0, len - static_cast<int64_t>(count_code_points(end)));
  std::vector<uint32_t> head(cps.begin(), cps.begin() + keep);
  if (!b.get_bool(1, false)) {
    auto space = std::find(head.rbegin(), head.rend(), ' ');
    if (space != head.rend()) head.erase(space.base() - 1, head.end());
  }
  return Value(encode_utf8(head) + end);
}

using FilterTable = std::unordered_map<std::string_view, FilterFn>;

const FilterTable& filters() {
  static const FilterTable table = {
      {"abs", f_abs},         {"attr", f_attr},         {"batch", f_batch},
      {"capitalize", f_capitalize}, {"center", f_center}, {"count", f_length},
      {"d", f_default},       {"default", f_default},   {"dictsort", f_dictsort},
      {"e", f_escape},        {"escape", f_escape},     {"first", f_first},
      {"float", f_float},     {"forceescape", f_forceescape}, {"format", f_format},
      {"indent", f_indent},   {"int", f_int},           {"items", f_items},
      {"join", f_join},       {"last", f_last},         {"length", f_length},
      {"list", f_list},       {"lower", f_lower},       {"map", f_map},
      {"max", f_max},         {"min", f_min},           {"pprint", f_pprint},
      {"reject", f_reject},   {"rejectattr", f_rejectattr}, {"replace", f_replace},
      {"reverse", f_reverse}, {"round", f_round},       {"safe", f_safe},
      {"select", f_select},   {"selectattr", f_selectattr}, {"sort", f_sort},
      {"string", f_string},   {"sum", f_sum},           {"title", f_title},
      {"tojson", f_tojson},   {"trim", f_trim},         {"truncate", f_truncate},
      {"unique", f_unique},   {"upper", f_upper},       {"wordcount", f_wordcount},
  };
  return table;
}

// ---- tests ----

bool t_defined(Interpreter&, const Value& v, Args&) { return !v.is_undefined(); }
bool t_undefined(Interpreter&, const Value& v, Args&) { return v.is_undefined(); }
bool t_none(Interpreter&, const Value& v, Args&) { return v.is_none(); }
bool t_boolean(Interpreter&, const Value& v, Args&) { return v.is_bool(); }
bool t_true(Interpreter&, const Value& v, Args&) { return v.is_bool() && v.as_bool(); }
bool t_false(Interpreter&, const Value& v, Args&) { return v.is_bool() && !v.as_bool(); }
bool t_string(Interpreter&, const Value& v, Args&) { return v.is_string(); }
bool t_number(Interpreter&, const Value& v, Args&) { return v.is_number(); }
bool t_integer(Interpreter&, const Value& v, Args&) { return v.is_int(); }
bool t_float(Interpreter&, const Value& v, Args&) { return v.is_float(); }
bool t_callable(Interpreter&, const Value& v, Args&) { return v.is_callable(); }
bool t_mapping(Interpreter&, const Value& v, Args&) { return v.is_dict() && v.as_dict().kind == Dict::Kind::Plain; }
bool t_sequence(Interpreter&, const Value& v, Args&) {
  return v.is_undefined() || v.is_string() || v.is_list() || (v.is_dict() && v.as_dict().kind == Dict::Kind::Plain);
}
bool t_iterable(Interpreter& in, const Value& v, Args& a) { return t_sequence(in, v, a); }
bool t_lower(Interpreter&, const Value& v, Args&) {
  std::string s = v.str();
  return py_lower_str(s) == s && py_upper_str(s) != s;
}
bool t_upper(Interpreter&, const Value& v, Args&) {
  std::string s = v.str();
  return py_upper_str(s) == s && py_lower_str(s) != s;
}
bool t_escaped(Interpreter&, const Value&, Args&) { return false; }

const Value& test_arg(Args& a, const char* test) {
  if (a.positional.empty()) throw_error(fmt::format("test '{}' needs an argument", test));
  return a.positional[0];
}

int64_t int_arg(const Value& v, const char* test) {
  if (!v.is_int() && !v.is_bool()) throw_error(fmt::format("test '{}' needs an integer", test));
  return v.is_bool() ? v.as_bool() : v.as_int();
}

bool t_odd(Interpreter&, const Value& v, Args&) { return int_arg(v, "odd") % 2 != 0; }
bool t_even(Interpreter&, const Value& v, Args&) { return int_arg(v, "even") % 2 == 0; }
bool t_divisibleby(Interpreter&, const Value& v, Args& a) {
  int64_t d = int_arg(test_arg(a, "divisibleby"), "divisibleby");
  if (d == 0) throw_error("integer division or modulo by zero");
  if (d == -1) return true;
  return int_arg(v, "divisibleby") % d == 0;
}
bool t_eq(Interpreter&, const Value& v, Args& a) { return v.equals(test_arg(a, "eq")); }
bool t_ne(Interpreter&, const Value& v, Args& a) { return !v.equals(test_arg(a, "ne")); }
int ordered(const Value& v, Args& a, const char* name) {
  const Value& other = test_arg(a, name);
  require_defined(v);
  require_defined(other);
  return v.compare(other);
}
bool t_lt(Interpreter&, const Value& v, Args& a) { return ordered(v, a, "lt") < 0; }
bool t_le(Interpreter&, const Value& v, Args& a) { return ordered(v, a, "le") <= 0; }
bool t_gt(Interpreter&, const Value& v, Args& a) { return ordered(v, a, "gt") > 0; }
bool t_ge(Interpreter&, const Value& v, Args& a) { return ordered(v, a, "ge") >= 0; }
bool t_in(Interpreter&, const Value& v, Args& a) { return contains(test_arg(a, "in"), v); }
bool t_sameas(Interpreter&, const Value& v, Args& a) {
  const Value& other = test_arg(a, "sameas");
  if (v.type() != other.type()) return false;
  if (v.is_list()) return &v.as_list() == &other.as_list();
  if (v.is_dict()) return &v.as_dict() == &other.as_dict();
  return v.equals(other);
}
bool t_filter(Interpreter&, const Value& v, Args&) { return v.is_string() && find_filter(v.as_string()) != nullptr; }
bool t_test(Interpreter&, const Value& v, Args&) { return v.is_string() && find_test(v.as_string()) != nullptr; }

using TestTable = std::unordered_map<std::string_view, TestFn>;

const TestTable& tests() {
  static const TestTable table = {
      {"boolean", t_boolean}, {"callable", t_callable}, {"defined", t_defined},
      {"divisibleby", t_divisibleby}, {"eq", t_eq}, {"equalto", t_eq}, {"==", t_eq},
      {"escaped", t_escaped}, {"even", t_even}, {"false", t_false}, {"filter", t_filter},
      {"float", t_float}, {"ge", t_ge}, {">=", t_ge}, {"gt", t_gt}, {"greaterthan", t_gt},
      {">", t_gt}, {"in", t_in}, {"integer", t_integer}, {"iterable", t_iterable},
      {"le", t_le}, {"<=", t_le}, {"lower", t_lower}, {"lt", t_lt}, {"lessthan", t_lt},
      {"<", t_lt}, {"mapping", t_mapping}, {"ne", t_ne}, {"!=", t_ne}, {"none", t_none},
      {"number", t_number}, {"odd", t_odd}, {"sameas", t_sameas}, {"sequence", t_sequence},
      {"string", t_string}, {"test", t_test}, {"true", t_true}, {"undefined", t_undefined},
      {"upper", t_upper},
  };
  return table;
}

}  // namespace

FilterFn find_filter(std::string_view name) {
  auto it = filters().find(name);
  return it == filters().end() ? nullptr : it->second;
}

TestFn find_test(std::string_view name) {
  auto it = tests().find(name);
  return it == tests().end() ? nullptr : it->second;
}

}  // namespace owl::tmpl
