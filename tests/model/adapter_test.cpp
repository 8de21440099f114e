// LoRA in the one matmul: B = 0 equals the base, an adapter equals its merged weights, rows of
// other sequences in the batch are untouched; the tape keeps what a backward pass needs without
// changing the logits.
#include <gtest/gtest.h>

#include <cmath>
#include <random>

#include "model/adapter.h"
#include "model/forward.h"
#include "reference.h"
#include "support/stories.h"

namespace owl::model {
namespace {

const std::string kModel = std::string(OWL_SOURCE_DIR) + "/models/stories260K.gguf";
const std::vector<int32_t> kPrompt = {1, 403, 407, 261, 378, 432, 383, 286, 261, 376, 298, 315, 421};
const std::vector<int32_t> kOther = {1, 291, 280, 294, 262, 294, 353, 265, 284};

std::vector<float> random_values(size_t n, float sigma, uint32_t seed) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> d(0.0f, sigma);
  std::vector<float> v(n);
  for (float& x : v) x = d(rng);
  return v;
}

class Lora : public ::testing::Test {
 protected:
  const Weight& weight(const Model& m, WeightId id) {
    const LayerWeights& l = m.weights.layers[static_cast<size_t>(id.layer)];
    switch (id.kind) {
      case LinearKind::kAttnQ: return l.attn_q;
      case LinearKind::kAttnK: return l.attn_k;
      case LinearKind::kAttnV: return l.attn_v;
      case LinearKind::kAttnOutput: return l.attn_output;
      case LinearKind::kFfnGate: return l.ffn_gate;
      case LinearKind::kFfnUp: return l.ffn_up;
      default: return l.ffn_down;
    }
  }
  // An adapter of rank 3 on `ids`, A random and B random with `b_sigma` (0: B = 0).
  std::shared_ptr<Adapter> make_adapter(const std::vector<WeightId>& ids, float b_sigma) {
    auto a = std::make_shared<Adapter>(model->config.n_layer);
    a->name = "test";
    a->alpha_scale = 0.75f;
    uint32_t seed = 7;
    for (WeightId id : ids) {
      const Weight& w = weight(*model, id);
      const int64_t rank = 3;
      std::vector<float> av = random_values(static_cast<size_t>(rank * w.n_in), 0.3f, seed++);
      std::vector<float> bv = b_sigma > 0 ? random_values(static_cast<size_t>(w.n_out * rank), b_sigma, seed++)
                                          : std::vector<float>(static_cast<size_t>(w.n_out * rank), 0.0f);
      EXPECT_TRUE(a->set(id, std::move(av), std::move(bv), rank, w.n_in, w.n_out).ok());
    }
    return a;
  }
  std::vector<float> run(const Model& m, const std::vector<int32_t>& tokens, const AdapterSet* set,
                         Tape* tape = nullptr) {
    auto ctx = make_context(m, {.n_ctx = 64, .n_seq = 1, .n_batch = 32, .n_threads = 2});
    EXPECT_TRUE(ctx.ok());
    (*ctx)->tape = tape;
    Batch b;
    for (size_t i = 0; i < tokens.size(); ++i) b.add(tokens[i], static_cast<int32_t>(i), 0, true, set);
    std::vector<float> out(tokens.size() * static_cast<size_t>(n_vocab));
    EXPECT_TRUE(forward(m, b, **ctx, out.data()).ok());
    return out;
  }
  double worst_kl(const std::vector<float>& a, const std::vector<float>& b) {
    double worst = 0;
    for (size_t i = 0; i < a.size(); i += static_cast<size_t>(n_vocab)) {
      worst = std::max(worst, testing::kl_divergence(a.data() + i, b.data() + i, static_cast<size_t>(n_vocab)));
    }
    return worst;
  }
  const Model* model = owl::testing::stories().model.get();
  const int64_t n_vocab = model->config.n_vocab;
  const std::vector<WeightId> kTargets = {{0, LinearKind::kAttnQ}, {1, LinearKind::kAttnV}, {2, LinearKind::kAttnOutput},
                                          {3, LinearKind::kFfnGate}, {3, LinearKind::kFfnUp}, {4, LinearKind::kFfnDown}};
};

TEST_F(Lora, ZeroBEqualsTheBase) {
  AdapterSet set;
  set.adapters.push_back({make_adapter(kTargets, 0.0f), 1.0f});
  EXPECT_EQ(run(*model, kPrompt, &set), run(*model, kPrompt, nullptr));
}

TEST_F(Lora, AnAdapterEqualsItsMergedWeights) {
  auto adapter = make_adapter(kTargets, 0.2f);
  AdapterSet set;
  set.adapters.push_back({adapter, 0.5f});
  const std::vector<float> with_lora = run(*model, kPrompt, &set);
  EXPECT_GT(worst_kl(with_lora, run(*model, kPrompt, nullptr)), 1e-3);  // the adapter matters
  // W' = W + 0.5 · 0.75 · B A, in a second copy of the model whose weights point at the merged copies.
  auto merged_model = load_model(kModel);
  ASSERT_TRUE(merged_model.ok());
  std::vector<std::vector<float>> merged;
  for (WeightId id : kTargets) {
    const Weight& w = weight(*model, id);
    ASSERT_EQ(w.type, gguf::TensorType::F32);
    const LoraPair& p = *adapter->find(id);
    std::vector<float>& m = merged.emplace_back(static_cast<const float*>(w.data),
                                                static_cast<const float*>(w.data) + w.n_in * w.n_out);
    for (int64_t j = 0; j < w.n_out; ++j) {
      for (int64_t i = 0; i < w.n_in; ++i) {
        double ba = 0;
        for (int64_t k = 0; k < p.rank; ++k) ba += static_cast<double>(p.b[j * p.rank + k]) * p.a[k * p.n_in + i];
        m[static_cast<size_t>(j * w.n_in + i)] += static_cast<float>(0.5 * 0.75 * ba);
      }
    }
    const_cast<Weight&>(weight(**merged_model, id)).data = m.data();
  }
  // Merged weights are rounded to f32 once per weight, the adapter's product once per output:
  // f32 rounding apart (which the matmul's summation order moves), far below the 1e-3 above.
  EXPECT_LE(worst_kl(with_lora, run(**merged_model, kPrompt, nullptr)), 1e-6);
}

TEST_F(Lora, RowsOfOtherSequencesAreUntouched) {
  AdapterSet set;
  set.adapters.push_back({make_adapter(kTargets, 0.2f), 1.0f});
  auto ctx = make_context(*model, {.n_ctx = 64, .n_seq = 2, .n_batch = 32, .n_threads = 2});
  ASSERT_TRUE(ctx.ok());
  Batch b;
  for (size_t i = 0; i < kPrompt.size(); ++i) b.add(kPrompt[i], static_cast<int32_t>(i), 0, true, &set);
  for (size_t i = 0; i < kOther.size(); ++i) b.add(kOther[i], static_cast<int32_t>(i), 1, true);
  std::vector<float> out((kPrompt.size() + kOther.size()) * static_cast<size_t>(n_vocab));
  ASSERT_TRUE(forward(*model, b, **ctx, out.data()).ok());
  const auto split = out.begin() + static_cast<std::ptrdiff_t>(kPrompt.size() * static_cast<size_t>(n_vocab));
  EXPECT_LE(worst_kl(std::vector<float>(out.begin(), split), run(*model, kPrompt, &set)), 1e-6);
  EXPECT_LE(worst_kl(std::vector<float>(split, out.end()), run(*model, kOther, nullptr)), 1e-6);
}

TEST_F(Lora, TheRankIsBounded) {
  Adapter a(model->config.n_layer);
  a.name = "big";
  auto s = a.set({0, LinearKind::kAttnQ}, {}, {}, kMaxLoraRank + 1, 64, 64);
  ASSERT_FALSE(s.ok());
  EXPECT_NE(s.message().find("blk.0.attn_q: rank 513 outside 1..512"), std::string::npos) << s.message();
}

TEST_F(Lora, TheTapeKeepsTheResidualStreamAndChangesNothing) {
  Tape tape;
  const std::vector<float> recorded = run(*model, kPrompt, nullptr, &tape);
  EXPECT_EQ(recorded, run(*model, kPrompt, nullptr));
  const ModelConfig& c = model->config;
  ASSERT_EQ(tape.layers.size(), static_cast<size_t>(c.n_layer));
  EXPECT_EQ(tape.n_tokens, static_cast<int64_t>(kPrompt.size()));
  const size_t n = kPrompt.size() * static_cast<size_t>(c.n_embd);
  // Each layer adds its attention and FFN outputs to the stream (llama has no post-norms).
  for (size_t il = 0; il < tape.layers.size(); ++il) {
    const LayerTape& l = tape.layers[il];
    ASSERT_EQ(l.x.size(), n);
    ASSERT_EQ(l.gate_up.size(), kPrompt.size() * static_cast<size_t>(2 * c.n_ff));
    ASSERT_EQ(l.act.size(), kPrompt.size() * static_cast<size_t>(c.n_ff));
    const std::vector<float>& next = il + 1 < tape.layers.size() ? tape.layers[il + 1].x : tape.x_final;
    for (size_t i = 0; i < n; ++i) {
      const float mid = l.x[i] + l.attn_out[i];
      ASSERT_EQ(next[i], mid + l.ffn_out[i]) << "layer " << il << " element " << i;
    }
    for (size_t t = 0; t < kPrompt.size(); ++t) {  // act = silu(gate) * up
      for (int64_t i = 0; i < c.n_ff; i += 17) {
        const float g = l.gate_up[t * 2 * c.n_ff + i], u = l.gate_up[t * 2 * c.n_ff + c.n_ff + i];
        EXPECT_NEAR(l.act[t * c.n_ff + i], g / (1.0f + std::exp(-g)) * u, 1e-5f * (1.0f + std::fabs(g * u)));
      }
    }
  }
  auto ctx = make_context(*model, {.n_ctx = 64, .n_seq = 1, .n_batch = 4, .n_threads = 2});
  ASSERT_TRUE(ctx.ok());
  (*ctx)->tape = &tape;
  Batch b;
  for (size_t i = 0; i < kPrompt.size(); ++i) b.add(kPrompt[i], static_cast<int32_t>(i), 0, true);
  std::vector<float> out(kPrompt.size() * static_cast<size_t>(n_vocab));
  auto s = forward(*model, b, **ctx, out.data());
  ASSERT_FALSE(s.ok());
  EXPECT_NE(s.message().find("a recorded batch of 13 tokens exceeds the step of 4"), std::string::npos) << s.message();
}

// llama.cpp's --lora on the reference adapter: the same logits at every prompt position.
TEST_F(Lora, LoadedAdapterMatchesLlamaCpp) {
  const std::string dir = std::string(OWL_SHARED_DIR) + "/reference/lora/";
  auto adapter = load_lora(dir + "stories260K.lora-r4-all.gguf", *model);
  ASSERT_TRUE(adapter.ok()) << adapter.message();
  EXPECT_FLOAT_EQ((*adapter)->alpha_scale, 2.0f);  // alpha 8 / rank 4
  const auto ref = testing::load_reference(dir + "stories260K.lora-r4-all.p1.json", dir);
  AdapterSet set;
  set.adapters.emplace_back(*adapter, 1.0f);
  const std::vector<float> ours = run(*model, ref.tokens, &set);
  double kl_sum = 0;
  for (size_t t = 0; t < ref.tokens.size(); ++t) {
    const float* row = ours.data() + t * static_cast<size_t>(n_vocab);
    kl_sum += testing::kl_divergence(ref.logits[t].data(), row, static_cast<size_t>(n_vocab));
    EXPECT_EQ(testing::argmax(row, static_cast<size_t>(n_vocab)), testing::argmax(ref.logits[t].data(), static_cast<size_t>(n_vocab)))
        << "position " << t;
  }
  EXPECT_LE(kl_sum / static_cast<double>(ref.tokens.size()), 1e-4);
  // And the adapter changes the model: the base's logits differ.
  const std::vector<float> base = run(*model, ref.tokens, nullptr);
  EXPECT_GT(worst_kl(base, ours), 1e-3);
}

TEST_F(Lora, LoadRefusesWhatIsNotAnAdapterForThisModel) {
  auto base = load_lora(std::string(OWL_SOURCE_DIR) + "/models/stories260K.gguf", *model);
  ASSERT_FALSE(base.ok());
  EXPECT_NE(base.message().find("general.type is '', not 'adapter'"), std::string::npos) << base.message();
  auto missing = load_lora("/nonexistent/adapter.gguf", *model);
  ASSERT_FALSE(missing.ok());
  EXPECT_NE(missing.message().find("/nonexistent/adapter.gguf"), std::string::npos) << missing.message();
  auto other = load_model(std::string(OWL_SHARED_DIR) + "/models/kq256.f16.gguf");
  ASSERT_TRUE(other.ok()) << other.message();
  auto wrong = load_lora(std::string(OWL_SHARED_DIR) + "/reference/lora/stories260K.lora-r4-all.gguf", **other);
  ASSERT_FALSE(wrong.ok());
  EXPECT_NE(wrong.message().find("needs ["), std::string::npos) << wrong.message();
}

}  // namespace
}  // namespace owl::model
