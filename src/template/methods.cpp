// Methods of str, list and dict that templates call (`s.strip()`, `d.items()`, `l.append(x)`),
// and the globals Hugging Face provides: range, namespace, dict, raise_exception, strftime_now.
//
// Unlike Hugging Face's ImmutableSandboxedEnvironment, list.append/pop and dict.pop/update
// mutate instead of raising a SecurityError, as llama.cpp's template engine does: templates
// written for it (tool-call queues) then render.
#include <algorithm>
#include <cstring>

#include <fmt/format.h>

#include "template/interpreter.h"
#include "template/strings.h"

namespace owl::tmpl {

ArgBinder::ArgBinder(const CallArgs& args, std::string_view function, std::initializer_list<std::string_view> names)
    : function_(function), values_(names.size()), given_(names.size(), false) {
  if (args.positional.size() > names.size()) {
    throw_error(fmt::format("{}() takes at most {} argument(s) ({} given)", function, names.size(),
                            args.positional.size()));
  }
  for (size_t i = 0; i < args.positional.size(); ++i) {
    values_[i] = args.positional[i];
    given_[i] = true;
  }
  for (const auto& [name, value] : args.keyword) {
    auto it = std::find(names.begin(), names.end(), name);
    if (it == names.end()) throw_error(fmt::format("{}() got an unexpected keyword argument '{}'", function, name));
    auto i = static_cast<size_t>(it - names.begin());
    if (given_[i]) throw_error(fmt::format("{}() got multiple values for argument '{}'", function, name));
    values_[i] = value;
    given_[i] = true;
  }
}

int64_t ArgBinder::get_int(size_t i, int64_t fallback) const {
  if (!has(i)) return fallback;
  const Value& v = values_[i];
  if (v.is_int()) return v.as_int();
  if (v.is_bool()) return v.as_bool();
  throw_error(fmt::format("{}(): argument {} must be an integer, not {}", function_, i + 1, v.type_name()));
}

std::string ArgBinder::get_string(size_t i, const std::string& fallback) const {
  return has(i) ? values_[i].str() : fallback;
}

namespace {

using Method = Value (*)(Interpreter&, const Value& self, CallArgs& args);

std::optional<std::string> optional_string(const ArgBinder& b, size_t i) {
  if (!b.has(i) || b.get(i).is_none()) return std::nullopt;
  if (!b.get(i).is_string()) throw_error("argument must be str or None, not " + b.get(i).type_name());
  return b.get(i).as_string();
}

const std::string& self_str(const Value& self) { return self.as_string(); }

Value s_strip(Interpreter&, const Value& self, CallArgs& a) {
  return Value::string_like(
      self, py_strip(self_str(self), optional_string(ArgBinder(a, "strip", {"chars"}), 0), StripSide::Both));
}
Value s_lstrip(Interpreter&, const Value& self, CallArgs& a) {
  return Value::string_like(
      self, py_strip(self_str(self), optional_string(ArgBinder(a, "lstrip", {"chars"}), 0), StripSide::Left));
}
Value s_rstrip(Interpreter&, const Value& self, CallArgs& a) {
  return Value::string_like(
      self, py_strip(self_str(self), optional_string(ArgBinder(a, "rstrip", {"chars"}), 0), StripSide::Right));
}

Value split_common(const Value& self, CallArgs& a, bool from_right) {
  ArgBinder b(a, from_right ? "rsplit" : "split", {"sep", "maxsplit"});
  std::optional<std::string> sep = optional_string(b, 0);
  if (sep && sep->empty()) throw_error("empty separator");
  std::vector<Value> out;
  for (auto& part : py_split(self_str(self), sep, b.get_int(1, -1), from_right)) out.emplace_back(std::move(part));
  return Value::make_list(std::move(out));
}
Value s_split(Interpreter&, const Value& self, CallArgs& a) { return split_common(self, a, false); }
Value s_rsplit(Interpreter&, const Value& self, CallArgs& a) { return split_common(self, a, true); }

Value s_splitlines(Interpreter&, const Value& self, CallArgs&) {
  std::vector<Value> out;
  for (auto& line : py_splitlines(self_str(self))) out.emplace_back(std::move(line));
  return Value::make_list(std::move(out));
}

// startswith/endswith take a string or a tuple of strings.
bool affix_match(const Value& self, const Value& affix, bool prefix) {
  const std::string& s = self_str(self);
  auto one = [&](const Value& x) {
    if (!x.is_string()) throw_error("startswith/endswith first arg must be str or a tuple of str");
    const std::string& a = x.as_string();
    if (a.size() > s.size()) return false;
    return prefix ? s.compare(0, a.size(), a) == 0 : s.compare(s.size() - a.size(), a.size(), a) == 0;
  };
  if (affix.is_list()) {
    return std::any_of(affix.as_list().items.begin(), affix.as_list().items.end(), one);
  }
  return one(affix);
}
Value s_startswith(Interpreter&, const Value& self, CallArgs& a) {
  ArgBinder b(a, "startswith", {"prefix"});
  return Value(affix_match(self, b.get(0), true));
}
Value s_endswith(Interpreter&, const Value& self, CallArgs& a) {
  ArgBinder b(a, "endswith", {"suffix"});
  return Value(affix_match(self, b.get(0), false));
}

// Markup's methods return Markup (markupsafe wraps them).
Value s_upper(Interpreter&, const Value& self, CallArgs&) {
  return Value::string_like(self, py_upper_str(self_str(self)));
}
Value s_lower(Interpreter&, const Value& self, CallArgs&) {
  return Value::string_like(self, py_lower_str(self_str(self)));
}
Value s_title(Interpreter&, const Value& self, CallArgs&) { return Value::string_like(self, py_title(self_str(self))); }
Value s_capitalize(Interpreter&, const Value& self, CallArgs&) {
  return Value::string_like(self, py_capitalize(self_str(self)));
}

Value s_replace(Interpreter& in, const Value& self, CallArgs& a) {
  ArgBinder b(a, "replace", {"old", "new", "count"});
  if (!b.get(0).is_string() || !b.get(1).is_string()) throw_error("replace() arguments must be str");
  const std::string& old = b.get(0).as_string();
  const std::string& repl = b.get(1).as_string();
  bool markup = self.is_markup();
  std::string out = py_replace(self_str(self), markup && !b.get(0).is_markup() ? html_escape(old) : old,
                               markup && !b.get(1).is_markup() ? html_escape(repl) : repl, b.get_int(2, -1));
  in.charge(out.size());
  return Value::string_like(self, std::move(out));
}

// Code-point index of byte offset `pos` in `s` (npos -> -1).
int64_t code_point_index(const std::string& s, size_t pos) {
  if (pos == std::string::npos) return -1;
  return static_cast<int64_t>(count_code_points(std::string_view(s).substr(0, pos)));
}
Value s_find(Interpreter&, const Value& self, CallArgs& a) {
  ArgBinder b(a, "find", {"sub"});
  return Value(code_point_index(self_str(self), self_str(self).find(b.get(0).str())));
}
Value s_rfind(Interpreter&, const Value& self, CallArgs& a) {
  ArgBinder b(a, "rfind", {"sub"});
  return Value(code_point_index(self_str(self), self_str(self).rfind(b.get(0).str())));
}
Value s_index(Interpreter&, const Value& self, CallArgs& a) {
  ArgBinder b(a, "index", {"sub"});
  size_t pos = self_str(self).find(b.get(0).str());
  if (pos == std::string::npos) throw_error("substring not found");
  return Value(code_point_index(self_str(self), pos));
}
Value s_count(Interpreter&, const Value& self, CallArgs& a) {
  ArgBinder b(a, "count", {"sub"});
  std::string sub = b.get(0).str();
  const std::string& s = self_str(self);
  if (sub.empty()) return Value(static_cast<int64_t>(count_code_points(s)) + 1);
  int64_t n = 0;
  for (size_t pos = s.find(sub); pos != std::string::npos; pos = s.find(sub, pos + sub.size())) ++n;
  return Value(n);
}

Value s_join(Interpreter& in, const Value& self, CallArgs& a) {
  ArgBinder b(a, "join", {"iterable"});
  std::string out;
  bool first = true;
  for (const Value& item : iterate(b.get(0))) {
    if (!item.is_string()) throw_error(fmt::format("sequence item: expected str instance, {} found", item.type_name()));
    if (!first) out += self_str(self);
    first = false;
    out += item.as_string();
    in.charge(out.size());
  }
  return Value(std::move(out));
}

// str.format with {}, {0} and {name} fields (no format specs).
Value s_format(Interpreter& in, const Value& self, CallArgs& a) {
  const std::string& f = self_str(self);
  std::string out;
  size_t auto_index = 0;
  for (size_t i = 0; i < f.size(); ++i) {
    char c = f[i];
    if (c == '}' && i + 1 < f.size() && f[i + 1] == '}') {
      out += '}';
      ++i;
    } else if (c == '{' && i + 1 < f.size() && f[i + 1] == '{') {
      out += '{';
      ++i;
    } else if (c == '{') {
      size_t end = f.find('}', i);
      if (end == std::string::npos) throw_error("Single '{' encountered in format string");
      std::string field = f.substr(i + 1, end - i - 1);
      if (field.find_first_of(":!") != std::string::npos) throw_error("format specs are not supported");
      const Value* v = nullptr;
      if (field.empty()) {
        if (auto_index >= a.positional.size()) throw_error("Replacement index out of range");
        v = &a.positional[auto_index++];
      } else if (field.find_first_not_of("0123456789") == std::string::npos) {
        size_t k = std::stoul(field.substr(0, 9));
        if (k >= a.positional.size()) throw_error("Replacement index out of range");
        v = &a.positional[k];
      } else {
        v = a.find_keyword(field);
        if (!v) throw_error(fmt::format("KeyError: '{}'", field));
      }
      out += v->str();
      in.charge(out.size());
      i = end;
    } else {
      out += c;
    }
  }
  return Value(std::move(out));
}

bool all_code_points(const Value& self, bool (*pred)(uint32_t)) {
  auto cps = decode_utf8(self_str(self));
  return !cps.empty() && std::all_of(cps.begin(), cps.end(), pred);
}
Value s_isdigit(Interpreter&, const Value& self, CallArgs&) {
  return Value(all_code_points(self, [](uint32_t c) { return c >= '0' && c <= '9'; }));
}
Value s_isalpha(Interpreter&, const Value& self, CallArgs&) { return Value(all_code_points(self, py_isalpha)); }
Value s_isalnum(Interpreter&, const Value& self, CallArgs&) { return Value(all_code_points(self, py_isalnum)); }
Value s_isspace(Interpreter&, const Value& self, CallArgs&) { return Value(all_code_points(self, py_isspace)); }
Value s_isupper(Interpreter&, const Value& self, CallArgs&) {
  const std::string& s = self_str(self);
  return Value(py_upper_str(s) == s && py_lower_str(s) != s);
}
Value s_islower(Interpreter&, const Value& self, CallArgs&) {
  const std::string& s = self_str(self);
  return Value(py_lower_str(s) == s && py_upper_str(s) != s);
}

Value s_removeprefix(Interpreter&, const Value& self, CallArgs& a) {
  ArgBinder b(a, "removeprefix", {"prefix"});
  std::string p = b.get(0).str();
  const std::string& s = self_str(self);
  return Value(s.compare(0, p.size(), p) == 0 && p.size() <= s.size() ? s.substr(p.size()) : s);
}
Value s_removesuffix(Interpreter&, const Value& self, CallArgs& a) {
  ArgBinder b(a, "removesuffix", {"suffix"});
  std::string p = b.get(0).str();
  const std::string& s = self_str(self);
  bool match = !p.empty() && p.size() <= s.size() && s.compare(s.size() - p.size(), p.size(), p) == 0;
  return Value(match ? s.substr(0, s.size() - p.size()) : s);
}

Value partition_common(const Value& self, CallArgs& a, bool from_right) {
  ArgBinder b(a, "partition", {"sep"});
  std::string sep = b.get(0).str();
  if (sep.empty()) throw_error("empty separator");
  const std::string& s = self_str(self);
  size_t pos = from_right ? s.rfind(sep) : s.find(sep);
  if (pos == std::string::npos) {
    return from_right ? Value::make_list({Value(""), Value(""), Value(s)}, true)
                      : Value::make_list({Value(s), Value(""), Value("")}, true);
  }
  return Value::make_list({Value(s.substr(0, pos)), Value(sep), Value(s.substr(pos + sep.size()))}, true);
}
Value s_partition(Interpreter&, const Value& self, CallArgs& a) { return partition_common(self, a, false); }
Value s_rpartition(Interpreter&, const Value& self, CallArgs& a) { return partition_common(self, a, true); }

// ---- dict ----

Dict& self_dict(const Value& self) { return self.as_dict(); }

Value d_items(Interpreter&, const Value& self, CallArgs&) {
  std::vector<Value> out;
  for (const auto& [k, v] : self_dict(self).items) out.push_back(Value::make_list({k, v}, true));
  return Value::make_list(std::move(out));
}
Value d_keys(Interpreter&, const Value& self, CallArgs&) {
  std::vector<Value> out;
  for (const auto& item : self_dict(self).items) out.push_back(item.first);
  return Value::make_list(std::move(out));
}
Value d_values(Interpreter&, const Value& self, CallArgs&) {
  std::vector<Value> out;
  for (const auto& item : self_dict(self).items) out.push_back(item.second);
  return Value::make_list(std::move(out));
}
Value d_get(Interpreter&, const Value& self, CallArgs& a) {
  ArgBinder b(a, "get", {"key", "default"});
  if (const Value* v = self_dict(self).find(b.get(0))) return *v;
  return b.get_or(1, Value::none());
}
Value d_pop(Interpreter&, const Value& self, CallArgs& a) {
  ArgBinder b(a, "pop", {"key", "default"});
  Dict& d = self_dict(self);
  if (const Value* v = d.find(b.get(0))) {
    Value out = *v;
    d.erase(b.get(0));
    return out;
  }
  if (b.has(1)) return b.get(1);
  throw_error(fmt::format("KeyError: {}", b.get(0).repr()));
}
Value d_update(Interpreter& in, const Value& self, CallArgs& a) {
  in.note_mutation(self);
  for (const Value& other : a.positional) {
    if (!other.is_dict()) throw_error("update() argument must be a mapping");
    for (const auto& [k, v] : other.as_dict().items) self_dict(self).set(k, v);
  }
  for (const auto& [k, v] : a.keyword) self_dict(self).set(Value(k), v);
  return Value::none();
}
Value d_setdefault(Interpreter& in, const Value& self, CallArgs& a) {
  ArgBinder b(a, "setdefault", {"key", "default"});
  in.note_mutation(self);
  if (const Value* v = self_dict(self).find(b.get(0))) return *v;
  Value fallback = b.get_or(1, Value::none());
  self_dict(self).set(b.get(0), fallback);
  return fallback;
}
Value d_copy(Interpreter&, const Value& self, CallArgs&) {
  Value out = Value::make_dict();
  out.as_dict().items = self_dict(self).items;
  return out;
}

// ---- list ----

std::vector<Value>& self_list(const Value& self) { return self.as_list().items; }

Value l_append(Interpreter& in, const Value& self, CallArgs& a) {
  ArgBinder b(a, "append", {"object"});
  if (self.as_list().is_tuple) throw_error("'tuple' object has no attribute 'append'");
  in.charge(sizeof(Value));
  in.note_mutation(self);
  self_list(self).push_back(b.get(0));
  return Value::none();
}
Value l_extend(Interpreter& in, const Value& self, CallArgs& a) {
  ArgBinder b(a, "extend", {"iterable"});
  in.note_mutation(self);
  for (Value& v : iterate(b.get(0))) self_list(self).push_back(std::move(v));
  return Value::none();
}
Value l_pop(Interpreter&, const Value& self, CallArgs& a) {
  ArgBinder b(a, "pop", {"index"});
  auto& items = self_list(self);
  if (items.empty()) throw_error("pop from empty list");
  int64_t i = b.get_int(0, -1);
  if (i < 0) i += static_cast<int64_t>(items.size());
  if (i < 0 || i >= static_cast<int64_t>(items.size())) throw_error("pop index out of range");
  Value out = items[static_cast<size_t>(i)];
  items.erase(items.begin() + i);
  return out;
}
Value l_insert(Interpreter& in, const Value& self, CallArgs& a) {
  ArgBinder b(a, "insert", {"index", "object"});
  in.note_mutation(self);
  auto& items = self_list(self);
  auto n = static_cast<int64_t>(items.size());
  int64_t i = b.get_int(0, 0);
  if (i < 0) i = std::max<int64_t>(0, i + n);
  items.insert(items.begin() + std::min(i, n), b.get(1));
  return Value::none();
}
Value l_index(Interpreter&, const Value& self, CallArgs& a) {
  ArgBinder b(a, "index", {"value"});
  const auto& items = self_list(self);
  for (size_t i = 0; i < items.size(); ++i) {
    if (items[i].equals(b.get(0))) return Value(static_cast<int64_t>(i));
  }
  throw_error(fmt::format("{} is not in list", b.get(0).repr()));
}
Value l_count(Interpreter&, const Value& self, CallArgs& a) {
  ArgBinder b(a, "count", {"value"});
  const auto& items = self_list(self);
  return Value(static_cast<int64_t>(std::count_if(items.begin(), items.end(), [&](const Value& v) { return v.equals(b.get(0)); })));
}
Value l_copy(Interpreter&, const Value& self, CallArgs&) { return Value::make_list(self_list(self)); }

struct MethodEntry {
  const char* name;
  Method fn;
};

constexpr MethodEntry kStringMethods[] = {
    {"strip", s_strip}, {"lstrip", s_lstrip}, {"rstrip", s_rstrip}, {"split", s_split}, {"rsplit", s_rsplit},
    {"splitlines", s_splitlines}, {"startswith", s_startswith}, {"endswith", s_endswith}, {"upper", s_upper},
    {"lower", s_lower}, {"title", s_title}, {"capitalize", s_capitalize}, {"replace", s_replace},
    {"find", s_find}, {"rfind", s_rfind}, {"index", s_index}, {"count", s_count}, {"join", s_join},
    {"format", s_format}, {"isdigit", s_isdigit}, {"isalpha", s_isalpha}, {"isalnum", s_isalnum},
    {"isspace", s_isspace}, {"isupper", s_isupper}, {"islower", s_islower}, {"removeprefix", s_removeprefix},
    {"removesuffix", s_removesuffix}, {"partition", s_partition}, {"rpartition", s_rpartition},
};
constexpr MethodEntry kDictMethods[] = {
    {"items", d_items}, {"keys", d_keys}, {"values", d_values}, {"get", d_get}, {"pop", d_pop},
    {"update", d_update}, {"setdefault", d_setdefault}, {"copy", d_copy},
};
constexpr MethodEntry kListMethods[] = {
    {"append", l_append}, {"extend", l_extend}, {"pop", l_pop}, {"insert", l_insert},
    {"index", l_index}, {"count", l_count}, {"copy", l_copy},
};

template <size_t N>
Method lookup(const MethodEntry (&table)[N], const std::string& name) {
  for (const auto& entry : table) {
    if (name == entry.name) return entry.fn;
  }
  return nullptr;
}

// ---- globals ----

Value g_range(Interpreter& in, CallArgs& a) {
  if (!a.keyword.empty() || a.positional.empty() || a.positional.size() > 3) {
    throw_error("range() takes 1 to 3 positional arguments");
  }
  int64_t start = 0, stop = 0, step = 1;
  auto arg = [](const Value& v) -> int64_t {
    if (!v.is_int() && !v.is_bool()) throw_error(fmt::format("'{}' object cannot be interpreted as an integer", v.type_name()));
    return v.is_bool() ? v.as_bool() : v.as_int();
  };
  if (a.positional.size() == 1) {
    stop = arg(a.positional[0]);
  } else {
    start = arg(a.positional[0]);
    stop = arg(a.positional[1]);
    if (a.positional.size() == 3) step = arg(a.positional[2]);
  }
  if (step == 0) throw_error("range() arg 3 must not be zero");
  double n = std::ceil((static_cast<double>(stop) - static_cast<double>(start)) / static_cast<double>(step));
  if (n > 1e6) throw_error(fmt::format("range() of {} items exceeds the limit of 1000000", n));
  std::vector<Value> items;
  for (int64_t i = start; step > 0 ? i < stop : i > stop; i += step) {
    in.step();
    items.emplace_back(i);
  }
  return Value::make_list(std::move(items));
}

Value g_namespace(Interpreter&, CallArgs& a) {
  Value ns = Value::make_dict();
  ns.as_dict().kind = Dict::Kind::Namespace;
  for (const Value& init : a.positional) {
    if (!init.is_dict()) throw_error("namespace() positional argument must be a mapping");
    for (const auto& [k, v] : init.as_dict().items) ns.as_dict().set(k, v);
  }
  for (const auto& [k, v] : a.keyword) ns.as_dict().set(Value(k), v);
  return ns;
}

Value g_dict(Interpreter&, CallArgs& a) {
  Value d = Value::make_dict();
  for (const Value& init : a.positional) {
    if (init.is_dict()) {
      for (const auto& [k, v] : init.as_dict().items) d.as_dict().set(k, v);
    } else {
      for (const Value& pair : iterate(init)) {
        std::vector<Value> kv = iterate(pair);
        if (kv.size() != 2) throw_error("dict(): sequence elements must have length 2");
        d.as_dict().set(kv[0], kv[1]);
      }
    }
  }
  for (const auto& [k, v] : a.keyword) d.as_dict().set(Value(k), v);
  return d;
}

Value g_raise_exception(Interpreter&, CallArgs& a) {
  std::string message = a.positional.empty() ? std::string() : a.positional[0].str();
  throw RenderError{std::move(message), 0, 0, true};
}

Value g_strftime_now(Interpreter& in, CallArgs& a) {
  ArgBinder b(a, "strftime_now", {"format"});
  std::string format = b.get(0).str();
  if (format.size() > 256) throw_error("strftime_now: format too long");
  std::tm tm = in.now();
  char buf[4096];
  size_t n = format.empty() ? 0 : std::strftime(buf, sizeof(buf), format.c_str(), &tm);
  return Value(std::string(buf, n));
}

}  // namespace

Value find_method(const Value& obj, const std::string& name) {
  Method fn = nullptr;
  if (obj.is_string()) {
    fn = lookup(kStringMethods, name);
  } else if (obj.is_list()) {
    fn = lookup(kListMethods, name);
  } else if (obj.is_dict() && obj.as_dict().kind == Dict::Kind::Plain) {
    fn = lookup(kDictMethods, name);
  }
  if (!fn) return Value();
  return make_callable(name, [fn, obj](Interpreter& in, CallArgs& args) { return fn(in, obj, args); });
}

void install_globals(Frame& globals) {
  globals.vars["range"] = make_callable("range", g_range);
  globals.vars["namespace"] = make_callable("namespace", g_namespace);
  globals.vars["dict"] = make_callable("dict", g_dict);
  globals.vars["raise_exception"] = make_callable("raise_exception", g_raise_exception);
  globals.vars["strftime_now"] = make_callable("strftime_now", g_strftime_now);
}

}  // namespace owl::tmpl
