// owl compare: identical models agree exactly; a quantized model pays a small, measured price.
#include <gtest/gtest.h>

#include "eval/compare.h"

namespace owl::eval {
namespace {

const std::string kModels = std::string(OWL_SHARED_DIR) + "/models/";
const char* kText =
    "Once upon a time, there was a little girl named Lily. She loved to play with her ball in the park. One day, "
    "she met a big dog. The dog was friendly and wanted to play too. They played all day and were very happy.";

TEST(Compare, SameModelAgreesExactly) {
  auto r = compare_models({.base = kModels + "stories260K.gguf", .candidate = kModels + "stories260K.gguf",
                           .text = kText, .n_ctx = 32, .n_threads = 1, .n_gen = 4});
  ASSERT_TRUE(r.ok()) << r.message();
  EXPECT_GT(r->n_tokens, 40);
  EXPECT_EQ(r->kl_mean, 0.0);
  EXPECT_EQ(r->kl_p99, 0.0);
  EXPECT_EQ(r->top1_agreement, 1.0);
  EXPECT_DOUBLE_EQ(r->ppl_ratio, 1.0);
  EXPECT_GT(r->base.perplexity, 1.0);
  EXPECT_LT(r->base.perplexity, 50.0);
  EXPECT_GT(r->base.gen_tokens_per_s, 0.0);
  EXPECT_EQ(r->base.file_size, 1185376u);
}

// llama.cpp's README gives Q4_0 of stories260K ~1e-2 mean KL against F32; Q8_0 ~2e-4.
TEST(Compare, QuantizedModelsCostWhatLlamaCppMeasures) {
  auto q4 = compare_models({.base = kModels + "stories260K.gguf", .candidate = kModels + "stories260K.q4_0.gguf",
                            .text = kText, .n_ctx = 32, .n_threads = 1, .n_gen = 0});
  ASSERT_TRUE(q4.ok()) << q4.message();
  EXPECT_GT(q4->kl_mean, 1e-3);
  EXPECT_LT(q4->kl_mean, 1e-1);
  EXPECT_GE(q4->kl_p99, q4->kl_mean);
  EXPECT_GE(q4->kl_max, q4->kl_p99);
  EXPECT_GT(q4->top1_agreement, 0.6);
  EXPECT_LT(q4->candidate.file_size, q4->base.file_size);
  auto q8 = compare_models({.base = kModels + "stories260K.gguf", .candidate = kModels + "stories260K.q8_0.gguf",
                            .text = kText, .n_ctx = 32, .n_threads = 1, .n_gen = 0});
  ASSERT_TRUE(q8.ok());
  EXPECT_LT(q8->kl_mean, q4->kl_mean / 5);
  EXPECT_NEAR(q8->ppl_ratio, 1.0, 0.02);
}

TEST(Compare, MissingFileIsAnError) {
  auto r = compare_models({.base = kModels + "stories260K.gguf", .candidate = "/nonexistent.gguf", .text = kText});
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.message().find("/nonexistent.gguf"), std::string::npos) << r.message();
}

TEST(Compare, Quantiles) {
  std::vector<double> v;
  for (int i = 1; i <= 200; ++i) v.push_back(i);
  EXPECT_DOUBLE_EQ(quantile_of(v, 0.99), 198.0);
  EXPECT_DOUBLE_EQ(quantile_of(v, 0.0), 1.0);
  EXPECT_DOUBLE_EQ(quantile_of(v, 1.0), 200.0);
  EXPECT_DOUBLE_EQ(mean_of(v), 100.5);
  EXPECT_DOUBLE_EQ(quantile_of({}, 0.5), 0.0);
}

}  // namespace
}  // namespace owl::eval
