#include "constrain/json_schema.h"

#include <algorithm>
#include <cmath>
#include <map>
#include <optional>
#include <set>
#include <vector>

#include "constrain/grammar.h"

namespace owl::constrain {

using core::make_error;
using Json = nlohmann::ordered_json;

namespace {

using Ranges = CodeRanges;

// Building blocks, added to a grammar only when used: name, body, the rules the body uses.
struct Builtin {
  const char* name;
  const char* body;
  std::vector<const char*> uses;
};

// A JSON string character (raw, or an escape other than a lone surrogate: each counts as one
// character, as minLength and maxLength count them).
const Builtin kBuiltins[] = {
    {"ws", R"(( " " | "\n" [ \t]{0,20} )?)", {}},
    {"jchar", R"([^"\\\x00-\x1f] | "\\" ( ["\\/bfnrt] | "u" ( [0-9a-cA-Ce-fE-F] [0-9a-fA-F]{3} | [dD] [0-7] [0-9a-fA-F]{2} ) ))", {}},
    {"string", R"("\"" [^"\\\x00-\x1f]* ( "\\" ( ["\\/bfnrt] | "u" [0-9a-fA-F]{4} ) [^"\\\x00-\x1f]* )* "\"")", {}},
    {"number", R"("-"? ( "0" | [1-9] [0-9]{0,15} ) ( "." [0-9]{1,16} )? ( [eE] [-+]? [0-9]{1,3} )?)", {}},
    {"integer", R"("-"? ( "0" | [1-9] [0-9]{0,15} ))", {}},
    {"boolean", R"("true" | "false")", {}},
    {"null", R"("null")", {}},
    {"value", R"(object | array | string | number | boolean | null)", {"object", "array", "string", "number", "boolean", "null"}},
    {"object", R"("{" ws ( string ws ":" ws value ws ( "," ws string ws ":" ws value ws )* )? "}")", {"ws", "string", "value"}},
    {"array", R"("[" ws ( value ws ( "," ws value ws )* )? "]")", {"ws", "value"}},
    {"fmt-date", R"([0-9]{4} "-" ( ( "0" [13578] | "1" [02] ) "-" ( "0" [1-9] | [12] [0-9] | "3" [01] ) | ( "0" [469] | "11" ) "-" ( "0" [1-9] | [12] [0-9] | "30" ) | "02-" ( "0" [1-9] | "1" [0-9] | "2" [0-8] ) ))", {}},
    {"fmt-time", R"(( [01] [0-9] | "2" [0-3] ) ":" [0-5] [0-9] ":" [0-5] [0-9] ( "." [0-9]{1,6} )? ( "Z" | [+-] ( [01] [0-9] | "2" [0-3] ) ":" [0-5] [0-9] ))", {}},
    {"fmt-date-time", R"(fmt-date "T" fmt-time)", {"fmt-date", "fmt-time"}},
    {"fmt-uuid", R"([0-9a-f]{8} "-" [0-9a-f]{4} "-" [0-9a-f]{4} "-" [0-9a-f]{4} "-" [0-9a-f]{12})", {}},
    {"fmt-email", R"([a-zA-Z0-9_+-]{1,24} ( "." [a-zA-Z0-9_+-]{1,24} ){0,3} "@" ( [a-zA-Z0-9] ( [a-zA-Z0-9-]{0,24} [a-zA-Z0-9] )? "." ){1,4} [a-zA-Z]{2,12})", {}},
    {"fmt-ipv4-octet", R"("25" [0-5] | "2" [0-4] [0-9] | "1" [0-9] [0-9] | [1-9] [0-9] | [0-9])", {}},
    {"fmt-ipv4", R"(fmt-ipv4-octet "." fmt-ipv4-octet "." fmt-ipv4-octet "." fmt-ipv4-octet)", {"fmt-ipv4-octet"}},
};

const std::set<std::string> kAnnotations = {"title", "description", "default", "examples", "$comment", "$schema",
                                            "$id", "deprecated", "readOnly", "writeOnly", "$defs", "definitions"};
const std::set<std::string> kKeywords = {
    "type", "properties", "required", "additionalProperties", "enum", "const", "items", "prefixItems", "minItems",
    "maxItems", "minLength", "maxLength", "pattern", "format", "minimum", "maximum", "exclusiveMinimum",
    "exclusiveMaximum", "anyOf", "oneOf", "allOf", "$ref", "nullable"};

constexpr int kMaxDepth = 64;
constexpr int64_t kMaxLengthBound = 10000;
constexpr int64_t kMaxIntBound = 999999999999999;  // 15 digits: integers JSON parsers hold exactly

std::string join(const std::vector<std::string>& parts, std::string_view sep) {
  std::string out;
  for (size_t i = 0; i < parts.size(); ++i) {
    if (i) out += sep;
    out += parts[i];
  }
  return out;
}

std::string pointer_escape(std::string_view key) {
  std::string out;
  for (char c : key) {
    if (c == '~') out += "~0";
    else if (c == '/') out += "~1";
    else out += c;
  }
  return out;
}

std::string where(const std::string& ptr) { return ptr.empty() ? "/" : ptr; }

// A code point inside a GBNF class, always escaped unless alphanumeric.
std::string class_char(uint32_t cp) {
  if ((cp >= '0' && cp <= '9') || (cp >= 'a' && cp <= 'z') || (cp >= 'A' && cp <= 'Z')) return std::string(1, static_cast<char>(cp));
  if (cp <= 0xFF) return fmt::format("\\x{:02x}", cp);
  if (cp <= 0xFFFF) return fmt::format("\\u{:04x}", cp);
  return fmt::format("\\U{:08x}", cp);
}

std::string class_text(const Ranges& ranges) {
  std::string out = "[";
  for (auto [lo, hi] : ranges) {
    out += class_char(lo);
    if (hi != lo) out += "-" + class_char(hi);
  }
  return out + "]";
}

Ranges normalize(Ranges r) { return normalize_ranges(std::move(r)); }
Ranges complement(const Ranges& sorted) { return complement_ranges(sorted); }

// The JSON text of a string character.
std::string json_escape(uint32_t cp) {
  switch (cp) {
    case '"': return "\\\"";
    case '\\': return "\\\\";
    case '\b': return "\\b";
    case '\f': return "\\f";
    case '\n': return "\\n";
    case '\r': return "\\r";
    case '\t': return "\\t";
    default: return fmt::format("\\u{:04x}", cp);
  }
}

// GBNF for one character of a set, written as it appears inside a JSON string.
std::string encode_set(const Ranges& set) {
  Ranges raw;
  std::vector<std::string> alts;
  for (auto [lo, hi] : set) {
    if (hi >= 0xD800 && lo <= 0xDFFF) {  // no surrogates
      if (lo < 0xD800) raw.push_back({lo, 0xD7FF});
      if (hi > 0xDFFF) raw.push_back({0xE000, hi});
      continue;
    }
    raw.push_back({lo, hi});
  }
  Ranges plain;
  for (auto [lo, hi] : raw) {
    for (uint32_t cp = lo; cp <= std::min<uint32_t>(hi, 0x5C); ++cp) {
      if (cp < 0x20 || cp == '"' || cp == '\\') alts.push_back(gbnf_literal(json_escape(cp)));
    }
    // Split around the characters that must be escaped.
    uint32_t a = lo;
    while (a <= hi) {
      if (a < 0x20) { a = 0x20; continue; }
      if (a == '"' || a == '\\') { ++a; continue; }
      uint32_t b = hi;
      if (a < '"' && b >= '"') b = '"' - 1;
      else if (a < '\\' && b >= '\\') b = '\\' - 1;
      plain.push_back({a, b});
      a = b + 1;
    }
  }
  if (!plain.empty()) alts.insert(alts.begin(), class_text(plain));
  if (alts.empty()) return "";
  return alts.size() == 1 ? alts[0] : "( " + join(alts, " | ") + " )";
}

const Ranges kDigit = {{'0', '9'}};
const Ranges kWord = {{'0', '9'}, {'A', 'Z'}, {'_', '_'}, {'a', 'z'}};
const Ranges kSpace = {{'\t', '\r'}, {' ', ' '}, {0xA0, 0xA0}, {0x1680, 0x1680}, {0x2000, 0x200A},
                       {0x2028, 0x2029}, {0x202F, 0x202F}, {0x205F, 0x205F}, {0x3000, 0x3000}, {0xFEFF, 0xFEFF}};
const Ranges kDot = complement(normalize({{'\n', '\n'}, {'\r', '\r'}, {0x2028, 0x2029}}));

// ECMAScript regex (the subset JSON Schema patterns use) to GBNF over the JSON-encoded string.
class RegexConverter {
 public:
  RegexConverter(std::string_view re, std::string ptr) : s_(re), ptr_(std::move(ptr)) {}

  core::Result<std::string> run(bool& anchored_start, bool& anchored_end) {
    anchored_start = !s_.empty() && s_[0] == '^';
    if (anchored_start) ++pos_;
    auto e = alternatives(0);
    if (!e.ok()) return e;
    anchored_end = anchored_end_;
    if (pos_ != s_.size()) return error(fmt::format("unexpected '{}'", s_[pos_]));
    return e;
  }

 private:
  core::Error error(std::string_view what) const {
    return make_error("json_schema: 'pattern' at {}: {} at offset {} of {}", where(ptr_), what, pos_, nlohmann::json(std::string(s_)).dump());
  }

  core::Result<std::string> alternatives(int depth) {
    if (depth > 32) return error("groups nested too deep");
    std::vector<std::string> alts;
    for (;;) {
      auto seq = sequence(depth);
      if (!seq.ok()) return seq;
      alts.push_back(seq->empty() ? "\"\"" : *seq);
      if (pos_ < s_.size() && s_[pos_] == '|') {
        ++pos_;
        continue;
      }
      break;
    }
    return alts.size() == 1 ? alts[0] : "( " + join(alts, " | ") + " )";
  }

  core::Result<uint32_t> hex(size_t digits) {
    uint32_t v = 0;
    for (size_t i = 0; i < digits; ++i, ++pos_) {
      if (pos_ >= s_.size() || !std::isxdigit(static_cast<unsigned char>(s_[pos_]))) return error("a bad hex escape");
      const char c = s_[pos_];
      v = v * 16 + static_cast<uint32_t>(c <= '9' ? c - '0' : (c | 0x20) - 'a' + 10);
    }
    return v;
  }

  core::Result<uint32_t> utf8_char() {
    const auto c = static_cast<uint8_t>(s_[pos_]);
    const int len = c < 0x80 ? 1 : (c & 0xE0) == 0xC0 ? 2 : (c & 0xF0) == 0xE0 ? 3 : (c & 0xF8) == 0xF0 ? 4 : 0;
    if (len == 0 || pos_ + static_cast<size_t>(len) > s_.size()) return error("invalid UTF-8");
    uint32_t cp = len == 1 ? c : len == 2 ? (c & 0x1Fu) : len == 3 ? (c & 0x0Fu) : (c & 0x07u);
    for (int i = 1; i < len; ++i) cp = (cp << 6) | (static_cast<uint8_t>(s_[pos_ + static_cast<size_t>(i)]) & 0x3Fu);
    pos_ += static_cast<size_t>(len);
    return cp;
  }

  // An escape after '\': a set of code points (one for a plain character).
  core::Result<Ranges> escape(bool in_class) {
    if (pos_ >= s_.size()) return error("a trailing backslash");
    const char e = s_[pos_++];
    switch (e) {
      case 'd': return kDigit;
      case 'D': return complement(kDigit);
      case 'w': return kWord;
      case 'W': return complement(kWord);
      case 's': return kSpace;
      case 'S': return complement(normalize(kSpace));
      case 'n': return Ranges{{'\n', '\n'}};
      case 'r': return Ranges{{'\r', '\r'}};
      case 't': return Ranges{{'\t', '\t'}};
      case 'f': return Ranges{{'\f', '\f'}};
      case 'v': return Ranges{{'\v', '\v'}};
      case '0': return Ranges{{0, 0}};
      case 'x': {
        auto v = hex(2);
        if (!v.ok()) return v.error();
        return Ranges{{*v, *v}};
      }
      case 'u': {
        if (pos_ < s_.size() && s_[pos_] == '{') {
          ++pos_;
          const size_t start = pos_;
          while (pos_ < s_.size() && s_[pos_] != '}') ++pos_;
          if (pos_ >= s_.size() || pos_ == start || pos_ - start > 6) return error("a bad \\u{...} escape");
          const size_t end = pos_;
          pos_ = start;
          auto v = hex(end - start);
          if (!v.ok()) return v.error();
          ++pos_;
          if (*v > 0x10FFFF) return error("a code point beyond U+10FFFF");
          return Ranges{{*v, *v}};
        }
        auto v = hex(4);
        if (!v.ok()) return v.error();
        return Ranges{{*v, *v}};
      }
      case 'b':
        if (in_class) return Ranges{{'\b', '\b'}};
        --pos_;
        return error("word boundaries (\\b) are not supported");
      case 'B': --pos_; return error("word boundaries (\\B) are not supported");
      case 'p': case 'P': --pos_; return error("Unicode property classes (\\p) are not supported");
      case 'c': case 'k': --pos_; return error(fmt::format("the escape \\{} is not supported", e));
      default:
        if (e >= '1' && e <= '9') {
          --pos_;
          return error("back-references are not supported");
        }
        if (std::isalnum(static_cast<unsigned char>(e))) {
          --pos_;
          return error(fmt::format("the escape \\{} is not supported", e));
        }
        return Ranges{{static_cast<uint8_t>(e), static_cast<uint8_t>(e)}};
    }
  }

  core::Result<Ranges> char_class() {
    bool negated = false;
    if (pos_ < s_.size() && s_[pos_] == '^') {
      negated = true;
      ++pos_;
    }
    Ranges set;
    while (pos_ < s_.size() && s_[pos_] != ']') {
      Ranges item;
      if (s_[pos_] == '\\') {
        ++pos_;
        auto r = escape(true);
        if (!r.ok()) return r;
        item = *r;
      } else {
        auto c = utf8_char();
        if (!c.ok()) return c.error();
        item = {{*c, *c}};
      }
      if (item.size() == 1 && item[0].first == item[0].second && pos_ + 1 < s_.size() && s_[pos_] == '-' && s_[pos_ + 1] != ']') {
        ++pos_;
        uint32_t hi = 0;
        if (s_[pos_] == '\\') {
          ++pos_;
          auto r = escape(true);
          if (!r.ok()) return r;
          if (r->size() != 1 || (*r)[0].first != (*r)[0].second) return error("a class escape as a range end");
          hi = (*r)[0].first;
        } else {
          auto c = utf8_char();
          if (!c.ok()) return c.error();
          hi = *c;
        }
        if (hi < item[0].first) return error("a reversed range");
        item[0].second = hi;
      }
      set.insert(set.end(), item.begin(), item.end());
    }
    if (pos_ >= s_.size()) return error("an unclosed '['");
    ++pos_;
    set = normalize(std::move(set));
    return negated ? complement(set) : set;
  }

  core::Result<std::string> sequence(int depth) {
    std::vector<std::string> parts;
    while (pos_ < s_.size() && s_[pos_] != '|' && s_[pos_] != ')') {
      std::string atom;
      const char c = s_[pos_];
      if (c == '$') {
        ++pos_;
        if (pos_ != s_.size()) return error("'$' before the end of the pattern is not supported");
        anchored_end_ = true;
        break;
      }
      if (c == '^') return error("'^' after the start of the pattern is not supported");
      if (c == '(') {
        ++pos_;
        if (pos_ < s_.size() && s_[pos_] == '?') {
          if (pos_ + 1 < s_.size() && s_[pos_ + 1] == ':') {
            pos_ += 2;
          } else {
            return error("lookaround and named groups are not supported");
          }
        }
        auto inner = alternatives(depth + 1);
        if (!inner.ok()) return inner;
        if (pos_ >= s_.size() || s_[pos_] != ')') return error("an unclosed '('");
        ++pos_;
        atom = "( " + *inner + " )";
      } else if (c == '[') {
        ++pos_;
        auto set = char_class();
        if (!set.ok()) return set.error();
        atom = encode_set(*set);
        if (atom.empty()) return error("a class that matches nothing");
      } else if (c == '.') {
        ++pos_;
        atom = encode_set(kDot);
      } else if (c == '\\') {
        ++pos_;
        auto set = escape(false);
        if (!set.ok()) return set.error();
        atom = encode_set(*set);
      } else if (c == '*' || c == '+' || c == '?' || c == '{') {
        return error(fmt::format("a quantifier '{}' with nothing to repeat", c));
      } else {
        auto cp = utf8_char();
        if (!cp.ok()) return cp.error();
        atom = encode_set({{*cp, *cp}});
      }
      if (pos_ < s_.size()) {
        const char q = s_[pos_];
        std::string quant;
        if (q == '*' || q == '+' || q == '?') {
          quant = std::string(1, q);
          ++pos_;
        } else if (q == '{') {
          const size_t close = s_.find('}', pos_);
          const std::string body(s_.substr(pos_ + 1, close == std::string_view::npos ? 0 : close - pos_ - 1));
          const bool ok = close != std::string_view::npos && !body.empty() &&
                          body.find_first_not_of("0123456789,") == std::string::npos && body[0] != ',' &&
                          std::count(body.begin(), body.end(), ',') <= 1;
          if (!ok) return error("a bad {m,n} quantifier");
          const size_t comma = body.find(',');
          const long lo = std::stol(body.substr(0, comma));
          const long hi = comma == std::string::npos ? lo : comma + 1 == body.size() ? -1 : std::stol(body.substr(comma + 1));
          if (lo > 10000 || hi > 10000) return error("a repetition count above 10000");
          if (hi >= 0 && hi < lo) return error("a {m,n} quantifier with n < m");
          quant = hi < 0 ? fmt::format("{{{},}}", lo) : fmt::format("{{{},{}}}", lo, hi);
          pos_ = close + 1;
        }
        if (!quant.empty()) {
          if (pos_ < s_.size() && s_[pos_] == '?') ++pos_;  // lazy: the same language
          atom = "( " + atom + " )" + quant;
        }
      }
      parts.push_back(std::move(atom));
    }
    return join(parts, " ");
  }

  std::string_view s_;
  std::string ptr_;
  size_t pos_ = 0;
  bool anchored_end_ = false;
};

// Decimal integers in ranges, without leading zeros.
std::string digits_range(const std::string& a, const std::string& b) {
  const size_t n = a.size();
  if (n == 0) return "";
  if (a == b) return gbnf_literal(a);
  if (a.find_first_not_of('0') == std::string::npos && b.find_first_not_of('9') == std::string::npos) {
    return n == 1 ? "[0-9]" : fmt::format("[0-9]{{{}}}", n);
  }
  if (n == 1) return fmt::format("[{}-{}]", a[0], b[0]);
  if (a[0] == b[0]) return gbnf_literal(a.substr(0, 1)) + " " + digits_range(a.substr(1), b.substr(1));
  std::vector<std::string> alts;
  alts.push_back(gbnf_literal(a.substr(0, 1)) + " " + digits_range(a.substr(1), std::string(n - 1, '9')));
  if (b[0] - a[0] >= 2) {
    alts.push_back(fmt::format("[{}-{}] {}", static_cast<char>(a[0] + 1), static_cast<char>(b[0] - 1),
                               n - 1 == 1 ? std::string("[0-9]") : fmt::format("[0-9]{{{}}}", n - 1)));
  }
  alts.push_back(gbnf_literal(b.substr(0, 1)) + " " + digits_range(std::string(n - 1, '0'), b.substr(1)));
  return "( " + join(alts, " | ") + " )";
}

uint64_t pow10(size_t d) {
  uint64_t v = 1;
  while (d--) v *= 10;
  return v;
}

std::string nonneg_range(uint64_t a, uint64_t b) {
  std::vector<std::string> alts;
  const size_t da = std::to_string(a).size(), db = std::to_string(b).size();
  for (size_t d = da; d <= db; ++d) {
    const uint64_t lo = d == da ? a : pow10(d - 1);
    const uint64_t hi = d == db ? b : pow10(d) - 1;
    alts.push_back(digits_range(std::to_string(lo), std::to_string(hi)));
  }
  return alts.size() == 1 ? alts[0] : "( " + join(alts, " | ") + " )";
}

// Integers >= a (a >= 0), up to 16 digits.
std::string nonneg_at_least(uint64_t a) {
  const size_t d = std::to_string(a).size();
  std::string out = nonneg_range(a, pow10(d) - 1);
  if (d < 16) out = fmt::format("( {} | [1-9] [0-9]{{{},15}} )", out, d);
  return out;
}

std::string int_range(std::optional<int64_t> lo, std::optional<int64_t> hi) {
  std::vector<std::string> alts;
  // Negative values x in [lo, min(hi, -1)], written "-" and the magnitude.
  const int64_t neg_hi = hi ? std::min<int64_t>(*hi, -1) : -1;
  if (!lo || *lo <= neg_hi) {
    const auto m_lo = static_cast<uint64_t>(-neg_hi);
    alts.push_back("\"-\" " + (lo ? nonneg_range(m_lo, static_cast<uint64_t>(-*lo)) : nonneg_at_least(m_lo)));
  }
  if (!hi || *hi >= 0) {
    const auto a = static_cast<uint64_t>(lo ? std::max<int64_t>(*lo, 0) : 0);
    if (!hi || static_cast<uint64_t>(*hi) >= a) alts.push_back(hi ? nonneg_range(a, static_cast<uint64_t>(*hi)) : nonneg_at_least(a));
  }
  return alts.size() == 1 ? alts[0] : "( " + join(alts, " | ") + " )";
}

class Converter {
 public:
  explicit Converter(const Json& root) : root_(root) {}

  core::Result<std::string> run() {
    auto e = visit(root_, "", 0);
    if (!e.ok()) return e;
    std::string out = "root ::= " + *e + "\n";
    for (const auto& [name, body] : rules_) out += name + " ::= " + body + "\n";
    // A schema that refers to itself before any value ({"$ref": "#"}) has no finite document.
    if (auto g = Grammar::parse(out); !g.ok()) {
      return make_error("json_schema: the schema cannot be generated: it refers to itself before any value ({})", g.message());
    }
    return out;
  }

 private:
  std::string use(const std::string& name) {
    if (have_.count(name)) return name;
    for (const Builtin& b : kBuiltins) {
      if (name == b.name) {
        have_.insert(name);
        rules_.push_back({name, b.body});
        for (const char* dep : b.uses) use(dep);
        return name;
      }
    }
    return name;
  }

  std::string add_rule(const std::string& hint, const std::string& body) {
    const std::string name = fmt::format("{}-{}", hint, ++counter_);
    rules_.push_back({name, body});
    have_.insert(name);
    return name;
  }

  core::Error error(const std::string& ptr, const std::string& what) const {
    return make_error("json_schema: {} at {}", what, where(ptr));
  }

  core::Result<std::string> ref(const std::string& target, const std::string& ptr, int depth) {
    if (auto it = refs_.find(target); it != refs_.end()) return it->second;
    if (target.empty() || target[0] != '#') return error(ptr + "/$ref", fmt::format("'$ref' {} is not a local reference (#...)", target));
    const Json* node = &root_;
    std::string path = target.substr(1);
    if (!path.empty()) {
      try {
        node = &root_.at(Json::json_pointer(path));
      } catch (const std::exception&) {
        return error(ptr + "/$ref", fmt::format("'$ref' {} does not resolve", target));
      }
    }
    // Reserve the rule first: a recursive schema refers to itself through it.
    const std::string name = fmt::format("ref-{}", ++counter_);
    refs_[target] = name;
    have_.insert(name);
    const size_t slot = rules_.size();
    rules_.push_back({name, ""});
    auto body = visit(*node, path, depth + 1);
    if (!body.ok()) return body;
    rules_[slot].second = *body;
    return name;
  }

  core::Result<std::string> visit(const Json& s, const std::string& ptr, int depth) {
    if (depth > kMaxDepth) return error(ptr, fmt::format("schemas nested deeper than {}", kMaxDepth));
    if (s.is_boolean()) {
      if (s.get<bool>()) return use("value");
      return error(ptr, "the schema false (nothing validates)");
    }
    if (!s.is_object()) return error(ptr, "a schema that is not an object or a boolean");
    for (const auto& [k, v] : s.items()) {
      if (!kKeywords.count(k) && !kAnnotations.count(k)) return error(ptr + "/" + pointer_escape(k), fmt::format("unsupported keyword '{}'", k));
    }
    auto constraining = [&](std::initializer_list<const char*> except) {
      for (const auto& [k, v] : s.items()) {
        if (kAnnotations.count(k)) continue;
        bool skip = false;
        for (const char* e : except) skip = skip || k == e;
        if (!skip) return k;
      }
      return std::string();
    };
    std::string out;
    const bool nullable = s.contains("nullable") && s["nullable"].is_boolean() && s["nullable"].get<bool>();
    if (s.contains("nullable") && !s["nullable"].is_boolean()) return error(ptr + "/nullable", "'nullable' that is not a boolean");
    if (s.contains("$ref")) {
      if (auto other = constraining({"$ref", "nullable"}); !other.empty()) {
        return error(ptr + "/" + pointer_escape(other), fmt::format("'{}' beside '$ref' is not supported", other));
      }
      if (!s["$ref"].is_string()) return error(ptr + "/$ref", "'$ref' that is not a string");
      auto r = ref(s["$ref"].get<std::string>(), ptr, depth);
      if (!r.ok()) return r;
      out = *r;
    } else if (s.contains("const")) {
      out = gbnf_literal(s["const"].dump());
    } else if (s.contains("enum")) {
      const Json& e = s["enum"];
      if (!e.is_array() || e.empty()) return error(ptr + "/enum", "'enum' that is not a non-empty array");
      std::vector<std::string> alts;
      for (const Json& v : e) alts.push_back(gbnf_literal(v.dump()));
      out = alts.size() == 1 ? alts[0] : "( " + join(alts, " | ") + " )";
    } else if (s.contains("anyOf") || s.contains("oneOf")) {
      const char* key = s.contains("anyOf") ? "anyOf" : "oneOf";
      if (auto other = constraining({key, "nullable"}); !other.empty()) {
        return error(ptr + "/" + pointer_escape(other), fmt::format("'{}' beside '{}' is not supported", other, key));
      }
      const Json& list = s[key];
      if (!list.is_array() || list.empty()) return error(ptr + "/" + key, fmt::format("'{}' that is not a non-empty array", key));
      std::vector<std::string> alts;
      for (size_t i = 0; i < list.size(); ++i) {
        auto a = visit(list[i], fmt::format("{}/{}/{}", ptr, key, i), depth + 1);
        if (!a.ok()) return a;
        alts.push_back(*a);
      }
      out = "( " + join(alts, " | ") + " )";
    } else if (s.contains("allOf")) {
      auto merged = merge_all_of(s, ptr);
      if (!merged.ok()) return merged.error();
      auto o = object(*merged, ptr, depth);
      if (!o.ok()) return o;
      out = *o;
    } else {
      std::vector<std::string> types;
      if (s.contains("type")) {
        const Json& t = s["type"];
        if (t.is_string()) {
          types.push_back(t.get<std::string>());
        } else if (t.is_array() && !t.empty()) {
          for (const Json& x : t) {
            if (!x.is_string()) return error(ptr + "/type", "'type' with an entry that is not a string");
            types.push_back(x.get<std::string>());
          }
        } else {
          return error(ptr + "/type", "'type' that is not a string or a non-empty array of strings");
        }
      } else if (s.contains("properties") || s.contains("additionalProperties") || s.contains("required")) {
        types = {"object"};
      } else if (s.contains("items") || s.contains("prefixItems") || s.contains("minItems") || s.contains("maxItems")) {
        types = {"array"};
      } else if (s.contains("pattern") || s.contains("format") || s.contains("minLength") || s.contains("maxLength")) {
        types = {"string"};
      } else if (s.contains("minimum") || s.contains("maximum") || s.contains("exclusiveMinimum") || s.contains("exclusiveMaximum")) {
        types = {"integer"};
      }
      if (types.empty()) {
        out = use("value");
      } else {
        std::vector<std::string> alts;
        for (const std::string& t : types) {
          auto a = typed(s, t, ptr, depth);
          if (!a.ok()) return a;
          alts.push_back(*a);
        }
        out = alts.size() == 1 ? alts[0] : "( " + join(alts, " | ") + " )";
      }
    }
    if (nullable) out = "( " + out + " | " + use("null") + " )";
    return out;
  }

  core::Result<Json> merge_all_of(const Json& s, const std::string& ptr) {
    for (const auto& [k, v] : s.items()) {
      if (!kAnnotations.count(k) && k != "allOf" && k != "type" && k != "nullable") {
        return error(ptr + "/" + pointer_escape(k), fmt::format("'{}' beside 'allOf' is not supported", k));
      }
    }
    const Json& list = s["allOf"];
    if (!list.is_array() || list.empty()) return error(ptr + "/allOf", "'allOf' that is not a non-empty array");
    Json merged = {{"type", "object"}, {"properties", Json::object()}, {"required", Json::array()}};
    for (size_t i = 0; i < list.size(); ++i) {
      const std::string p = fmt::format("{}/allOf/{}", ptr, i);
      const Json* part = &list[i];
      std::set<std::string> seen;
      while (part->is_object() && part->contains("$ref")) {
        const std::string target = (*part)["$ref"].is_string() ? (*part)["$ref"].get<std::string>() : "";
        if (target.empty() || target[0] != '#' || !seen.insert(target).second) return error(p, "'allOf' with a '$ref' that is not a local object schema");
        try {
          part = target == "#" ? &root_ : &root_.at(Json::json_pointer(target.substr(1)));
        } catch (const std::exception&) {
          return error(p + "/$ref", fmt::format("'$ref' {} does not resolve", target));
        }
      }
      if (!part->is_object()) return error(p, "'allOf' of schemas that are not objects");
      for (const auto& [k, v] : part->items()) {
        if (kAnnotations.count(k)) continue;
        if (k == "type") {
          if (v != "object") return error(p + "/type", "'allOf' of schemas that are not all objects");
        } else if (k == "properties" && v.is_object()) {
          for (const auto& [name, sub] : v.items()) {
            if (merged["properties"].contains(name)) return error(p + "/properties/" + pointer_escape(name), fmt::format("property '{}' declared twice across 'allOf'", name));
            merged["properties"][name] = sub;
          }
        } else if (k == "required" && v.is_array()) {
          for (const Json& r : v) merged["required"].push_back(r);
        } else if (k == "additionalProperties" && v.is_boolean() && !v.get<bool>()) {
          // false in one part: the merged object has no other keys either
        } else {
          return error(p + "/" + pointer_escape(k), fmt::format("'{}' in an 'allOf' part is not supported (only properties and required)", k));
        }
      }
    }
    return merged;
  }

  core::Result<std::string> typed(const Json& s, const std::string& t, const std::string& ptr, int depth) {
    if (t == "string") return string(s, ptr);
    if (t == "integer") return integer(s, ptr);
    if (t == "number") {
      for (const char* k : {"minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum"}) {
        if (s.contains(k)) return error(ptr + "/" + k, fmt::format("'{}' on a number (bounds are supported on integers only)", k));
      }
      return use("number");
    }
    if (t == "boolean") return use("boolean");
    if (t == "null") return use("null");
    if (t == "object") return object(s, ptr, depth);
    if (t == "array") return array(s, ptr, depth);
    return error(ptr + "/type", fmt::format("unknown type '{}'", t));
  }

  // A length or count bound (minLength, maxItems, ...) into `v`, when the schema has it.
  core::Status bound(const Json& s, const char* k, const std::string& ptr, int64_t& v) const {
    if (!s.contains(k)) return {};
    if (!s[k].is_number_integer() || s[k].get<int64_t>() < 0) return error(ptr + "/" + k, fmt::format("'{}' that is not a non-negative integer", k));
    v = s[k].get<int64_t>();
    if (v > kMaxLengthBound) return error(ptr + "/" + k, fmt::format("'{}' {} above {}", k, v, kMaxLengthBound));
    return {};
  }

  core::Result<std::string> string(const Json& s, const std::string& ptr) {
    int64_t min = 0, max = -1;
    OWL_TRY(bound(s, "minLength", ptr, min));
    OWL_TRY(bound(s, "maxLength", ptr, max));
    const bool bounded = s.contains("minLength") || s.contains("maxLength");
    if (max >= 0 && max < min) return error(ptr + "/maxLength", fmt::format("'maxLength' {} below 'minLength' {}", max, min));
    if (s.contains("pattern")) {
      if (bounded || s.contains("format")) return error(ptr + "/pattern", "'pattern' together with 'minLength', 'maxLength' or 'format' is not supported");
      if (!s["pattern"].is_string()) return error(ptr + "/pattern", "'pattern' that is not a string");
      bool start = false, end = false;
      auto body = RegexConverter(s["pattern"].get<std::string>(), ptr + "/pattern").run(start, end);
      if (!body.ok()) return body;
      const std::string any = use("jchar");
      std::string out = "\"\\\"\" ";
      if (!start) out += "( " + any + " )* ";
      out += *body;
      if (!end) out += " ( " + any + " )*";
      return add_rule("pattern", out + " \"\\\"\"");
    }
    if (s.contains("format")) {
      if (bounded) return error(ptr + "/format", "'format' together with 'minLength' or 'maxLength' is not supported");
      const std::string f = s["format"].is_string() ? s["format"].get<std::string>() : "";
      for (const char* known : {"date", "time", "date-time", "uuid", "email", "ipv4"}) {
        if (f == known) return "\"\\\"\" " + use(std::string("fmt-") + known) + " \"\\\"\"";
      }
      return error(ptr + "/format", fmt::format("unsupported format {} (date, time, date-time, uuid, email, ipv4 are)", s["format"].dump()));
    }
    if (bounded) {
      const std::string rep = max < 0 ? fmt::format("{{{},}}", min) : fmt::format("{{{},{}}}", min, max);
      return "\"\\\"\" ( " + use("jchar") + " )" + rep + " \"\\\"\"";
    }
    return use("string");
  }

  core::Result<std::string> integer(const Json& s, const std::string& ptr) {
    std::optional<int64_t> lo, hi;
    for (const char* k : {"minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum"}) {
      if (!s.contains(k)) continue;
      const Json& v = s[k];
      if (!v.is_number()) return error(ptr + "/" + k, fmt::format("'{}' that is not a number", k));
      const double d = v.get<double>();
      if (!(std::fabs(d) <= static_cast<double>(kMaxIntBound))) return error(ptr + "/" + k, fmt::format("'{}' {} beyond ±{}", k, v.dump(), kMaxIntBound));
      const std::string key = k;
      if (key == "minimum") lo = std::max(lo.value_or(INT64_MIN), static_cast<int64_t>(std::ceil(d)));
      if (key == "exclusiveMinimum") lo = std::max(lo.value_or(INT64_MIN), static_cast<int64_t>(std::floor(d)) + 1);
      if (key == "maximum") hi = std::min(hi.value_or(INT64_MAX), static_cast<int64_t>(std::floor(d)));
      if (key == "exclusiveMaximum") hi = std::min(hi.value_or(INT64_MAX), static_cast<int64_t>(std::ceil(d)) - 1);
    }
    if (!lo && !hi) return use("integer");
    if (lo && hi && *lo > *hi) return error(ptr, fmt::format("integer bounds with no integer between them ({} > {})", *lo, *hi));
    return add_rule("int", int_range(lo, hi));
  }

  // A string that is none of `names` (the key of an additional property).
  std::string key_not_in(const std::vector<std::string>& names) {
    struct Node {
      std::map<uint32_t, int> next;
      bool terminal = false;
    };
    std::vector<Node> trie(1);
    for (const std::string& n : names) {
      int at = 0;
      for (size_t i = 0; i < n.size();) {
        const auto c = static_cast<uint8_t>(n[i]);
        const int len = c < 0x80 ? 1 : (c & 0xE0) == 0xC0 ? 2 : (c & 0xF0) == 0xE0 ? 3 : 4;
        uint32_t cp = len == 1 ? c : len == 2 ? (c & 0x1Fu) : len == 3 ? (c & 0x0Fu) : (c & 0x07u);
        for (int k = 1; k < len && i + static_cast<size_t>(k) < n.size(); ++k) cp = (cp << 6) | (static_cast<uint8_t>(n[i + static_cast<size_t>(k)]) & 0x3Fu);
        i += static_cast<size_t>(len);
        auto it = trie[static_cast<size_t>(at)].next.find(cp);
        if (it == trie[static_cast<size_t>(at)].next.end()) {
          trie.emplace_back();
          const int id = static_cast<int>(trie.size() - 1);
          trie[static_cast<size_t>(at)].next[cp] = id;
          at = id;
        } else {
          at = it->second;
        }
      }
      trie[static_cast<size_t>(at)].terminal = true;
    }
    // Characters of additional keys: no escapes, so an escaped spelling of a declared name
    // cannot appear; at most 64 after where they part from the declared names.
    const Ranges key_chars = {{0x20, 0x21}, {0x23, 0x5B}, {0x5D, 0x10FFFF}};
    const std::string tail = class_text(key_chars) + "{0,64} \"\\\"\"";
    std::vector<std::string> rule_of(trie.size());
    std::function<std::string(int)> build = [&](int at) -> std::string {
      const Node& node = trie[static_cast<size_t>(at)];
      std::vector<std::string> alts;
      if (!node.terminal) alts.push_back("\"\\\"\"");
      Ranges free = key_chars;
      for (const auto& [cp, child] : node.next) {
        Ranges cut;
        for (auto [lo, hi] : free) {
          if (cp < lo || cp > hi) cut.push_back({lo, hi});
          else {
            if (cp > lo) cut.push_back({lo, cp - 1});
            if (cp < hi) cut.push_back({cp + 1, hi});
          }
        }
        free = cut;
        if (cp < 0x20 || cp == '"' || cp == '\\') continue;  // never in an additional key
        alts.push_back(class_text({{cp, cp}}) + " " + build(child));
      }
      if (!free.empty()) alts.push_back(class_text(free) + " " + tail);
      return add_rule("key", join(alts, " | "));
    };
    return "\"\\\"\" " + build(0);
  }

  core::Result<std::string> object(const Json& s, const std::string& ptr, int depth) {
    const std::string ws = use("ws");
    struct Prop {
      std::string name;
      std::string value;
      bool required;
    };
    std::vector<Prop> props;
    std::set<std::string> required;
    if (s.contains("required")) {
      if (!s["required"].is_array()) return error(ptr + "/required", "'required' that is not an array");
      for (const Json& r : s["required"]) {
        if (!r.is_string()) return error(ptr + "/required", "'required' with an entry that is not a string");
        required.insert(r.get<std::string>());
      }
    }
    std::vector<std::string> names;
    if (s.contains("properties")) {
      if (!s["properties"].is_object()) return error(ptr + "/properties", "'properties' that is not an object");
      for (const auto& [name, sub] : s["properties"].items()) {
        auto v = visit(sub, ptr + "/properties/" + pointer_escape(name), depth + 1);
        if (!v.ok()) return v;
        props.push_back({name, *v, required.count(name) > 0});
        names.push_back(name);
      }
    }
    std::string extra;  // the value of additional properties; "" none
    if (s.contains("additionalProperties")) {
      const Json& a = s["additionalProperties"];
      if (!a.is_boolean() || a.get<bool>()) {
        auto v = visit(a, ptr + "/additionalProperties", depth + 1);
        if (!v.ok()) return v;
        extra = *v;
      }
    }
    for (const std::string& r : required) {
      if (std::find(names.begin(), names.end(), r) != names.end()) continue;
      if (extra.empty()) return error(ptr + "/required", fmt::format("required property '{}' is not in 'properties' and no other keys are allowed", r));
      props.push_back({r, extra, true});
      names.push_back(r);
    }
    auto kv = [&](const std::string& key_gbnf, const std::string& value) {
      return key_gbnf + " " + ws + " \":\" " + ws + " " + value + " " + ws;
    };
    std::string extra_kv;
    if (!extra.empty()) extra_kv = add_rule("kv", kv(key_not_in(names), extra));
    // after(i): properties i.. when one is already written (each one after a comma);
    // first(i): the same when none is written yet.
    std::string after = extra.empty() ? "\"\"" : "( \",\" " + ws + " " + extra_kv + " )*";
    std::string first = extra.empty() ? "\"\"" : "( " + extra_kv + " ( \",\" " + ws + " " + extra_kv + " )* )?";
    for (size_t i = props.size(); i-- > 0;) {
      const std::string item = add_rule("kv", kv(gbnf_literal(Json(props[i].name).dump()), props[i].value));
      const std::string next_after = add_rule("after", after);
      const std::string next_first = first;
      if (props[i].required) {
        after = "\",\" " + ws + " " + item + " " + next_after;
        first = item + " " + next_after;
      } else {
        after = "( \",\" " + ws + " " + item + " )? " + next_after;
        first = "( " + item + " " + next_after + " | " + add_rule("first", next_first) + " )";
      }
    }
    return add_rule("object", "\"{\" " + ws + " " + first + " \"}\"");
  }

  core::Result<std::string> array(const Json& s, const std::string& ptr, int depth) {
    const std::string ws = use("ws");
    std::vector<std::string> prefix;
    if (s.contains("prefixItems")) {
      const Json& p = s["prefixItems"];
      if (!p.is_array()) return error(ptr + "/prefixItems", "'prefixItems' that is not an array");
      for (size_t i = 0; i < p.size(); ++i) {
        auto v = visit(p[i], fmt::format("{}/prefixItems/{}", ptr, i), depth + 1);
        if (!v.ok()) return v;
        prefix.push_back(*v);
      }
    }
    std::string rest = use("value");
    bool rest_allowed = true;
    if (s.contains("items")) {
      const Json& it = s["items"];
      if (it.is_boolean() && !it.get<bool>()) {
        rest_allowed = false;
      } else if (it.is_array()) {
        return error(ptr + "/items", "'items' as an array (draft 4-7 tuples; use 'prefixItems')");
      } else {
        auto v = visit(it, ptr + "/items", depth + 1);
        if (!v.ok()) return v;
        rest = *v;
      }
    }
    int64_t min = 0, max = -1;
    OWL_TRY(bound(s, "minItems", ptr, min));
    OWL_TRY(bound(s, "maxItems", ptr, max));
    const auto k = static_cast<int64_t>(prefix.size());
    if (!rest_allowed) max = max < 0 ? k : std::min(max, k);
    if (max >= 0 && max < min) return error(ptr, fmt::format("array bounds that no array meets (at least {}, at most {})", min, max));
    if (max == 0) return add_rule("array", "\"[\" " + ws + " \"]\"");
    auto elem = [&](int64_t i) { return i < k ? prefix[static_cast<size_t>(i)] : rest; };
    // from(i): elements i.. once i are written (each after a comma).
    std::function<std::string(int64_t)> from = [&](int64_t i) -> std::string {
      if (max >= 0 && i >= max) return "";
      if (i < k) {
        std::string body = "\",\" " + ws + " " + elem(i) + " " + ws;
        const std::string more = from(i + 1);
        if (!more.empty()) body += " " + more;
        return i >= min ? "( " + body + " )?" : body;
      }
      const int64_t lo = std::max<int64_t>(0, min - i);
      const std::string rep = max < 0 ? fmt::format("{{{},}}", lo) : fmt::format("{{{},{}}}", lo, max - i);
      return "( \",\" " + ws + " " + rest + " " + ws + " )" + rep;
    };
    std::string body = elem(0) + " " + ws;
    const std::string more = from(1);
    if (!more.empty()) body += " " + more;
    if (min == 0) body = "( " + body + " )?";
    return add_rule("array", "\"[\" " + ws + " " + body + " \"]\"");
  }

  const Json& root_;
  std::vector<std::pair<std::string, std::string>> rules_;
  std::set<std::string> have_;
  std::map<std::string, std::string> refs_;
  int counter_ = 0;
};

}  // namespace

core::Result<std::string> json_schema_to_gbnf(const Json& schema) { return Converter(schema).run(); }

std::string json_object_gbnf() {
  auto g = Converter(Json::parse(R"({"type": "object", "additionalProperties": true})")).run();
  return *g;
}

}  // namespace owl::constrain
