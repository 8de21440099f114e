#include "constrain/grammar.h"

#include <algorithm>
#include <random>

#include <gtest/gtest.h>

#include "constrain/matcher.h"

namespace owl::constrain {
namespace {

std::shared_ptr<const Grammar> grammar(std::string_view text) {
  auto g = Grammar::parse(text);
  EXPECT_TRUE(g.ok()) << g.message();
  return g.ok() ? *g : nullptr;
}

bool matches(const std::shared_ptr<const Grammar>& g, std::string_view text) {
  Matcher m(g);
  return m.feed(text) && m.accepted();
}

std::string parse_error(std::string_view text) {
  auto g = Grammar::parse(text);
  EXPECT_FALSE(g.ok()) << text;
  return g.ok() ? "" : g.message();
}

TEST(Grammar, ErrorsNameTheRuleOrThePlace) {
  EXPECT_NE(parse_error("root ::= item\n").find("undefined rule 'item'"), std::string::npos);
  EXPECT_NE(parse_error("start ::= \"x\"\n").find("no rule named 'root'"), std::string::npos);
  EXPECT_NE(parse_error("root ::= root \"a\" | \"b\"\n").find("left-recursive"), std::string::npos);
  EXPECT_NE(parse_error("root ::= x \"a\"\nx ::= \"b\"? root\n").find("left-recursive"), std::string::npos);
  EXPECT_NE(parse_error("root ::= [z-a]\n").find("reversed"), std::string::npos);
  EXPECT_NE(parse_error("root ::= \"abc\n").find("line 1"), std::string::npos);
  EXPECT_NE(parse_error("root ::= \"a\"\nroot ::= \"b\"\n").find("defined twice"), std::string::npos);
  EXPECT_NE(parse_error("root ::= \"a\"{3,1}\n").find("max below min"), std::string::npos);
  EXPECT_NE(parse_error("root ::= \"\\q\"\n").find("escape"), std::string::npos);
  EXPECT_NE(parse_error("root ::= (\"a\"\n").find("')'"), std::string::npos);
  EXPECT_NE(parse_error("root ::= [a-z]{99999999}\n").find("100000"), std::string::npos);
}

TEST(Grammar, LiteralsAlternativesAndRepetition) {
  auto g = grammar("root ::= \"yes\" | \"no\"  # a comment\n");
  EXPECT_TRUE(matches(g, "yes"));
  EXPECT_TRUE(matches(g, "no"));
  EXPECT_FALSE(matches(g, "ye"));
  EXPECT_FALSE(matches(g, "yess"));
  g = grammar("root ::= [a-c]{2,3} \"!\"\n");
  EXPECT_TRUE(matches(g, "ab!"));
  EXPECT_TRUE(matches(g, "cab!"));
  EXPECT_FALSE(matches(g, "a!"));
  EXPECT_FALSE(matches(g, "abca!"));
  g = grammar("root ::= (\"ab\" | \"c\")+ \".\"?\n");
  EXPECT_TRUE(matches(g, "abcab"));
  EXPECT_TRUE(matches(g, "c."));
  EXPECT_FALSE(matches(g, ""));
  EXPECT_FALSE(matches(g, "a"));
  g = grammar("root ::= x{2,}\nx ::= \"<\" [0-9]* \">\"\n");
  EXPECT_TRUE(matches(g, "<><12>"));
  EXPECT_TRUE(matches(g, "<1><2><3>"));
  EXPECT_FALSE(matches(g, "<1>"));
}

TEST(Grammar, RulesSpanLinesInsideParentheses) {
  auto g = grammar("root ::= (\n  \"a\" |\n  \"b\"\n) tail\ntail ::= \"!\"\n");
  EXPECT_TRUE(matches(g, "a!"));
  EXPECT_TRUE(matches(g, "b!"));
}

TEST(Grammar, ClassesNegationDotAndEscapes) {
  auto g = grammar(R"(root ::= "\"" [^"\\]* "\"" [\x41-\u0043] . [\t\n]
)");
  EXPECT_TRUE(matches(g, "\"hi there\"B\xE2\x82\xAC\t"));
  EXPECT_FALSE(matches(g, "\"a\"b\"D.\n"));
  EXPECT_FALSE(matches(g, "\"a\"D.\n"));
}

TEST(Grammar, Utf8SplitAcrossFeedsAndInvalidBytes) {
  auto g = grammar("root ::= [à-ÿ]+\n");
  Matcher m(g);
  EXPECT_TRUE(m.feed("\xC3"));  // the first byte of é: a partial character that can complete
  EXPECT_FALSE(m.accepted());
  EXPECT_TRUE(m.feed("\xA9"));
  EXPECT_TRUE(m.accepted());
  EXPECT_FALSE(Matcher(g).feed("\xE2"));   // starts a character above U+07FF: none can complete
  EXPECT_FALSE(Matcher(g).feed("\xC3\x28"));
  EXPECT_FALSE(Matcher(g).feed("\xFF"));
  EXPECT_FALSE(matches(grammar("root ::= .\n"), "\xED\xA0\x80"));  // a surrogate
}

TEST(Grammar, RecursionAndLongRepetitionStayBounded) {
  auto g = grammar("root ::= \"(\" root* \")\"\n");
  EXPECT_TRUE(matches(g, "(()(()))"));
  EXPECT_FALSE(matches(g, "(()"));
  EXPECT_FALSE(matches(g, "())"));
  // Right recursion in tail position: a long list keeps one stack.
  auto list = grammar("root ::= item (\",\" item)*\nitem ::= [0-9]+\n");
  Matcher m(list);
  for (int i = 0; i < 20000; ++i) ASSERT_TRUE(m.feed(i ? ",7" : "7"));
  EXPECT_TRUE(m.accepted());
  EXPECT_LE(m.stacks().size(), 4u);
  EXPECT_LE(m.key().size(), 64u);
}

TEST(Grammar, FinishedWhenNothingCanFollow) {
  auto g = grammar("root ::= \"a\" \"b\"?\n");
  Matcher m(g);
  ASSERT_TRUE(m.feed("a"));
  EXPECT_TRUE(m.accepted());
  EXPECT_FALSE(m.finished());
  ASSERT_TRUE(m.feed("b"));
  EXPECT_TRUE(m.finished());
  EXPECT_FALSE(m.feed("b"));
  EXPECT_FALSE(m.alive());
}

// The set operations the mask walk uses to pick a run's class, against the classes' contains()
// on every code point that matters: ASCII, each range's ends and their neighbours, the surrogates.
TEST(Grammar, ClassIntersectionDifferenceAndCover) {
  std::mt19937 rng(11);
  auto random_class = [&] {
    std::string text = "root ::= [";
    if (rng() % 3 == 0) text += "^";
    const int n = 1 + static_cast<int>(rng() % 4);
    for (int i = 0; i < n; ++i) {
      const uint32_t bases[] = {0x20, 0x61, 0xC0, 0x400, 0xD7F0, 0xE000, 0x10000};
      const uint32_t lo = bases[rng() % 7] + rng() % 40;
      const uint32_t hi = lo + (rng() % 2 ? 0 : rng() % 300);
      text += fmt::format("\\U{:08x}-\\U{:08x}", lo, hi);
    }
    auto g = Grammar::parse(text + "]\n");
    EXPECT_TRUE(g.ok()) << g.message();
    return (*g)->classes().at(0);
  };
  for (int round = 0; round < 200; ++round) {
    const CharClass a = random_class(), b = random_class();
    const CharClass both = intersect(a, b), only = subtract(a, b);
    std::vector<uint32_t> points;
    for (uint32_t cp = 0; cp < 128; ++cp) points.push_back(cp);
    for (const CharClass* c : {&a, &b}) {
      for (const auto& [lo, hi] : c->ranges) {
        for (uint32_t p : {lo - 1, lo, lo + 1, hi - 1, hi, hi + 1}) points.push_back(p);
      }
    }
    for (uint32_t p : {0xD7FFu, 0xD800u, 0xDFFFu, 0xE000u, 0x10FFFFu}) points.push_back(p);
    for (uint32_t p : points) {
      ASSERT_EQ(both.contains(p), a.contains(p) && b.contains(p)) << round << " U+" << std::hex << p;
      ASSERT_EQ(only.contains(p), a.contains(p) && !b.contains(p)) << round << " U+" << std::hex << p;
    }
    EXPECT_EQ(both.empty(), std::none_of(points.begin(), points.end(), [&](uint32_t p) { return both.contains(p); }));
    if (!both.empty()) {
      EXPECT_EQ(both.first(), *std::min_element(points.begin(), points.end(), [&](uint32_t x, uint32_t y) {
        return both.contains(x) && (!both.contains(y) || x < y);
      }));
    }
    // covers(): a span all inside is covered, one with a point outside (not a surrogate) is not.
    for (int k = 0; k < 20; ++k) {
      const uint32_t lo = points[rng() % points.size()];
      const uint32_t hi = std::min<uint32_t>(lo + rng() % 400, 0x10FFFF);
      if (lo > hi) continue;
      bool all = true;
      for (uint32_t cp = lo; cp <= hi && all; ++cp) all = a.contains(cp) || (cp >= 0xD800 && cp <= 0xDFFF);
      EXPECT_EQ(a.covers(lo, hi), all) << round << " [U+" << std::hex << lo << ", U+" << hi << "]";
    }
  }
}

TEST(Grammar, LiteralHelperRoundTrips) {
  const std::string text = "say \"hi\"\\\n\t\x01 é";
  auto g = grammar("root ::= " + gbnf_literal(text) + "\n");
  EXPECT_TRUE(matches(g, text));
}

}  // namespace
}  // namespace owl::constrain

namespace owl::constrain {
namespace {

TEST(Grammar, AmbiguousRepetitionsCostLinearTime) {
  // 2^2000 ways to match nothing: expanded once per position, not once per path.
  auto g = grammar("root ::= (\"a\"?){0,2000} \"b\"\n");
  Matcher m(g);
  EXPECT_TRUE(m.feed("aaab"));
  EXPECT_TRUE(m.accepted());
}

}  // namespace
}  // namespace owl::constrain

namespace owl::constrain {
namespace {

TEST(Grammar, RepetitionsThatWouldExplodeAreRefused) {
  EXPECT_NE(parse_error("root ::= ((\"abc\" [a-z]{0,100}){0,100000})\n").find("too large"), std::string::npos);
  EXPECT_NE(parse_error("root ::= ((\"a\"{1000}){1000}){1000}\n").find("too large"), std::string::npos);
}

}  // namespace
}  // namespace owl::constrain
