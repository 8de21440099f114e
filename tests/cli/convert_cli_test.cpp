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

}  // namespace
