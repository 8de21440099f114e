// Runs the owl binary as a user would and checks what it prints and its exit code.
#include <gtest/gtest.h>

#include <cstdio>
#include <filesystem>
#include <set>
#include <string>

#include <nlohmann/json.hpp>

#include "gguf/gguf.h"
#include "support/run_owl.h"

namespace {

namespace fs = std::filesystem;

using owl::testing::RunResult;
using owl::testing::run_owl;

const std::string kModel = std::string(OWL_SOURCE_DIR) + "/models/stories260K.gguf";

TEST(Cli, HelpListsCommands) {
  RunResult r = run_owl("--help");
  EXPECT_EQ(r.exit_code, 0);
  for (const char* command : {"inspect", "synth", "tokenize", "template"}) {
    EXPECT_NE(r.out.find(command), std::string::npos) << command;
  }
  RunResult sub = run_owl("inspect --help");
  EXPECT_EQ(sub.exit_code, 0);
  EXPECT_NE(sub.out.find("--json"), std::string::npos);
}

TEST(Cli, UnknownCommandsAndOptionsAreErrors) {
  EXPECT_NE(run_owl("frobnicate").exit_code, 0);
  RunResult r = run_owl("inspect " + kModel + " --no-such-option");
  EXPECT_NE(r.exit_code, 0);
  EXPECT_NE(r.out.find("--no-such-option"), std::string::npos) << r.out;
}

TEST(Cli, InspectText) {
  RunResult r = run_owl("inspect " + kModel);
  ASSERT_EQ(r.exit_code, 0) << r.out;
  for (const char* expected : {"architecture   llama", "parameters     292.80 K (292800)", "context        2048",
                               "n_embd 64, n_layer 5, n_head 8, n_head_kv 4, n_ff 172",
                               "SentencePiece (llama), 512 tokens", "chat template  no",
                               "at context 2048: weights 1.17 MB + KV cache 1.31 MB (f16)"}) {
    EXPECT_NE(r.out.find(expected), std::string::npos) << expected << "\n" << r.out;
  }
}

TEST(Cli, InspectJson) {
  RunResult r = run_owl("inspect --json " + std::string(OWL_SHARED_DIR) + "/models/kq256.q4_k_m.gguf");
  ASSERT_EQ(r.exit_code, 0) << r.out;
  const nlohmann::json j = nlohmann::json::parse(r.out);
  EXPECT_EQ(j["architecture"], "llama");
  EXPECT_EQ(j["n_embd"], 256);
  EXPECT_EQ(j["tensor_types"]["q4_k"]["tensors"], 13);
  EXPECT_EQ(j["tensor_types"]["q6_k"]["tensors"], 3);
  EXPECT_EQ(j["tokenizer"]["vocab_size"], 512);
  EXPECT_EQ(j["chat_template"], false);
  // 2 (K, V) x 2 layers x 2 KV heads x 64 dims x 2 bytes per token, at the model's 4096 context.
  EXPECT_EQ(j["memory"]["kv_cache"], 2 * 2 * 2 * 64 * 2 * 4096);
}

TEST(Cli, InspectMalformedFileGivesReaderErrorAndExitOne) {
  RunResult r = run_owl("inspect " + std::string(OWL_SOURCE_DIR) + "/tests/data/gguf/duplicate_key.gguf");
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.out.find("duplicate metadata key 'test.u32'"), std::string::npos) << r.out;
  RunResult missing = run_owl("inspect /nonexistent.gguf");
  EXPECT_EQ(missing.exit_code, 1);
  EXPECT_NE(missing.out.find("/nonexistent.gguf: cannot open"), std::string::npos) << missing.out;
}

TEST(Cli, SynthWritesTheRequestedShapeAndType) {
  const std::string out = (fs::temp_directory_path() / ("owl_cli_synth_" + std::to_string(::getpid()) + ".gguf")).string();
  RunResult r = run_owl("synth --n-embd 128 --n-layer 2 --n-head 4 --n-head-kv 2 --n-ff 256 --type q4_k --vocab-from " +
                        kModel + " -o " + out + " --seed 7");
  ASSERT_EQ(r.exit_code, 0) << r.out;
  auto file = owl::gguf::GgufFile::open(out);
  ASSERT_TRUE(file.ok()) << file.message();
  EXPECT_EQ(*file->get_int("llama.embedding_length"), 128);
  EXPECT_EQ(*file->get_int("llama.attention.head_count_kv"), 2);
  EXPECT_EQ(file->get_string_array("tokenizer.ggml.tokens")->size(), 512u);
  // q4_k needs rows of 256: 128-wide rows fall back to F16; norms are F32.
  EXPECT_EQ(file->find_tensor("blk.0.attn_q.weight")->type, owl::gguf::TensorType::F16);
  EXPECT_EQ(file->find_tensor("blk.1.ffn_down.weight")->type, owl::gguf::TensorType::Q4_K);
  EXPECT_EQ(file->find_tensor("output_norm.weight")->type, owl::gguf::TensorType::F32);
  EXPECT_EQ(file->find_tensor("output.weight")->ne[1], 512);

  // The same seed gives the same file; a bad shape is refused by name.
  const std::string again = out + ".again.gguf";
  ASSERT_EQ(run_owl("synth --n-embd 128 --n-layer 2 --n-head 4 --n-head-kv 2 --n-ff 256 --type q4_k --vocab-from " +
                    kModel + " -o " + again + " --seed 7 -t 1").exit_code, 0);
  auto second = owl::gguf::GgufFile::open(again);
  ASSERT_TRUE(second.ok());
  const auto* a = file->find_tensor("blk.1.ffn_down.weight");
  const auto* b = second->find_tensor("blk.1.ffn_down.weight");
  EXPECT_EQ(std::memcmp(a->data, b->data, a->n_bytes), 0);
  RunResult bad = run_owl("synth --n-embd 100 --n-layer 1 --n-head 3 --n-head-kv 1 --n-ff 64 -o " + out + ".bad");
  EXPECT_EQ(bad.exit_code, 1);
  EXPECT_NE(bad.out.find("--n-embd 100 is not a multiple of --n-head 3"), std::string::npos) << bad.out;
  EXPECT_FALSE(fs::exists(out + ".bad"));
  fs::remove(out);
  fs::remove(again);
}

TEST(Cli, TokenizePrintsTheIdsOnOneLine) {
  RunResult r = run_owl("tokenize -m " + kModel + " -p 'Once upon a time'");
  ASSERT_EQ(r.exit_code, 0) << r.out;
  EXPECT_EQ(r.out, "1 403 407 261 378\n");  // ../shared/reference/stories260K.p1.json starts so
  RunResult no_bos = run_owl("tokenize -m " + kModel + " --no-bos -p 'Once upon a time'");
  EXPECT_EQ(no_bos.out, "403 407 261 378\n");
  const std::string file = (fs::temp_directory_path() / ("owl_cli_tok_" + std::to_string(::getpid()))).string();
  FILE* f = std::fopen(file.c_str(), "wb");
  std::fputs("Once upon a time\n", f);  // -f keeps the trailing newline
  std::fclose(f);
  RunResult from_file = run_owl("tokenize -m " + kModel + " -f " + file);
  EXPECT_NE(from_file.out, r.out);
  EXPECT_EQ(from_file.out.rfind("1 403 407 261 378 ", 0), 0u) << from_file.out;
  fs::remove(file);
}

TEST(Cli, TemplateWritesThePromptExactly) {
  const std::string messages = (fs::temp_directory_path() / ("owl_cli_msgs_" + std::to_string(::getpid()) + ".json")).string();
  FILE* f = std::fopen(messages.c_str(), "wb");
  std::fputs(R"([{"role": "user", "content": "Hi"}])", f);
  std::fclose(f);
  RunResult r = run_owl("template --format chatml --messages " + messages + " --add-generation-prompt");
  ASSERT_EQ(r.exit_code, 0) << r.out;
  EXPECT_EQ(r.out, "<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n");
  fs::remove(messages);
}

TEST(Cli, RunGeneratesAndReportsSpeed) {
  RunResult r = run_owl("run -m " + kModel + " -p 'Once upon a time' -n 16 --temp 0 -t 1");
  ASSERT_EQ(r.exit_code, 0) << r.out;
  EXPECT_NE(r.out.find("Once upon a time, there was a little girl"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("generation: 16 tokens"), std::string::npos) << r.out;
  RunResult bad = run_owl("run -m " + kModel + " -p x --top-p 3");
  EXPECT_EQ(bad.exit_code, 1);
  EXPECT_NE(bad.out.find("top_p 3"), std::string::npos) << bad.out;
}

TEST(Cli, BenchPrintsLlamaBenchJson) {
  RunResult r = run_owl("bench -m " + kModel + " -p 16 -n 4 -r 2 -t 1 -o json");
  ASSERT_EQ(r.exit_code, 0) << r.out;
  const nlohmann::json j = nlohmann::json::parse(r.out.substr(r.out.find('[')));
  ASSERT_EQ(j.size(), 2u);
  EXPECT_EQ(j[0]["n_prompt"], 16);
  EXPECT_EQ(j[1]["n_gen"], 4);
  for (const auto& row : j) {
    EXPECT_GT(row["avg_ts"].get<double>(), 0.0);
    EXPECT_EQ(row["samples_ns"].size(), 2u);
    EXPECT_TRUE(row.contains("stddev_ts") && row.contains("model_filename") && row.contains("n_threads"));
  }
}

// --bandwidth: generation as a share of the memory read bandwidth measured before each repetition.
TEST(Cli, BenchReportsBandwidthShare) {
  RunResult r = run_owl("bench -m " + kModel + " -p 0 -n 4 -r 2 -t 1 --bandwidth -o json");
  ASSERT_EQ(r.exit_code, 0) << r.out;
  const nlohmann::json j = nlohmann::json::parse(r.out.substr(r.out.find('[')));
  ASSERT_EQ(j.size(), 1u);
  const double bytes = j[0]["weight_bytes_per_token"].get<double>();
  EXPECT_GT(bytes, 0.5 * static_cast<double>(j[0]["model_size"].get<uint64_t>())) << bytes;
  EXPECT_LE(bytes, static_cast<double>(fs::file_size(kModel)));
  ASSERT_EQ(j[0]["read_bandwidth_gbs"].size(), 2u);
  ASSERT_EQ(j[0]["bandwidth_share"].size(), 2u);
  for (int i = 0; i < 2; ++i) {
    EXPECT_GT(j[0]["read_bandwidth_gbs"][i].get<double>(), 0.0);
    EXPECT_GT(j[0]["bandwidth_share"][i].get<double>(), 0.0);
  }
  RunResult md = run_owl("bench -m " + kModel + " -p 0 -n 4 -r 1 -t 1 --bandwidth");
  ASSERT_EQ(md.exit_code, 0) << md.out;
  EXPECT_NE(md.out.find("of the memory read bandwidth measured before each repetition"), std::string::npos) << md.out;
}

// --profile: every matrix of a step is timed once per layer with its bytes and operations, and
// the timed parts fit in the forward passes' time.
TEST(Cli, BenchProfileAccountsForEveryMatrix) {
  RunResult r = run_owl("bench -m " + kModel + " -p 16 -n 4 -r 2 -t 1 --bandwidth --profile -o json");
  ASSERT_EQ(r.exit_code, 0) << r.out;
  const nlohmann::json j = nlohmann::json::parse(r.out.substr(r.out.find('[')));
  ASSERT_EQ(j.size(), 2u);
  const int64_t n_layer = 5;  // stories260K, all F32
  const double tg_bytes = j[1]["weight_bytes_per_token"].get<double>();
  for (const auto& row : j) {
    const nlohmann::json& p = row["profile"];
    const bool tg = row["n_gen"].get<int>() > 0;
    EXPECT_EQ(p["forwards"].get<int64_t>(), tg ? 8 : 2);
    EXPECT_EQ(p["tokens"].get<int64_t>(), tg ? 8 : 32);
    double ns = 0, layer_bytes = 0, layer_flops = 0, output_bytes = 0, output_flops = 0;
    std::set<std::string> parts;
    for (const auto& e : p["parts"]) {
      const std::string part = e["part"];
      parts.insert(part);
      ns += e["ns"].get<double>();
      EXPECT_GT(e["ns"].get<double>(), 0.0) << part;
      EXPECT_EQ(e["calls"].get<int64_t>(), (part == "output" ? 1 : n_layer) * p["forwards"].get<int64_t>()) << part;
      if (part == "attention") continue;
      EXPECT_EQ(e["types"], "f32") << part;
      (part == "output" ? output_bytes : layer_bytes) += e["weight_bytes"].get<double>();
      (part == "output" ? output_flops : layer_flops) += e["flops"].get<double>();
    }
    EXPECT_EQ(parts, (std::set<std::string>{"attn_q/k/v", "attention", "attn_output", "ffn_gate/up", "ffn_down", "output"}));
    EXPECT_LT(ns, p["total_ns"].get<double>());
    // An F32 matrix of b bytes has b/4 weights: 2 operations each per row, every row in the layers
    // and the one row asking for logits (the last of the prompt, every token in tg) in the output.
    const double rows_per_forward = tg ? 1 : 16;
    EXPECT_DOUBLE_EQ(layer_flops, 2 * rows_per_forward * layer_bytes / 4);
    EXPECT_DOUBLE_EQ(output_flops, 2 * output_bytes / 4);
    if (tg) {  // the matrices are all of a token's weights but the norms and the embedding row
      const double per_token = (layer_bytes + output_bytes) / 8;
      EXPECT_LT(per_token, tg_bytes);
      EXPECT_GT(per_token, 0.95 * tg_bytes);
    }
  }
  RunResult md = run_owl("bench -m " + kModel + " -p 0 -n 4 -r 1 -t 1 --profile");
  ASSERT_EQ(md.exit_code, 0) << md.out;
  EXPECT_NE(md.out.find("tg4 of llama 292.80K F32, where the time goes (per token: "), std::string::npos) << md.out;
  EXPECT_NE(md.out.find("| ffn_gate/up | f32 | 5 | "), std::string::npos) << md.out;
}

TEST(Cli, ChatReadsTurnsAndCommands) {
  const std::string input = (fs::temp_directory_path() / ("owl_cli_chat_" + std::to_string(::getpid()))).string();
  FILE* f = std::fopen(input.c_str(), "wb");
  std::fputs("Hello\n/reset\nTell me \\\na story\n/exit\n", f);  // the third line continues
  std::fclose(f);
  RunResult r = run_owl("chat -m " + kModel + " -n 8 --seed 3 -t 1 < " + input);
  ASSERT_EQ(r.exit_code, 0) << r.out;
  EXPECT_NE(r.out.find("no chat template; using the chatml format"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("(conversation cleared)"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("> . "), std::string::npos) << "no continuation prompt:\n" << r.out;
  fs::remove(input);
}

std::string chat_input(const std::string& text) {
  const std::string path = (fs::temp_directory_path() / ("owl_cli_chat_" + std::to_string(::getpid()) + "_" +
                            ::testing::UnitTest::GetInstance()->current_test_info()->name())).string();
  FILE* f = std::fopen(path.c_str(), "wb");
  std::fputs(text.c_str(), f);
  std::fclose(f);
  return path;
}

TEST(Cli, ChatCommandsAreNotSentToTheModel) {
  const std::string input = chat_input("/help\n/frobnicate now\n/exit\n");
  RunResult r = run_owl("chat -m " + kModel + " -n 4 --seed 3 -t 1 < " + input);
  ASSERT_EQ(r.exit_code, 0) << r.out;
  EXPECT_NE(r.out.find("> /help lists these"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("unknown command /frobnicate, try /help"), std::string::npos) << r.out;
  RunResult bogus = run_owl("chat -m " + kModel + " --format bogus < " + input);
  EXPECT_NE(bogus.exit_code, 0);
  EXPECT_NE(bogus.out.find("bogus not in {chatml,llama2,llama3,mistral,gemma,phi3}"), std::string::npos) << bogus.out;
  fs::remove(input);
}

TEST(Cli, ChatFoldsTheSystemPromptForTemplatesWithoutASystemRole) {
  const std::string input = chat_input("Hello\nAgain\n/exit\n");
  for (const char* format : {"gemma", "mistral"}) {
    RunResult r = run_owl("chat -m " + kModel + " -n 4 --seed 3 -t 1 --system 'Be brief' --format " + format + " < " + input);
    ASSERT_EQ(r.exit_code, 0) << r.out;
    EXPECT_NE(r.out.find("--system is put at the start of the first user message"), std::string::npos) << r.out;
    EXPECT_EQ(r.out.find("owl chat: render"), std::string::npos) << r.out;
    EXPECT_EQ(r.out.find("System role not supported"), std::string::npos) << r.out;
  }
  fs::remove(input);
}

TEST(Cli, ChatShiftsTheContextWhenItIsFull) {
  std::string turns;
  for (int i = 0; i < 6; ++i) turns += "Tell\n";
  const std::string input = chat_input(turns + "/exit\n");
  RunResult r = run_owl("chat -m " + kModel + " -n 12 -c 96 --seed 3 -t 1 < " + input);
  ASSERT_EQ(r.exit_code, 0) << r.out;
  EXPECT_NE(r.out.find("(context full: dropped the"), std::string::npos) << r.out;
  EXPECT_EQ(r.out.find("owl chat: generate"), std::string::npos) << r.out;
  const std::string long_input = chat_input(std::string(600, 'a') + "\n/exit\n");
  RunResult too_long = run_owl("chat -m " + kModel + " -n 4 -c 64 -t 1 < " + long_input);
  EXPECT_NE(too_long.out.find("context full: the message needs"), std::string::npos) << too_long.out;
  fs::remove(input);
  fs::remove(long_input);
}

}  // namespace
