// Eval suites: the documented form parses, and every mistake a user can make is named with its
// file, line and key.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>

#include "eval/suite.h"

namespace owl::eval {
namespace {

const std::string kModel = std::string(OWL_SOURCE_DIR) + "/models/stories260K.gguf";

std::string suite_text(const std::string& extra = "", const std::string& candidates = "") {
  return "name: t\n"
         "cases:\n"
         "  - {id: a, story: Once upon a time, expected: Lily}\n"
         "  - {id: b, story: Lily and Tom, expected: park}\n"
         "prompt: \"{{story}}\"\n"
         "scorers: [{type: exact, normalize: [trim]}]\n" +
         extra +
         (candidates.empty() ? "candidates:\n  - model: " + kModel + "\n    quantize: [q8_0, q4_0]\n" : candidates);
}

std::string error_of(const std::string& yaml) {
  auto s = parse_suite(yaml, "suite.yaml", "");
  return s ? std::string("(parsed)") : s.message();
}

TEST(EvalSuite, TheDocumentedFormParses) {
  auto s = parse_suite(suite_text("mode: completion\ntemperature: 0\nmax_tokens: 8\nstop: [\"\\n\"]\nthresholds: {pass_rate: 0.8}\nrank_by: size\n",
                                  "candidates:\n  - model: " + kModel + "\n    quantize: [q8_0, q4_0]\n  - model: " + kModel +
                                      "\n    adapters: [demo-adapter.gguf]\n"),
                       "suite.yaml", "/x");
  ASSERT_TRUE(s.ok()) << s.message();
  EXPECT_EQ(s->name, "t");
  ASSERT_EQ(s->cases.size(), 2u);
  EXPECT_EQ(s->cases[0].id, "a");
  EXPECT_EQ(s->cases[0].fields["expected"], "Lily");
  ASSERT_EQ(s->candidates.size(), 4u);  // the model, two quantizations, the adapter
  EXPECT_EQ(s->candidates[0].id, "stories260K");
  EXPECT_EQ(s->candidates[1].id, "stories260K:q8_0");
  EXPECT_EQ(s->candidates[2].id, "stories260K:q4_0");
  EXPECT_EQ(s->candidates[3].id, "stories260K+demo-adapter");
  EXPECT_EQ(s->candidates[3].adapter, "/x/demo-adapter.gguf");
  EXPECT_EQ(s->max_tokens, 8);
  EXPECT_EQ(s->stop, std::vector<std::string>{"\n"});
  EXPECT_DOUBLE_EQ(*s->thresholds.pass_rate, 0.8);
  auto prompt = s->render_prompt(s->cases[1]);
  ASSERT_TRUE(prompt.ok());
  EXPECT_EQ(*prompt, "Lily and Tom");
}

TEST(EvalSuite, CasesFromJsonlAndHostedCandidates) {
  const auto dir = std::filesystem::temp_directory_path() / "owl-suite-test";
  std::filesystem::create_directories(dir);
  std::ofstream(dir / "cases.jsonl") << "{\"id\": 1, \"q\": \"2+2\", \"expected\": 4}\n\n{\"id\": 2, \"q\": \"3+3\", \"expected\": 6, "
                                        "\"scorers\": [{\"type\": \"numeric\", \"tolerance\": 0.5}]}\n";
  const std::string yaml = "cases: cases.jsonl\nprompt: \"{{q}} =\"\nmode: chat\nsystem: Answer with a number.\n"
                           "scorers: [{type: contains}]\ncandidates:\n  - base_url: http://127.0.0.1:9/v1\n    model: big\n"
                           "    api_key_env: BIG_KEY\n    price: {input_per_mtok: 0.15, output_per_mtok: 0.6}\n";
  auto s = parse_suite(yaml, "suite.yaml", dir.string());
  ASSERT_TRUE(s.ok()) << s.message();
  ASSERT_EQ(s->cases.size(), 2u);
  EXPECT_EQ(s->cases[0].id, "1");
  EXPECT_EQ(s->cases[1].where, "cases.jsonl:3");
  ASSERT_EQ(s->cases[1].scorers.size(), 1u);
  EXPECT_EQ(s->scorers_of(s->cases[1])[0].type, ScorerType::kNumeric);
  EXPECT_EQ(s->scorers_of(s->cases[0])[0].type, ScorerType::kContains);
  ASSERT_EQ(s->candidates.size(), 1u);
  ASSERT_FALSE(s->candidates[0].local());
  EXPECT_EQ(s->candidates[0].id, "big");
  EXPECT_DOUBLE_EQ(s->candidates[0].hosted->price.output_per_mtok, 0.6);
  EXPECT_EQ(s->mode, Mode::kChat);

  std::ofstream(dir / "bad.jsonl") << "{\"id\": 1, \"q\": \"x\", \"expected\": 1}\n{\"id\": 2, \"q\": \n";
  EXPECT_NE(error_of("cases: " + (dir / "bad.jsonl").string() + "\nprompt: \"{{q}}\"\nscorers: [{type: exact}]\ncandidates: [{model: m.gguf}]\n")
                .find("bad.jsonl:2: not a JSON object"),
            std::string::npos);
  std::filesystem::remove_all(dir);
}

TEST(EvalSuite, MistakesNameTheFileLineAndKey) {
  struct Case {
    std::string yaml, want;
  };
  const std::vector<Case> cases = {
      {suite_text("temprature: 0\n"), "suite.yaml:7: temprature: unknown key"},
      {suite_text("max_tokens: -3\n"), "max_tokens: -3 out of range"},
      {suite_text("mode: batch\n"), "mode: 'batch' is not a mode"},
      {suite_text("rank_by: speed\n"), "rank_by: 'speed' is not one of size, memory, cost, latency"},
      {suite_text("thresholds: {pass_rte: 0.9}\n"), "thresholds.pass_rte: unknown threshold"},
      {suite_text("thresholds: {pass_rate: 1.5}\n"), "thresholds.pass_rate: 1.5 out of range 0..1"},
      {suite_text("thresholds: {scores: {rouge: 0.5}}\n"), "no scorer is named 'rouge'"},
      {suite_text("", "candidates:\n  - model: m.gguf\n    quantize: [q3]\n"), "'q3' is not a type owl quantize writes"},
      {suite_text("", "candidates:\n  - model: m.gguf\n  - model: m.gguf\n"), "the candidate 'm' appears twice"},
      {suite_text("", "candidates:\n  - base_url: ftp://x\n    model: y\n"), "is not an http:// or https:// URL"},
      {suite_text("", "candidates:\n  - base_url: http://x/v1\n    model: y\n    quantize: [q4_0]\n"), "applies to local models only"},
      {suite_text("", "candidates: []\n"), "expected a list of one or more candidates"},
      {"cases: [{id: a, x: 1, expected: 1}, {id: a, x: 2, expected: 2}]\nprompt: \"{{x}}\"\nscorers: [{type: exact}]\ncandidates: [{model: m.gguf}]\n",
       "a second case with id 'a'"},
      {"cases: [{id: a, story: s}]\nprompt: \"{{story}}\"\nscorers: [{type: exact}]\ncandidates: [{model: m.gguf}]\n",
       "case 'a' has no field 'expected' for the exact scorer"},
      {"cases: [{id: a, expected: s}]\nprompt: \"{{story}}\"\nscorers: [{type: exact}]\ncandidates: [{model: m.gguf}]\n",
       "case 'a' has no field 'story' that the prompt uses"},
      {"cases: [{id: a, x: s, expected: y}]\nprompt: \"{{x}}\"\nscorers: [{type: exact, normalise: [trim]}]\ncandidates: [{model: m.gguf}]\n",
       "suite.yaml:3: scorers[0]: unknown key 'normalise'"},
      {"cases: [{id: a, x: s, expected: y}]\nprompt: \"{{x}}\"\nscorers: [{type: bleu}]\ncandidates: [{model: m.gguf}]\n",
       "'bleu' is not a scorer"},
      {"cases: [{id: a, x: s, expected: y}]\nprompt: \"{{x}}\"\nscorers: [{type: choice}]\ncandidates: [{model: m.gguf}]\n",
       "the choice scorer needs labels"},
      {"cases: [{id: a, x: s}]\nprompt: \"{{x}\"\nscorers: [{type: json_valid}]\ncandidates: [{model: m.gguf}]\n", "suite.yaml:2: prompt:"},
      {"cases: [{id: a, x: s}]\nprompt: \"{{x}}\"\nsystem: be brief\nscorers: [{type: json_valid}]\ncandidates: [{model: m.gguf}]\n",
       "a system message needs mode: chat"},
      {"cases: missing.jsonl\nprompt: \"{{x}}\"\nscorers: [{type: json_valid}]\ncandidates: [{model: m.gguf}]\n",
       "missing.jsonl: cannot open the cases file"},
      {"cases: [{id: a}\nprompt: x\n", "suite.yaml:"},
      {"- just\n- a list\n", "expected a mapping"},
      {suite_text("max_tokens: \xff\xff\n"), "suite.yaml: not UTF-8 text"},
  };
  for (const Case& c : cases) {
    const std::string got = error_of(c.yaml);
    EXPECT_NE(got.find(c.want), std::string::npos) << "want: " << c.want << "\ngot: " << got << "\nfrom:\n" << c.yaml;
  }
}

}  // namespace
}  // namespace owl::eval
