#include "sample/generate.h"

#include <gtest/gtest.h>

namespace owl::sample {
namespace {

TEST(StopMatcher, HoldsBackPossibleStartsAndCutsAtTheStop) {
  const std::vector<std::string> stop = {"END", "\n\n"};
  StopMatcher m(stop);
  EXPECT_EQ(m.push("hello E"), "hello ");  // "E" may start "END"
  EXPECT_EQ(m.push("N"), "");
  EXPECT_EQ(m.push("x"), "ENx");           // it did not
  EXPECT_FALSE(m.stopped());
  EXPECT_EQ(m.push(" and\n"), " and");
  EXPECT_EQ(m.push("\nmore"), "");
  EXPECT_TRUE(m.stopped());
  EXPECT_EQ(m.flush(), "");
  StopMatcher none({});
  EXPECT_EQ(none.push("abc"), "abc");
  StopMatcher tail(stop);
  EXPECT_EQ(tail.push("xyzE"), "xyz");
  EXPECT_EQ(tail.flush(), "E");
}

class Generate : public ::testing::Test {
 protected:
  void SetUp() override {
    auto m = model::load_model(std::string(OWL_SOURCE_DIR) + "/models/stories260K.gguf");
    ASSERT_TRUE(m.ok()) << m.message();
    model = std::move(*m);
    auto t = tokenizer::Tokenizer::load(model->file);
    ASSERT_TRUE(t.ok()) << t.message();
    tok = std::make_unique<tokenizer::Tokenizer>(std::move(*t));
    auto c = model::make_context(*model, {.n_ctx = 256, .n_seq = 1, .n_threads = 2});
    ASSERT_TRUE(c.ok());
    ctx = std::move(*c);
  }
  struct Output {
    std::string text;
    std::vector<int32_t> tokens;
    GenerateStats stats;
  };
  Output run(SequenceState& state, const std::string& prompt, GenerateOptions options) {
    Output out;
    auto stats = generate(*model, *ctx, *tok, state, tok->tokenize(prompt), options,
                          [&](std::string_view text, const Sampled& s) {
                            out.text.append(text);
                            out.tokens.push_back(s.token);
                            return true;
                          });
    EXPECT_TRUE(stats.ok()) << (stats.ok() ? "" : stats.message());
    if (stats.ok()) out.stats = *stats;
    return out;
  }
  std::unique_ptr<model::Model> model;
  std::unique_ptr<tokenizer::Tokenizer> tok;
  std::unique_ptr<model::Context> ctx;
};

TEST_F(Generate, GreedyMatchesLlamaCppsContinuation) {
  // ../shared/reference/stories260K.p1.json: llama.cpp's greedy continuation of this prompt.
  SequenceState state;
  const Output out = run(state, "Once upon a time, there was a little girl named Lily.",
                         {.n_predict = 8, .sampling = {.temperature = 0.0f}});
  EXPECT_EQ(out.tokens, (std::vector<int32_t>{338, 401, 396, 267, 337, 410, 408, 419}));
  EXPECT_EQ(out.stats.finish, FinishReason::kLength);
  EXPECT_EQ(out.stats.n_generated, 8);
}

TEST_F(Generate, SameSeedSameTextAndStopStringsStop) {
  GenerateOptions options{.n_predict = 40, .sampling = {.temperature = 1.0f, .seed = 5}};
  SequenceState a, b;
  const Output first = run(a, "Once upon a time", options);
  const Output second = run(b, "Once upon a time", options);
  EXPECT_EQ(first.text, second.text);
  ASSERT_GT(first.text.size(), 10u);
  // Stop at a word the first run produced: the text ends right before it.
  const std::string word = first.text.substr(first.text.size() / 2, 3);
  options.stop = {word};
  SequenceState c;
  const Output stopped = run(c, "Once upon a time", options);
  EXPECT_EQ(stopped.stats.finish, FinishReason::kStop);
  EXPECT_EQ(stopped.text, first.text.substr(0, first.text.find(word)));
}

TEST_F(Generate, PrefixReuseComputesOnlyTheNewTokensAndGivesTheSameText) {
  GenerateOptions options{.n_predict = 12, .sampling = {.temperature = 0.0f}};
  SequenceState state;
  const Output turn1 = run(state, "Once upon a time, there was a little girl", options);
  const std::string longer = "Once upon a time, there was a little girl named Lily.";
  const Output reused = run(state, longer, options);
  EXPECT_GT(reused.stats.n_reused, 5);
  EXPECT_LT(reused.stats.n_prompt, 8);
  SequenceState fresh_state;
  const Output fresh = run(fresh_state, longer, options);
  EXPECT_EQ(fresh.stats.n_reused, 0);
  EXPECT_EQ(reused.text, fresh.text);
}

TEST_F(Generate, APromptLongerThanTheContextIsAnError) {
  SequenceState state;
  std::string text;
  for (int i = 0; i < 200; ++i) text += "the cat sat. ";
  auto r = generate(*model, *ctx, *tok, state, tok->tokenize(text), {},
                    [](std::string_view, const Sampled&) { return true; });
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.message().find("does not fit the context of 256 tokens"), std::string::npos) << r.message();
}

}  // namespace
}  // namespace owl::sample
