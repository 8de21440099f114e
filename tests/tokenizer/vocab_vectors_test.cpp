// llama.cpp's own tokenizer test vectors (../shared/vocab: ggml-vocab-*.gguf with .inp/.out, as its
// tests/test-tokenizer-0 reads them) and the token ids of the reference prompts in
// ../shared/reference. Every vector must match exactly.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>

#include "tokenizer/tokenizer.h"

namespace owl::tokenizer {
namespace {

using core::Result;

const std::string kShared = OWL_SHARED_DIR;

std::string read_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

// test-tokenizer-0's format: inputs are separated by "\n__ggml_vocab_test__\n" (every input,
// the last included, is followed by one); .out holds one line per input, ids separated by spaces.
std::vector<std::string> read_inputs(const std::string& path) {
  const std::string text = read_file(path);
  const std::string sep = "\n__ggml_vocab_test__\n";
  std::vector<std::string> inputs;
  size_t pos = 0;
  for (size_t hit; (hit = text.find(sep, pos)) != std::string::npos; pos = hit + sep.size()) {
    inputs.push_back(text.substr(pos, hit - pos));
  }
  return inputs;
}

std::vector<std::vector<TokenId>> read_outputs(const std::string& path) {
  std::ifstream in(path);
  std::vector<std::vector<TokenId>> outputs;
  std::string line;
  while (std::getline(in, line)) {
    std::istringstream fields(line);
    std::vector<TokenId> ids;
    for (TokenId id; fields >> id;) ids.push_back(id);
    outputs.push_back(std::move(ids));
  }
  return outputs;
}

std::string concat_pieces(const Tokenizer& tok, const std::vector<TokenId>& ids) {
  std::string s;
  for (TokenId id : ids) s += tok.token_to_piece(id);
  return s;
}

class VocabVectors : public ::testing::TestWithParam<std::string> {};

TEST_P(VocabVectors, MatchLlamaCpp) {
  const std::string base = kShared + "/vocab/ggml-vocab-" + GetParam() + ".gguf";
  Result<Tokenizer> tok = Tokenizer::load(base);
  ASSERT_TRUE(tok.ok()) << tok.message();
  const std::vector<std::string> inputs = read_inputs(base + ".inp");
  const std::vector<std::vector<TokenId>> expected = read_outputs(base + ".out");
  ASSERT_EQ(inputs.size(), expected.size());
  ASSERT_GT(inputs.size(), 40u);
  size_t passed = 0;
  for (size_t i = 0; i < inputs.size(); ++i) {
    const std::vector<TokenId> got = tok->tokenize(inputs[i], {.add_special = false, .parse_special = false});
    EXPECT_EQ(got, expected[i]) << GetParam() << " input " << i << ": '" << inputs[i] << "'";
    passed += got == expected[i];
    // Round trip: the pieces give back the input byte for byte.
    if (tok->type() == VocabType::kSpm) {
      EXPECT_EQ(tok->detokenize(got), inputs[i]) << "input " << i;
    } else {
      EXPECT_EQ(concat_pieces(*tok, got), inputs[i]) << "input " << i;
    }
  }
  std::printf("[ vocab    ] %s: %zu/%zu vectors match\n", GetParam().c_str(), passed, inputs.size());
}

INSTANTIATE_TEST_SUITE_P(Shared, VocabVectors, ::testing::Values("llama-spm", "phi-3", "gpt-2"));

TEST(VocabVectors, EveryVocabFileIsCovered) {
  size_t n = 0;
  for (const auto& entry : std::filesystem::directory_iterator(kShared + "/vocab")) {
    if (entry.path().extension() != ".gguf") continue;
    const std::string name = entry.path().stem().string().substr(std::string("ggml-vocab-").size());
    EXPECT_TRUE(name == "llama-spm" || name == "phi-3" || name == "gpt-2") << "untested vocab " << name;
    ++n;
  }
  EXPECT_EQ(n, 3u);
}

// The prompts of every reference file (stories260K and the models sharing its vocabulary):
// tokenized with BOS and special tokens parsed, as llama.cpp did; the greedy continuation's
// pieces give its text.
TEST(ReferencePrompts, MatchLlamaCppTokens) {
  size_t checked = 0;
  for (const std::string& dir : {kShared + "/reference", kShared + "/reference/synthetic"}) {
    for (const auto& entry : std::filesystem::directory_iterator(dir)) {
      if (entry.path().extension() != ".json") continue;
      const nlohmann::json ref = nlohmann::json::parse(read_file(entry.path().string()));
      if (!ref.contains("tokens") || !ref.contains("prompt") || !ref.contains("model")) continue;
      const std::string model_dir = dir == kShared + "/reference" ? kShared + "/models/" : dir + "/";
      std::string model = ref["model"].get<std::string>();
      if (!std::filesystem::exists(model_dir + model)) model = model_dir + model + ".gguf";
      else model = model_dir + model;
      if (!std::filesystem::exists(model)) continue;
      Result<Tokenizer> tok = Tokenizer::load(model);
      ASSERT_TRUE(tok.ok()) << model << ": " << tok.message();
      const std::vector<TokenId> expected = ref["tokens"].get<std::vector<TokenId>>();
      const bool add_bos = ref.value("add_bos", true);
      EXPECT_EQ(tok->tokenize(ref["prompt"].get<std::string>(), {.add_special = add_bos, .parse_special = true}),
                expected)
          << entry.path();
      if (ref.contains("greedy") && ref.contains("greedy_text") && !ref.value("greedy_text_lossy", false)) {
        Detokenizer stream(*tok);
        std::string text;
        for (TokenId id : ref["greedy"].get<std::vector<TokenId>>()) text += stream.push(id);
        text += stream.finish();
        EXPECT_EQ(text, ref["greedy_text"].get<std::string>()) << entry.path();
      }
      ++checked;
    }
  }
  std::printf("[ vocab    ] reference prompts: %zu files checked\n", checked);
  EXPECT_GE(checked, 60u);
}

}  // namespace
}  // namespace owl::tokenizer
