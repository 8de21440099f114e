// owl run / chat / logits generate through a one-slot scheduler (Session): stop strings, prefix
// reuse across calls, errors; and it decodes exactly as the server's engine does.
#include "engine/session.h"

#include <gtest/gtest.h>

#include <cmath>

#include "engine/decode.h"
#include "engine/engine.h"

namespace owl::engine {
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
  Output run(Session& session, const std::string& prompt, GenerateParams params) {
    Output out;
    auto stats = session.generate({.prompt = tok->tokenize(prompt), .params = params},
                                  [&](std::string_view text, const sample::Sampled& s) {
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
  std::unique_ptr<Session> session() { return std::make_unique<Session>(*model, *tok, *ctx); }
};

TEST_F(Generate, GreedyMatchesLlamaCppsContinuation) {
  // ../shared/reference/stories260K.p1.json: llama.cpp's greedy continuation of this prompt.
  const Output out = run(*session(), "Once upon a time, there was a little girl named Lily.",
                         {.sampling = {.temperature = 0.0f}, .max_tokens = 8});
  EXPECT_EQ(out.tokens, (std::vector<int32_t>{338, 401, 396, 267, 337, 410, 408, 419}));
  EXPECT_EQ(out.stats.finish, FinishReason::kLength);
  EXPECT_EQ(out.stats.n_generated, 8);
}

TEST_F(Generate, SameSeedSameTextAndStopStringsStop) {
  GenerateParams options{.sampling = {.temperature = 1.0f, .seed = 5}, .max_tokens = 40};
  const Output first = run(*session(), "Once upon a time", options);
  const Output second = run(*session(), "Once upon a time", options);
  EXPECT_EQ(first.text, second.text);
  ASSERT_GT(first.text.size(), 10u);
  // Stop at a word the first run produced: the text ends right before it.
  const std::string word = first.text.substr(first.text.size() / 2, 3);
  options.stop = {word};
  const Output stopped = run(*session(), "Once upon a time", options);
  EXPECT_EQ(stopped.stats.finish, FinishReason::kStop);
  EXPECT_EQ(stopped.text, first.text.substr(0, first.text.find(word)));
}

TEST_F(Generate, PrefixReuseComputesOnlyTheNewTokensAndGivesTheSameText) {
  GenerateParams options{.sampling = {.temperature = 0.0f}, .max_tokens = 12};
  auto chat = session();
  const Output turn1 = run(*chat, "Once upon a time, there was a little girl", options);
  const std::string longer = "Once upon a time, there was a little girl named Lily.";
  const Output reused = run(*chat, longer, options);
  EXPECT_GT(reused.stats.n_reused, 5);
  EXPECT_LT(reused.stats.n_prompt, 8);
  const Output fresh = run(*session(), longer, options);
  EXPECT_EQ(fresh.stats.n_reused, 0);
  EXPECT_EQ(reused.text, fresh.text);
}

// A chat with an adapter reuses its earlier turns; what was computed under other adapters (or
// none), by the session or by the caller (owl logits), is computed again.
TEST_F(Generate, PrefixReuseIsKeyedByTheAdapters) {
  auto adapter = model::load_lora(std::string(OWL_SHARED_DIR) + "/reference/lora/stories260K.lora-r4-all.gguf", *model);
  ASSERT_TRUE(adapter.ok()) << adapter.message();
  auto set = std::make_shared<model::AdapterSet>();
  set->adapters.emplace_back(*adapter, 1.0f);
  const GenerateParams options{.sampling = {.temperature = 0.0f}, .max_tokens = 12};
  const std::vector<int32_t> prompt = tok->tokenize("Once upon a time, there was a little girl named Lily.");
  auto generate = [&](Session& s, std::shared_ptr<const model::AdapterSet> adapters) {
    Output out;
    auto stats = s.generate({.prompt = prompt, .params = options, .adapters = std::move(adapters)},
                            [&](std::string_view text, const sample::Sampled& sampled) {
                              out.text.append(text);
                              out.tokens.push_back(sampled.token);
                              return true;
                            });
    EXPECT_TRUE(stats.ok());
    if (stats.ok()) out.stats = *stats;
    return out;
  };
  auto chat = session();
  const Output first = generate(*chat, set);
  const Output again = generate(*chat, set);
  EXPECT_EQ(first.stats.n_reused, 0);
  EXPECT_EQ(again.stats.n_reused, static_cast<int64_t>(prompt.size()) - 1);
  EXPECT_EQ(again.tokens, first.tokens);
  const Output base = generate(*chat, nullptr);
  EXPECT_EQ(base.stats.n_reused, 0);
  EXPECT_NE(base.tokens, first.tokens);  // the adapter changes the continuation
  EXPECT_EQ(base.tokens, generate(*session(), nullptr).tokens);

  // The caller's prefill under the adapter, then a generation under it: reused; under none: not.
  model::Batch batch;
  for (size_t i = 0; i < prompt.size(); ++i) batch.add(prompt[i], static_cast<int32_t>(i), 0, true, set.get());
  std::vector<float> logits(prompt.size() * static_cast<size_t>(model->config.n_vocab));
  ASSERT_TRUE(model::forward(*model, batch, *ctx, logits.data()).ok());
  auto caller = session();
  caller->assume_cached(prompt, set.get());
  const Output cached = generate(*caller, set);
  EXPECT_EQ(cached.stats.n_reused, static_cast<int64_t>(prompt.size()) - 1);
  EXPECT_EQ(cached.tokens, first.tokens);
  ASSERT_TRUE(model::forward(*model, batch, *ctx, logits.data()).ok());
  caller->assume_cached(prompt, set.get());
  EXPECT_EQ(generate(*caller, nullptr).stats.n_reused, 0);
}

TEST_F(Generate, APromptLongerThanTheContextIsAnError) {
  std::string text;
  for (int i = 0; i < 200; ++i) text += "the cat sat. ";
  auto r = session()->generate({.prompt = tok->tokenize(text)}, [](std::string_view, const sample::Sampled&) { return true; });
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.message().find("does not fit the context of 256 tokens"), std::string::npos) << r.message();
}

TEST_F(Generate, ACallbackThatReturnsFalseCancels) {
  int calls = 0;
  auto r = session()->generate({.prompt = tok->tokenize("Once upon a time"), .params = {.max_tokens = 50, .ignore_eos = true}},
                               [&](std::string_view, const sample::Sampled&) { return ++calls < 3; });
  ASSERT_TRUE(r.ok()) << r.message();
  EXPECT_EQ(r->finish, FinishReason::kCancelled);
  EXPECT_EQ(r->n_generated, 3);
  EXPECT_EQ(calls, 3);
}

// `owl run` (a Session) and `owl serve` (the Engine, batching other sequences beside it) give
// the same tokens, greedy and sampled with a seed.
TEST_F(Generate, TheCliPathAndTheServerPathGiveTheSameTokens) {
  auto engine = Engine::make(*model, *tok, nullptr, {.n_parallel = 3, .n_ctx = 256, .n_threads = 2, .step_tokens = 8});
  ASSERT_TRUE(engine.ok()) << engine.message();
  const std::vector<std::string> prompts = {"Once upon a time", "The little dog ran to the", "Lily and Tom"};
  for (const GenerateParams& params : {GenerateParams{.sampling = {.temperature = 0.0f}, .max_tokens = 20},
                                       GenerateParams{.sampling = {.temperature = 0.9f, .seed = 11}, .max_tokens = 20}}) {
    std::vector<std::shared_ptr<RequestStream>> streams;
    for (const std::string& p : prompts) {
      streams.push_back(std::make_shared<RequestStream>(1));
      ASSERT_EQ((*engine)->submit({SequenceRequest{.prompt = tok->tokenize(p), .params = params}}, streams.back()),
                SubmitResult::kAccepted);
    }
    for (size_t i = 0; i < prompts.size(); ++i) {
      const Output cli = run(*session(), prompts[i], params);
      std::vector<int32_t> served;
      std::string text;
      Event e;
      while (!streams[i]->finished()) {
        if (!streams[i]->pop(e, std::chrono::seconds(30))) break;
        if (e.kind == Event::Kind::kToken) served.push_back(e.sampled.token), text += e.text;
      }
      EXPECT_EQ(served, cli.tokens) << prompts[i];
      EXPECT_EQ(text, cli.text) << prompts[i];
    }
  }
}

// A constraint masks before sampling and hears only the generated tokens.
TEST_F(Generate, AConstraintMasksAndSeesOnlyGeneratedTokens) {
  struct AllowList : sample::Constraint {
    std::vector<int32_t> allowed;
    std::shared_ptr<std::vector<int32_t>> accepted;  // outlives the constraint, which ends with its sequence
    void mask(std::span<float> logits) override {
      std::vector<float> keep(logits.size(), -INFINITY);
      for (int32_t t : allowed) keep[static_cast<size_t>(t)] = logits[static_cast<size_t>(t)];
      std::copy(keep.begin(), keep.end(), logits.begin());
    }
    void accept(int32_t token) override { accepted->push_back(token); }
  };
  int made = 0;
  auto accepted = std::make_shared<std::vector<int32_t>>();
  const std::vector<int32_t> allowed = tok->tokenize(" the cat sat on a red mat", {.add_special = false});
  GenerateParams params{.sampling = {.temperature = 0.7f, .seed = 3}, .max_tokens = 16, .ignore_eos = true};
  params.constraint = [&] {
    auto c = std::make_unique<AllowList>();
    c->allowed = allowed;
    c->accepted = accepted;
    ++made;
    return c;
  };
  std::vector<int32_t> generated;
  auto r = session()->generate({.prompt = tok->tokenize("Once upon a time"), .params = params},
                               [&](std::string_view, const sample::Sampled& s) {
                                 generated.push_back(s.token);
                                 EXPECT_EQ(accepted->size(), generated.size());  // told when sampled
                                 return true;
                               });
  ASSERT_TRUE(r.ok()) << r.message();
  EXPECT_EQ(made, 1);
  ASSERT_EQ(generated.size(), 16u);
  for (int32_t t : generated) EXPECT_NE(std::find(allowed.begin(), allowed.end(), t), allowed.end()) << t;
  EXPECT_EQ(*accepted, generated);
}

}  // namespace
}  // namespace owl::engine
