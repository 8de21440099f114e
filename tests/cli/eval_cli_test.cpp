// owl eval as a user runs it: the shipped example prints a verdict and writes report.json and
// report.html; a hosted candidate (a second owl serving the same model on loopback) answers as
// the local one does and is priced; an upstream that is down fails alone; a broken suite names
// the line.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>

#include <nlohmann/json.hpp>

#include "support/owl_process.h"
#include "support/run_owl.h"

namespace {

using owl::testing::OwlProcess;
using owl::testing::run_owl;
using Json = nlohmann::json;
using namespace std::chrono_literals;

const std::string kModel = std::string(OWL_SOURCE_DIR) + "/models/stories260K.gguf";

class EvalCli : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = std::filesystem::temp_directory_path() / ("owl-eval-cli-" + std::to_string(::getpid()));
    std::filesystem::remove_all(dir_);
    std::filesystem::create_directories(dir_);
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }
  std::string path(const std::string& name) const { return (dir_ / name).string(); }
  Json read_json(const std::string& name) const {
    std::ifstream in(path(name));
    return Json::parse(in);
  }
  std::filesystem::path dir_;
};

TEST_F(EvalCli, TheShippedExampleNamesTheSmallestPassingQuantization) {
  const auto r = run_owl("eval " + std::string(OWL_SOURCE_DIR) + "/examples/eval/stories/suite.yaml -q -t 2 --cache-dir " +
                         path("cache") + " -o " + path("report.json") + " --html " + path("report.html"));
  ASSERT_EQ(r.exit_code, 0) << r.out;
  EXPECT_NE(r.out.find("suite story-continuation: 25 cases"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("verdict: stories260K:"), std::string::npos) << r.out;
  const Json j = read_json("report.json");
  EXPECT_EQ(j["suite"], "story-continuation");
  ASSERT_EQ(j["candidates"].size(), 5u);
  for (const char* key : {"id", "model", "quant", "adapter", "passed", "total", "pass_rate", "ci_low", "ci_high", "scores",
                          "latency_p50_ms", "latency_p95_ms", "tokens_per_s", "peak_rss_bytes", "size_bytes", "cost_usd",
                          "passes", "why"}) {
    EXPECT_TRUE(j["candidates"][0].contains(key)) << key;
  }
  EXPECT_EQ(j["candidates"][0]["total"], 25);
  EXPECT_EQ(j["cases"].size(), 5u * 25u);
  for (const char* key : {"candidate", "case", "repeat", "output", "scores", "passed", "confidence"}) {
    EXPECT_TRUE(j["cases"][0].contains(key)) << key;
  }
  EXPECT_TRUE(j["cases"][0]["confidence"]["mean_logprob"].is_number());
  EXPECT_TRUE(j["verdict"]["smallest_passing"].is_string());
  EXPECT_EQ(j["verdict"]["rank_by"], "size");
  std::ifstream html(path("report.html"));
  const std::string page((std::istreambuf_iterator<char>(html)), std::istreambuf_iterator<char>());
  EXPECT_NE(page.find("<svg id=\"plot-size\""), std::string::npos);
  size_t points = 0;
  for (size_t at = page.find("class=\"point\""); at != std::string::npos; at = page.find("class=\"point\"", at + 1)) ++points;
  EXPECT_EQ(points, 2u * 5u);  // each candidate on the size and the cost plot
  // Each quantization as the first step of a cascade to the most accurate candidate.
  EXPECT_NE(page.find("<h3>stories260K:q4_0 then stories260K</h3><svg id=\"cascade-"), std::string::npos);

  // Again: all from the cache.
  const auto again = run_owl("eval " + std::string(OWL_SOURCE_DIR) + "/examples/eval/stories/suite.yaml -q --cache-dir " +
                             path("cache") + " -o " + path("again.json"));
  ASSERT_EQ(again.exit_code, 0) << again.out;
  const Json second = read_json("again.json");
  for (const Json& c : second["candidates"]) EXPECT_EQ(c["computed"], 0) << c["id"];
}

TEST_F(EvalCli, AHostedCandidateAnswersAsTheLocalModelAndADownOneFailsAlone) {
  OwlProcess upstream("serve --port 0 -t 1 -m " + kModel);
  ASSERT_TRUE(upstream.wait_for_log("listening on", 30s)) << upstream.log();
  const int port = upstream.port();
  std::ofstream(path("cases.jsonl")) << "{\"id\": \"a\", \"story\": \"Once upon a time, there was a little girl named\", \"expected\": \"Lily\"}\n"
                                        "{\"id\": \"b\", \"story\": \"Lily and Tom went to the\", \"expected\": \"park\"}\n";
  std::ofstream(path("suite.yaml")) << "cases: cases.jsonl\nprompt: \"{{story}}\"\nmax_tokens: 6\nscorers: [{type: contains}]\n"
                                       "candidates:\n  - model: " << kModel << "\n"
                                       "  - name: hosted\n    base_url: http://127.0.0.1:" << port << "/v1\n    model: stories260K\n"
                                       "    price: {input_per_mtok: 1000, output_per_mtok: 2000}\n"
                                       "  - name: down\n    base_url: http://127.0.0.1:1/v1\n    model: x\n    retries: 0\n"
                                       "thresholds: {pass_rate: 1.0}\nrank_by: cost\n";
  const auto r = run_owl("eval " + path("suite.yaml") + " -q -t 1 --cache-dir " + path("cache") + " -o " + path("r.json"));
  ASSERT_EQ(r.exit_code, 0) << r.out;
  const Json j = read_json("r.json");
  ASSERT_EQ(j["candidates"].size(), 3u);
  EXPECT_EQ(j["candidates"][1]["id"], "hosted");
  EXPECT_EQ(j["candidates"][1]["passed"], 2) << j["candidates"][1].dump();
  EXPECT_GT(j["candidates"][1]["cost_usd"].get<double>(), 0.0);
  EXPECT_FALSE(j["candidates"][2]["passes"]);
  EXPECT_TRUE(j["candidates"][2].contains("failure")) << j["candidates"][2].dump();
  std::map<std::string, std::string> local;
  for (const Json& c : j["cases"]) {
    if (c["candidate"] == "stories260K") local[c["case"]] = c["output"];
  }
  for (const Json& c : j["cases"]) {
    if (c["candidate"] == "hosted") {
      EXPECT_EQ(c["output"], local[c["case"]]) << c["case"];
    }
  }
  EXPECT_NE(r.out.find("down"), std::string::npos);
}

TEST_F(EvalCli, MistakesAreNamedAndNothingPassingExitsThree) {
  std::ofstream(path("bad.yaml")) << "cases: [{id: a, x: 1, expected: y}]\nprompt: \"{{x}}\"\nscorers: [{type: exact}]\n"
                                     "candidates: [{model: " << kModel << "}]\nthresholds: {pass_rat: 1}\n";
  auto r = run_owl("eval " + path("bad.yaml") + " --cache-dir " + path("cache"));
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.out.find("bad.yaml:5: thresholds.pass_rat: unknown threshold"), std::string::npos) << r.out;
  r = run_owl("eval " + path("missing.yaml"));
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.out.find("missing.yaml"), std::string::npos) << r.out;
  std::ofstream(path("strict.yaml")) << "cases: [{id: a, x: \"Once upon\", expected: \"zebra\"}]\nprompt: \"{{x}}\"\nmax_tokens: 3\n"
                                        "scorers: [{type: contains}]\ncandidates: [{model: " << kModel << "}]\nthresholds: {pass_rate: 1}\n";
  r = run_owl("eval " + path("strict.yaml") + " -q --cache-dir " + path("cache"));
  EXPECT_EQ(r.exit_code, 3) << r.out;
  EXPECT_NE(r.out.find("verdict: none passes; the nearest miss is stories260K"), std::string::npos) << r.out;
}

}  // namespace
