// owl eval's runner on the embedded model: batching does not change a greedy answer, choice
// scores are the label tokens' log-probabilities, the cache makes a re-run compute nothing, a
// candidate that cannot load fails alone; and the report's statistics and verdict.
#include <gtest/gtest.h>

#include <atomic>
#include <cmath>
#include <filesystem>
#include <fstream>

#include "engine/session.h"
#include "eval/report.h"
#include "eval/runner.h"
#include "eval/suite.h"
#include "model/forward.h"
#include "support/stories.h"

namespace owl::eval {
namespace {

const std::string kModel = std::string(OWL_SOURCE_DIR) + "/models/stories260K.gguf";
const std::string kAdapter = std::string(OWL_SHARED_DIR) + "/reference/lora/stories260K.lora-r4-all.gguf";
const std::vector<std::string> kStories = {
    "Once upon a time, there was a little girl named", "Lily and Tom went to the", "One day, a little boy named Tim saw a big",
    "The sun was shining and the birds were", "Once upon a time", "The little dog", "One day, a big bird", "The sun was hot and",
    "Tom had a red ball. He", "Mom said, \"Let's go to the", "There was a big tree in the", "She wanted to play with her"};

class EvalRunner : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = std::filesystem::temp_directory_path() / ("owl-eval-runner-" + std::to_string(::getpid()));
    std::filesystem::remove_all(dir_);
    std::filesystem::create_directories(dir_);
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }

  Suite suite(const std::string& body) {
    auto s = parse_suite(body, "suite.yaml", dir_.string());
    EXPECT_TRUE(s.ok()) << s.message();
    return std::move(*s);
  }
  std::string cases_yaml() {
    std::string out = "cases:\n";
    for (size_t i = 0; i < kStories.size(); ++i) {
      out += "  - {id: s" + std::to_string(i) + ", story: " + nlohmann::json(kStories[i]).dump() + ", expected: x}\n";
    }
    return out;
  }
  RunOptions options() {
    RunOptions o;
    o.cache_dir = (dir_ / "cache").string();
    o.parallel = 4;
    o.n_threads = 2;
    return o;
  }
  // What `owl run --temp 0 -n N` prints for `prompt` (its Session, one sequence alone).
  std::string greedy_alone(const std::string& prompt, int64_t n) {
    const auto& st = owl::testing::stories();
    auto ctx = model::make_context(*st.model, {.n_ctx = 256, .n_seq = 1, .n_threads = 2});
    EXPECT_TRUE(ctx.ok());
    engine::Session session(*st.model, *st.tokenizer, **ctx);
    engine::SequenceRequest r;
    r.prompt = st.tokenizer->tokenize(prompt, {.add_special = true, .parse_special = true});
    r.params.sampling.temperature = 0;
    r.params.max_tokens = n;
    std::string out;
    auto stats = session.generate(r, [&](std::string_view piece, const sample::Sampled&) {
      out += piece;
      return true;
    });
    EXPECT_TRUE(stats.ok());
    return out;
  }
  std::filesystem::path dir_;
};

TEST_F(EvalRunner, BatchedGreedyOutputsAreThoseOfOneSequenceAlone) {
  const Suite s = suite(cases_yaml() + "prompt: \"{{story}}\"\nmax_tokens: 12\nscorers: [{type: json_valid}]\n"
                                       "candidates: [{model: " + kModel + "}]\n");
  auto runs = run_suite(s, options());
  ASSERT_TRUE(runs.ok()) << runs.message();
  ASSERT_EQ(runs->size(), 1u);
  const CandidateRun& run = runs->front();
  ASSERT_TRUE(run.failure.empty()) << run.failure;
  ASSERT_EQ(run.cases.size(), kStories.size());
  EXPECT_EQ(run.computed, static_cast<int64_t>(kStories.size()));
  for (const CaseResult& r : run.cases) {
    EXPECT_EQ(r.output, greedy_alone(kStories[r.case_index], 12)) << kStories[r.case_index];
    EXPECT_EQ(r.completion_tokens, 12);
    ASSERT_TRUE(r.confidence.mean_logprob.has_value());
    EXPECT_LE(*r.confidence.min_logprob, *r.confidence.mean_logprob);
    EXPECT_LE(*r.confidence.mean_logprob, 0.0);
  }

  // Run again: everything comes from the cache, the same.
  auto again = run_suite(s, options());
  ASSERT_TRUE(again.ok());
  EXPECT_EQ(again->front().computed, 0);
  for (size_t i = 0; i < run.cases.size(); ++i) {
    EXPECT_EQ(again->front().cases[i].output, run.cases[i].output);
    EXPECT_TRUE(again->front().cases[i].cached);
    EXPECT_DOUBLE_EQ(*again->front().cases[i].confidence.mean_logprob, *run.cases[i].confidence.mean_logprob);
  }
  RunOptions fresh = options();
  fresh.use_cache = false;
  auto recomputed = run_suite(s, fresh);
  ASSERT_TRUE(recomputed.ok());
  EXPECT_EQ(recomputed->front().computed, static_cast<int64_t>(kStories.size()));
}

// Interrupted (Ctrl-C) after a few cases: only finished cases are reported, they are cached, and
// the same run again computes just the rest.
TEST_F(EvalRunner, AnInterruptedRunKeepsWhatFinishedAndResumes) {
  const Suite s = suite(cases_yaml() + "prompt: \"{{story}}\"\nmax_tokens: 24\nscorers: [{type: length, min: 0}]\n"
                                       "candidates: [{model: " + kModel + "}]\n");
  std::atomic<bool> stop{false};
  RunOptions o = options();
  o.parallel = 1;
  o.interrupted = &stop;
  o.on_progress = [&](const Candidate&, size_t done, size_t, size_t) {
    if (done >= 3) stop = true;
  };
  auto first = run_suite(s, o);
  ASSERT_TRUE(first.ok()) << first.message();
  const size_t kept = first->front().cases.size();
  EXPECT_GE(kept, 3u);
  EXPECT_LT(kept, kStories.size());
  for (const CaseResult& r : first->front().cases) EXPECT_TRUE(r.error.empty()) << r.error;
  const Report report = summarize(s, *first);
  EXPECT_FALSE(report.candidates[0].passes);
  EXPECT_NE(report.candidates[0].why.find("interrupted"), std::string::npos);
  auto second = run_suite(s, options());
  ASSERT_TRUE(second.ok());
  EXPECT_EQ(second->front().cases.size(), kStories.size());
  EXPECT_EQ(second->front().computed, static_cast<int64_t>(kStories.size() - kept));
}

TEST_F(EvalRunner, ChoiceScoresAreTheLabelTokensLogProbabilities) {
  const Suite s = suite("cases:\n  - {id: a, story: \"Once upon a time, there was a little girl named\", expected: \" Lily\", "
                        "choices: [\" Tom\", \" Lily\", \" big dog\"]}\n"
                        "prompt: \"{{story}}\"\nscorers: [{type: choice}]\ncandidates: [{model: " + kModel + "}]\n");
  auto runs = run_suite(s, options());
  ASSERT_TRUE(runs.ok()) << runs.message();
  const CaseResult& r = runs->front().cases.at(0);
  ASSERT_TRUE(r.error.empty()) << r.error;
  EXPECT_EQ(r.output, " Lily");
  EXPECT_TRUE(r.passed);
  ASSERT_EQ(r.label_logprobs.size(), 3u);
  // Each label's sum, from one forward pass over prompt + label.
  const auto& st = owl::testing::stories();
  const auto n_vocab = static_cast<size_t>(st.model->config.n_vocab);
  const std::string prompt = "Once upon a time, there was a little girl named";
  const size_t n_prompt = st.tokenizer->tokenize(prompt, {.add_special = true, .parse_special = true}).size();
  double best = -1e30, second = -1e30;
  for (const auto& [label, got] : r.label_logprobs) {
    const std::vector<int32_t> ids = st.tokenizer->tokenize(prompt + label, {.add_special = true, .parse_special = true});
    auto ctx = model::make_context(*st.model, {.n_ctx = 64, .n_seq = 1, .n_batch = 64, .n_threads = 2});
    ASSERT_TRUE(ctx.ok());
    model::Batch b;
    for (size_t i = 0; i < ids.size(); ++i) b.add(ids[i], static_cast<int32_t>(i), 0, true);
    std::vector<float> logits(ids.size() * n_vocab);
    ASSERT_TRUE(model::forward(*st.model, b, **ctx, logits.data()).ok());
    double want = 0;
    for (size_t t = n_prompt; t < ids.size(); ++t) {
      const float* row = logits.data() + (t - 1) * n_vocab;
      double mx = row[0], z = 0;
      for (size_t v = 0; v < n_vocab; ++v) mx = std::max(mx, static_cast<double>(row[v]));
      for (size_t v = 0; v < n_vocab; ++v) z += std::exp(row[v] - mx);
      want += row[ids[t]] - mx - std::log(z);
    }
    EXPECT_NEAR(got, want, 1e-3) << label;
    if (want > best) second = best, best = want;
    else if (want > second) second = want;
  }
  EXPECT_EQ(r.label_logprobs.front().first, " Lily");  // sorted, best first
  ASSERT_TRUE(r.confidence.margin.has_value());
  EXPECT_NEAR(*r.confidence.margin, best - second, 1e-3);
}

TEST_F(EvalRunner, QuantizationsAndAdaptersRunAndABrokenCandidateFailsAlone) {
  const Suite s = suite(cases_yaml() + "prompt: \"{{story}}\"\nmax_tokens: 6\nscorers: [{type: length, min: 1}]\n"
                                       "candidates:\n  - model: " + kModel + "\n    quantize: [q8_0]\n    adapters: [none, " + kAdapter +
                        "]\n  - model: missing.gguf\nthresholds: {pass_rate: 0.9}\n");
  ASSERT_EQ(s.candidates.size(), 5u);
  auto runs = run_suite(s, options());
  ASSERT_TRUE(runs.ok()) << runs.message();
  ASSERT_EQ(runs->size(), 5u);
  const auto& base = (*runs)[0];
  const auto& adapted = (*runs)[1];
  const auto& q8 = (*runs)[2];
  for (size_t i = 0; i < 4; ++i) EXPECT_TRUE((*runs)[i].failure.empty()) << (*runs)[i].candidate.id << ": " << (*runs)[i].failure;
  EXPECT_NE((*runs)[4].failure.find("missing.gguf: no such model file"), std::string::npos) << (*runs)[4].failure;
  EXPECT_LT(q8.size_bytes, base.size_bytes);
  EXPECT_TRUE(std::filesystem::exists(q8.path));
  size_t differ = 0;
  for (size_t i = 0; i < base.cases.size(); ++i) differ += base.cases[i].output != adapted.cases[i].output;
  EXPECT_GT(differ, base.cases.size() / 2) << "the adapter changes the answers";

  const Report report = summarize(s, *runs);
  ASSERT_EQ(report.candidates.size(), 5u);
  EXPECT_FALSE(report.candidates[4].passes);
  EXPECT_NE(report.candidates[4].why.find("failed:"), std::string::npos);
  // Every answer is one token or more: all pass; the smallest file wins.
  EXPECT_TRUE(report.candidates[0].passes) << report.candidates[0].why;
  EXPECT_TRUE(report.verdict.smallest_passing.find(":q8_0") != std::string::npos) << report.verdict.why;
  const std::string table = report_table(s, report);
  EXPECT_NE(table.find("verdict: "), std::string::npos);
  const auto j = report_json(s, report, *runs);
  EXPECT_EQ(j["candidates"].size(), 5u);
  EXPECT_EQ(j["cases"].size(), 4 * kStories.size());
  EXPECT_EQ(j["verdict"]["smallest_passing"], report.verdict.smallest_passing);
}

// A judge model reads the rubric (with the output filled in) and its answer is parsed: here the
// embedded model as the judge, whose greedy answer has a first word but no number.
TEST_F(EvalRunner, AJudgeModelScoresEachOutput) {
  const Suite s = suite("cases: [{id: a, story: \"Once upon a time\", expected: x}]\nprompt: \"{{story}}\"\nmax_tokens: 4\n"
                        "scorers:\n  - {type: judge, model: " + kModel + ", rubric: \"{{output}} Lily\", parse: \"([a-z]+)\", max_tokens: 4}\n"
                        "  - {type: judge, model: " + kModel + ", rubric: \"{{output}}\", parse: \"(7)\", name: strict}\n"
                        "candidates: [{model: " + kModel + "}]\n");
  auto runs = run_suite(s, options());
  ASSERT_TRUE(runs.ok()) << runs.message();
  const CaseResult& r = runs->front().cases.at(0);
  ASSERT_EQ(r.scores.size(), 2u);
  EXPECT_TRUE(r.scores[0].detail.starts_with("judge said '")) << r.scores[0].detail;
  EXPECT_EQ(r.scores[0].value, 0.0);  // a word read as a number is 0
  EXPECT_TRUE(r.scores[1].detail.starts_with("the judge's answer has no score")) << r.scores[1].detail;
  EXPECT_FALSE(r.passed);
}

// Hand-made runs: the statistics, the paired comparison and the verdict.
TEST(EvalReport, StatisticsPairedComparisonAndVerdict) {
  auto parsed = parse_suite("cases: [{id: a, x: 1, expected: y}]\nprompt: \"{{x}}\"\nscorers: [{type: exact}]\n"
                            "candidates: [{model: a.gguf}, {model: b.gguf}, {model: c.gguf}]\nthresholds: {pass_rate: 0.7}\n",
                            "suite.yaml", "");
  ASSERT_TRUE(parsed.ok()) << parsed.message();
  Suite s = std::move(*parsed);
  Case proto = s.cases[0];
  s.cases.clear();
  for (int i = 0; i < 10; ++i) {
    proto.id = "c" + std::to_string(i);
    s.cases.push_back(proto);
  }
  // a passes 8 of 10 (0-7), b passes 9 (1-9): b newly fails none of... c0 only; c passes 5.
  auto make = [&](size_t ci, uint64_t size, auto pass) {
    CandidateRun r;
    r.candidate = s.candidates[ci];
    r.size_bytes = size;
    for (size_t i = 0; i < 10; ++i) {
      CaseResult c;
      c.case_index = i;
      c.passed = pass(i);
      c.scores = {Score{.value = c.passed ? 1.0 : 0.0, .passed = c.passed}};
      c.latency_ms = 10.0 * static_cast<double>(i + 1);
      r.cases.push_back(c);
    }
    return r;
  };
  std::vector<CandidateRun> runs = {make(0, 300, [](size_t i) { return i < 8; }), make(1, 200, [](size_t i) { return i >= 1; }),
                                    make(2, 100, [](size_t i) { return i < 5; })};
  const Report r = summarize(s, runs);
  EXPECT_EQ(r.candidates[0].passed, 8);
  EXPECT_NEAR(r.candidates[0].ci_low, 0.490, 1e-3);  // Wilson, 8 of 10
  EXPECT_NEAR(r.candidates[0].ci_high, 0.943, 1e-3);
  EXPECT_NEAR(r.candidates[0].latency_p50_ms, 55.0, 1e-9);
  EXPECT_NEAR(r.candidates[0].latency_p95_ms, 95.5, 1e-9);
  EXPECT_EQ(*r.candidates[1].newly_failed, 1);  // c0
  EXPECT_EQ(*r.candidates[1].newly_passed, 2);  // c8, c9
  EXPECT_NEAR(*r.candidates[1].mcnemar_p, 1.0, 1e-12);
  EXPECT_EQ(r.candidates[1].newly_failed_cases, std::vector<std::string>{"c0"});
  EXPECT_EQ(*r.candidates[2].newly_failed, 3);
  EXPECT_NEAR(*r.candidates[2].mcnemar_p, 0.25, 1e-12);
  EXPECT_FALSE(r.candidates[2].passes);
  EXPECT_NE(r.candidates[2].why.find("pass rate 0.500 < 0.7"), std::string::npos) << r.candidates[2].why;
  EXPECT_EQ(r.verdict.smallest_passing, "b");  // c is smaller but fails

  s.thresholds.use_lower_bound = true;  // 0.9 -> lower bound 0.596 < 0.7: none passes
  const Report strict = summarize(s, runs);
  EXPECT_TRUE(strict.verdict.smallest_passing.empty());
  EXPECT_NE(strict.verdict.why.find("none passes; the nearest miss is b"), std::string::npos) << strict.verdict.why;
  const std::string html = report_html(s, strict, runs);
  EXPECT_NE(html.find("id=\"plot-size\""), std::string::npos);
  EXPECT_EQ(html.find("http://"), std::string::npos);  // self-contained
}

}  // namespace
}  // namespace owl::eval
