// The backward pass against ground truth: float64 PyTorch's loss, every LoRA gradient and five
// AdamW steps for the reference adapter (../shared/reference/lora), and each op's backward
// against central finite differences.
#include <gtest/gtest.h>

#include <cmath>
#include <fstream>
#include <random>

#include <nlohmann/json.hpp>

#include "gguf/tensor_type.h"
#include "model/forward.h"
#include "quant/quant.h"
#include "support/stories.h"
#include "train/adamw.h"
#include "train/backward.h"
#include "train/lora.h"

namespace owl::train {
namespace {

const std::string kLoraDir = std::string(OWL_SHARED_DIR) + "/reference/lora";

nlohmann::json golden() {
  std::ifstream in(kLoraDir + "/lora-r4-all.golden.json");
  return nlohmann::json::parse(in);
}

// Loss and gradients of the golden sequence: mean cross-entropy over tokens[n_prompt:].
struct Step {
  double loss = 0;
  std::vector<std::vector<float>> grads;
};

Step loss_and_grads(const model::Model& m, const TrainableLora& lora, const std::vector<int32_t>& tokens,
                    int64_t n_prompt, bool with_grads) {
  auto ctx = model::make_context(m, {.n_ctx = 64, .n_seq = 1, .n_batch = 64, .n_threads = 2, .exact_attention = true});
  EXPECT_TRUE(ctx.ok());
  model::Tape tape;
  (*ctx)->tape = &tape;
  model::AdapterSet set;
  set.adapters.emplace_back(lora.adapter, 1.0f);
  model::Batch b;
  const auto n = static_cast<int64_t>(tokens.size());
  for (int64_t i = 0; i < n; ++i) b.add(tokens[static_cast<size_t>(i)], static_cast<int32_t>(i), 0, i >= n_prompt - 1 && i < n - 1, &set);
  const int64_t n_out = b.n_logits();
  std::vector<float> hidden(static_cast<size_t>(n_out * m.config.n_embd)), d(hidden.size());
  EXPECT_TRUE(model::forward(m, b, **ctx, hidden.data(), model::Output::kHidden).ok());
  std::vector<int32_t> targets(tokens.begin() + n_prompt, tokens.end());
  Backward back(m, 64);
  Step s;
  auto loss = back.output_loss(**ctx, hidden.data(), targets, 1.0f / static_cast<float>(n_out), d.data());
  EXPECT_TRUE(loss.ok()) << loss.message();
  s.loss = *loss / static_cast<double>(n_out);
  if (with_grads) {
    s.grads = lora.zeros_like();
    EXPECT_TRUE(back.run(b, tape, **ctx, lora, d.data(), s.grads).ok());
  }
  return s;
}

std::string slot_name(const LoraSlot& s, bool a) {
  return "blk." + std::to_string(s.id.layer) + "." + model::linear_kind_name(s.id.kind) + ".weight" +
         (a ? ".lora_a" : ".lora_b");
}

TEST(Backward, LossAndEveryGradientMatchFloat64Reference) {
  const model::Model& m = *owl::testing::stories().model;
  auto lora = lora_from_file(kLoraDir + "/stories260K.lora-r4-all.gguf", m);
  ASSERT_TRUE(lora.ok()) << lora.message();
  const nlohmann::json g = golden();
  const auto tokens = g["tokens"].get<std::vector<int32_t>>();
  const Step s = loss_and_grads(m, *lora, tokens, g["n_prompt"].get<int64_t>(), true);
  const double want = g["loss"].get<double>();
  EXPECT_NEAR(s.loss, want, 1e-4 * want);
  ASSERT_EQ(lora->slots.size() * 2, g["grads"].size());
  for (const LoraSlot& slot : lora->slots) {
    for (bool a : {true, false}) {
      const std::string name = slot_name(slot, a);
      const auto ref = g["grads"][name].get<std::vector<double>>();
      const std::vector<float>& got = s.grads[a ? slot.a : slot.b];
      ASSERT_EQ(ref.size(), got.size()) << name;
      double largest = 0, worst = 0;
      for (double v : ref) largest = std::max(largest, std::abs(v));
      for (size_t i = 0; i < ref.size(); ++i) worst = std::max(worst, std::abs(got[i] - ref[i]));
      EXPECT_LE(worst, 1e-3 * largest) << name << ": largest gradient " << largest;
    }
  }
}

TEST(Backward, FiveAdamWStepsFollowTheReferenceLosses) {
  const model::Model& m = *owl::testing::stories().model;
  auto lora = lora_from_file(kLoraDir + "/stories260K.lora-r4-all.gguf", m);
  ASSERT_TRUE(lora.ok()) << lora.message();
  const nlohmann::json g = golden();
  const auto tokens = g["tokens"].get<std::vector<int32_t>>();
  const auto n_prompt = g["n_prompt"].get<int64_t>();
  const auto want = g["losses_after_each_step"].get<std::vector<double>>();
  AdamW opt;
  opt.options.beta1 = g["adamw"]["beta1"].get<float>();
  opt.options.beta2 = g["adamw"]["beta2"].get<float>();
  opt.options.eps = g["adamw"]["eps"].get<float>();
  opt.options.weight_decay = g["adamw"]["weight_decay"].get<float>();
  const auto lr = g["adamw"]["lr"].get<float>();
  for (size_t step = 0; step < want.size(); ++step) {
    Step s = loss_and_grads(m, *lora, tokens, n_prompt, step + 1 < want.size());
    EXPECT_NEAR(s.loss, want[step], 1e-4 * want[step]) << "after " << step << " steps";
    if (step + 1 < want.size()) opt.update(lora->adapter->storage, s.grads, lr);
  }
}

// ---- each op against central differences of a scalar objective L = Σ c_i y_i ----

std::vector<float> random_vector(size_t n, uint32_t seed, float sigma = 1.0f) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> d(0.0f, sigma);
  std::vector<float> v(n);
  for (float& x : v) x = d(rng);
  return v;
}

template <typename F>
void expect_matches_differences(std::vector<float> x, const std::vector<float>& analytic, F&& objective,
                                double tolerance) {
  for (size_t i = 0; i < x.size(); ++i) {
    const float h = 1e-2f * std::max(1.0f, std::abs(x[i]));
    const float keep = x[i];
    x[i] = keep + h;
    const double up = objective(x);
    x[i] = keep - h;
    const double down = objective(x);
    x[i] = keep;
    const double numeric = (up - down) / (2.0 * h);
    EXPECT_NEAR(analytic[i], numeric, tolerance * std::max(1.0, std::abs(numeric))) << "element " << i;
  }
}

TEST(BackwardOps, RmsNormMatchesFiniteDifferences) {
  const int64_t n = 24;
  const auto w = random_vector(n, 1), c = random_vector(n, 2);
  const auto x = random_vector(n, 3);
  auto objective = [&](const std::vector<float>& xv) {
    double ss = 0;
    for (float v : xv) ss += static_cast<double>(v) * v;
    const double r = 1.0 / std::sqrt(ss / n + 1e-5);
    double l = 0;
    for (int64_t i = 0; i < n; ++i) l += c[i] * xv[i] * r * w[i];
    return l;
  };
  std::vector<float> dx(n, 0.0f);
  ops::rms_norm_backward(x.data(), w.data(), c.data(), dx.data(), n, 1e-5f);
  expect_matches_differences(x, dx, objective, 2e-3);
}

TEST(BackwardOps, SwigluAndGegluMatchFiniteDifferences) {
  const int64_t n = 16;
  const auto g = random_vector(n, 4, 2.0f), u = random_vector(n, 5), c = random_vector(n, 6);
  for (bool gelu : {false, true}) {
    auto act = [gelu](double x) {
      if (!gelu) return x / (1.0 + std::exp(-x));
      return 0.5 * x * (1.0 + std::tanh(0.7978845608028654 * x * (1.0 + 0.044715 * x * x)));
    };
    std::vector<float> dg(n), du(n);
    (gelu ? ops::geglu_backward : ops::swiglu_backward)(g.data(), u.data(), c.data(), dg.data(), du.data(), n);
    expect_matches_differences(g, dg, [&](const std::vector<float>& gv) {
      double l = 0;
      for (int64_t i = 0; i < n; ++i) l += c[i] * act(gv[i]) * u[i];
      return l;
    }, 2e-3);
    expect_matches_differences(u, du, [&](const std::vector<float>& uv) {
      double l = 0;
      for (int64_t i = 0; i < n; ++i) l += c[i] * act(g[i]) * uv[i];
      return l;
    }, 2e-3);
  }
}

// ---- every architecture: the gradient along a random direction against central differences ----

struct ArchCase {
  std::string file;
};

double packed_loss(const model::Model& m, const TrainableLora& lora, const std::vector<std::vector<int32_t>>& seqs,
                   std::vector<std::vector<float>>* grads, bool exact = true, bool recompute = false,
                   const model::LoraDropout* dropout = nullptr) {
  auto ctx = model::make_context(m, {.n_ctx = 32, .n_seq = static_cast<int>(seqs.size()), .n_batch = 64,
                                     .n_threads = 2, .exact_attention = exact});
  EXPECT_TRUE(ctx.ok()) << ctx.message();
  model::Tape tape;
  tape.inputs_only = recompute;
  (*ctx)->tape = &tape;
  model::AdapterSet set;
  set.adapters.emplace_back(lora.adapter, 1.0f);
  set.dropout = dropout;
  model::Batch b;
  std::vector<int32_t> targets;
  for (size_t s = 0; s < seqs.size(); ++s) {
    for (size_t i = 0; i < seqs[s].size(); ++i) {
      const bool loss = i + 1 < seqs[s].size() && i >= 2;  // the first tokens act as a prompt
      b.add(seqs[s][i], static_cast<int32_t>(i), static_cast<int32_t>(s), loss, &set);
      if (loss) targets.push_back(seqs[s][i + 1]);
    }
  }
  std::vector<float> hidden(targets.size() * static_cast<size_t>(m.config.n_embd)), d(hidden.size());
  EXPECT_TRUE(model::forward(m, b, **ctx, hidden.data(), model::Output::kHidden).ok());
  const float w = 1.0f / static_cast<float>(targets.size());
  Backward back(m, 64);
  auto summed = back.output_loss(**ctx, hidden.data(), targets, w, d.data());
  EXPECT_TRUE(summed.ok()) << summed.message();
  const double loss = *summed * w;
  if (grads != nullptr) {
    *grads = lora.zeros_like();
    auto st = back.run(b, tape, **ctx, lora, d.data(), *grads);
    EXPECT_TRUE(st.ok()) << st.message();
  }
  return loss;
}

class EveryArch : public ::testing::TestWithParam<std::string> {};

// A rank-4 adapter on all seven weights, B drawn away from zero so that every path carries gradient.
core::Result<TrainableLora> lora_on_every_weight(const model::Model& m, uint64_t seed, uint32_t b_seed) {
  auto targets = parse_targets("q,k,v,o,gate,up,down", m);
  if (!targets) return targets.error();
  std::mt19937_64 rng(seed);
  auto lora = make_lora(m, *targets, 4, 8.0f, rng, "test");
  if (!lora) return lora.error();
  for (const LoraSlot& s : lora->slots) {
    std::vector<float>& b = lora->adapter->storage[s.b];  // in place: the pair points into it
    const std::vector<float> r = random_vector(b.size(), b_seed + static_cast<uint32_t>(s.id.layer), 0.05f);
    std::copy(r.begin(), r.end(), b.begin());
  }
  return lora;
}

// With LoRA dropout too: the backward pass draws the forward's mask again.
TEST_P(EveryArch, GradientAlongRandomDirectionsMatchesCentralDifferences) {
  auto loaded = model::load_model(std::string(OWL_SHARED_DIR) + "/reference/synthetic/" + GetParam());
  ASSERT_TRUE(loaded.ok()) << loaded.message();
  const model::Model& m = **loaded;
  auto lora = lora_on_every_weight(m, 5, 17);
  ASSERT_TRUE(lora.ok()) << lora.message();
  std::mt19937 tok(3);
  std::uniform_int_distribution<int32_t> pick(3, static_cast<int32_t>(m.config.n_vocab - 1));
  std::vector<std::vector<int32_t>> seqs(2);
  for (size_t s = 0; s < seqs.size(); ++s) {
    seqs[s].resize(s == 0 ? 14 : 9);
    for (int32_t& t : seqs[s]) t = pick(tok);
  }
  for (const float p : {0.0f, 0.3f}) {
  const model::LoraDropout dropout{.p = p, .seed = 77};
  std::vector<std::vector<float>> grads;
  packed_loss(m, *lora, seqs, &grads, true, false, &dropout);
  // Directions: all parameters, then only the A and only the B of the first layer's pairs.
  for (int which = 0; which < 3; ++which) {
    auto dir = lora->zeros_like();
    double along = 0;
    for (size_t k = 0; k < dir.size(); ++k) {
      const bool is_a = k % 2 == 0;  // make_lora stores A then B for every pair
      if (which == 1 && (!is_a || k >= 14)) continue;
      if (which == 2 && (is_a || k >= 14)) continue;
      dir[k] = random_vector(dir[k].size(), static_cast<uint32_t>(100 + k));
      for (size_t i = 0; i < dir[k].size(); ++i) along += static_cast<double>(grads[k][i]) * dir[k][i];
    }
    const std::vector<std::vector<float>> keep = lora->adapter->storage;
    auto shifted = [&](double h) {
      for (size_t k = 0; k < dir.size(); ++k) {
        for (size_t i = 0; i < dir[k].size(); ++i) lora->adapter->storage[k][i] = keep[k][i] + static_cast<float>(h) * dir[k][i];
      }
      return packed_loss(m, *lora, seqs, nullptr, true, false, &dropout);
    };
    const double h = 2e-3;
    const double numeric = (shifted(h) - shifted(-h)) / (2 * h);
    for (size_t k = 0; k < keep.size(); ++k) std::copy(keep[k].begin(), keep[k].end(), lora->adapter->storage[k].begin());
    EXPECT_NEAR(along, numeric, 1e-2 * std::max(1e-2, std::abs(numeric)))
        << GetParam() << " direction " << which << " dropout " << p;
  }
  }
}

// A tape of layer inputs only, each layer recomputed on the way back, gives the same gradients,
// bit for bit, as the full record.
TEST_P(EveryArch, RecomputedLayersGiveTheSameGradientBits) {
  auto loaded = model::load_model(std::string(OWL_SHARED_DIR) + "/reference/synthetic/" + GetParam());
  ASSERT_TRUE(loaded.ok()) << loaded.message();
  const model::Model& m = **loaded;
  auto lora = lora_on_every_weight(m, 9, 31);
  ASSERT_TRUE(lora.ok()) << lora.message();
  const std::vector<std::vector<int32_t>> seqs = {{5, 9, 13, 2, 7, 11, 3, 8, 21, 4}, {6, 10, 14, 19, 3, 12}};
  std::vector<std::vector<float>> full, recomputed;
  const model::LoraDropout dropout{.p = 0.2f, .seed = 5};
  const double loss_full = packed_loss(m, *lora, seqs, &full, true, false, &dropout);
  const double loss_recomputed = packed_loss(m, *lora, seqs, &recomputed, true, true, &dropout);
  EXPECT_EQ(loss_full, loss_recomputed);
  ASSERT_EQ(full.size(), recomputed.size());
  for (size_t k = 0; k < full.size(); ++k) EXPECT_EQ(full[k], recomputed[k]) << GetParam() << " tensor " << k;
  double norm = 0;
  for (const auto& g : full) for (float v : g) norm += static_cast<double>(v) * v;
  EXPECT_GT(norm, 0.0);
}

// The mask: a share p of zeros, 1 / (1 - p) elsewhere, the same for the same key, another for
// another row or weight or seed.
TEST(LoraDropout, MasksAreSeededAndDropTheirShare) {
  const model::LoraDropout d{.p = 0.25f, .seed = 3};
  const model::WeightId q{2, model::LinearKind::kAttnQ}, v{2, model::LinearKind::kAttnV};
  const int64_t n = 20000;
  auto mask = [&](const model::LoraDropout& dd, int64_t row, model::WeightId id) {
    std::vector<float> m(static_cast<size_t>(n));
    const uint64_t key = dd.row_key(row, id);
    for (int64_t i = 0; i < n; ++i) m[static_cast<size_t>(i)] = dd.factor(key, i);
    return m;
  };
  const std::vector<float> a = mask(d, 4, q);
  int64_t zeros = 0;
  for (float f : a) {
    if (f == 0.0f) {
      ++zeros;
    } else {
      ASSERT_FLOAT_EQ(f, 1.0f / 0.75f);
    }
  }
  EXPECT_NEAR(static_cast<double>(zeros) / n, 0.25, 0.015);
  EXPECT_EQ(a, mask(d, 4, q));
  EXPECT_NE(a, mask(d, 5, q));
  EXPECT_NE(a, mask(d, 4, v));
  EXPECT_NE(a, mask(model::LoraDropout{.p = 0.25f, .seed = 4}, 4, q));
  for (float f : mask(model::LoraDropout{.p = 0.0f, .seed = 3}, 4, q)) ASSERT_EQ(f, 1.0f);
}

TEST(Recompute, AMismatchedTapeIsAnError) {
  const model::Model& m = *owl::testing::stories().model;
  auto ctx = model::make_context(m, {.n_ctx = 16, .n_seq = 1, .n_batch = 16, .n_threads = 1, .exact_attention = true});
  ASSERT_TRUE(ctx.ok());
  model::Tape tape;
  tape.inputs_only = true;
  (*ctx)->tape = &tape;
  model::Batch b;
  for (int32_t i = 0; i < 6; ++i) b.add(10 + i, i, 0, i == 5);
  std::vector<float> logits(static_cast<size_t>(m.config.n_vocab));
  ASSERT_TRUE(model::forward(m, b, **ctx, logits.data()).ok());
  (*ctx)->tape = nullptr;
  EXPECT_EQ(tape.layers[0].act.size(), 0u);  // inputs only
  EXPECT_EQ(tape.layers[0].x.size(), static_cast<size_t>(6 * m.config.n_embd));
  model::LayerTape out;
  auto s = model::recompute_layer(m, b, **ctx, tape, m.config.n_layer, out);
  ASSERT_FALSE(s.ok());
  EXPECT_NE(s.message().find("layer 5 of a tape with 5 layers"), std::string::npos) << s.message();
  b.add(16, 6, 0, false);
  s = model::recompute_layer(m, b, **ctx, tape, 0, out);
  ASSERT_FALSE(s.ok());
  EXPECT_NE(s.message().find("the tape holds 6 tokens, the batch 7"), std::string::npos) << s.message();
}

// The loss and dL/dhidden made kOutputRows rows at a time equal those of the whole logits
// forward() writes (softcap included: gemma2).
TEST_P(EveryArch, OutputLossInChunksEqualsTheWholeLogits) {
  auto loaded = model::load_model(std::string(OWL_SHARED_DIR) + "/reference/synthetic/" + GetParam());
  ASSERT_TRUE(loaded.ok()) << loaded.message();
  const model::Model& m = **loaded;
  const model::ModelConfig& c = m.config;
  const int64_t n = 2 * Backward::kOutputRows + 7;
  auto ctx = model::make_context(m, {.n_ctx = 128, .n_seq = 1, .n_batch = 128, .n_threads = 2, .exact_attention = true});
  ASSERT_TRUE(ctx.ok());
  model::Batch b;
  std::vector<int32_t> targets;
  for (int64_t i = 0; i < n; ++i) {
    b.add(static_cast<int32_t>(3 + (i * 29) % (c.n_vocab - 3)), static_cast<int32_t>(i), 0, true);
    targets.push_back(static_cast<int32_t>(3 + (i * 71) % (c.n_vocab - 3)));
  }
  std::vector<float> logits(static_cast<size_t>(n * c.n_vocab)), hidden(static_cast<size_t>(n * c.n_embd));
  ASSERT_TRUE(model::forward(m, b, **ctx, logits.data()).ok());
  ASSERT_TRUE(model::forward(m, b, **ctx, hidden.data(), model::Output::kHidden).ok());
  double want = 0;
  for (int64_t i = 0; i < n; ++i) {
    want += output_loss_and_gradient(c, logits.data() + i * c.n_vocab, targets[static_cast<size_t>(i)], 0.5f);
  }
  std::vector<float> want_d(hidden.size(), 0.0f), d(hidden.size(), 7.0f);
  ops::linear_input_backward((*ctx)->kernels, (*ctx)->pool, m.weights.output, logits.data(), c.n_vocab, n,
                             want_d.data(), c.n_embd);
  Backward back(m, 128);
  auto loss = back.output_loss(**ctx, hidden.data(), targets, 0.5f, d.data());
  ASSERT_TRUE(loss.ok()) << loss.message();
  EXPECT_NEAR(*loss, want, 1e-5 * want) << GetParam();
  double largest = 0, worst = 0;
  for (size_t i = 0; i < d.size(); ++i) {
    largest = std::max(largest, static_cast<double>(std::abs(want_d[i])));
    worst = std::max(worst, static_cast<double>(std::abs(want_d[i] - d[i])));
  }
  EXPECT_LE(worst, 1e-4 * largest) << GetParam();
  EXPECT_GT(largest, 0.0);
  auto no_grad = back.output_loss(**ctx, hidden.data(), targets, 0.5f, nullptr);
  ASSERT_TRUE(no_grad.ok());
  EXPECT_EQ(*no_grad, *loss);
}

// The f32 self-attention training runs gives the logits of the f16-cache attention serving runs.
TEST_P(EveryArch, ExactAttentionGivesTheServedLogits) {
  auto loaded = model::load_model(std::string(OWL_SHARED_DIR) + "/reference/synthetic/" + GetParam());
  ASSERT_TRUE(loaded.ok()) << loaded.message();
  const model::Model& m = **loaded;
  std::vector<int32_t> t(20);
  for (size_t i = 0; i < t.size(); ++i) t[i] = static_cast<int32_t>(3 + (i * 37) % (m.config.n_vocab - 3));
  std::vector<std::vector<float>> out;
  for (bool exact : {false, true}) {
    auto ctx = model::make_context(m, {.n_ctx = 32, .n_seq = 1, .n_batch = 32, .n_threads = 2, .exact_attention = exact});
    ASSERT_TRUE(ctx.ok());
    model::Batch b;
    for (size_t i = 0; i < t.size(); ++i) b.add(t[i], static_cast<int32_t>(i), 0, true);
    out.emplace_back(t.size() * static_cast<size_t>(m.config.n_vocab));
    ASSERT_TRUE(model::forward(m, b, **ctx, out.back().data()).ok());
  }
  double worst = 0, largest = 0;
  for (size_t i = 0; i < out[0].size(); ++i) {
    worst = std::max(worst, static_cast<double>(std::abs(out[0][i] - out[1][i])));
    largest = std::max(largest, static_cast<double>(std::abs(out[0][i])));
  }
  EXPECT_LT(worst, 2e-2 * largest) << GetParam();
}

// F32 bases: with quantized ones the forward pass quantizes activations (Q8_0, Q8_K), a step
// function that central differences cannot follow; their backward is checked per weight below.
INSTANTIATE_TEST_SUITE_P(Train, EveryArch,
                         ::testing::Values("llama-gqa.f32.gguf", "llama3-ropescale.f32.gguf", "qwen2.f32.gguf",
                                           "qwen3.f32.gguf", "phi3.f32.gguf", "gemma2.f32.gguf"),
                         [](const auto& info) {
                           std::string n = info.param;
                           for (char& c : n) if (!std::isalnum(static_cast<unsigned char>(c))) c = '_';
                           return n;
                         });

// dX = dY W through a frozen weight in its file's format equals the product with its
// dequantized rows, for every weight format the models hold.
TEST(BackwardOps, LinearInputBackwardEqualsDequantizedProduct) {
  const std::string shared = std::string(OWL_SHARED_DIR) + "/models/";
  for (const char* f : {"stories260K.f16.gguf", "stories260K.bf16.gguf", "stories260K.q4_0.gguf",
                               "stories260K.q8_0.gguf", "kq256.q4_k_m.gguf", "kq256.q6_k.gguf", "kq256.q2_k.gguf"}) {
    auto loaded = model::load_model(shared + f);
    ASSERT_TRUE(loaded.ok()) << loaded.message();
    const model::LayerWeights& l = (*loaded)->weights.layers[0];
    core::ThreadPool pool(2);
    // The scalar reference and this machine's kernels.
    for (const kernels::Kernels& k : {kernels::make_kernels(kernels::Isa::kScalar), kernels::make_kernels()})
    for (const model::Weight* w : {&l.attn_q, &l.ffn_up, &l.ffn_down}) {
      const int64_t n = 37;
      const auto dy = random_vector(static_cast<size_t>(n * w->n_out), 9);
      std::vector<float> dx(static_cast<size_t>(n * w->n_in), 0.5f), want = dx;
      ops::linear_input_backward(k, pool, *w, dy.data(), w->n_out, n, dx.data(), w->n_in);
      std::vector<float> row(static_cast<size_t>(w->n_in));
      const int64_t rb = gguf::row_bytes(w->type, w->n_in);
      for (int64_t j = 0; j < w->n_out; ++j) {
        ASSERT_TRUE(quant::dequantize_row(w->type, static_cast<const uint8_t*>(w->data) + j * rb, row.data(), w->n_in));
        for (int64_t r = 0; r < n; ++r) {
          for (int64_t i = 0; i < w->n_in; ++i) want[static_cast<size_t>(r * w->n_in + i)] += dy[static_cast<size_t>(r * w->n_out + j)] * row[static_cast<size_t>(i)];
        }
      }
      double worst = 0, largest = 0;
      for (size_t i = 0; i < dx.size(); ++i) {
        worst = std::max(worst, static_cast<double>(std::abs(dx[i] - want[i])));
        largest = std::max(largest, static_cast<double>(std::abs(want[i])));
      }
      EXPECT_LE(worst, 1e-5 * largest) << f << " " << gguf::type_info(w->type).name << " " << w->n_out << "x" << w->n_in;
    }
  }
}

}  // namespace
}  // namespace owl::train
