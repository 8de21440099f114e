// owl quantize / compare / imatrix / import / export as a user runs them: output and exit codes.
#include <gtest/gtest.h>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <string>

#include <nlohmann/json.hpp>

#include "gguf/gguf.h"
#include "support/run_owl.h"

namespace {

namespace fs = std::filesystem;

using owl::testing::RunResult;
using owl::testing::run_owl;

const std::string kModels = std::string(OWL_SHARED_DIR) + "/models/";

// One directory per test: ctest runs the tests of this file in parallel processes.
std::string temp_dir() {
  const fs::path p = fs::temp_directory_path() /
                     (std::string("owl_convert_cli_") + ::testing::UnitTest::GetInstance()->current_test_info()->name());
  fs::remove_all(p);
  fs::create_directories(p);
  return p.string();
}

std::string write_text(const std::string& dir) {
  const std::string path = dir + "/text.txt";
  std::ofstream(path) << "Once upon a time, there was a little girl named Lily. She loved to play with her ball "
                         "in the park. One day, she met a big dog. The dog was happy and they played all day.";
  return path;
}

TEST(ConvertCli, QuantizeDryRunListsEveryTensorAndWritesNothing) {
  const std::string dir = temp_dir();
  RunResult r = run_owl("quantize " + kModels + "kq256.f16.gguf " + dir + "/x.gguf q4_k_m --dry-run");
  ASSERT_EQ(r.exit_code, 0) << r.out;
  EXPECT_NE(r.out.find("blk.1.ffn_down.weight"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("q6_k"), std::string::npos);
  EXPECT_FALSE(fs::exists(dir + "/x.gguf"));
}

TEST(ConvertCli, QuantizeWithReportThenCompareJson) {
  const std::string dir = temp_dir();
  const std::string text = write_text(dir);
  RunResult r = run_owl("quantize " + kModels + "stories260K.gguf " + dir + "/q.gguf q8_0 -t 1 --report " + text +
                        " --report-ctx 32");
  ASSERT_EQ(r.exit_code, 0) << r.out;
  EXPECT_NE(r.out.find("KL mean"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("f16 x5"), std::string::npos) << r.out;  // the 172-wide ffn_down fallback
  r = run_owl("compare " + kModels + "stories260K.gguf " + dir + "/q.gguf -f " + text + " --ctx 32 -t 1 --gen 4 --json");
  ASSERT_EQ(r.exit_code, 0) << r.out;
  auto j = nlohmann::json::parse(r.out);
  EXPECT_GT(j["kl_mean"].get<double>(), 0.0);
  EXPECT_LT(j["kl_mean"].get<double>(), 0.01);
  EXPECT_EQ(j["candidate"]["file_size"].get<uint64_t>(), fs::file_size(dir + "/q.gguf"));
}

TEST(ConvertCli, ImatrixThenQuantize) {
  const std::string dir = temp_dir();
  const std::string text = write_text(dir);
  RunResult r = run_owl("imatrix -m " + kModels + "stories260K.gguf -f " + text + " -o " + dir + "/im.gguf --ctx 16");
  ASSERT_EQ(r.exit_code, 0) << r.out;
  EXPECT_NE(r.out.find("35 matrices"), std::string::npos) << r.out;
  r = run_owl("quantize " + kModels + "stories260K.gguf " + dir + "/q.gguf q4_1 --imatrix " + dir + "/im.gguf");
  ASSERT_EQ(r.exit_code, 0) << r.out;
  EXPECT_NE(r.out.find("importance matrix used for 30 tensors"), std::string::npos) << r.out;  // 35 less the 5 F16 ffn_down
  r = run_owl("quantize " + kModels + "kq256.f16.gguf " + dir + "/k.gguf q4_k_m --imatrix " + dir + "/im.gguf");
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.out.find("has 64 columns"), std::string::npos) << r.out;
}

TEST(ConvertCli, ExportImportAndErrors) {
  const std::string dir = temp_dir();
  RunResult r = run_owl("export " + kModels + "stories260K.gguf -o " + dir + "/hf");
  ASSERT_EQ(r.exit_code, 0) << r.out;
  for (const char* f : {"model.safetensors", "config.json", "tokenizer.json", "tokenizer_config.json"}) {
    EXPECT_TRUE(fs::exists(dir + "/hf/" + f)) << f;
  }
  r = run_owl("import " + dir + "/hf -o " + dir + "/back.gguf --type q4_0");
  ASSERT_EQ(r.exit_code, 0) << r.out;
  auto f = owl::gguf::GgufFile::open(dir + "/back.gguf");
  ASSERT_TRUE(f.ok());
  EXPECT_EQ(f->find_tensor("blk.0.attn_q.weight")->type, owl::gguf::TensorType::Q4_0);
  r = run_owl("quantize " + kModels + "stories260K.gguf " + dir + "/x.gguf q9_k");
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.out.find("unknown type 'q9_k'"), std::string::npos) << r.out;
  r = run_owl("import " + dir + "/missing -o " + dir + "/x.gguf");
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.out.find("config.json"), std::string::npos) << r.out;
  r = run_owl("import --llama2c " + dir + "/none.bin -o " + dir + "/x.gguf");
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.out.find("--vocab-from"), std::string::npos) << r.out;
  fs::remove_all(dir);
}

TEST(ConvertCli, QuantizeChecksItsOptionsBeforeTheWork) {
  const std::string dir = temp_dir();
  const std::string in = kModels + "stories260K.gguf";
  RunResult to_dir = run_owl("quantize " + in + " " + dir + " q8_0");
  EXPECT_EQ(to_dir.exit_code, 1);
  EXPECT_NE(to_dir.out.find(dir + ": is a directory"), std::string::npos) << to_dir.out;
  RunResult report = run_owl("quantize " + in + " " + dir + "/q.gguf q8_0 --report " + dir);
  EXPECT_EQ(report.exit_code, 1);
  EXPECT_NE(report.out.find("--report: " + dir + ": is a directory"), std::string::npos) << report.out;
  EXPECT_FALSE(fs::exists(dir + "/q.gguf"));
  RunResult pattern = run_owl("quantize " + in + " " + dir + "/q.gguf q4_k_m --dry-run --tensor-type 'attn_qq=q8_0'");
  EXPECT_EQ(pattern.exit_code, 0) << pattern.out;
  EXPECT_NE(pattern.out.find("warning: --tensor-type pattern 'attn_qq' matches no tensor"), std::string::npos) << pattern.out;
  RunResult requantize = run_owl("quantize " + kModels + "kq256.q8_0.gguf " + dir + "/k.gguf q4_0");
  EXPECT_EQ(requantize.exit_code, 1);
  EXPECT_NE(requantize.out.find("(allow it with --allow-requantize)"), std::string::npos) << requantize.out;
  EXPECT_EQ(requantize.out.find("quantize: quantize:"), std::string::npos) << requantize.out;
  RunResult allowed = run_owl("quantize " + kModels + "kq256.q8_0.gguf " + dir + "/k.gguf q4_0 --allow-requantize -t 1");
  EXPECT_EQ(allowed.exit_code, 0) << allowed.out;
  fs::remove_all(dir);
}

TEST(ConvertCli, InspectWarnsAboutFilesThatDoNotRun) {
  for (const std::string& path : {std::string(OWL_SHARED_DIR) + "/vocab/ggml-vocab-llama-spm.gguf",
                                  std::string(OWL_SHARED_DIR) + "/reference/lora/stories260K.lora-r4-all.gguf"}) {
    RunResult r = run_owl("inspect " + path);
    EXPECT_EQ(r.exit_code, 0) << r.out;
    EXPECT_NE(r.out.find("warning: " + path + " is not a model that runs"), std::string::npos) << r.out;
  }
  RunResult model = run_owl("inspect " + kModels + "stories260K.gguf");
  EXPECT_EQ(model.out.find("warning"), std::string::npos) << model.out;
}

TEST(ConvertCli, Llama2cImportTakesType) {
  const std::string dir = temp_dir();
  RunResult r = run_owl("import --llama2c " + dir + "/none.bin --vocab-from " + kModels + "stories260K.gguf -o " + dir +
                        "/x.gguf --type q9_9");
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.out.find("unknown --type 'q9_9'"), std::string::npos) << r.out;
  EXPECT_EQ(r.out.find("import: import:"), std::string::npos) << r.out;
  RunResult out_dir = run_owl("import --llama2c " + dir + "/none.bin --vocab-from " + kModels + "stories260K.gguf -o " + dir);
  EXPECT_NE(out_dir.out.find("-o " + dir + ": is a directory"), std::string::npos) << out_dir.out;
  fs::remove_all(dir);
}

}  // namespace
