// Engine invariants: prefill equals step-by-step decode; a batch of sequences equals each run
// alone; rollback recomputes the same logits; bad batches are refused by name.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>

#include "model/forward.h"
#include "reference.h"

namespace owl::model {
namespace {

const std::string kModel = std::string(OWL_SOURCE_DIR) + "/models/stories260K.gguf";
const std::vector<int32_t> kPrompt = {1, 403, 407, 261, 378, 432, 383, 286, 261, 376, 298, 315, 421};
const std::vector<int32_t> kOther = {1, 291, 280, 294, 262, 294, 353, 265, 284};

class Engine : public ::testing::Test {
 protected:
  void SetUp() override {
    auto m = load_model(kModel);
    ASSERT_TRUE(m.ok()) << m.message();
    model = std::move(*m);
    n_vocab = model->config.n_vocab;
  }
  std::unique_ptr<Context> context(int n_seq) {
    auto ctx = make_context(*model, {.n_ctx = 64, .n_seq = n_seq, .n_batch = 8, .n_threads = 2});
    EXPECT_TRUE(ctx.ok());
    return std::move(*ctx);
  }
  // Logits of every position of `tokens` fed to sequence `seq` one token at a time.
  std::vector<float> decode_one_by_one(Context& ctx, const std::vector<int32_t>& tokens, int seq) {
    std::vector<float> out(tokens.size() * n_vocab);
    Batch b;
    for (size_t i = 0; i < tokens.size(); ++i) {
      b.clear();
      b.add(tokens[i], static_cast<int32_t>(i), seq, true);
      EXPECT_TRUE(forward(*model, b, ctx, out.data() + i * n_vocab).ok());
    }
    return out;
  }
  std::unique_ptr<Model> model;
  int64_t n_vocab = 0;
};

// Two runs of the same tokens differ only in float summation order (matmul tiles of one row or
// many, f16 rounding flips of the KV cache downstream): their distributions must agree far below
// what a mixed-up sequence or position gives (KL > 1e-2).
void expect_close(const std::vector<float>& a, const std::vector<float>& b, int64_t n_vocab) {
  ASSERT_EQ(a.size(), b.size());
  double worst = 0;
  for (size_t i = 0; i < a.size(); i += static_cast<size_t>(n_vocab)) {
    worst = std::max(worst, testing::kl_divergence(a.data() + i, b.data() + i, static_cast<size_t>(n_vocab)));
  }
  EXPECT_LE(worst, 1e-5);
}

TEST_F(Engine, PrefillEqualsDecodeSteps) {
  auto ctx = context(1);
  Batch b;
  for (size_t i = 0; i < kPrompt.size(); ++i) b.add(kPrompt[i], static_cast<int32_t>(i), 0, true);
  std::vector<float> prefill(kPrompt.size() * n_vocab);
  // 13 tokens with n_batch 8: two internal chunks.
  ASSERT_TRUE(forward(*model, b, *ctx, prefill.data()).ok());
  auto ctx2 = context(1);
  // Only summation order differs (matmul tiling of 1 vs many rows).
  expect_close(prefill, decode_one_by_one(*ctx2, kPrompt, 0), n_vocab);
}

TEST_F(Engine, BatchOfSequencesEqualsEachAlone) {
  auto alone = context(1);
  const std::vector<float> a = decode_one_by_one(*alone, kPrompt, 0);
  auto alone2 = context(1);
  const std::vector<float> b = decode_one_by_one(*alone2, kOther, 0);

  // Both sequences interleaved in every step, sequence 1 first, prefill of 3 then decodes.
  auto ctx = context(3);
  std::vector<float> got_a(kPrompt.size() * n_vocab), got_b(kOther.size() * n_vocab);
  size_t ia = 0, ib = 0;
  while (ia < kPrompt.size() || ib < kOther.size()) {
    Batch batch;
    std::vector<std::pair<int, size_t>> rows;
    for (int k = 0; k < 3 && ib < kOther.size(); ++k, ++ib) {
      batch.add(kOther[ib], static_cast<int32_t>(ib), 2, true);
      rows.emplace_back(2, ib);
    }
    for (int k = 0; k < 2 && ia < kPrompt.size(); ++k, ++ia) {
      batch.add(kPrompt[ia], static_cast<int32_t>(ia), 0, true);
      rows.emplace_back(0, ia);
    }
    std::vector<float> out(rows.size() * n_vocab);
    ASSERT_TRUE(forward(*model, batch, *ctx, out.data()).ok());
    for (size_t r = 0; r < rows.size(); ++r) {
      std::vector<float>& dst = rows[r].first == 0 ? got_a : got_b;
      std::copy_n(out.begin() + r * n_vocab, n_vocab, dst.begin() + rows[r].second * n_vocab);
    }
  }
  expect_close(got_a, a, n_vocab);
  expect_close(got_b, b, n_vocab);
}

TEST_F(Engine, RollbackRecomputesTheSameLogits) {
  auto ctx = context(1);
  const std::vector<float> first = decode_one_by_one(*ctx, kPrompt, 0);
  // Rewind to position 5 and feed the rest again: identical logits (same path, same order).
  Batch b;
  std::vector<float> again((kPrompt.size() - 5) * n_vocab);
  for (size_t i = 5; i < kPrompt.size(); ++i) b.add(kPrompt[i], static_cast<int32_t>(i), 0, true);
  ctx->kv.truncate(0, 5);
  ASSERT_TRUE(forward(*model, b, *ctx, again.data()).ok());
  std::vector<float> expected(first.begin() + 5 * n_vocab, first.end());
  expect_close(again, expected, n_vocab);
  EXPECT_EQ(ctx->kv.used(0), static_cast<int64_t>(kPrompt.size()));
}

TEST_F(Engine, LogitsOnlyForRowsThatAsk) {
  auto ctx = context(1);
  Batch b;
  for (size_t i = 0; i < kPrompt.size(); ++i) b.add(kPrompt[i], static_cast<int32_t>(i), 0, i + 1 == kPrompt.size());
  EXPECT_EQ(b.n_logits(), 1);
  std::vector<float> last(n_vocab + 1, -12345.0f);
  ASSERT_TRUE(forward(*model, b, *ctx, last.data()).ok());
  EXPECT_EQ(last[n_vocab], -12345.0f) << "wrote beyond the rows asked for";
  auto ctx2 = context(1);
  const std::vector<float> all = decode_one_by_one(*ctx2, kPrompt, 0);
  expect_close(std::vector<float>(last.begin(), last.begin() + n_vocab),
               std::vector<float>(all.end() - n_vocab, all.end()), n_vocab);
}

TEST_F(Engine, BadBatchesAreRefused) {
  auto ctx = context(2);
  std::vector<float> out(4 * n_vocab);
  Batch b;
  b.add(static_cast<int32_t>(n_vocab), 0, 0, true);
  auto r = forward(*model, b, *ctx, out.data());
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.message().find("token 512"), std::string::npos) << r.message();
  b.clear();
  b.add(1, 0, 5, true);
  r = forward(*model, b, *ctx, out.data());
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.message().find("sequence id 5"), std::string::npos) << r.message();
  b.clear();
  b.add(1, 64, 0, true);
  r = forward(*model, b, *ctx, out.data());
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.message().find("position 64 outside the context of 64"), std::string::npos) << r.message();
  b.clear();
  b.add(1, 3, 0, true);
  r = forward(*model, b, *ctx, out.data());
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.message().find("skips ahead"), std::string::npos) << r.message();
}

// Q4_0 matrices packed at load (kernels::pack_weights) give the GGUF layout's logits up to
// summation order in prefill, in decode steps of one and of several sequences, and the same bits
// under batch invariance (which reads the GGUF rows).
TEST(ModelLoad, PackedWeightsGiveTheGgufLayoutsLogits) {
  const std::string path = std::string(OWL_SHARED_DIR) + "/reference/synthetic/llama-gqa.q4_0.gguf";
  auto packed = load_model(path);
  auto plain = load_model(path, {.pack_weights = false});
  ASSERT_TRUE(packed.ok() && plain.ok()) << packed.message() << plain.message();
  int n_packed = 0;
  for (const LayerWeights& l : (*packed)->weights.layers) n_packed += l.attn_q.packed != nullptr;
  for (const LayerWeights& l : (*plain)->weights.layers) EXPECT_EQ(l.attn_q.packed, nullptr);
  if (!kernels::reads_packed(kernels::make_kernels(), gguf::TensorType::Q4_0)) GTEST_SKIP() << "no packed kernels here";
  EXPECT_EQ(n_packed, (*packed)->config.n_layer);
  EXPECT_NE((*packed)->packed, nullptr);
  const int64_t n_vocab = (*packed)->config.n_vocab;
  for (const bool invariant : {false, true}) {
    std::vector<std::vector<float>> runs;
    for (Model* m : {packed->get(), plain->get()}) {
      auto ctx = make_context(*m, {.n_ctx = 64, .n_seq = 6, .n_batch = 32, .n_threads = 2, .batch_invariant = invariant});
      ASSERT_TRUE(ctx.ok());
      std::vector<float> all;
      Batch b;  // a prompt of 20 tokens (panel rows), then decode steps of 1 and of 6 sequences
      for (int i = 0; i < 20; ++i) b.add(3 + i, i, 0, true);
      std::vector<float> out(static_cast<size_t>(20 * n_vocab));
      ASSERT_TRUE(forward(*m, b, **ctx, out.data()).ok());
      all.insert(all.end(), out.begin(), out.end());
      for (int step = 0; step < 3; ++step) {
        b.clear();
        b.add(40 + step, 20 + step, 0, true);
        ASSERT_TRUE(forward(*m, b, **ctx, out.data()).ok());
        all.insert(all.end(), out.begin(), out.begin() + n_vocab);
      }
      for (int s = 1; s < 6; ++s) {  // five more sequences, then a step of all six
        b.clear();
        b.add(7 * s, 0, s, false);
        ASSERT_TRUE(forward(*m, b, **ctx, out.data()).ok());
      }
      b.clear();
      for (int s = 0; s < 6; ++s) b.add(50 + s, s == 0 ? 23 : 1, s, true);
      ASSERT_TRUE(forward(*m, b, **ctx, out.data()).ok());
      all.insert(all.end(), out.begin(), out.begin() + 6 * n_vocab);
      runs.push_back(std::move(all));
    }
    if (invariant) {
      EXPECT_EQ(std::memcmp(runs[0].data(), runs[1].data(), runs[0].size() * sizeof(float)), 0);
    } else {
      expect_close(runs[0], runs[1], n_vocab);
    }
  }
}

TEST(ModelLoad, UnsupportedArchitectureAndTypesNameThemselves) {
  auto missing = load_model("/nonexistent.gguf");
  ASSERT_FALSE(missing.ok());
  auto bad = load_model(std::string(OWL_SHARED_DIR) + "/vocab/ggml-vocab-gpt-2.gguf");
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(bad.message().find("architecture 'gpt2' is not supported"), std::string::npos) << bad.message();
}

}  // namespace
}  // namespace owl::model
