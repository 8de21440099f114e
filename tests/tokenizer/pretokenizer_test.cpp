// Pre-tokenizer regexes (one set per `tokenizer.ggml.pre`) on texts whose splits follow from
// llama.cpp's rules by hand, and the SPM word split owl uses for speed against whole-piece merging.
#include <gtest/gtest.h>

#include <fstream>
#include <random>

#include "gguf/gguf.h"
#include "tokenizer/pretokenizer.h"
#include "tokenizer/unicode.h"
#include "tokenizer/vocab.h"

namespace owl::tokenizer {
namespace {

std::vector<std::string> split(std::string_view pre, std::string_view text) {
  auto spec = find_pre_tokenizer(pre);
  EXPECT_TRUE(spec.ok()) << spec.message();
  auto pt = PreTokenizer::make(*spec);
  EXPECT_TRUE(pt.ok()) << pt.message();
  std::vector<Span> words, scratch;
  pt->split(text, words, scratch);
  std::vector<std::string> out;
  for (const Span& w : words) out.emplace_back(text.substr(w.begin, w.end - w.begin));
  return out;
}

using Words = std::vector<std::string>;

TEST(PreTokenizer, Gpt2) {
  EXPECT_EQ(split("gpt-2", "Hello world 12345 I'm  ok\n\n"),
            (Words{"Hello", " world", " 12345", " I", "'m", " ", " ok", "\n\n"}));
  EXPECT_EQ(split("gpt-2", "\tHi  "), (Words{"\t", "Hi", "  "}));
  EXPECT_EQ(split("gpt-2", "a,,b ?!"), (Words{"a", ",,", "b", " ?!"}));
}

TEST(PreTokenizer, Llama3) {
  EXPECT_EQ(split("llama-bpe", "Hello world 12345 I'M  ok\n\n"),
            (Words{"Hello", " world", " ", "123", "45", " I", "'M", " ", " ok", "\n\n"}));
  EXPECT_EQ(split("llama3", "x  \n\ny"), (Words{"x", "  \n\n", "y"}));
  EXPECT_EQ(split("llama3", "(hello)"), (Words{"(hello", ")"}));
}

TEST(PreTokenizer, Qwen2SplitsDigits) {
  EXPECT_EQ(split("qwen2", "ab 2024!"), (Words{"ab", " ", "2", "0", "2", "4", "!"}));
}

TEST(PreTokenizer, DefaultAppliesFourRegexesInTurn) {
  // First regex cuts punctuation runs; the others refine what is left, gaps included.
  EXPECT_EQ(split("default", "ab, 1234"), (Words{"ab", ",", " ", "123", "4"}));
}

TEST(PreTokenizer, DeepseekLlmEndAnchor) {
  // \s+$ is the end of the piece only (not before a final newline).
  EXPECT_EQ(split("deepseek-llm", "Hi  "), (Words{"Hi", "  "}));
}

TEST(PreTokenizer, SuperbpeEmptyMatchesSplitDigitsInThrees) {
  EXPECT_EQ(split("superbpe", "1234567"), (Words{"1", "234", "567"}));
}

TEST(PreTokenizer, NonAsciiWhitespaceAndLetters) {
  // U+3000 is whitespace, U+00E9 a letter, U+180E is not whitespace for llama.cpp.
  EXPECT_EQ(split("gpt-2", "caf\xC3\xA9\xE3\x80\x80x"), (Words{"caf\xC3\xA9", "\xE3\x80\x80", "x"}));
  EXPECT_EQ(split("gpt-2", "a\xE1\xA0\x8E"), (Words{"a", "\xE1\xA0\x8E"}));
}

TEST(PreTokenizer, SymbolClassLeavesOutTilde) {
  auto re = translate_regex(R"( ?[\p{P}\p{S}]+)");
  ASSERT_TRUE(re.ok());
  EXPECT_NE(re->find("(?!~)"), std::string::npos) << *re;
  re = translate_regex(R"([^\s\p{L}])");
  ASSERT_TRUE(re.ok());
  EXPECT_EQ(re->find("\\s"), std::string::npos) << *re;
}

TEST(PreTokenizer, EveryKnownNameCompiles) {
  for (std::string_view name :
       {"", "default", "llama3", "llama-bpe", "deepseek-llm", "deepseek-coder", "deepseek-v3", "falcon", "mpt",
        "starcoder", "gpt-2", "refact", "command-r", "qwen2", "qwen35", "stablelm2", "olmo", "dbrx", "smaug-bpe",
        "poro-chat", "chatglm-bpe", "glm4", "viking", "jais", "jais-2", "tekken", "smollm", "codeshell", "bloom",
        "gpt3-finnish", "exaone", "exaone4", "exaone-moe", "chameleon", "minerva-7b", "megrez", "gpt-4o", "llama4",
        "superbpe", "trillion", "bailingmoe", "seed-coder", "hunyuan", "hunyuan-dense", "grok-2", "minimax-m2",
        "gemma4", "laguna", "minicpm5", "ufakzeka", "spark2_5", "granite-embed-multi-97m", "solar-open"}) {
    auto spec = find_pre_tokenizer(name);
    ASSERT_TRUE(spec.ok()) << name << ": " << spec.message();
    auto pt = PreTokenizer::make(*spec);
    ASSERT_TRUE(pt.ok()) << name << ": " << pt.message();
    std::vector<Span> words, scratch;
    const std::string text = "Hello, World! I'm 12345 \xE6\x97\xA5\xE6\x9C\xAC caf\xC3\xA9\n\n  x  ";
    pt->split(text, words, scratch);
    uint32_t at = 0;  // the words tile the text
    for (const Span& w : words) {
      EXPECT_EQ(w.begin, at) << name;
      at = w.end;
    }
    EXPECT_EQ(at, text.size()) << name;
  }
}

TEST(PreTokenizer, UnknownAndUnsupportedNamesAreErrors) {
  auto r = find_pre_tokenizer("my-new-model");
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.message().find("'my-new-model'"), std::string::npos);
  EXPECT_FALSE(find_pre_tokenizer("kimi-k2").ok());
}

TEST(Unicode, NormalizeForBpeFollowsLlamaCpp) {
  std::string out;
  EXPECT_FALSE(normalize_for_bpe("plain \xC3\xA9 text", out));
  ASSERT_TRUE(normalize_for_bpe("a\xFF", out));
  EXPECT_EQ(out, "a\xEF\xBF\xBD");
  ASSERT_TRUE(normalize_for_bpe("\xC0\x80", out));  // overlong NUL decodes to U+0000
  EXPECT_EQ(out, std::string(1, '\0'));
  ASSERT_TRUE(normalize_for_bpe("\xE2\x82", out));  // truncated: each byte is U+FFFD
  EXPECT_EQ(out, "\xEF\xBF\xBD\xEF\xBF\xBD");
}

TEST(Unicode, ByteAlphabet) {
  const ByteAlphabet& a = byte_alphabet();
  EXPECT_EQ(std::string_view(a.utf8[' '], a.utf8_len[' ']), "\xC4\xA0");  // 'Ġ'
  EXPECT_EQ(std::string_view(a.utf8['\n'], a.utf8_len['\n']), "\xC4\x8A");  // 'Ċ'
  EXPECT_EQ(std::string_view(a.utf8['A'], a.utf8_len['A']), "A");
  std::string decoded;
  decode_byte_level("\xC4\xA0Hello\xC4\x8A", decoded);
  EXPECT_EQ(decoded, " Hello\n");
}

// The word split of SPM (Impl::spm_words) must give what merging whole pieces gives.
TEST(Spm, WordSplitEqualsWholePieceMerging) {
  for (const std::string name : {"llama-spm", "phi-3"}) {
    VocabSpec spec;
    {
      auto file = gguf::GgufFile::open(std::string(OWL_SHARED_DIR) + "/vocab/ggml-vocab-" + name + ".gguf");
      ASSERT_TRUE(file.ok()) << file.message();
      auto s = read_vocab_spec(*file);
      ASSERT_TRUE(s.ok()) << s.message();
      spec = std::move(*s);
    }
    auto words = make_impl(spec);
    auto whole = make_impl(spec);
    ASSERT_TRUE(words.ok() && whole.ok());
    ASSERT_TRUE((*words)->spm_words) << name;
    (*whole)->spm_words = false;
    std::ifstream in(std::string(OWL_SHARED_DIR) + "/vocab/ggml-vocab-" + name + ".gguf.inp", std::ios::binary);
    std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    std::mt19937 rng(11);
    for (int i = 0; i < 200; ++i) {
      const size_t begin = rng() % text.size();
      std::string piece = "\xE2\x96\x81";
      for (char c : text.substr(begin, rng() % 300)) {
        if (c == ' ') piece += "\xE2\x96\x81";
        else piece += c;
      }
      std::vector<TokenId> a, b;
      SpmScratch s1, s2;
      tokenize_spm(**words, piece, a, s1);
      tokenize_spm(**whole, piece, b, s2);
      ASSERT_EQ(a, b) << name << " piece " << i;
    }
  }
}

}  // namespace
}  // namespace owl::tokenizer
