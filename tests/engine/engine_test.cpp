// The scheduler without HTTP: continuous batching gives each sequence what it gets alone,
// prompts are prefilled in chunks while other streams go on, prefixes are reused, cancelled
// and queued work is accounted for.
#include "engine/engine.h"

#include <gtest/gtest.h>

#include <atomic>
#include <cmath>
#include <cstring>

#include "support/stories.h"

namespace owl::engine {
namespace {

using namespace std::chrono_literals;

struct Output {
  std::vector<int32_t> tokens;
  std::vector<float> logprobs;  // of each token, when the request asked for them
  std::string text;
  FinishReason finish = FinishReason::kLength;
  ChoiceStats stats;
  bool error = false;
  std::vector<sample::Sampled> prompt_logprobs;
};

Output collect(RequestStream& stream) {
  Output out;
  Event e;
  const auto until = Clock::now() + 60s;
  while (!stream.finished() && Clock::now() < until) {
    if (!stream.pop(e, 100ms)) continue;
    if (!e.prompt_logprobs.empty()) out.prompt_logprobs = e.prompt_logprobs;
    if (e.kind == Event::Kind::kToken) {
      if (e.has_token) {
        out.tokens.push_back(e.sampled.token);
        out.logprobs.push_back(e.sampled.logprob);
      }
      out.text += e.text;
    } else if (e.kind == Event::Kind::kEnd) {
      out.finish = e.finish;
      out.stats = e.stats;
    } else {
      out.error = true;
    }
  }
  EXPECT_TRUE(stream.finished()) << "the engine did not end the request in time";
  return out;
}

class EngineTest : public ::testing::Test {
 protected:
  std::unique_ptr<Engine> make(EngineOptions o) {
    auto e = Engine::make(*owl::testing::stories().model, *owl::testing::stories().tokenizer, &metrics, o);
    EXPECT_TRUE(e.ok()) << e.message();
    return e.ok() ? std::move(*e) : nullptr;
  }
  std::vector<int32_t> tokens(const std::string& text) { return owl::testing::stories().tokenizer->tokenize(text); }
  SequenceRequest greedy(const std::string& prompt, int64_t max_tokens) {
    SequenceRequest p;
    p.prompt = tokens(prompt);
    p.params.sampling.temperature = 0;
    p.params.max_tokens = max_tokens;
    return p;
  }
  std::shared_ptr<RequestStream> submit(Engine& e, SequenceRequest p) {
    auto s = std::make_shared<RequestStream>(1);
    EXPECT_EQ(e.submit({std::move(p)}, s), SubmitResult::kAccepted);
    return s;
  }
  // Counts what the engine reports.
  struct Counts : Observer {
    std::atomic<int64_t> steps{0};
    std::atomic<int> most_adapter_sets{0};  // in one step
    void on_step(int64_t, double) override { ++steps; }
    void on_step_adapters(int n_sets) override {
      if (n_sets > most_adapter_sets) most_adapter_sets = n_sets;
    }
  };
  Counts metrics;
};

const std::vector<std::string> kPrompts = {"Once upon a time", "The little dog", "Lily and Tom went to the park",
                                           "One day, a big bird", "The sun was hot and"};

TEST_F(EngineTest, BatchedSequencesEqualEachAlone) {
  std::vector<Output> alone;
  {
    auto engine = make({.n_parallel = 1, .n_ctx = 128, .n_threads = 2});
    for (const std::string& p : kPrompts) alone.push_back(collect(*submit(*engine, greedy(p, 24))));
  }
  auto engine = make({.n_parallel = 4, .n_ctx = 128, .n_threads = 2, .step_tokens = 8});
  std::vector<std::shared_ptr<RequestStream>> streams;
  for (const std::string& p : kPrompts) streams.push_back(submit(*engine, greedy(p, 24)));
  for (size_t i = 0; i < kPrompts.size(); ++i) {
    const Output out = collect(*streams[i]);
    EXPECT_EQ(out.tokens, alone[i].tokens) << kPrompts[i];
    EXPECT_EQ(out.text, alone[i].text);
    EXPECT_EQ(out.tokens.size(), 24u);
    EXPECT_EQ(out.finish, FinishReason::kLength);
  }
}

// What a user of `owl serve --deterministic` sees: eight seeded requests sampled at temperature
// 1 give the same tokens and the same log-probabilities, bit for bit, sent one at a time and
// sent together (batched decode steps beside prompt chunks), and on another thread count. The
// Q4_0 file: its matmuls change kernel with the row count unless batch invariant.
TEST_F(EngineTest, SeededRequestsEqualEachAloneBitForBitWhenBatchInvariant) {
  auto model = model::load_model(std::string(OWL_SHARED_DIR) + "/models/stories260K.q4_0.gguf");
  ASSERT_TRUE(model.ok()) << model.message();
  auto tokenizer = tokenizer::Tokenizer::load((*model)->file);
  ASSERT_TRUE(tokenizer.ok()) << tokenizer.message();
  auto make = [&](EngineOptions o) {
    auto e = Engine::make(**model, *tokenizer, nullptr, o);
    EXPECT_TRUE(e.ok()) << e.message();
    return e.ok() ? std::move(*e) : nullptr;
  };
  const std::vector<std::string> prompts = {"Once upon a time", "The little dog", "Lily and Tom went to the park",
                                            "One day, a big bird", "The sun was hot and", "Tim had a red ball",
                                            "Sue", "There was a cat who liked to sleep in the sun all day"};
  auto seeded = [&](size_t i) {
    SequenceRequest p = greedy(prompts[i], 40);
    p.params.sampling.temperature = 1.0f;
    p.params.sampling.seed = 1000 + i;
    p.params.sampling.logprobs = true;
    return p;
  };
  std::vector<Output> alone;
  {
    auto engine = make({.n_parallel = 1, .n_ctx = 128, .n_threads = 1, .batch_invariant = true});
    for (size_t i = 0; i < prompts.size(); ++i) alone.push_back(collect(*submit(*engine, seeded(i))));
  }
  auto engine = make({.n_parallel = 8, .n_ctx = 128, .n_threads = 3, .step_tokens = 24, .batch_invariant = true});
  std::vector<std::shared_ptr<RequestStream>> streams;
  for (size_t i = 0; i < prompts.size(); ++i) streams.push_back(submit(*engine, seeded(i)));
  for (size_t i = 0; i < prompts.size(); ++i) {
    const Output out = collect(*streams[i]);
    EXPECT_EQ(out.tokens, alone[i].tokens) << prompts[i];
    ASSERT_EQ(out.logprobs.size(), alone[i].logprobs.size()) << prompts[i];
    EXPECT_EQ(std::memcmp(out.logprobs.data(), alone[i].logprobs.data(), out.logprobs.size() * sizeof(float)), 0)
        << prompts[i];
  }
}

TEST_F(EngineTest, LongPromptIsPrefilledInChunksWhileAStreamGoesOn) {
  auto engine = make({.n_parallel = 2, .n_ctx = 512, .n_threads = 2, .step_tokens = 24});
  auto running = submit(*engine, greedy("Once upon a time", 200));
  Event first;
  ASSERT_TRUE(running->pop(first, 30s));
  std::string long_prompt;
  for (int i = 0; i < 40; ++i) long_prompt += "The cat sat on the mat. ";
  SequenceRequest p = greedy(long_prompt, 1);
  ASSERT_GT(p.prompt.size(), 240u);
  auto late = submit(*engine, p);
  collect(*late);
  // Every step of the late prompt's ~10 chunks also computed a token of the running stream.
  EXPECT_GE(running->pending(), p.prompt.size() / 24 - 1);
  running->cancel();
  collect(*running);
}

// A prompt that ends within a quarter of the step budget past it takes one step, not two;
// one that ends further past it is chunked.
TEST_F(EngineTest, PromptJustOverTheBudgetTakesOneStep) {
  auto steps = [&] { return static_cast<double>(metrics.steps.load()); };
  auto engine = make({.n_parallel = 1, .n_ctx = 256, .n_threads = 2, .step_tokens = 16});
  SequenceRequest p = greedy("Lily and Tom went to the park to play with a red ball", 1);
  ASSERT_GT(p.prompt.size(), 16u);
  ASSERT_LE(p.prompt.size(), 20u);  // within 16 / 4 past the budget
  const double before = steps();
  collect(*submit(*engine, p));
  EXPECT_EQ(steps() - before, 1.0);
  SequenceRequest longer = greedy("Lily and Tom went to the park to play with a red ball and a big blue kite", 1);
  ASSERT_GT(longer.prompt.size(), 20u);
  auto fresh = make({.n_parallel = 1, .n_ctx = 256, .n_threads = 2, .step_tokens = 16});
  const double before_longer = steps();
  collect(*submit(*fresh, longer));
  EXPECT_EQ(steps() - before_longer, 2.0);
}

// A warmed-up engine answers as a cold one does, the warm-up is no step of the engine (no
// metrics), and its time is reported.
TEST_F(EngineTest, AWarmUpLeavesNoTrace) {
  auto cold = make({.n_parallel = 2, .n_ctx = 128, .n_threads = 2});
  auto warm = make({.n_parallel = 2, .n_ctx = 128, .n_threads = 2, .warm_up = true});
  EXPECT_EQ(cold->warm_up_seconds(), 0.0);
  EXPECT_GT(warm->warm_up_seconds(), 0.0);
  EXPECT_EQ(metrics.steps, 0) << "the warm-up is not a step of the engine";
  for (const std::string& p : kPrompts) {
    const Output a = collect(*submit(*cold, greedy(p, 16)));
    const Output b = collect(*submit(*warm, greedy(p, 16)));
    EXPECT_EQ(b.tokens, a.tokens) << p;
    EXPECT_EQ(b.stats.n_cached, a.stats.n_cached) << p;
  }
}

TEST_F(EngineTest, PrefixOfAFinishedRequestIsReused) {
  auto engine = make({.n_parallel = 2, .n_ctx = 256, .n_threads = 2});
  const Output a = collect(*submit(*engine, greedy("Once upon a time there was a little girl", 8)));
  EXPECT_EQ(a.stats.n_cached, 0);
  const std::string longer = "Once upon a time there was a little girl named Lily";
  const Output b = collect(*submit(*engine, greedy(longer, 8)));
  // The cache holds a's prompt and what it generated, which may match the longer prompt further.
  EXPECT_GE(b.stats.n_cached, static_cast<int64_t>(tokens("Once upon a time there was a little girl").size()));
  auto fresh = make({.n_parallel = 1, .n_ctx = 256, .n_threads = 2});
  EXPECT_EQ(b.tokens, collect(*submit(*fresh, greedy(longer, 8))).tokens);
  // The same prompt again: everything but the last token comes from the cache.
  const Output c = collect(*submit(*engine, greedy("Once upon a time there was a little girl", 8)));
  EXPECT_EQ(c.stats.n_cached, a.stats.n_prompt - 1);
  EXPECT_EQ(c.tokens, a.tokens);
}

// The log-probabilities of a prompt's own tokens equal a log-softmax of forward()'s logits at the
// position before each; positions a cached prefix holds are computed again; max_tokens 0 scores
// the prompt and samples nothing.
TEST_F(EngineTest, PromptLogprobsEqualTheForwardPassesAndSurvivePrefixReuse) {
  const model::Model& m = *owl::testing::stories().model;
  const std::vector<int32_t> prompt = tokens("Once upon a time there was a little girl named Lily");
  const int64_t from = 5;
  auto ctx = model::make_context(m, {.n_ctx = 64, .n_seq = 1, .n_batch = 64, .n_threads = 2});
  ASSERT_TRUE(ctx.ok());
  model::Batch b;
  for (size_t i = 0; i < prompt.size(); ++i) b.add(prompt[i], static_cast<int32_t>(i), 0, true);
  const auto n_vocab = static_cast<size_t>(m.config.n_vocab);
  std::vector<float> logits(prompt.size() * n_vocab);
  ASSERT_TRUE(model::forward(m, b, **ctx, logits.data()).ok());
  std::vector<double> want;
  for (size_t t = static_cast<size_t>(from); t < prompt.size(); ++t) {
    const float* row = logits.data() + (t - 1) * n_vocab;
    double mx = row[0], z = 0;
    for (size_t v = 0; v < n_vocab; ++v) mx = std::max(mx, static_cast<double>(row[v]));
    for (size_t v = 0; v < n_vocab; ++v) z += std::exp(row[v] - mx);
    want.push_back(row[prompt[t]] - mx - std::log(z));
  }
  auto engine = make({.n_parallel = 2, .n_ctx = 128, .n_threads = 2});
  for (int round = 0; round < 2; ++round) {  // the second finds the prompt cached
    SequenceRequest r;
    r.prompt = prompt;
    r.params.sampling.temperature = 0;
    r.params.max_tokens = round == 0 ? 0 : 3;
    r.prompt_logprobs_from = from;
    r.prompt_top_logprobs = 2;
    const Output out = collect(*submit(*engine, r));
    ASSERT_FALSE(out.error);
    ASSERT_EQ(out.prompt_logprobs.size(), want.size()) << "round " << round;
    for (size_t i = 0; i < want.size(); ++i) {
      EXPECT_EQ(out.prompt_logprobs[i].token, prompt[static_cast<size_t>(from) + i]);
      EXPECT_NEAR(out.prompt_logprobs[i].logprob, want[i], 1e-4) << "round " << round << " position " << i;
      ASSERT_EQ(out.prompt_logprobs[i].top.size(), 2u);
      EXPECT_GE(out.prompt_logprobs[i].top[0].logprob, out.prompt_logprobs[i].logprob - 1e-6f);
    }
    if (round == 0) {
      EXPECT_TRUE(out.tokens.empty());
      EXPECT_EQ(out.stats.n_generated, 0);
    } else {
      EXPECT_EQ(out.tokens.size(), 3u);
      EXPECT_EQ(out.stats.n_cached, from - 1);
    }
  }
}

TEST_F(EngineTest, PrefixOfARunningRequestIsCopied) {
  auto engine = make({.n_parallel = 2, .n_ctx = 256, .n_threads = 2});
  const std::string system = "Lily and Tom went to the park to play with a red ball";
  auto alone_engine = make({.n_parallel = 1, .n_ctx = 256, .n_threads = 2});
  const Output alone = collect(*submit(*alone_engine, greedy(system + " and", 12)));
  auto running = submit(*engine, greedy(system, 150));
  Event e;
  ASSERT_TRUE(running->pop(e, 30s));  // its prompt is in the cache now
  const Output b = collect(*submit(*engine, greedy(system + " and", 12)));
  EXPECT_EQ(b.stats.n_cached, static_cast<int64_t>(tokens(system).size()));
  EXPECT_EQ(b.tokens, alone.tokens);
  running->cancel();
  EXPECT_EQ(collect(*running).finish, FinishReason::kCancelled);
}

// KV computed under one set of adapters is never reused under another, and is reused under the same.
TEST_F(EngineTest, PrefixReuseIsKeyedByTheAdapters) {
  const model::Model& m = *owl::testing::stories().model;
  auto adapter = std::make_shared<model::Adapter>(m.config.n_layer);
  adapter->name = "zero";
  const int64_t rank = 2, n = m.config.n_embd;
  // B = 0: the adapter changes nothing but the key.
  ASSERT_TRUE(adapter->set({0, model::LinearKind::kAttnQ}, std::vector<float>(rank * n, 0.5f),
                           std::vector<float>(m.config.n_embd_q() * rank, 0.0f), rank, n, m.config.n_embd_q()).ok());
  auto with = std::make_shared<model::AdapterSet>();
  with->adapters.push_back({adapter, 1.0f});
  auto engine = make({.n_parallel = 1, .n_ctx = 256, .n_threads = 2});
  const std::string prompt = "Once upon a time there was a little girl";
  const Output base = collect(*submit(*engine, greedy(prompt, 8)));
  SequenceRequest adapted = greedy(prompt, 8);
  adapted.adapters = with;
  const Output first = collect(*submit(*engine, adapted));
  EXPECT_EQ(first.stats.n_cached, 0);       // the base model's KV is not reused
  EXPECT_EQ(first.tokens, base.tokens);     // B = 0 equals the base
  const Output again = collect(*submit(*engine, adapted));
  EXPECT_EQ(again.stats.n_cached, again.stats.n_prompt - 1);
  const Output base_again = collect(*submit(*engine, greedy(prompt, 8)));
  EXPECT_EQ(base_again.stats.n_cached, 0);
}

// A step tells how many different adapter sets its sequences ran with: the base model counts as
// one, and two sets of the same adapters at the same scales as one.
TEST_F(EngineTest, StepsTellHowManyAdapterSetsTheyMixed) {
  const model::Model& m = *owl::testing::stories().model;
  auto adapter = std::make_shared<model::Adapter>(m.config.n_layer);
  const int64_t rank = 2, n = m.config.n_embd;
  ASSERT_TRUE(adapter->set({1, model::LinearKind::kFfnUp}, std::vector<float>(rank * n, 0.25f),
                           std::vector<float>(m.config.n_ff * rank, 0.5f), rank, n, m.config.n_ff).ok());
  auto engine = make({.n_parallel = 3, .n_ctx = 256, .n_threads = 2});
  std::vector<std::shared_ptr<RequestStream>> streams;
  for (int i = 0; i < 3; ++i) {
    SequenceRequest r = greedy(kPrompts[static_cast<size_t>(i)], 48);
    if (i > 0) {  // two sets, equal but not the same object
      auto set = std::make_shared<model::AdapterSet>();
      set->adapters.push_back({adapter, 0.5f});
      r.adapters = set;
    }
    streams.push_back(submit(*engine, std::move(r)));
  }
  for (auto& s : streams) collect(*s);
  EXPECT_EQ(metrics.most_adapter_sets.load(), 2);
}

TEST_F(EngineTest, CancelledRequestsFreeTheirSlot) {
  auto engine = make({.n_parallel = 1, .n_ctx = 256, .n_threads = 2, .max_queue = 4});
  auto a = submit(*engine, greedy("Once upon a time", 250));
  auto queued = submit(*engine, greedy("The little dog", 4));
  Event e;
  ASSERT_TRUE(a->pop(e, 30s));
  a->cancel();
  const Output out = collect(*a);
  EXPECT_EQ(out.finish, FinishReason::kCancelled);
  EXPECT_LT(out.tokens.size() + 1, 250u);
  EXPECT_EQ(collect(*queued).tokens.size(), 4u);  // the slot went to the queued request
  EXPECT_TRUE(engine->wait_idle(5s));
  EXPECT_EQ(engine->gauges().running, 0);
}

TEST_F(EngineTest, FullQueueRefusesAndStopRefusesAll) {
  auto engine = make({.n_parallel = 1, .n_ctx = 256, .n_threads = 2, .max_queue = 1});
  auto a = submit(*engine, greedy("Once upon a time", 250));
  auto b = submit(*engine, greedy("Once upon a time", 250));
  auto c = std::make_shared<RequestStream>(1);
  EXPECT_EQ(engine->submit({greedy("x", 1)}, c), SubmitResult::kQueueFull);
  engine->stop(true);
  EXPECT_EQ(engine->submit({greedy("x", 1)}, c), SubmitResult::kStopping);
  EXPECT_EQ(collect(*a).finish, FinishReason::kCancelled);
  EXPECT_EQ(collect(*b).finish, FinishReason::kCancelled);
}

TEST_F(EngineTest, ContextLimitEndsWithLength) {
  auto engine = make({.n_parallel = 1, .n_ctx = 32, .n_threads = 2});
  SequenceRequest p = greedy("Once upon a time", -1);
  p.params.ignore_eos = true;
  const Output out = collect(*submit(*engine, p));
  EXPECT_EQ(out.finish, FinishReason::kLength);
  EXPECT_EQ(static_cast<int64_t>(out.tokens.size()) + out.stats.n_prompt, 33);  // the last token needs no position
}

TEST_F(EngineTest, StopStringsEndWithStopAndAreCut) {
  auto engine = make({.n_parallel = 1, .n_ctx = 128, .n_threads = 2});
  const Output full = collect(*submit(*engine, greedy("Once upon a time", 30)));
  ASSERT_GT(full.text.size(), 12u);
  SequenceRequest p = greedy("Once upon a time", 30);
  const std::string stop = full.text.substr(8, 3);
  p.params.stop = {stop};
  const Output out = collect(*submit(*engine, p));
  EXPECT_EQ(out.finish, FinishReason::kStop);
  EXPECT_EQ(out.text, full.text.substr(0, full.text.find(stop)));
}

TEST_F(EngineTest, StepTokensDefaultToTheLargerOfTheDefaultAndTheSlots) {
  // 200 slots need steps of at least 200 tokens: the default grows to them.
  EXPECT_TRUE(Engine::make(*owl::testing::stories().model, *owl::testing::stories().tokenizer, &metrics,
                           {.n_parallel = 200, .n_ctx = 16, .n_threads = 1}).ok());
  auto below = Engine::make(*owl::testing::stories().model, *owl::testing::stories().tokenizer, &metrics,
                            {.n_parallel = 8, .n_ctx = 16, .n_threads = 1, .step_tokens = 4});
  ASSERT_FALSE(below.ok());
  EXPECT_NE(below.message().find("step tokens 4 below --parallel 8"), std::string::npos) << below.message();
  auto above = Engine::make(*owl::testing::stories().model, *owl::testing::stories().tokenizer, &metrics,
                            {.n_parallel = 1, .n_ctx = 16, .n_threads = 1, .step_tokens = kMaxStepTokens + 1});
  ASSERT_FALSE(above.ok());
  EXPECT_NE(above.message().find("above the limit of 4096"), std::string::npos) << above.message();
}

// The plan for prompts waiting for their first token: with no setup each prompt gets its own
// step; with a large one, as many as fit; in between, the grouping with the least summed time
// to first token (checked against every grouping of a small case).
TEST(PromptsForStep, MinimizesTheSummedTimeToFirstToken) {
  const std::vector<int64_t> burst(16, 35);
  EXPECT_EQ(prompts_for_step(burst, 160, 0.0), 1u);
  EXPECT_EQ(prompts_for_step(burst, 160, 1000.0), 4u);  // 4 x 35 fits in 160, 5 do not
  EXPECT_EQ(prompts_for_step(burst, 160, 12.0), 3u);    // 3, 3, 3, 2, 2, 1, 1, 1
  EXPECT_EQ(prompts_for_step({200, 10}, 160, 12.0), 0u);  // the first does not fit: chunks
  EXPECT_EQ(prompts_for_step({10, 500, 10}, 160, 1000.0), 1u);  // only the run before a long one
  EXPECT_EQ(prompts_for_step({}, 160, 12.0), 0u);
  // Against brute force over the 2^(n-1) groupings of mixed lengths.
  const std::vector<int64_t> mixed = {30, 5, 60, 12, 40, 8, 25};
  for (double setup : {0.0, 3.0, 12.0, 40.0, 200.0}) {
    double best = -1;
    size_t best_first = 0;
    const size_t n = mixed.size();
    for (uint32_t cuts = 0; cuts < (1u << (n - 1)); ++cuts) {  // bit i: a step ends after prompt i
      double clock = 0, sum = 0, group = 0;
      size_t first = 0, start = 0;
      bool fits = true;
      for (size_t i = 0; i < n; ++i) {
        group += static_cast<double>(mixed[i]);
        if (i + 1 < n && !(cuts >> i & 1u)) continue;
        fits = fits && group <= 100;
        clock += setup + group;  // every prompt of the step gets its first token at its end
        sum += clock * static_cast<double>(i + 1 - start);
        if (first == 0) first = i + 1;
        start = i + 1;
        group = 0;
      }
      if (fits && (best < 0 || sum < best - 1e-9)) best = sum, best_first = first;
    }
    EXPECT_EQ(prompts_for_step(mixed, 100, setup), best_first) << "setup " << setup;
  }
}

// The step cost line through recent steps of different sizes.
TEST(StepCost, FitsSetupFromStepsOfDifferentSizes) {
  StepCost cost;
  EXPECT_EQ(cost.setup(), StepCost::kDefaultSetup);
  cost.observe(16, 0.0456);
  cost.observe(16, 0.0456);
  EXPECT_EQ(cost.setup(), StepCost::kDefaultSetup);  // one size: no line yet
  for (int64_t tokens : {1, 128, 40, 2, 105}) cost.observe(tokens, 0.020 + 0.0016 * static_cast<double>(tokens));
  EXPECT_NEAR(cost.setup(), 12.5, 1e-6);  // 20 ms a step, 1.6 ms a token
  for (int i = 0; i < 200; ++i) cost.observe(i % 2 ? 3 : 99, 0.010 + 0.0020 * (i % 2 ? 3 : 99));
  EXPECT_NEAR(cost.setup(), 5.0, 1e-3);  // recent steps outweigh old ones
}

}  // namespace
}  // namespace owl::engine
