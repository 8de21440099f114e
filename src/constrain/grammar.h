// Grammars in llama.cpp's GBNF, compiled for an incremental pushdown matcher (matcher.h).
//
//   root   ::= "{" ws pair ("," ws pair)* "}"      rules: name ::= alternatives, one per line
//   pair   ::= [a-z]+ ":" ws [0-9]{1,3}            (a rule continues over new lines inside parentheses)
//   ws     ::= [ \t\n]*                             # comments run to the end of the line
//
// Terminals are Unicode code points: "literals" and [classes] (with ^, ranges, escapes \n \t \r
// \\ \" \] \- \xHH \uHHHH \UHHHHHHHH), and `.` (any code point); groups ( ), alternatives |,
// repetition * + ? {m} {m,} {m,n}. The rule named `root` is where matching starts. Left
// recursion (direct or through rules that can match nothing) is refused, as llama.cpp does.
//
// Compiled form: every alternative of every rule is a run of elements ending in kEnd, in one
// array, so a position in the grammar is one index. A repeated character class ([a-z]*) is one
// element that loops on itself; other repetitions become right-recursive helper rules (which the
// matcher calls without growing its stack when they are the last element of an alternative).
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "core/result.h"

namespace owl::constrain {

// Inclusive code point ranges.
using CodeRanges = std::vector<std::pair<uint32_t, uint32_t>>;
// Sorted, with overlapping and adjacent ranges merged.
CodeRanges normalize_ranges(CodeRanges ranges);
// Every code point up to U+10FFFF that `sorted` (normalized) does not hold.
CodeRanges complement_ranges(const CodeRanges& sorted);

// A set of code points: a bitmap for ASCII, sorted disjoint ranges above.
struct CharClass {
  uint64_t ascii[2] = {0, 0};
  std::vector<std::pair<uint32_t, uint32_t>> ranges;  // inclusive, >= 0x80, sorted, disjoint

  bool contains(uint32_t cp) const;
  // Whether any code point in [lo, hi] is in the set.
  bool intersects(uint32_t lo, uint32_t hi) const;
  // Whether every character in [lo, hi] is in the set (surrogates, which are not characters and
  // never in a set, excepted).
  bool covers(uint32_t lo, uint32_t hi) const;
  bool empty() const { return ascii[0] == 0 && ascii[1] == 0 && ranges.empty(); }
  // The smallest code point in the set; the set must not be empty.
  uint32_t first() const;
  // Code points in the set: ASCII ones each count 1, the rest together at most 128 (a rough
  // measure of how many tokens a class may match, for choosing among classes).
  size_t weight() const;
  // The set as bytes, equal for equal sets (a cache key).
  std::string key() const;
  bool operator==(const CharClass&) const = default;
};

CharClass intersect(const CharClass& a, const CharClass& b);
CharClass subtract(const CharClass& a, const CharClass& b);

struct Element {
  enum Kind : uint8_t { kEnd, kClass, kClassStar, kRef };
  Kind kind = kEnd;
  int32_t arg = 0;  // kClass, kClassStar: index into classes; kRef: rule index
};

class Grammar {
 public:
  // Parses and compiles GBNF text. Errors name the line and column (and the rule).
  static core::Result<std::shared_ptr<const Grammar>> parse(std::string_view text);

  const std::vector<Element>& code() const { return code_; }
  const std::vector<CharClass>& classes() const { return classes_; }
  // Start positions (indices into code()) of each alternative of rule `rule`.
  const std::vector<int32_t>& alternatives(int32_t rule) const { return alts_[static_cast<size_t>(rule)]; }
  int32_t root() const { return root_; }
  size_t n_rules() const { return alts_.size(); }
  const std::string& rule_name(int32_t rule) const { return names_[static_cast<size_t>(rule)]; }

 private:
  friend class GrammarBuilder;
  std::vector<Element> code_;
  std::vector<CharClass> classes_;
  std::vector<std::vector<int32_t>> alts_;
  std::vector<std::string> names_;
  int32_t root_ = 0;
};

// GBNF text of a literal: "..." with the escapes the parser reads.
std::string gbnf_literal(std::string_view utf8);

}  // namespace owl::constrain
