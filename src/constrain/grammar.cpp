#include "constrain/grammar.h"

#include <algorithm>
#include <functional>
#include <map>
#include <unordered_map>

namespace owl::constrain {

using core::make_error;

namespace {

// Assigns the value of a Result to `var`, or returns its error.
#define OWL_TRY_SET(var, expr)                         \
  do {                                                 \
    auto owl_set_result_ = (expr);                     \
    if (!owl_set_result_.ok()) return owl_set_result_.error(); \
    var = *owl_set_result_;                            \
  } while (0)

constexpr uint32_t kMaxCodePoint = 0x10FFFF;
constexpr int kInfinite = -1;
// Elements a grammar may compile to: bounds what {m,n} repetitions can expand into.
constexpr size_t kMaxElements = 1 << 20;

using Ranges = CodeRanges;
Ranges normalize(Ranges r) { return normalize_ranges(std::move(r)); }
Ranges complement(const Ranges& sorted) { return complement_ranges(sorted); }

// Surrogates (U+D800..U+DFFF) are not characters: no class holds them.
CharClass make_class(const Ranges& ranges) {
  CharClass c;
  Ranges split;
  for (auto [lo, hi] : ranges) {
    if (lo < 0xD800 && hi >= 0xD800) {
      split.push_back({lo, 0xD7FF});
      if (hi > 0xDFFF) split.push_back({0xE000, hi});
    } else if (lo >= 0xD800 && lo <= 0xDFFF) {
      if (hi > 0xDFFF) split.push_back({0xE000, hi});
    } else {
      split.push_back({lo, hi});
    }
  }
  for (auto [lo, hi] : split) {
    for (uint32_t cp = lo; cp <= std::min<uint32_t>(hi, 127); ++cp) c.ascii[cp >> 6] |= 1ull << (cp & 63);
    if (hi >= 128) c.ranges.push_back({std::max<uint32_t>(lo, 128), hi});
  }
  return c;
}

// One parsed item: a character class, a rule reference (by name or, for helper rules, by index)
// or a group of alternatives, with its repetition bounds.
struct Item;
using Sequence = std::vector<Item>;
using Alternatives = std::vector<Sequence>;
struct Item {
  enum Kind { kClass, kRefName, kRefIndex, kGroup } kind = kClass;
  Ranges ranges;
  std::string name;
  int32_t index = 0;
  Alternatives group;
  int min = 1;
  int max = 1;  // kInfinite: unbounded
  int line = 0;
};

class Parser {
 public:
  explicit Parser(std::string_view text) : s_(text) {}

  core::Status parse(std::vector<std::pair<std::string, Alternatives>>& rules, std::vector<int>& lines) {
    skip_space(true);
    while (pos_ < s_.size()) {
      const int line = line_;
      std::string name = word();
      if (name.empty()) return error("a rule name");
      skip_space(false);
      if (s_.substr(pos_, 3) != "::=") return error("'::=' after rule name '" + name + "'");
      pos_ += 3;
      skip_space(true);
      Alternatives alts;
      OWL_TRY(alternatives(alts, false));
      rules.push_back({std::move(name), std::move(alts)});
      lines.push_back(line);
      if (pos_ < s_.size() && s_[pos_] != '\n' && s_[pos_] != '\r') return error("the end of the line");
      skip_space(true);
    }
    return {};
  }

 private:
  core::Error error(std::string_view expected) const {
    if (pos_ >= s_.size()) return make_error("grammar: line {}: expected {}, found the end of the text", line_, expected);
    const uint8_t c = static_cast<uint8_t>(s_[pos_]);
    return make_error("grammar: line {} column {}: expected {}, found {}", line_, column(), expected,
                      c >= 0x20 && c < 0x7f ? fmt::format("'{}'", static_cast<char>(c)) : fmt::format("byte 0x{:02x}", c));
  }
  size_t column() const {
    const size_t nl = s_.rfind('\n', pos_ == 0 ? 0 : pos_ - 1);
    return pos_ - (nl == std::string_view::npos || pos_ == 0 ? 0 : nl + 1) + 1;
  }
  static bool word_char(char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' || c == '_';
  }
  std::string word() {
    const size_t start = pos_;
    while (pos_ < s_.size() && word_char(s_[pos_])) ++pos_;
    return std::string(s_.substr(start, pos_ - start));
  }
  void skip_space(bool newlines) {
    while (pos_ < s_.size()) {
      const char c = s_[pos_];
      if (c == ' ' || c == '\t') {
        ++pos_;
      } else if (c == '#') {
        while (pos_ < s_.size() && s_[pos_] != '\n') ++pos_;
      } else if (newlines && (c == '\n' || c == '\r')) {
        if (c == '\n') ++line_;
        ++pos_;
      } else {
        break;
      }
    }
  }

  core::Status alternatives(Alternatives& out, bool nested) {
    out.emplace_back();
    OWL_TRY(sequence(out.back(), nested));
    while (pos_ < s_.size() && s_[pos_] == '|') {
      ++pos_;
      skip_space(true);
      out.emplace_back();
      OWL_TRY(sequence(out.back(), nested));
    }
    return {};
  }

  core::Result<uint32_t> hex(int digits) {
    uint32_t v = 0;
    for (int i = 0; i < digits; ++i, ++pos_) {
      if (pos_ >= s_.size()) return error(fmt::format("{} hex digits", digits));
      const char c = s_[pos_];
      const int d = c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10 : c >= 'A' && c <= 'F' ? c - 'A' + 10 : -1;
      if (d < 0) return error(fmt::format("{} hex digits", digits));
      v = v * 16 + static_cast<uint32_t>(d);
    }
    if (v > kMaxCodePoint) return make_error("grammar: line {}: code point 0x{:x} beyond U+10FFFF", line_, v);
    return v;
  }

  // One code point of a literal or class, escapes decoded.
  core::Result<uint32_t> code_point() {
    if (pos_ >= s_.size()) return error("a character");
    const uint8_t c = static_cast<uint8_t>(s_[pos_]);
    if (c == '\\') {
      ++pos_;
      if (pos_ >= s_.size()) return error("an escape");
      const char e = s_[pos_++];
      switch (e) {
        case 'n': return uint32_t{'\n'};
        case 'r': return uint32_t{'\r'};
        case 't': return uint32_t{'\t'};
        case 'x': return hex(2);
        case 'u': return hex(4);
        case 'U': return hex(8);
        case '\\': case '"': case '\'': case '[': case ']': case '-': case '^': case '/': case '.': case '(': case ')':
        case '|': case '*': case '+': case '?': case '{': case '}':
          return static_cast<uint32_t>(static_cast<uint8_t>(e));
        default:
          --pos_;
          return error("an escape (\\n \\r \\t \\\\ \\\" \\] \\- \\xHH \\uHHHH \\UHHHHHHHH)");
      }
    }
    int len = c < 0x80 ? 1 : (c & 0xE0) == 0xC0 ? 2 : (c & 0xF0) == 0xE0 ? 3 : (c & 0xF8) == 0xF0 ? 4 : 0;
    if (len == 0 || pos_ + static_cast<size_t>(len) > s_.size()) return error("UTF-8 text");
    uint32_t cp = len == 1 ? c : len == 2 ? c & 0x1Fu : len == 3 ? c & 0x0Fu : c & 0x07u;
    for (int i = 1; i < len; ++i) {
      const uint8_t b = static_cast<uint8_t>(s_[pos_ + static_cast<size_t>(i)]);
      if ((b & 0xC0) != 0x80) return error("UTF-8 text");
      cp = (cp << 6) | (b & 0x3Fu);
    }
    pos_ += static_cast<size_t>(len);
    return cp;
  }

  core::Status sequence(Sequence& seq, bool nested) {
    for (;;) {
      skip_space(nested);
      if (pos_ >= s_.size()) return {};
      const char c = s_[pos_];
      Item item;
      item.line = line_;
      if (c == '"') {
        ++pos_;
        item.kind = Item::kGroup;
        item.group.emplace_back();
        while (pos_ < s_.size() && s_[pos_] != '"') {
          uint32_t cp = 0;
          OWL_TRY_SET(cp, code_point());
          Item ch;
          ch.ranges = {{cp, cp}};
          item.group.back().push_back(std::move(ch));
        }
        if (pos_ >= s_.size()) return error("'\"' closing the literal");
        ++pos_;
      } else if (c == '[') {
        ++pos_;
        bool negated = false;
        if (pos_ < s_.size() && s_[pos_] == '^') {
          negated = true;
          ++pos_;
        }
        Ranges ranges;
        while (pos_ < s_.size() && s_[pos_] != ']') {
          uint32_t lo = 0;
          OWL_TRY_SET(lo, code_point());
          uint32_t hi = lo;
          if (pos_ + 1 < s_.size() && s_[pos_] == '-' && s_[pos_ + 1] != ']') {
            ++pos_;
            uint32_t h = 0;
          OWL_TRY_SET(h, code_point());
            hi = h;
            if (hi < lo) return make_error("grammar: line {}: range U+{:04X}-U+{:04X} is reversed", line_, lo, hi);
          }
          ranges.push_back({lo, hi});
        }
        if (pos_ >= s_.size()) return error("']' closing the character class");
        ++pos_;
        item.ranges = normalize(std::move(ranges));
        if (negated) item.ranges = complement(item.ranges);
      } else if (c == '.') {
        ++pos_;
        item.ranges = {{0, kMaxCodePoint}};
      } else if (c == '(') {
        ++pos_;
        skip_space(true);
        item.kind = Item::kGroup;
        OWL_TRY(alternatives(item.group, true));
        if (pos_ >= s_.size() || s_[pos_] != ')') return error("')'");
        ++pos_;
      } else if (word_char(c)) {
        item.kind = Item::kRefName;
        item.name = word();
        // A name followed by ::= starts the next rule: this sequence ended at a line break.
        const size_t save = pos_;
        skip_space(false);
        if (s_.substr(pos_, 3) == "::=") return error("a line break before the rule '" + item.name + "'");
        pos_ = save;
      } else {
        return {};  // '|', ')', a line break, or something the caller reports
      }
      skip_space(nested);
      if (pos_ < s_.size()) {
        const char q = s_[pos_];
        if (q == '*' || q == '+' || q == '?') {
          ++pos_;
          item.min = q == '+' ? 1 : 0;
          item.max = q == '?' ? 1 : kInfinite;
        } else if (q == '{') {
          ++pos_;
          skip_space(nested);
          int lo = 0;
          OWL_TRY_SET(lo, number());
          int hi = lo;
          skip_space(nested);
          if (pos_ < s_.size() && s_[pos_] == ',') {
            ++pos_;
            skip_space(nested);
            if (pos_ < s_.size() && s_[pos_] == '}') {
              hi = kInfinite;
            } else {
              int h = 0;
          OWL_TRY_SET(h, number());
              hi = h;
            }
            skip_space(nested);
          }
          if (pos_ >= s_.size() || s_[pos_] != '}') return error("'}' closing the repetition");
          ++pos_;
          if (hi != kInfinite && hi < lo) return make_error("grammar: line {}: repetition {{{},{}}} has max below min", line_, lo, hi);
          item.min = lo;
          item.max = hi;
        }
      }
      seq.push_back(std::move(item));
    }
  }

  core::Result<int> number() {
    const size_t start = pos_;
    long v = 0;
    while (pos_ < s_.size() && s_[pos_] >= '0' && s_[pos_] <= '9') {
      v = v * 10 + (s_[pos_++] - '0');
      if (v > 100000) return make_error("grammar: line {}: repetition count above 100000", line_);
    }
    if (pos_ == start) return error("a number");
    return static_cast<int>(v);
  }

  std::string_view s_;
  size_t pos_ = 0;
  int line_ = 1;
};

}  // namespace

class GrammarBuilder {
 public:
  core::Result<std::shared_ptr<const Grammar>> build(std::string_view text) {
    std::vector<std::pair<std::string, Alternatives>> parsed;
    std::vector<int> lines;
    OWL_TRY(Parser(text).parse(parsed, lines));
    g_ = std::make_shared<Grammar>();
    for (size_t i = 0; i < parsed.size(); ++i) {
      if (index_.count(parsed[i].first)) {
        return make_error("grammar: line {}: rule '{}' is defined twice", lines[i], parsed[i].first);
      }
      index_[parsed[i].first] = static_cast<int32_t>(i);
      g_->names_.push_back(parsed[i].first);
      pending_.push_back(std::move(parsed[i].second));
    }
    auto root = index_.find("root");
    if (root == index_.end()) return make_error("grammar: no rule named 'root'");
    g_->root_ = root->second;
    g_->alts_.resize(pending_.size());
    for (size_t r = 0; r < pending_.size(); ++r) {  // helper rules are appended as they are made
      Alternatives alts = std::move(pending_[r]);
      for (const Sequence& seq : alts) {
        std::vector<Element> out;
        for (const Item& item : seq) OWL_TRY(emit(item, out));
        out.push_back({Element::kEnd, 0});
        if (g_->code_.size() + out.size() > kMaxElements) {
          return make_error("grammar: more than {} elements (repetition counts too large)", kMaxElements);
        }
        g_->alts_[r].push_back(static_cast<int32_t>(g_->code_.size()));
        g_->code_.insert(g_->code_.end(), out.begin(), out.end());
      }
      if (g_->alts_.size() < pending_.size()) g_->alts_.resize(pending_.size());
    }
    OWL_TRY(check_left_recursion());
    return std::shared_ptr<const Grammar>(g_);
  }

 private:
  int32_t add_rule(Alternatives alts, const std::string& base) {
    pending_.push_back(std::move(alts));
    g_->names_.push_back(fmt::format("{}-{}", base, pending_.size() - 1));
    return static_cast<int32_t>(pending_.size() - 1);
  }

  int32_t add_class(const Ranges& ranges) {
    auto [it, fresh] = class_index_.try_emplace(ranges, static_cast<int32_t>(g_->classes_.size()));
    if (fresh) g_->classes_.push_back(make_class(ranges));
    return it->second;
  }

  core::Status emit_once(const Item& item, std::vector<Element>& out) {
    switch (item.kind) {
      case Item::kClass:
        out.push_back({Element::kClass, add_class(item.ranges)});
        return {};
      case Item::kRefName: {
        auto it = index_.find(item.name);
        if (it == index_.end()) return make_error("grammar: line {}: undefined rule '{}'", item.line, item.name);
        out.push_back({Element::kRef, it->second});
        return {};
      }
      case Item::kRefIndex:
        out.push_back({Element::kRef, item.index});
        return {};
      case Item::kGroup:
        if (item.group.size() == 1) {
          for (const Item& sub : item.group[0]) OWL_TRY(emit(sub, out));
        } else {
          out.push_back({Element::kRef, add_rule(item.group, "group")});
        }
        return {};
    }
    return {};
  }

  static size_t ast_size(const Item& item) {
    size_t n = 1;
    for (const Sequence& seq : item.group) {
      for (const Item& sub : seq) n += ast_size(sub);
    }
    return n;
  }

  core::Status emit(const Item& item, std::vector<Element>& out) {
    if (item.min == 1 && item.max == 1) return emit_once(item, out);
    const size_t copies = static_cast<size_t>(std::max(item.min, item.max == kInfinite ? item.min + 1 : item.max));
    if (out.size() > kMaxElements || copies * ast_size(item) > kMaxElements) {
      return make_error("grammar: line {}: more than {} elements (repetition counts too large)", item.line, kMaxElements);
    }
    Item once = item;
    once.min = once.max = 1;
    if (item.kind == Item::kClass && item.max == kInfinite) {
      for (int i = 0; i < item.min; ++i) OWL_TRY(emit_once(once, out));
      out.push_back({Element::kClassStar, add_class(item.ranges)});
      return {};
    }
    for (int i = 0; i < item.min; ++i) {
      OWL_TRY(emit_once(once, out));
      if (out.size() > kMaxElements) return make_error("grammar: more than {} elements (repetition counts too large)", kMaxElements);
    }
    if (item.max == kInfinite) {
      // star ::= once star | (nothing)
      const int32_t star = add_rule({}, "star");
      Item self;
      self.kind = Item::kRefIndex;
      self.index = star;
      pending_[static_cast<size_t>(star)] = Alternatives{Sequence{once, self}, Sequence{}};
      out.push_back({Element::kRef, star});
      return {};
    }
    // opt_k ::= once opt_(k-1) | (nothing), opt_1 ::= once | (nothing)
    int32_t inner = -1;
    for (int k = 1; k <= item.max - item.min; ++k) {
      Sequence seq{once};
      if (inner >= 0) {
        Item next;
        next.kind = Item::kRefIndex;
        next.index = inner;
        seq.push_back(std::move(next));
      }
      inner = add_rule(Alternatives{std::move(seq), Sequence{}}, "opt");
      if (pending_.size() > kMaxElements) return make_error("grammar: more than {} elements (repetition counts too large)", kMaxElements);
    }
    if (inner >= 0) out.push_back({Element::kRef, inner});
    return {};
  }

  core::Status check_left_recursion() {
    const size_t n = g_->alts_.size();
    std::vector<char> nullable(n, 0);
    auto elem_nullable = [&](const Element& e) {
      return e.kind == Element::kClassStar || (e.kind == Element::kRef && nullable[static_cast<size_t>(e.arg)]);
    };
    for (bool changed = true; changed;) {
      changed = false;
      for (size_t r = 0; r < n; ++r) {
        if (nullable[r]) continue;
        for (int32_t start : g_->alts_[r]) {
          bool all = true;
          for (int32_t p = start; g_->code_[static_cast<size_t>(p)].kind != Element::kEnd; ++p) {
            if (!elem_nullable(g_->code_[static_cast<size_t>(p)])) {
              all = false;
              break;
            }
          }
          if (all) {
            nullable[r] = 1;
            changed = true;
            break;
          }
        }
      }
    }
    // Rules each rule can call before consuming anything.
    std::vector<std::vector<int32_t>> first(n);
    for (size_t r = 0; r < n; ++r) {
      for (int32_t start : g_->alts_[r]) {
        for (int32_t p = start; g_->code_[static_cast<size_t>(p)].kind != Element::kEnd; ++p) {
          const Element& e = g_->code_[static_cast<size_t>(p)];
          if (e.kind == Element::kRef) first[r].push_back(e.arg);
          if (!elem_nullable(e)) break;
        }
      }
    }
    std::vector<int> state(n, 0);  // 0 unvisited, 1 on the path, 2 done
    std::function<core::Status(size_t)> visit = [&](size_t r) -> core::Status {
      state[r] = 1;
      for (int32_t s : first[r]) {
        if (state[static_cast<size_t>(s)] == 1) {
          return make_error("grammar: rule '{}' is left-recursive (it can reach itself before matching a character)",
                            g_->names_[static_cast<size_t>(s)]);
        }
        if (state[static_cast<size_t>(s)] == 0) OWL_TRY(visit(static_cast<size_t>(s)));
      }
      state[r] = 2;
      return {};
    };
    for (size_t r = 0; r < n; ++r) {
      if (state[r] == 0) OWL_TRY(visit(r));
    }
    return {};
  }

  std::shared_ptr<Grammar> g_;
  std::unordered_map<std::string, int32_t> index_;
  std::vector<Alternatives> pending_;
  std::map<Ranges, int32_t> class_index_;
};

CodeRanges normalize_ranges(CodeRanges r) {
  std::sort(r.begin(), r.end());
  CodeRanges out;
  for (const auto& [lo, hi] : r) {
    if (!out.empty() && lo <= out.back().second + 1) {
      out.back().second = std::max(out.back().second, hi);
    } else {
      out.push_back({lo, hi});
    }
  }
  return out;
}

CodeRanges complement_ranges(const CodeRanges& sorted) {
  CodeRanges out;
  uint32_t next = 0;
  for (const auto& [lo, hi] : sorted) {
    if (lo > next) out.push_back({next, lo - 1});
    next = hi + 1;
  }
  if (next <= kMaxCodePoint) out.push_back({next, kMaxCodePoint});
  return out;
}

bool CharClass::contains(uint32_t cp) const {
  if (cp < 128) return (ascii[cp >> 6] >> (cp & 63)) & 1;
  auto it = std::upper_bound(ranges.begin(), ranges.end(), cp, [](uint32_t v, const auto& r) { return v < r.first; });
  return it != ranges.begin() && cp <= std::prev(it)->second;
}

bool CharClass::intersects(uint32_t lo, uint32_t hi) const {
  for (uint32_t cp = lo; cp <= std::min<uint32_t>(hi, 127); ++cp) {
    if (contains(cp)) return true;
  }
  if (hi < 128) return false;
  lo = std::max<uint32_t>(lo, 128);
  auto it = std::upper_bound(ranges.begin(), ranges.end(), lo, [](uint32_t v, const auto& r) { return v < r.first; });
  if (it != ranges.begin() && lo <= std::prev(it)->second) return true;
  return it != ranges.end() && it->first <= hi;
}

bool CharClass::covers(uint32_t lo, uint32_t hi) const {
  for (uint32_t cp = lo; cp <= std::min<uint32_t>(hi, 127); ++cp) {
    if (!contains(cp)) return false;
  }
  if (hi < 128) return true;
  // Every character of [max(lo, 128), hi] outside the surrogates must fall in the ranges.
  uint32_t next = std::max<uint32_t>(lo, 128);
  for (const auto& [a, b] : ranges) {
    if (next >= 0xD800 && next <= 0xDFFF) next = 0xE000;
    if (next > hi) return true;
    if (b < next) continue;
    if (a > next) return false;
    if (b >= hi) return true;
    next = b + 1;
  }
  if (next >= 0xD800 && next <= 0xDFFF) next = 0xE000;
  return next > hi;
}

uint32_t CharClass::first() const {
  if (ascii[0]) return static_cast<uint32_t>(__builtin_ctzll(ascii[0]));
  if (ascii[1]) return 64 + static_cast<uint32_t>(__builtin_ctzll(ascii[1]));
  return ranges.front().first;
}

size_t CharClass::weight() const {
  size_t above = 0;
  for (const auto& [lo, hi] : ranges) above += hi - lo + 1;
  return static_cast<size_t>(__builtin_popcountll(ascii[0]) + __builtin_popcountll(ascii[1])) + std::min<size_t>(above, 128);
}

std::string CharClass::key() const {
  std::string k(reinterpret_cast<const char*>(ascii), sizeof(ascii));
  k.append(reinterpret_cast<const char*>(ranges.data()), ranges.size() * sizeof(ranges[0]));
  return k;
}

CharClass intersect(const CharClass& a, const CharClass& b) {
  CharClass c;
  c.ascii[0] = a.ascii[0] & b.ascii[0];
  c.ascii[1] = a.ascii[1] & b.ascii[1];
  for (size_t i = 0, j = 0; i < a.ranges.size() && j < b.ranges.size();) {
    const uint32_t lo = std::max(a.ranges[i].first, b.ranges[j].first);
    const uint32_t hi = std::min(a.ranges[i].second, b.ranges[j].second);
    if (lo <= hi) c.ranges.push_back({lo, hi});
    if (a.ranges[i].second < b.ranges[j].second) ++i;
    else ++j;
  }
  return c;
}

CharClass subtract(const CharClass& a, const CharClass& b) {
  CharClass c;
  c.ascii[0] = a.ascii[0] & ~b.ascii[0];
  c.ascii[1] = a.ascii[1] & ~b.ascii[1];
  size_t j = 0;
  for (auto [lo, hi] : a.ranges) {
    while (j < b.ranges.size() && b.ranges[j].second < lo) ++j;
    for (size_t k = j; k < b.ranges.size() && b.ranges[k].first <= hi; ++k) {
      if (b.ranges[k].first > lo) c.ranges.push_back({lo, b.ranges[k].first - 1});
      if (b.ranges[k].second >= hi) {
        lo = hi + 1;  // nothing left (hi < 0x110000, so no overflow)
        break;
      }
      lo = b.ranges[k].second + 1;
    }
    if (lo <= hi) c.ranges.push_back({lo, hi});
  }
  return c;
}

core::Result<std::shared_ptr<const Grammar>> Grammar::parse(std::string_view text) {
  return GrammarBuilder().build(text);
}

std::string gbnf_literal(std::string_view utf8) {
  std::string out = "\"";
  for (char c : utf8) {
    const auto u = static_cast<uint8_t>(c);
    if (c == '"' || c == '\\') {
      out += '\\';
      out += c;
    } else if (c == '\n') {
      out += "\\n";
    } else if (c == '\r') {
      out += "\\r";
    } else if (c == '\t') {
      out += "\\t";
    } else if (u < 0x20 || u == 0x7f) {
      out += fmt::format("\\x{:02x}", u);
    } else {
      out += c;
    }
  }
  return out + "\"";
}

}  // namespace owl::constrain
