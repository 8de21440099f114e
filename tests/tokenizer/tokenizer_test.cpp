// Behaviour of the tokenizer beyond the test vectors: special tokens with parse_special on and off
// (llama.cpp's longest-first partition, lstrip/rstrip), detokenization rules, the streaming
// detokenizer on characters split across tokens, malformed input, metadata errors, threads.
#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <map>
#include <random>
#include <thread>

#include "tokenizer/tokenizer.h"

namespace owl::tokenizer {
namespace {

using core::Result;

const std::string kShared = OWL_SHARED_DIR;

const Tokenizer& load_shared(const std::string& name) {
  static std::map<std::string, Tokenizer> cache;
  auto it = cache.find(name);
  if (it == cache.end()) {
    const std::string path =
        name == "stories260K" ? kShared + "/models/stories260K.gguf" : kShared + "/vocab/ggml-vocab-" + name + ".gguf";
    Result<Tokenizer> tok = Tokenizer::load(path);
    EXPECT_TRUE(tok.ok()) << tok.message();
    it = cache.emplace(name, std::move(*tok)).first;
  }
  return it->second;
}

std::vector<TokenId> cat(std::initializer_list<std::vector<TokenId>> parts) {
  std::vector<TokenId> out;
  for (const auto& p : parts) out.insert(out.end(), p.begin(), p.end());
  return out;
}

constexpr TokenizeOptions kRaw{.add_special = false, .parse_special = false};
constexpr TokenizeOptions kParse{.add_special = false, .parse_special = true};

// A small SentencePiece vocabulary: <unk> <s> </s>, 256 byte tokens, then the given pieces.
VocabSpec small_spm(const std::vector<std::pair<std::string, int32_t>>& pieces) {
  VocabSpec spec;
  spec.model = "llama";
  spec.tokens = {"<unk>", "<s>", "</s>"};
  spec.token_types = {2, 3, 3};
  static const char kHex[] = "0123456789ABCDEF";
  for (int b = 0; b < 256; ++b) {
    spec.tokens.push_back(std::string("<0x") + kHex[b >> 4] + kHex[b & 15] + ">");
    spec.token_types.push_back(6);
  }
  for (const auto& [text, type] : pieces) {
    spec.tokens.push_back(text);
    spec.token_types.push_back(type);
  }
  spec.scores.assign(spec.tokens.size(), 0.0f);
  for (size_t i = 259; i < spec.tokens.size(); ++i) spec.scores[i] = -static_cast<float>(i);
  return spec;
}

TEST(SpecialTokens, ControlTokensOnlyWithParseSpecial) {
  const Tokenizer& tok = load_shared("stories260K");
  const std::string text = "<s>Once</s>";
  const std::vector<TokenId> parsed = tok.tokenize(text, {.add_special = true, .parse_special = true});
  // After a special token SPM starts a new piece with the space prefix, as at the start.
  EXPECT_EQ(parsed, cat({{1, 1}, tok.tokenize("Once", kRaw), {2}}));
  const std::vector<TokenId> plain = tok.tokenize(text, {.add_special = true, .parse_special = false});
  ASSERT_FALSE(plain.empty());
  EXPECT_EQ(plain[0], 1);
  for (size_t i = 1; i < plain.size(); ++i) EXPECT_NE(plain[i], 1) << i;
  EXPECT_EQ(std::count(plain.begin(), plain.end(), 2), 0);
  EXPECT_EQ(tok.detokenize(std::vector<TokenId>(plain.begin() + 1, plain.end())), text);
}

TEST(SpecialTokens, UserDefinedAlwaysControlOnlyWhenParsed) {
  Result<Tokenizer> tok = Tokenizer::make(small_spm({{"\xE2\x96\x81", 1}, {"a", 1}, {"[U]", 4}, {"<ctl>", 3}}));
  ASSERT_TRUE(tok.ok()) << tok.message();
  const TokenId u = tok->find_token("[U]");
  const TokenId ctl = tok->find_token("<ctl>");
  const TokenId a = tok->find_token("a");
  const TokenId space = tok->find_token("\xE2\x96\x81");
  EXPECT_EQ(tok->tokenize("a[U]a", kRaw), (std::vector<TokenId>{space, a, u, space, a}));
  const std::vector<TokenId> raw = tok->tokenize("<ctl>", kRaw);
  EXPECT_EQ(std::count(raw.begin(), raw.end(), ctl), 0);
  EXPECT_EQ(tok->tokenize("<ctl>", kParse), (std::vector<TokenId>{ctl}));
  EXPECT_EQ(tok->token_to_piece(ctl), "");
  EXPECT_EQ(tok->token_to_piece(ctl, true), "<ctl>");
  EXPECT_EQ(tok->token_to_piece(u), "[U]");
}

TEST(SpecialTokens, LongestTokenCutsFirstLikeLlamaCpp) {
  // "yzw" is longer, so it is cut out before "xy" is looked for: "x" + [yzw], not [xy] + "zw".
  Result<Tokenizer> tok = Tokenizer::make(small_spm({{"xy", 4}, {"yzw", 4}, {"\xE2\x96\x81x", 1}}));
  ASSERT_TRUE(tok.ok()) << tok.message();
  EXPECT_EQ(tok->tokenize("xyzw", kRaw), (std::vector<TokenId>{tok->find_token("\xE2\x96\x81x"), tok->find_token("yzw")}));
  EXPECT_EQ(tok->tokenize("xyxy", kRaw), (std::vector<TokenId>{tok->find_token("xy"), tok->find_token("xy")}));
}

TEST(SpecialTokens, Phi3SpecialTokensEatTheWhitespaceAfterThem) {
  const Tokenizer& tok = load_shared("phi-3");
  const std::vector<TokenId> ids = tok.tokenize("<|user|>\nHello<|end|>\n<|assistant|>", kParse);
  EXPECT_EQ(ids, cat({{32010}, tok.tokenize("Hello", kRaw), {32007, 32001}}));
  EXPECT_TRUE(tok.is_eog(32007));   // <|end|>
  EXPECT_TRUE(tok.is_eog(32000));   // <|endoftext|>
  EXPECT_FALSE(tok.is_eog(32010));  // <|user|>
}

TEST(Detokenize, SpmLeadingSpaceRules) {
  const Tokenizer& tok = load_shared("llama-spm");
  const std::vector<TokenId> ids = tok.tokenize("Hello world");  // BOS added
  ASSERT_EQ(ids.front(), tok.bos());
  const std::vector<TokenId> text_only(ids.begin() + 1, ids.end());
  EXPECT_EQ(tok.detokenize(text_only), "Hello world");
  // llama.cpp keeps the first word's space when a BOS is in front (removed or not).
  EXPECT_EQ(tok.detokenize(ids, {.remove_special = true}), " Hello world");
  EXPECT_EQ(tok.detokenize(ids), " Hello world");
  EXPECT_EQ(tok.detokenize(ids, {.unparse_special = true}), "<s> Hello world");
  Detokenizer stream(tok, {.strip_leading_space = true});
  std::string streamed;
  for (TokenId id : text_only) streamed += stream.push(id);
  EXPECT_EQ(streamed + stream.finish(), "Hello world");
}

TEST(Detokenize, Gpt2CleansSpacesBeforePunctuation) {
  const Tokenizer& tok = load_shared("gpt-2");
  const std::vector<TokenId> ids = tok.tokenize("Hello , world . It ' s he 's we 're ok ' t", kRaw);
  // " ' " loses both spaces (llama.cpp's second pass).
  EXPECT_EQ(tok.detokenize(ids), "Hello, world. It's he's we're ok't");
}

TEST(Detokenize, InvalidIdsGiveNothing) {
  const Tokenizer& tok = load_shared("gpt-2");
  const std::vector<TokenId> ids = {-5, 15496, 1 << 30};
  EXPECT_EQ(tok.detokenize(ids), "Hello");
  EXPECT_EQ(tok.token_to_piece(-1), "");
  EXPECT_FALSE(tok.is_eog(-1));
}

TEST(Streaming, CompleteUtf8Prefix) {
  EXPECT_EQ(complete_utf8_prefix(""), 0u);
  EXPECT_EQ(complete_utf8_prefix("abc"), 3u);
  EXPECT_EQ(complete_utf8_prefix("a\xC3"), 1u);
  EXPECT_EQ(complete_utf8_prefix("a\xC3\xA9"), 3u);
  EXPECT_EQ(complete_utf8_prefix("a\xF0\x9F\xA6"), 1u);
  EXPECT_EQ(complete_utf8_prefix("a\xF0\x9F\xA6\x99"), 5u);
  EXPECT_EQ(complete_utf8_prefix("a\xE6\x97"), 1u);
  EXPECT_EQ(complete_utf8_prefix("\x80\x80\x80\x80\x80"), 5u);  // malformed: nothing to wait for
  EXPECT_EQ(complete_utf8_prefix("a\xFF"), 2u);
}

bool is_valid_utf8(std::string_view s) { return complete_utf8_prefix(s) == s.size(); }

TEST(Streaming, HoldsBackSplitCharacters) {
  const std::string text = "h\xC3\xA9llo \xF0\x9F\xA6\x99 \xE6\x97\xA5\xE6\x9C\xAC\xE8\xAA\x9E caf\xC3\xA9 \xF0\x9F\x9A\x80!";
  for (const std::string name : {"gpt-2", "stories260K", "llama-spm"}) {
    const Tokenizer& tok = load_shared(name);
    const std::vector<TokenId> ids = tok.tokenize(text, kRaw);
    Detokenizer stream(tok, {.strip_leading_space = tok.type() == VocabType::kSpm});
    std::string all;
    size_t held = 0;
    for (TokenId id : ids) {
      const std::string_view out = stream.push(id);
      EXPECT_TRUE(is_valid_utf8(out)) << name;
      held += stream.pending() > 0;
      all += out;
    }
    EXPECT_EQ(stream.pending(), 0u) << name;
    all += stream.finish();
    EXPECT_EQ(all, text) << name;
    EXPECT_GT(held, 0u) << name << ": no character was split across tokens";
  }
}

TEST(Streaming, FinishReturnsAnIncompleteTail) {
  const Tokenizer& tok = load_shared("stories260K");
  Detokenizer stream(tok);
  EXPECT_EQ(stream.push(tok.find_token("<0xE6>")), "");
  EXPECT_EQ(stream.pending(), 1u);
  EXPECT_EQ(stream.finish(), "\xE6");
  EXPECT_EQ(stream.pending(), 0u);
}

TEST(MalformedInput, BpeReadsBadBytesAsReplacementCharacters) {
  const Tokenizer& tok = load_shared("gpt-2");
  // llama.cpp decodes to code points first: a malformed byte becomes U+FFFD.
  EXPECT_EQ(tok.tokenize("a\xFF" "b", kRaw), tok.tokenize("a\xEF\xBF\xBD" "b", kRaw));
  EXPECT_EQ(tok.tokenize("\xC3", kRaw), tok.tokenize("\xEF\xBF\xBD", kRaw));
  EXPECT_FALSE(tok.tokenize(std::string("x\0y", 3), kRaw).empty());
}

TEST(MalformedInput, SpmFallsBackToBytes) {
  const Tokenizer& tok = load_shared("llama-spm");
  const std::vector<TokenId> ids = tok.tokenize("\xFF", kRaw);
  ASSERT_EQ(ids.size(), 2u);
  EXPECT_EQ(ids[1], tok.find_token("<0xFF>"));
  EXPECT_EQ(tok.detokenize(ids), "\xFF");
}

TEST(MalformedInput, RandomBytesGiveValidIds) {
  // No round trip here: llama.cpp escapes spaces before cutting characters, so a malformed lead
  // byte before a space swallows part of the U+2581 and the bytes come back as "\xE2\x96\x81".
  std::mt19937 rng(7);
  for (int i = 0; i < 300; ++i) {
    std::string s(rng() % 40 + 1, '\0');
    for (char& c : s) c = static_cast<char>(rng() % 256);
    for (const std::string name : {"gpt-2", "llama-spm", "stories260K"}) {
      const Tokenizer& tok = load_shared(name);
      for (TokenId id : tok.tokenize(s, kParse)) ASSERT_TRUE(tok.valid(id)) << name;
    }
  }
}

std::string random_utf8(std::mt19937& rng, size_t n_chars) {
  std::string s;
  for (size_t i = 0; i < n_chars; ++i) {
    const uint32_t kind = rng() % 8;
    uint32_t cpt = kind < 4 ? 0x20 + rng() % 0x5F : kind < 5 ? "\n\t  "[rng() % 4] : kind < 6 ? 0xA0 + rng() % 0x700
                 : kind < 7 ? 0x3000 + rng() % 0x6000 : 0x1F300 + rng() % 0x300;
    if (cpt >= 0xD800 && cpt < 0xE000) cpt = 'x';
    if (cpt < 0x80) {
      s.push_back(static_cast<char>(cpt));
    } else if (cpt < 0x800) {
      s.push_back(static_cast<char>(0xC0 | (cpt >> 6)));
      s.push_back(static_cast<char>(0x80 | (cpt & 0x3F)));
    } else if (cpt < 0x10000) {
      s.push_back(static_cast<char>(0xE0 | (cpt >> 12)));
      s.push_back(static_cast<char>(0x80 | ((cpt >> 6) & 0x3F)));
      s.push_back(static_cast<char>(0x80 | (cpt & 0x3F)));
    } else {
      s.push_back(static_cast<char>(0xF0 | (cpt >> 18)));
      s.push_back(static_cast<char>(0x80 | ((cpt >> 12) & 0x3F)));
      s.push_back(static_cast<char>(0x80 | ((cpt >> 6) & 0x3F)));
      s.push_back(static_cast<char>(0x80 | (cpt & 0x3F)));
    }
  }
  return s;
}

TEST(RoundTrip, RandomTextComesBackByteForByte) {
  std::mt19937 rng(5);
  for (int i = 0; i < 300; ++i) {
    const std::string s = random_utf8(rng, rng() % 60 + 1);
    for (const std::string name : {"gpt-2", "llama-spm", "phi-3", "stories260K"}) {
      const Tokenizer& tok = load_shared(name);
      const std::vector<TokenId> ids = tok.tokenize(s, kRaw);
      std::string pieces;
      for (TokenId id : ids) pieces += tok.token_to_piece(id);
      if (tok.type() == VocabType::kSpm) {
        ASSERT_EQ(tok.detokenize(ids), s) << name;
      } else {
        ASSERT_EQ(pieces, s) << name;
      }
    }
  }
}

TEST(Metadata, ErrorsNameTheProblem) {
  VocabSpec bpe;
  bpe.model = "gpt2";
  bpe.pre = "no-such-pre";
  bpe.tokens = {"a", "b", "ab"};
  bpe.merges = {"a b"};
  Result<Tokenizer> r = Tokenizer::make(bpe);
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.message().find("no-such-pre"), std::string::npos) << r.message();
  bpe.pre = "kimi-k2";
  r = Tokenizer::make(bpe);
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.message().find("kimi-k2"), std::string::npos) << r.message();
  bpe.pre = "qwen2";
  bpe.merges.clear();
  r = Tokenizer::make(bpe);
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.message().find("merges"), std::string::npos) << r.message();

  VocabSpec spm = small_spm({{"x", 1}, {"x", 1}});
  r = Tokenizer::make(spm);
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.message().find("duplicate token"), std::string::npos) << r.message();
  spm = small_spm({});
  spm.model = "bert";
  r = Tokenizer::make(spm);
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.message().find("'bert'"), std::string::npos) << r.message();
  spm = small_spm({});
  spm.scores.resize(10);
  EXPECT_FALSE(Tokenizer::make(spm).ok());
  spm = small_spm({});
  spm.tokens.clear();
  EXPECT_FALSE(Tokenizer::make(spm).ok());

  VocabSpec no_bos;
  no_bos.model = "gpt2";
  no_bos.pre = "gpt-2";
  no_bos.tokens = {"a", "b", "ab"};
  no_bos.merges = {"a b"};
  no_bos.add_bos = true;
  r = Tokenizer::make(no_bos);  // gpt2's default BOS id 11 is outside this vocabulary
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.message().find("bos_token_id"), std::string::npos) << r.message();
}

TEST(Metadata, Defaults) {
  const Tokenizer& spm = load_shared("stories260K");
  EXPECT_EQ(spm.type(), VocabType::kSpm);
  EXPECT_TRUE(spm.add_bos());  // SPM adds BOS unless told otherwise
  EXPECT_FALSE(spm.add_eos());
  EXPECT_EQ(spm.bos(), 1);
  EXPECT_EQ(spm.eos(), 2);
  EXPECT_EQ(spm.special().unk, 0);
  EXPECT_EQ(spm.special().nl, spm.find_token("<0x0A>"));
  EXPECT_TRUE(spm.is_eog(2));
  const Tokenizer& bpe = load_shared("gpt-2");
  EXPECT_EQ(bpe.type(), VocabType::kBpe);
  EXPECT_FALSE(bpe.add_bos());
  EXPECT_EQ(bpe.bos(), 50256);
  EXPECT_EQ(bpe.special().nl, 198);
  EXPECT_EQ(bpe.n_vocab(), 50257);
  EXPECT_EQ(bpe.tokenize("Hello"), (std::vector<TokenId>{15496}));  // add_special but no add_bos
}

TEST(Threads, ConcurrentCallsAgree) {
  for (const std::string name : {"gpt-2", "llama-spm"}) {
    const Tokenizer& tok = load_shared(name);
    std::vector<std::string> texts;
    std::mt19937 rng(3);
    for (int i = 0; i < 64; ++i) {
      std::string s;
      for (int w = 0; w < 50; ++w) s += "word" + std::to_string(rng() % 500) + (w % 7 ? " " : ". ");
      texts.push_back(s);
    }
    std::vector<std::vector<TokenId>> expected;
    for (const auto& t : texts) expected.push_back(tok.tokenize(t, kRaw));
    std::vector<std::thread> threads;
    std::atomic<int> mismatches{0};
    for (int t = 0; t < 4; ++t) {
      threads.emplace_back([&, t] {
        for (int round = 0; round < 5; ++round) {
          for (size_t i = t; i < texts.size(); i += 1) {
            if (tok.tokenize(texts[i], kRaw) != expected[i]) ++mismatches;
          }
        }
      });
    }
    for (auto& th : threads) th.join();
    EXPECT_EQ(mismatches.load(), 0) << name;
  }
}

}  // namespace
}  // namespace owl::tokenizer
