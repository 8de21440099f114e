#include "sample/sampler.h"

#include <gtest/gtest.h>

#include <cmath>
#include <map>
#include <random>
#include <set>

namespace owl::sample {
namespace {

std::vector<float> random_logits(int n, uint64_t seed) {
  std::mt19937 rng(static_cast<uint32_t>(seed));
  std::normal_distribution<float> d(0.0f, 2.0f);
  std::vector<float> x(static_cast<size_t>(n));
  for (float& v : x) v = d(rng);
  return x;
}

int argmax(const std::vector<float>& x) { return static_cast<int>(std::max_element(x.begin(), x.end()) - x.begin()); }

TEST(Sampler, GreedyIsArgmax) {
  for (uint64_t seed = 1; seed < 6; ++seed) {
    const auto logits = random_logits(101, seed);
    Sampler s({.temperature = 0.0f}, 101);
    EXPECT_EQ(s.sample(logits.data()).token, argmax(logits));
  }
}

TEST(Sampler, SameSeedSameTokensDifferentSeedDiffers) {
  const auto logits = random_logits(257, 3);
  auto draw = [&](uint64_t seed) {
    Sampler s({.temperature = 1.0f, .top_k = 0, .top_p = 1.0f, .min_p = 0.0f, .seed = seed}, 257);
    std::vector<int32_t> out;
    for (int i = 0; i < 50; ++i) out.push_back(s.sample(logits.data()).token);
    return out;
  };
  EXPECT_EQ(draw(7), draw(7));
  EXPECT_NE(draw(7), draw(8));
}

TEST(Sampler, ChoiceSeedsAreIndependentStreams) {
  EXPECT_EQ(choice_seed(7, 0), 7u);  // n = 1 samples as the command line does with the same seed
  std::set<uint64_t> seen;
  for (uint64_t seed : {0ull, 1ull, 2ull, 7ull, 8ull}) {
    for (int i = 0; i < 8; ++i) seen.insert(choice_seed(seed, i));
  }
  // Choice 1 of seed 7 is not choice 0 of seed 8, nor any other request's choice.
  EXPECT_EQ(seen.size(), 5u * 8u);
  EXPECT_NE(choice_seed(7, 1), 8u);
  EXPECT_EQ(choice_seed(7, 3), choice_seed(7, 3));
}

TEST(Sampler, UntruncatedDrawsFollowTheSoftmax) {
  const std::vector<float> logits = {0.0f, std::log(2.0f), std::log(3.0f), std::log(4.0f)};  // p = k / 10
  Sampler s({.temperature = 1.0f, .top_k = 0, .top_p = 1.0f, .min_p = 0.0f, .seed = 11}, 4);
  std::map<int, int> counts;
  const int n = 20000;
  for (int i = 0; i < n; ++i) ++counts[s.sample(logits.data()).token];
  for (int k = 0; k < 4; ++k) EXPECT_NEAR(counts[k] / static_cast<double>(n), (k + 1) / 10.0, 0.015) << k;
}

TEST(Sampler, TruncationsKeepTheRightTokens) {
  const std::vector<float> logits = {0.0f, std::log(2.0f), std::log(3.0f), std::log(4.0f)};
  auto support = [&](SamplingParams p) {
    p.temperature = 1.0f;
    Sampler s(p, 4);
    std::map<int, int> seen;
    for (int i = 0; i < 2000; ++i) ++seen[s.sample(logits.data()).token];
    std::vector<int> tokens;
    for (const auto& [t, c] : seen) tokens.push_back(t);
    return tokens;
  };
  EXPECT_EQ(support({.top_k = 2, .top_p = 1.0f, .min_p = 0.0f}), (std::vector<int>{2, 3}));
  // top_p 0.6: 0.4 + 0.3 = 0.7 >= 0.6 keeps two tokens.
  EXPECT_EQ(support({.top_k = 0, .top_p = 0.6f, .min_p = 0.0f}), (std::vector<int>{2, 3}));
  // min_p 0.5: keep p >= 0.5 * 0.4 = 0.2, i.e. tokens 1, 2, 3.
  EXPECT_EQ(support({.top_k = 0, .top_p = 1.0f, .min_p = 0.5f}), (std::vector<int>{1, 2, 3}));
  EXPECT_EQ(support({.top_k = 0, .top_p = 1.0f, .min_p = 0.0f}), (std::vector<int>{0, 1, 2, 3}));
}

// top-p over a large vocabulary sorts only a growing prefix: the kept set must still be exactly
// the most likely tokens whose mass first reaches p.
TEST(Sampler, TopPOnALargeVocabularyKeepsTheExactNucleus) {
  const int n = 5000;
  const auto logits = random_logits(n, 21);
  std::vector<int> order(n);
  for (int i = 0; i < n; ++i) order[i] = i;
  std::sort(order.begin(), order.end(), [&](int a, int b) { return logits[a] > logits[b]; });
  double z = 0;
  for (float l : logits) z += std::exp(static_cast<double>(l));
  for (float p : {0.5f, 0.9f, 0.99f}) {
    double mass = 0;
    size_t nucleus = 0;
    while (mass < p) mass += std::exp(static_cast<double>(logits[order[nucleus++]])) / z;
    std::vector<int> allowed(order.begin(), order.begin() + static_cast<long>(nucleus));
    std::sort(allowed.begin(), allowed.end());
    Sampler s({.temperature = 1.0f, .top_k = 0, .top_p = p, .min_p = 0.0f, .seed = 3}, n);
    std::map<int, int> seen;
    for (int i = 0; i < 400; ++i) ++seen[s.sample(logits.data()).token];
    for (const auto& [token, count] : seen) {
      EXPECT_TRUE(std::binary_search(allowed.begin(), allowed.end(), token)) << "p " << p << " token " << token;
    }
    EXPECT_GT(nucleus, 64u) << "the test must exercise the growing prefix";
  }
}

// p = 0.1, 0.2, 0.3, 0.4: entropy 1.28 nats; the surprises -log p are 2.30, 1.61, 1.20, 0.92, so
// by distance to the entropy the order is tokens 2, 1, 3, 0 (Meister et al. 2022).
TEST(Sampler, TypicalKeepsTheTokensWhoseSurpriseIsClosestToTheEntropy) {
  const std::vector<float> logits = {0.0f, std::log(2.0f), std::log(3.0f), std::log(4.0f)};
  auto support = [&](float typical) {
    Sampler s({.temperature = 1.0f, .top_k = 0, .top_p = 1.0f, .min_p = 0.0f, .typical_p = typical, .seed = 5}, 4);
    std::map<int, int> seen;
    for (int i = 0; i < 2000; ++i) ++seen[s.sample(logits.data()).token];
    std::vector<int> tokens;
    for (const auto& [t, c] : seen) tokens.push_back(t);
    return tokens;
  };
  EXPECT_EQ(support(0.25f), (std::vector<int>{2}));
  EXPECT_EQ(support(0.45f), (std::vector<int>{1, 2}));
  EXPECT_EQ(support(0.65f), (std::vector<int>{1, 2, 3}));
  EXPECT_EQ(support(1.0f), (std::vector<int>{0, 1, 2, 3}));
}

// The constraint masks first and advances over generated tokens only; the penalties see the prompt.
TEST(Sampler, AConstraintMasksAndHearsOnlyGeneratedTokens) {
  struct OnlyEven : Constraint {
    std::vector<int32_t>* accepted;
    void mask(std::span<float> logits) override {
      for (size_t i = 1; i < logits.size(); i += 2) logits[i] = -INFINITY;
    }
    void accept(int32_t token) override { accepted->push_back(token); }
  };
  std::vector<int32_t> accepted;
  auto c = std::make_unique<OnlyEven>();
  c->accepted = &accepted;
  std::vector<float> logits = random_logits(64, 9);
  for (float& x : logits) x = std::min(x, 1.0f);
  logits[11] = 5.0f;  // the most likely, but odd
  logits[10] = 3.0f;  // the most likely even token: in the prompt, so penalized to 1
  logits[20] = 2.0f;
  Sampler s({.temperature = 0.0f, .repeat_last_n = -1, .presence_penalty = 2.0f}, 64, std::move(c));
  s.accept_prompt(std::vector<int32_t>{10});
  EXPECT_TRUE(accepted.empty());
  EXPECT_EQ(s.sample(logits.data()).token, 20);
  for (int i = 0; i < 6; ++i) {
    const Sampled out = s.sample(logits.data());
    EXPECT_EQ(out.token % 2, 0);
    s.accept(out.token);
  }
  EXPECT_EQ(accepted.size(), 6u);
}

TEST(Sampler, LogitBiasAndPenalties) {
  auto logits = random_logits(50, 5);
  const int best = argmax(logits);
  const int other = (best + 1) % 50;
  Sampler biased({.temperature = 0.0f, .logit_bias = {{other, 100.0f}}}, 50);
  EXPECT_EQ(biased.sample(logits.data()).token, other);

  Sampler penalized({.temperature = 0.0f, .presence_penalty = 2.0f}, 50);
  std::vector<float> flat(50, 0.0f);
  flat[3] = 1.0f;
  flat[4] = 0.5f;
  EXPECT_EQ(penalized.sample(flat.data()).token, 3);
  penalized.accept(3);
  EXPECT_EQ(penalized.sample(flat.data()).token, 4);  // 1 - 2 < 0.5

  Sampler repeat({.temperature = 0.0f, .repeat_penalty = 3.0f}, 50);
  repeat.accept(3);
  EXPECT_EQ(repeat.sample(flat.data()).token, 4);  // 1 / 3 < 0.5
  Sampler window({.temperature = 0.0f, .repeat_penalty = 3.0f, .repeat_last_n = 1}, 50);
  window.accept(3);
  window.accept(7);
  EXPECT_EQ(window.sample(flat.data()).token, 3) << "3 is outside the last-1 window";
}

TEST(Sampler, LogprobsAreTheFullSoftmaxOfRawLogits) {
  const auto logits = random_logits(300, 9);
  // Truncation and temperature must not change the reported log-probabilities.
  Sampler s({.temperature = 0.3f, .top_k = 5, .seed = 1, .logprobs = true, .n_probs = 10}, 300);
  const Sampled out = s.sample(logits.data());
  double z = 0;
  for (float l : logits) z += std::exp(static_cast<double>(l));
  ASSERT_EQ(out.top.size(), 10u);
  EXPECT_EQ(out.top[0].token, argmax(logits));
  for (size_t i = 0; i < out.top.size(); ++i) {
    EXPECT_NEAR(out.top[i].logprob, logits[static_cast<size_t>(out.top[i].token)] - std::log(z), 1e-4);
    if (i > 0) {
      EXPECT_LE(out.top[i].logprob, out.top[i - 1].logprob);
    }
  }
  EXPECT_NEAR(out.logprob, logits[static_cast<size_t>(out.token)] - std::log(z), 1e-4);
  // Not asked for: none reported (the same token is drawn).
  Sampler plain({.temperature = 0.3f, .top_k = 5, .seed = 1, .n_probs = 10}, 300);
  const Sampled without = plain.sample(logits.data());
  EXPECT_EQ(without.token, out.token);
  EXPECT_TRUE(without.top.empty());
  EXPECT_EQ(without.logprob, 0.0f);
}

TEST(Sampler, ValidateNamesTheParameter) {
  EXPECT_TRUE(validate({}, 10).ok());
  auto r = validate({.top_p = 1.5f}, 10);
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.message().find("top_p 1.5"), std::string::npos);
  r = validate({.logit_bias = {{10, 1.0f}}}, 10);
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.message().find("logit_bias token 10"), std::string::npos);
}

TEST(Sampler, ValidateRangesNeedsNoModel) {
  EXPECT_TRUE(validate_ranges({}).ok());
  EXPECT_TRUE(validate_ranges({.temperature = 0.0f, .top_k = 0, .top_p = 1.0f, .min_p = 0.0f}).ok());
  const std::pair<SamplingParams, const char*> bad[] = {
      {{.temperature = -0.5f}, "temperature -0.5"},  {{.temperature = 2.5f}, "temperature 2.5"},
      {{.top_k = -1}, "top_k -1"},                   {{.top_p = -0.1f}, "top_p -0.1"},
      {{.min_p = 1.5f}, "min_p 1.5"},                {{.typical_p = 0.0f}, "typical_p 0"},
      {{.repeat_penalty = 0.0f}, "repeat_penalty 0"}, {{.repeat_penalty = 11.0f}, "repeat_penalty 11"},
      {{.presence_penalty = 3.0f}, "presence_penalty 3"}, {{.repeat_last_n = -2}, "repeat_last_n -2"},
  };
  for (const auto& [params, expected] : bad) {
    auto r = validate_ranges(params);
    ASSERT_FALSE(r.ok()) << expected;
    EXPECT_NE(r.message().find(expected), std::string::npos) << r.message();
  }
}

}  // namespace
}  // namespace owl::sample
