// Embeddings against llama.cpp's llama-embedding (reference/embeddings in ../shared): mean and
// last-token pooling, L2-normalized, for the stories model (F32, Q8_0) and four architectures.
#include "engine/embed.h"

#include <gtest/gtest.h>

#include <cmath>
#include <fstream>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include <nlohmann/json.hpp>

#include "tokenizer/tokenizer.h"

namespace owl::engine {
namespace {

const std::string kShared = OWL_SHARED_DIR;

std::vector<std::string> texts() {
  std::ifstream in(kShared + "/reference/embeddings/texts.txt");
  std::vector<std::string> lines;
  for (std::string line; std::getline(in, line);) {
    if (!line.empty()) lines.push_back(line);
  }
  return lines;
}

double cosine(const std::vector<float>& a, const std::vector<double>& b) {
  double ab = 0, aa = 0, bb = 0;
  for (size_t i = 0; i < a.size(); ++i) {
    ab += a[i] * b[i];
    aa += static_cast<double>(a[i]) * a[i];
    bb += b[i] * b[i];
  }
  return ab / std::sqrt(aa * bb);
}

struct Case {
  std::string model;      // under ../shared
  std::string reference;  // reference/embeddings/<name>.<pool>.json
  double min_cosine;
};

void check(const Case& c, Pooling pooling) {
  SCOPED_TRACE(c.model + " " + pooling_name(pooling));
  auto model = model::load_model(kShared + "/" + c.model);
  ASSERT_TRUE(model.ok()) << model.message();
  auto tok = tokenizer::Tokenizer::load((*model)->file);
  ASSERT_TRUE(tok.ok()) << tok.message();
  auto embedder = Embedder::make(**model, {.n_ctx = 128, .n_threads = 2, .pooling = pooling});
  ASSERT_TRUE(embedder.ok()) << embedder.message();
  std::ifstream in(kShared + "/reference/embeddings/" + c.reference + "." + pooling_name(pooling) + ".json");
  ASSERT_TRUE(in) << c.reference;
  const nlohmann::json ref = nlohmann::json::parse(in);
  const std::vector<std::string> lines = texts();
  ASSERT_EQ(ref["data"].size(), lines.size());
  // All inputs at once, several per forward pass (more inputs than sequences: several passes).
  std::vector<std::vector<int32_t>> all;
  for (int copy = 0; copy < 5; ++copy) {
    for (const std::string& line : lines) all.push_back(tok->tokenize(line, {.add_special = true}));
  }
  ASSERT_GT(all.size(), static_cast<size_t>((*embedder)->n_seq()));
  auto batched = (*embedder)->embed(std::span<const std::vector<int32_t>>(all));
  ASSERT_TRUE(batched.ok()) << batched.message();
  ASSERT_EQ(batched->size(), all.size());
  for (size_t i = 0; i < lines.size(); ++i) {
    auto v = (*embedder)->embed(tok->tokenize(lines[i], {.add_special = true}));
    ASSERT_TRUE(v.ok()) << v.message();
    for (int copy = 0; copy < 5; ++copy) {
      const std::vector<float>& b = (*batched)[static_cast<size_t>(copy) * lines.size() + i];
      for (size_t k = 0; k < v->size(); ++k) ASSERT_NEAR(b[k], (*v)[k], 1e-4) << "text " << i << " copy " << copy;
    }
    const auto expected = ref["data"][i]["embedding"].get<std::vector<double>>();
    ASSERT_EQ(v->size(), expected.size());
    double norm = 0;
    for (float x : *v) norm += static_cast<double>(x) * x;
    EXPECT_NEAR(norm, 1.0, 1e-5);
    EXPECT_GE(cosine(*v, expected), c.min_cosine) << "text " << i;
  }
}

TEST(Embed, MatchesLlamaCppWithMeanAndLastPooling) {
  const std::vector<Case> cases = {
      {"models/stories260K.gguf", "stories260K", 0.9999},
      {"models/stories260K.q8_0.gguf", "stories260K.q8_0", 0.999},
      {"reference/synthetic/qwen2.f32.gguf", "qwen2.f32", 0.9999},
      {"reference/synthetic/phi3.f32.gguf", "phi3.f32", 0.9999},
      {"reference/synthetic/gemma2.f32.gguf", "gemma2.f32", 0.9999},
      {"reference/synthetic/llama-gqa.f32.gguf", "llama-gqa.f32", 0.9999},
  };
  for (const Case& c : cases) {
    check(c, Pooling::kMean);
    check(c, Pooling::kLast);
  }
}

TEST(Embed, PoolingNamesAndErrors) {
  EXPECT_EQ(*parse_pooling("last"), Pooling::kLast);
  auto bad = parse_pooling("max");
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(bad.message().find("'max' is not one of: mean, last, cls"), std::string::npos);
  auto model = model::load_model(kShared + "/models/stories260K.gguf");
  ASSERT_TRUE(model.ok());
  EXPECT_EQ(model_pooling(**model), Pooling::kMean);  // no pooling_type in the file
  auto embedder = Embedder::make(**model, {.n_ctx = 8, .n_threads = 1});
  ASSERT_TRUE(embedder.ok());
  const std::vector<int32_t> long_input(9, 1);
  auto too_long = (*embedder)->embed(long_input);
  ASSERT_FALSE(too_long.ok());
  EXPECT_NE(too_long.message().find("9 tokens, more than the context of 8"), std::string::npos) << too_long.message();
  EXPECT_FALSE((*embedder)->embed(std::span<const int32_t>()).ok());
}

// Callers on several threads share forward passes; each gets its own vectors, the same as alone.
TEST(Embed, ConcurrentCallersShareBatchesAndGetTheirOwnVectors) {
  auto model = model::load_model(kShared + "/models/stories260K.gguf");
  ASSERT_TRUE(model.ok()) << model.message();
  auto embedder = Embedder::make(**model, {.n_ctx = 64, .n_threads = 1});
  ASSERT_TRUE(embedder.ok()) << embedder.message();
  Embedder& e = **embedder;
  ASSERT_GT(e.n_seq(), 1);
  constexpr int kCallers = 6;
  std::vector<std::vector<std::vector<int32_t>>> inputs(kCallers);
  for (int c = 0; c < kCallers; ++c) {
    for (int i = 0; i <= c % 3; ++i) {
      std::vector<int32_t> ids;
      for (int t = 0; t < 3 + c + i; ++t) ids.push_back(1 + (c * 37 + i * 11 + t * 5) % 500);
      inputs[c].push_back(std::move(ids));
    }
  }
  // Alone, one call after another: exactly ceil(inputs / n_seq) passes each.
  std::vector<std::vector<std::vector<float>>> alone(kCallers);
  int64_t expected_passes = 0;
  for (int c = 0; c < kCallers; ++c) {
    auto out = e.embed(std::span<const std::vector<int32_t>>(inputs[c]));
    ASSERT_TRUE(out.ok()) << out.message();
    alone[c] = std::move(*out);
    expected_passes += (static_cast<int64_t>(inputs[c].size()) + e.n_seq() - 1) / e.n_seq();
  }
  EXPECT_EQ(e.passes(), expected_passes);
  for (int round = 0; round < 5; ++round) {
    const int64_t before = e.passes();
    std::vector<std::vector<std::vector<float>>> together(kCallers);
    std::vector<std::string> errors(kCallers);
    std::vector<std::thread> threads;
    for (int c = 0; c < kCallers; ++c) {
      threads.emplace_back([&, c] {
        auto out = e.embed(std::span<const std::vector<int32_t>>(inputs[c]));
        if (out.ok()) together[c] = std::move(*out); else errors[c] = out.message();
      });
    }
    for (std::thread& t : threads) t.join();
    EXPECT_LE(e.passes() - before, expected_passes);
    for (int c = 0; c < kCallers; ++c) {
      ASSERT_EQ(errors[c], "");
      ASSERT_EQ(together[c].size(), alone[c].size());
      for (size_t i = 0; i < alone[c].size(); ++i) {
        ASSERT_EQ(together[c][i].size(), alone[c][i].size());
        for (size_t k = 0; k < alone[c][i].size(); ++k) EXPECT_NEAR(together[c][i][k], alone[c][i][k], 1e-5) << c << " " << i;
      }
    }
  }
}

}  // namespace
}  // namespace owl::engine
