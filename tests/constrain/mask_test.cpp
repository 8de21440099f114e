// Token masks from the trie walk against the definition (each token's bytes fed to a copy of
// the matcher), on real vocabularies; and whole generations under a mask.
#include <random>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "constrain/json_schema.h"
#include "constrain/matcher.h"
#include "sample/sampler.h"

namespace owl::constrain {
namespace {

using Json = nlohmann::ordered_json;

const tokenizer::Tokenizer& vocab(const std::string& name) {
  static std::map<std::string, tokenizer::Tokenizer> cache;
  auto it = cache.find(name);
  if (it == cache.end()) {
    auto tok = tokenizer::Tokenizer::load(std::string(OWL_SHARED_DIR) + "/vocab/" + name);
    if (!tok.ok()) {
      ADD_FAILURE() << tok.message();
      std::abort();
    }
    it = cache.emplace(name, std::move(*tok)).first;
  }
  return it->second;
}

const char* kSchema = R"({"type":"object","properties":{
  "name":{"type":"string","maxLength":12},
  "kind":{"enum":["cat","dog","owl"]},
  "age":{"type":"integer","minimum":0,"maximum":150},
  "tags":{"type":"array","items":{"type":"string","pattern":"^[a-z]+$"},"maxItems":3},
  "note":{"type":["string","null"]},
  "born":{"type":"string","format":"date"}},
  "required":["name","kind"]})";

std::vector<uint64_t> brute_force(const Matcher& at, const TokenIndex& index) {
  std::vector<uint64_t> mask((static_cast<size_t>(index.n_vocab()) + 63) / 64, 0);
  for (int32_t t = 0; t < index.n_vocab(); ++t) {
    bool ok = false;
    if (index.is_eog(t)) {
      ok = at.accepted();
    } else if (!index.piece(t).empty()) {
      Matcher m = at;
      ok = m.feed(index.piece(t));
    }
    if (ok) mask[static_cast<size_t>(t) >> 6] |= 1ull << (t & 63);
  }
  return mask;
}

class Masks : public ::testing::TestWithParam<const char*> {};

TEST_P(Masks, TrieWalkEqualsFeedingEveryToken) {
  const tokenizer::Tokenizer& tok = vocab(GetParam());
  TokenIndex index(tok);
  auto gbnf = json_schema_to_gbnf(Json::parse(kSchema));
  ASSERT_TRUE(gbnf.ok()) << gbnf.message();
  auto grammar = Grammar::parse(*gbnf);
  ASSERT_TRUE(grammar.ok()) << grammar.message();
  // States along a valid document, a partial character included.
  const std::string fixed = "{\"name\": \"Zoé\", \"kind\": \"owl\", \"age\": 42, \"tags\": [\"ab\", \"c\"], \"note\": null, "
                            "\"born\": \"2020-02-28\"}";
  Matcher m(*grammar);
  std::vector<uint64_t> walked;
  size_t checked = 0;
  for (size_t i = 0; i <= fixed.size(); ++i) {
    if (i % 3 == 0 || i + 1 >= fixed.size() || static_cast<uint8_t>(fixed[i - (i ? 1 : 0)]) >= 0x80) {  // every third, and inside é
      Matcher probe = m;
      probe.compute_mask(index, walked);
      ASSERT_EQ(walked, brute_force(m, index)) << "after " << fixed.substr(0, i);
      ++checked;
    }
    if (i < fixed.size()) {
      ASSERT_TRUE(m.feed(fixed.substr(i, 1))) << fixed.substr(0, i + 1);
    }
  }
  EXPECT_TRUE(m.accepted());
  EXPECT_GT(checked, 20u);
}

INSTANTIATE_TEST_SUITE_P(Vocabularies, Masks,
                         ::testing::Values("ggml-vocab-llama-spm.gguf", "ggml-vocab-gpt-2.gguf", "ggml-vocab-phi-3.gguf"));

// Random logits through the sampler with the constraint: every generation that ends is a
// document the grammar accepts, and it ends only by an end-of-generation token once complete.
TEST(Masks, SampledGenerationsAreValidDocuments) {
  const tokenizer::Tokenizer& tok = vocab("ggml-vocab-llama-spm.gguf");
  auto index = std::make_shared<const TokenIndex>(tok);
  auto gbnf = json_schema_to_gbnf(Json::parse(kSchema));
  ASSERT_TRUE(gbnf.ok());
  auto program = compile(*gbnf, index);
  ASSERT_TRUE(program.ok()) << program.message();
  std::mt19937 rng(7);
  std::vector<float> logits(static_cast<size_t>(tok.n_vocab()));
  int finished = 0;
  for (int run = 0; run < 20; ++run) {
    sample::SamplingParams params;
    params.temperature = 1.0f;
    params.top_k = 0;
    params.top_p = 1.0f;
    params.min_p = 0.0f;
    params.seed = static_cast<uint64_t>(run);
    sample::Sampler sampler(params, tok.n_vocab(), (*program)->make());
    std::string text;
    bool ended = false;
    for (int step = 0; step < 400 && !ended; ++step) {
      std::normal_distribution<float> noise(0.0f, 3.0f);
      for (size_t t = 0; t < logits.size(); ++t) {
        logits[t] = noise(rng);
        const std::string_view p = tok.token_to_piece(static_cast<int32_t>(t));
        // Favour closing characters so documents end within the budget.
        if (p.find_first_of("\"]},") != std::string_view::npos) logits[t] += 8.0f;
      }
      logits[static_cast<size_t>(tok.eos())] += 8.0f;
      const sample::Sampled s = sampler.sample(logits.data());
      sampler.accept(s.token);
      if (tok.is_eog(s.token)) {
        ended = true;
      } else {
        text += tok.token_to_piece(s.token);
      }
    }
    if (!ended) continue;
    ++finished;
    const Json doc = Json::parse(text, nullptr, false);
    ASSERT_FALSE(doc.is_discarded()) << text;
    ASSERT_TRUE(doc.is_object()) << text;
    EXPECT_TRUE(doc.contains("name") && doc["name"].is_string()) << text;
    EXPECT_TRUE(doc["kind"] == "cat" || doc["kind"] == "dog" || doc["kind"] == "owl") << text;
    if (doc.contains("age")) {
      EXPECT_TRUE(doc["age"].is_number_integer() && doc["age"] >= 0 && doc["age"] <= 150) << text;
    }
    if (doc.contains("tags")) {
      EXPECT_LE(doc["tags"].size(), 3u) << text;
    }
  }
  EXPECT_GE(finished, 15);
}

TEST(Masks, OnlyTheEndOnceTheDocumentIsComplete) {
  const tokenizer::Tokenizer& tok = vocab("ggml-vocab-llama-spm.gguf");
  auto program = compile("root ::= \"yes\" | \"no\"\n", std::make_shared<const TokenIndex>(tok));
  ASSERT_TRUE(program.ok());
  auto c = (*program)->make();
  std::vector<float> logits(static_cast<size_t>(tok.n_vocab()), 0.0f);
  c->mask(logits);
  EXPECT_TRUE(std::isinf(logits[static_cast<size_t>(tok.eos())]));  // nothing written yet
  const int32_t yes = tok.find_token("yes");
  ASSERT_GE(yes, 0);
  EXPECT_EQ(logits[static_cast<size_t>(yes)], 0.0f);
  c->accept(yes);
  std::fill(logits.begin(), logits.end(), 0.0f);
  c->mask(logits);
  size_t allowed = 0;
  for (float l : logits) allowed += l == 0.0f;
  EXPECT_EQ(logits[static_cast<size_t>(tok.eos())], 0.0f);
  EXPECT_EQ(allowed, 1u);
}

}  // namespace
}  // namespace owl::constrain
