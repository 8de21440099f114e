// What owl does with missing, odd or out-of-range input: errors that name the thing and the value,
// given before any work or output, and standard input where llama.cpp's tools read it.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <string>

#include <nlohmann/json.hpp>

#include "support/run_owl.h"

namespace {

namespace fs = std::filesystem;

using owl::testing::RunResult;
using owl::testing::run_owl;

const std::string kModel = std::string(OWL_SOURCE_DIR) + "/models/stories260K.gguf";

bool has(const RunResult& r, const std::string& text) { return r.out.find(text) != std::string::npos; }

// One directory per test: ctest runs the tests of this file in parallel processes.
std::string temp_dir() {
  const fs::path p = fs::temp_directory_path() /
                     (std::string("owl_input_cli_") + ::testing::UnitTest::GetInstance()->current_test_info()->name());
  fs::remove_all(p);
  fs::create_directories(p);
  return p.string();
}

TEST(InputCli, ADirectoryGivenAsATextFileIsAnError) {
  const std::string dir = temp_dir();
  for (const std::string& command : {"run -m " + kModel + " -f " + dir, "imatrix -m " + kModel + " -f " + dir +
                                     " -o " + dir + "/m.gguf", "tokenize -m " + kModel + " -f " + dir}) {
    RunResult r = run_owl(command + " < /dev/null");
    EXPECT_EQ(r.exit_code, 1) << command << "\n" << r.out;
    EXPECT_TRUE(has(r, dir + ": is a directory")) << command << "\n" << r.out;
  }
  EXPECT_FALSE(fs::exists(dir + "/m.gguf"));
}

// A file holding `text`, for redirections (run_owl's /bin/sh has no <<<).
std::string text_file(const std::string& dir, const std::string& text) {
  std::ofstream(dir + "/input.txt") << text;
  return dir + "/input.txt";
}

TEST(InputCli, PipedStandardInputIsThePrompt) {
  const std::string input = text_file(temp_dir(), "Once upon a time\n");
  RunResult piped = run_owl("run -m " + kModel + " -n 4 --temp 0 -t 1 < " + input);
  ASSERT_EQ(piped.exit_code, 0) << piped.out;
  RunResult given = run_owl("run -m " + kModel + " -n 4 --temp 0 -t 1 -p 'Once upon a time\n'");
  ASSERT_EQ(given.exit_code, 0) << given.out;
  EXPECT_EQ(piped.out.substr(0, piped.out.find("prompt:")), given.out.substr(0, given.out.find("prompt:")));
  RunResult dash = run_owl("run -m " + kModel + " -n 4 --temp 0 -t 1 -f - < " + input);
  EXPECT_EQ(dash.out.substr(0, dash.out.find("prompt:")), given.out.substr(0, given.out.find("prompt:")));
  RunResult empty = run_owl("run -m " + kModel + " < /dev/null");
  EXPECT_EQ(empty.exit_code, 1);
  EXPECT_TRUE(has(empty, "owl run: no text: standard input is empty")) << empty.out;
}

TEST(InputCli, TokenizeReadsStandardInputAndRefusesNoText) {
  const std::string input = text_file(temp_dir(), "hello\n");
  RunResult piped = run_owl("tokenize -m " + kModel + " < " + input);
  RunResult dash = run_owl("tokenize -m " + kModel + " -f - < " + input);
  RunResult given = run_owl("tokenize -m " + kModel + " -p 'hello\n'");
  ASSERT_EQ(given.exit_code, 0) << given.out;
  EXPECT_EQ(piped.out, given.out);
  EXPECT_EQ(dash.out, given.out);
  RunResult none = run_owl("tokenize -m " + kModel + " < /dev/null");
  EXPECT_EQ(none.exit_code, 1);
  EXPECT_TRUE(has(none, "no text")) << none.out;
}

TEST(InputCli, LogitsChecksTheContextAndTheOutputBeforeTheWork) {
  const std::string dir = temp_dir();
  RunResult negative = run_owl("logits -m " + kModel + " -p hi -n -3 -o " + dir + "/l.json");
  EXPECT_NE(negative.exit_code, 0);
  EXPECT_TRUE(has(negative, "--n-greedy: Value -3 not in range")) << negative.out;
  RunResult huge = run_owl("logits -m " + kModel + " -p hi -n 100000 -o " + dir + "/l.json");
  EXPECT_EQ(huge.exit_code, 1);
  EXPECT_TRUE(has(huge, "-n 100000 greedy tokens need 100003 positions, more than the context of 2048")) << huge.out;
  RunResult to_dir = run_owl("logits -m " + kModel + " -p hi -n 2 -o " + dir);
  EXPECT_EQ(to_dir.exit_code, 1);
  EXPECT_TRUE(has(to_dir, "-o " + dir + ": is a directory")) << to_dir.out;
  RunResult no_dir = run_owl("logits -m " + kModel + " -p hi -n 2 -o " + dir + "/none/l.json");
  EXPECT_EQ(no_dir.exit_code, 1);
  EXPECT_TRUE(has(no_dir, "directory " + dir + "/none does not exist")) << no_dir.out;
  std::ofstream(dir + "/prompt.txt") << "Once upon a time";
  RunResult file = run_owl("logits -m " + kModel + " -f " + dir + "/prompt.txt -n 2 -o " + dir + "/l.json");
  ASSERT_EQ(file.exit_code, 0) << file.out;
  std::ifstream in(dir + "/l.json");
  EXPECT_EQ(nlohmann::json::parse(in)["prompt"], "Once upon a time");
}

TEST(InputCli, BenchRefusesMoreTokensThanTheContextBeforePrinting) {
  RunResult r = run_owl("bench -m " + kModel + " -p 100000 -n 0");
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_TRUE(has(r, "owl bench: " + kModel + ": n_prompt 100000 is more than the model's context of 2048")) << r.out;
  EXPECT_FALSE(has(r, "| model |")) << r.out;
  EXPECT_FALSE(has(r, "bench: bench:")) << r.out;
}

TEST(InputCli, OptionsOutsideTheirRangeAreRefusedBeforeLoading) {
  const std::pair<std::string, std::string> cases[] = {
      {"run -m /nonexistent.gguf -p x --temp -1", "temperature -1 outside [0, 2]"},
      {"run -m /nonexistent.gguf -p x --top-k -2", "top_k -2"},
      {"run -m /nonexistent.gguf -p x --min-p 2", "min_p 2 outside [0, 1]"},
      {"run -m /nonexistent.gguf -p x -t -3", "--threads: Value -3 not in range"},
      {"run -m /nonexistent.gguf -p x -c -5", "--ctx-size: Value -5 not in range"},
      {"run -m /nonexistent.gguf -p x -n -7", "--n-predict: Value -7 not in range"},
      {"run -m /nonexistent.gguf -p x -s -9", "--seed: Value -9 not in range"},
      {"compare /nonexistent.gguf /nonexistent.gguf -f - --chunks -1", "--chunks: Value -1 not in range"},
      {"bench -m /nonexistent.gguf -r 0", "--repetitions: Value 0 not in range"},
  };
  for (const auto& [command, expected] : cases) {
    RunResult r = run_owl(command + " < /dev/null");
    EXPECT_NE(r.exit_code, 0) << command;
    EXPECT_TRUE(has(r, expected)) << command << "\n" << r.out;
    EXPECT_FALSE(has(r, "/nonexistent.gguf: cannot open")) << command << "\n" << r.out;
  }
}

TEST(InputCli, GpuLayersAreAcceptedAndReportedOnce) {
  RunResult r = run_owl("run -m " + kModel + " -p hi -n 2 -t 1 -ngl 99");
  ASSERT_EQ(r.exit_code, 0) << r.out;
  EXPECT_TRUE(has(r, "--n-gpu-layers has no effect")) << r.out;
}

TEST(InputCli, HelpAndUnknownCommands) {
  RunResult help = run_owl("help");
  EXPECT_EQ(help.exit_code, 0);
  EXPECT_TRUE(has(help, "quantize")) << help.out;
  RunResult sub = run_owl("help run");
  EXPECT_EQ(sub.exit_code, 0);
  EXPECT_TRUE(has(sub, "--n-predict")) << sub.out;
  RunResult unknown = run_owl("frobnicate");
  EXPECT_EQ(unknown.exit_code, 1);
  EXPECT_TRUE(has(unknown, "unknown command 'frobnicate'")) << unknown.out;
  EXPECT_TRUE(has(unknown, "  tokenize")) << unknown.out;
}

}  // namespace

namespace {

TEST(InputCli, SynthAndExportCheckTheirOutputFirst) {
  const std::string shape = "synth --n-embd 64 --n-layer 1 --n-head 2 --n-head-kv 2 --n-ff 64 --type f32 -o ";
  auto missing_dir = owl::testing::run_owl(shape + "/nonexistent-owl-dir/x.gguf");
  EXPECT_EQ(missing_dir.exit_code, 1);
  EXPECT_NE(missing_dir.out.find("directory /nonexistent-owl-dir does not exist"), std::string::npos) << missing_dir.out;
  auto directory = owl::testing::run_owl(shape + "/tmp");
  EXPECT_EQ(directory.exit_code, 1);
  EXPECT_NE(directory.out.find("is a directory"), std::string::npos) << directory.out;
  const std::string file = "/tmp/owl_export_onto_file_" + std::to_string(::getpid());
  std::ofstream(file) << "not a directory";
  auto onto_file = owl::testing::run_owl("export " + kModel + " -o " + file);
  std::remove(file.c_str());
  EXPECT_EQ(onto_file.exit_code, 1);
  EXPECT_NE(onto_file.out.find("a file is there, not a directory"), std::string::npos) << onto_file.out;
}

}  // namespace

namespace {

TEST(InputCli, RunWithAJsonSchemaPrintsValidJson) {
  const std::string dir = temp_dir();
  {
    std::ofstream(dir + "/schema.json") << R"({"type":"object","properties":{"name":{"type":"string","maxLength":10},
      "size":{"enum":["small","big"]},"n":{"type":"integer","minimum":1,"maximum":9}},"required":["name","size","n"]})";
    std::ofstream(dir + "/bad.json") << R"({"type":"object","properties":{"a":{"type":"string","contentEncoding":"base64"}}})";
    std::ofstream(dir + "/yes.gbnf") << "root ::= (\"yes\" | \"no\") \"!\"\n";
  }
  for (int seed = 1; seed <= 3; ++seed) {
    RunResult r = run_owl("run -m " + kModel + " -p Once --no-echo --temp 1 -n 200 -s " + std::to_string(seed) +
                          " --json-schema " + dir + "/schema.json");
    ASSERT_EQ(r.exit_code, 0) << r.out;
    const std::string text = r.out.substr(0, r.out.find("\nprompt: "));  // the speed line follows on stderr
    const nlohmann::json doc = nlohmann::json::parse(text, nullptr, false);
    ASSERT_FALSE(doc.is_discarded()) << text;
    EXPECT_TRUE(doc["name"].is_string() && doc["name"].get<std::string>().size() <= 10) << r.out;
    EXPECT_TRUE(doc["size"] == "small" || doc["size"] == "big") << r.out;
    EXPECT_TRUE(doc["n"].is_number_integer() && doc["n"] >= 1 && doc["n"] <= 9) << r.out;
  }
  RunResult g = run_owl("run -m " + kModel + " -p Once --no-echo --temp 1 -s 4 --grammar " + dir + "/yes.gbnf");
  EXPECT_EQ(g.exit_code, 0);
  EXPECT_TRUE(g.out.rfind("yes!\n", 0) == 0 || g.out.rfind("no!\n", 0) == 0) << g.out;
  EXPECT_TRUE(has(g, "| stop")) << g.out;
  // Refused before the model loads, naming the keyword and where it is.
  RunResult bad = run_owl("run -m /nonexistent.gguf -p x --json-schema " + dir + "/bad.json");
  EXPECT_EQ(bad.exit_code, 1);
  EXPECT_TRUE(has(bad, "'contentEncoding' at /properties/a/contentEncoding")) << bad.out;
}

}  // namespace
