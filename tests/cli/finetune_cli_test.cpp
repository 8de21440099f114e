// owl finetune as a user runs it: the shipped demo trains an adapter that passes its suite where
// the base model fails; the same seed gives the same adapter byte for byte; an interrupted run
// resumed from its checkpoint ends with the adapter of a run never interrupted; bad data and
// bad options are errors that name the file, line, field or value.
#include <gtest/gtest.h>
#include <sys/stat.h>

#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>

#include <nlohmann/json.hpp>

#include "support/run_owl.h"

namespace {

namespace fs = std::filesystem;

using owl::testing::RunResult;
using owl::testing::run_owl;
using Json = nlohmann::json;

const std::string kSource = OWL_SOURCE_DIR;
const std::string kModel = kSource + "/models/stories260K.gguf";
const std::string kDemo = kSource + "/examples/finetune/";

bool has(const RunResult& r, const std::string& text) { return r.out.find(text) != std::string::npos; }

std::string read_bytes(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

class FinetuneCli : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() /
           ("owl-finetune-cli-" + std::string(::testing::UnitTest::GetInstance()->current_test_info()->name()));
    fs::remove_all(dir_);
    fs::create_directories(dir_);
  }
  void TearDown() override { fs::remove_all(dir_); }
  std::string path(const std::string& name) const { return (dir_ / name).string(); }
  std::string write(const std::string& name, const std::string& text) const {
    std::ofstream(path(name), std::ios::binary) << text;
    return path(name);
  }
  // The first n lines of the demo's training data: a quick run.
  std::string demo_head(int n) const {
    std::ifstream in(kDemo + "train.jsonl");
    std::string line, out;
    for (int i = 0; i < n && std::getline(in, line); ++i) out += line + "\n";
    return write("head.jsonl", out);
  }
  fs::path dir_;
};

TEST_F(FinetuneCli, TheDemoAdapterPassesTheSuiteTheBaseModelFails) {
  RunResult r = run_owl("finetune -m " + kModel + " --data " + kDemo + "train.jsonl -o " + path("color.gguf") +
                        " --epochs 3 --lr 3e-3 --batch 8 -t 2 --log " + path("log.jsonl"));
  ASSERT_EQ(r.exit_code, 0) << r.out;
  EXPECT_TRUE(has(r, "owl finetune: 400 examples")) << r.out;
  EXPECT_TRUE(has(r, "LoRA rank 8 alpha 16 on 35 weights")) << r.out;
  EXPECT_TRUE(has(r, "wrote " + path("color.gguf") + " (150 steps")) << r.out;

  // One JSON line per step, in a file only its owner reads; the adapter, learned from the data,
  // is its owner's alone too.
  struct stat st {};
  ASSERT_EQ(::stat(path("log.jsonl").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u);
  ASSERT_EQ(::stat(path("color.gguf").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u);
  std::ifstream log(path("log.jsonl"));
  std::string line;
  int lines = 0;
  double first_loss = 0, last_loss = 0;
  while (std::getline(log, line)) {
    const Json j = Json::parse(line);
    EXPECT_EQ(j["step"], lines + 1);
    EXPECT_EQ(j["total"], 150);
    for (const char* key : {"loss", "lr", "grad_norm", "tokens", "seconds", "tokens_per_second"}) EXPECT_TRUE(j.contains(key)) << key;
    (lines == 0 ? first_loss : last_loss) = j["loss"].get<double>();
    ++lines;
  }
  EXPECT_EQ(lines, 150);
  EXPECT_LT(last_loss, first_loss / 4);

  // The suite as shipped, with this run's adapter: the base fails every case, the adapter passes.
  std::string suite = read_bytes(kDemo + "suite.yaml");
  auto replace = [&](const std::string& from, const std::string& to) {
    const size_t at = suite.find(from);
    ASSERT_NE(at, std::string::npos) << from;
    suite.replace(at, from.size(), to);
  };
  replace("cases: test.jsonl", "cases: " + kDemo + "test.jsonl");
  replace("model: ../../models/stories260K.gguf", "model: " + kModel);
  replace("quantize: [q8_0, q4_0]", "quantize: [q4_0]");
  replace("adapters: [none, color.gguf]", "adapters: [none, " + path("color.gguf") + "]");
  write("suite.yaml", suite);
  r = run_owl("eval " + path("suite.yaml") + " -q -t 2 --cache-dir " + path("cache") + " -o " + path("report.json"));
  ASSERT_EQ(r.exit_code, 0) << r.out;
  const Json report = Json::parse(read_bytes(path("report.json")));
  ASSERT_EQ(report["candidates"].size(), 4u) << report.dump();
  for (const Json& c : report["candidates"]) {
    EXPECT_EQ(c["total"], 100) << c["id"];
    if (c["adapter"].is_null() || c["adapter"] == "" || c["adapter"] == "none") {
      EXPECT_EQ(c["passed"], 0) << c["id"];
    } else {
      EXPECT_GE(c["pass_rate"].get<double>(), 0.95) << c["id"];
      EXPECT_TRUE(c["passes"].get<bool>()) << c["id"];
    }
  }
  EXPECT_TRUE(report["verdict"]["smallest_passing"].is_string()) << report["verdict"].dump();

  // owl run with the adapter answers as the suite's cases expect.
  r = run_owl("run -m " + kModel + " --lora " + path("color.gguf") +
              " --temp 0 -n 8 --stop '\n' -t 2 -p 'Once upon a time, Ben went to the park. He had a pink kite. He was "
              "very happy.\nWhat color was the kite?' 2>/dev/null");
  ASSERT_EQ(r.exit_code, 0) << r.out;
  EXPECT_TRUE(has(r, "What color was the kite? pink")) << r.out;
}

// Recomputing the layers in the backward pass (--recompute on) changes nothing in the adapter.
TEST_F(FinetuneCli, TheSameSeedGivesTheSameAdapterAndAnotherSeedAnother) {
  const std::string data = demo_head(40);
  const std::string common = "finetune -m " + kModel + " --data " + data + " --steps 6 --batch 4 --lr 3e-3 -q -t 2 ";
  // The same file name in four folders: the name is the adapter's general.name.
  for (const char* run : {"a", "b", "c", "d"}) {
    fs::create_directories(path(run));
    const std::string extra = run[0] == 'c' ? "--seed 7 " : run[0] == 'd' ? "--recompute on " : "";
    RunResult r = run_owl(common + extra + "-o " + path(run) + "/x.gguf");
    ASSERT_EQ(r.exit_code, 0) << r.out;
    EXPECT_EQ(has(r, "with layers recomputed in the backward pass"), run[0] == 'd') << r.out;
  }
  const std::string a = read_bytes(path("a/x.gguf"));
  EXPECT_GT(a.size(), 100000u);
  EXPECT_TRUE(a == read_bytes(path("b/x.gguf")));
  EXPECT_FALSE(a == read_bytes(path("c/x.gguf")));
  EXPECT_TRUE(a == read_bytes(path("d/x.gguf")));
}

// Ctrl-C after some steps writes the adapter and a checkpoint and exits 130; the same command
// with --resume ends with the adapter, byte for byte, of the run that was never stopped.
TEST_F(FinetuneCli, AnInterruptedRunResumedEqualsOneNeverInterrupted) {
  const std::string data = demo_head(80);
  const std::string common = "finetune -m " + kModel + " --data " + data +
                             " --val-split 0.1 --eval-every 10 --steps 60 --batch 4 --lr 3e-3 -q -t 2 ";
  fs::create_directories(path("straight"));
  fs::create_directories(path("stopped"));
  RunResult r = run_owl(common + "-o " + path("straight/x.gguf"));
  ASSERT_EQ(r.exit_code, 0) << r.out;

  // In the background; SIGINT once the log shows 12 steps (of 60, about 0.03 s each here).
  r = run_owl(common + "-o " + path("stopped/x.gguf") + " --log " + path("log.jsonl") +
              " 2>&1 & pid=$!; for i in $(seq 1 600); do [ \"$( (wc -l < " + path("log.jsonl") +
              ") 2>/dev/null || echo 0)\" -ge 12 ] && break; sleep 0.02; done; kill -INT $pid; wait $pid; echo \"rc=$?\"");
  ASSERT_TRUE(has(r, "rc=130")) << r.out;
  const std::string checkpoint = path("stopped/x.gguf.checkpoint");
  EXPECT_TRUE(has(r, "interrupted; the same command with --resume " + checkpoint + " continues")) << r.out;
  ASSERT_TRUE(fs::exists(checkpoint));
  ASSERT_TRUE(fs::exists(path("stopped/x.gguf")));
  EXPECT_FALSE(read_bytes(path("straight/x.gguf")) == read_bytes(path("stopped/x.gguf")));

  r = run_owl(common + "-o " + path("stopped/x.gguf") + " --resume " + checkpoint);
  ASSERT_EQ(r.exit_code, 0) << r.out;
  EXPECT_TRUE(read_bytes(path("straight/x.gguf")) == read_bytes(path("stopped/x.gguf")));

  // Other options than the checkpoint's: refused, naming both.
  r = run_owl(common + "--rank 4 -o " + path("other.gguf") + " --resume " + checkpoint);
  EXPECT_NE(r.exit_code, 0);
  EXPECT_TRUE(has(r, "the checkpoint was made with other options or data")) << r.out;
  // Not a checkpoint at all.
  r = run_owl(common + "-o " + path("other.gguf") + " --resume " + kModel);
  EXPECT_NE(r.exit_code, 0);
  EXPECT_TRUE(has(r, "not an owl training checkpoint")) << r.out;
}

TEST_F(FinetuneCli, BadDataNamesTheFileLineAndField) {
  const std::string good = R"({"prompt": "Tim had a red ball.\nWhat color was the ball?", "completion": " red\n"})";
  struct Case {
    std::string second_line, message;
  };
  const Case cases[] = {
      {"{\"prompt\": \"x\"", ":2: not a JSON value"},
      {"[1, 2]", ":2: an example is a JSON object, not array"},
      {R"({"prompt": 3, "completion": "y"})", ":2: 'prompt' must be a string"},
      {R"({"prompt": "x", "completion": ""})", ":2: 'completion' is empty: nothing to learn"},
      {R"({"text": ""})", ":2: 'text' must be a non-empty string"},
      {R"({"input": "x"})", ":2: an example needs 'messages', 'prompt' and 'completion', or 'text'"},
      {R"({"messages": []})", ":2: 'messages' must be a non-empty array"},
      {R"({"messages": [{"role": "user", "content": "hi"}]})", ":2: 'messages': no assistant message to learn from"},
      {R"({"messages": [{"role": "robot", "content": "hi"}]})", ":2: 'messages[0]': role 'robot' is not system, user, assistant or tool"},
  };
  for (const Case& c : cases) {
    const std::string data = write("bad.jsonl", good + "\n" + c.second_line + "\n");
    RunResult r = run_owl("finetune -m " + kModel + " --data " + data + " -o " + path("x.gguf") + " -q");
    EXPECT_EQ(r.exit_code, 1) << c.second_line << "\n" << r.out;
    EXPECT_TRUE(has(r, data + c.message)) << c.second_line << "\n" << r.out;
  }
  EXPECT_FALSE(fs::exists(path("x.gguf")));

  // Longer than --ctx: an error, or with --truncate a count.
  const std::string data = write("long.jsonl", good + "\n");
  RunResult r = run_owl("finetune -m " + kModel + " --data " + data + " -o " + path("x.gguf") + " --ctx 8 -q");
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_TRUE(has(r, data + ":1: the example is")) << r.out;
  EXPECT_TRUE(has(r, "longer than --ctx 8 (--truncate cuts such examples)")) << r.out;
  r = run_owl("finetune -m " + kModel + " --data " + data + " -o " + path("x.gguf") + " --ctx 24 --truncate --steps 1 -q");
  EXPECT_EQ(r.exit_code, 0) << r.out;
  EXPECT_TRUE(has(r, "1 examples were cut to --ctx 24 tokens")) << r.out;
}

TEST_F(FinetuneCli, BadOptionsNameTheValue) {
  const std::string data = demo_head(8);
  const std::string common = "finetune -m " + kModel + " --data " + data + " -q ";
  struct Case {
    std::string options, message;
  };
  const Case cases[] = {
      {"--targets q,x", "--targets: unknown weight 'x'"},
      {"--schedule steep", "--schedule 'steep' is not cosine, linear or constant"},
      {"--recompute maybe", "--recompute 'maybe' is not auto, on or off"},
      {"--dropout 1", "--dropout"},
      {"--val " + data + " --val-split 0.2", "give --val or --val-split, not both"},
      {"--rank 0", "--rank"},
      {"--lr 2", "--lr"},
      {"-o /nonexistent/dir/x.gguf", "/nonexistent/dir"},
  };
  for (const Case& c : cases) {
    const bool has_output = c.options.rfind("-o ", 0) == 0;
    RunResult r = run_owl(common + c.options + (has_output ? "" : " -o " + path("x.gguf")));
    EXPECT_NE(r.exit_code, 0) << c.options;
    EXPECT_TRUE(has(r, c.message)) << c.options << "\n" << r.out;
  }
  EXPECT_FALSE(fs::exists(path("x.gguf")));
}

// Messages through a chat format: loss on the assistant's turns; the adapter trains and loads.
TEST_F(FinetuneCli, ChatExamplesTrainThroughTheChatFormat) {
  std::string lines;
  for (int i = 0; i < 8; ++i) {
    lines += R"({"messages": [{"role": "system", "content": "Answer with a color."}, {"role": "user", "content": "Tim had a red ball. What color?"}, {"role": "assistant", "content": "red"}]})";
    lines += "\n";
  }
  const std::string data = write("chat.jsonl", lines);
  RunResult r = run_owl("finetune -m " + kModel + " --data " + data + " -o " + path("chat.gguf") +
                        " --chat-format chatml --steps 3 --batch 4 -q -t 2");
  ASSERT_EQ(r.exit_code, 0) << r.out;
  r = run_owl("run -m " + kModel + " --lora " + path("chat.gguf") + " -p 'Once' -n 2 -t 2");
  EXPECT_EQ(r.exit_code, 0) << r.out;
}

}  // namespace
