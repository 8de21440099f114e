// owl quantize against llama-quantize: the same mix of tensor types and, where owl's reference
// quantizers are llama.cpp's, the same file byte for byte.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <iterator>

#include "model/model.h"
#include "quantize/quantize.h"

namespace owl::quantize {
namespace {

const std::string kModels = std::string(OWL_SHARED_DIR) + "/models/";

std::string temp_path(const std::string& name) {
  return (std::filesystem::temp_directory_path() / ("owl_convert_test_" + name)).string();
}

std::vector<char> read_bytes(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  return {std::istreambuf_iterator<char>(f), std::istreambuf_iterator<char>()};
}

QuantizeSummary quantize(const std::string& in, const std::string& out, const std::string& type, int threads = 2) {
  const gguf::FileTypeInfo* preset = gguf::find_file_type(type);
  EXPECT_NE(preset, nullptr) << type;
  auto s = quantize_model({.input = in, .output = out, .preset = *preset, .n_threads = threads, .allow_requantize = true});
  EXPECT_TRUE(s.ok()) << s.message();
  return s.ok() ? *s : QuantizeSummary{};
}

struct LlamaFile {
  const char* input;
  const char* type;
};

class SameAsLlamaQuantize : public ::testing::TestWithParam<LlamaFile> {};

TEST_P(SameAsLlamaQuantize, ByteIdenticalFile) {
  const LlamaFile p = GetParam();
  const std::string in = kModels + p.input + ".gguf";
  const std::string base = std::string(p.input).substr(0, std::string(p.input).find('.'));
  const std::string expected = kModels + base + "." + p.type + ".gguf";
  const std::string out = temp_path(base + "." + p.type + ".gguf");
  quantize(in, out, p.type);
  auto ours = gguf::GgufFile::open(out);
  auto theirs = gguf::GgufFile::open(expected);
  ASSERT_TRUE(ours.ok() && theirs.ok());
  ASSERT_EQ(ours->tensors().size(), theirs->tensors().size());
  for (size_t i = 0; i < ours->tensors().size(); ++i) {
    const gguf::TensorInfo& a = ours->tensors()[i];
    const gguf::TensorInfo& b = theirs->tensors()[i];
    EXPECT_EQ(a.name, b.name);
    EXPECT_EQ(gguf::type_info(a.type).name, gguf::type_info(b.type).name) << a.name;
    if (a.type == b.type && a.n_bytes == b.n_bytes) {
      EXPECT_EQ(0, std::memcmp(a.data, b.data, a.n_bytes)) << a.name << " bytes differ";
    }
  }
  EXPECT_TRUE(read_bytes(out) == read_bytes(expected)) << "whole file differs from " << expected;
  auto model = model::load_model(out);
  EXPECT_TRUE(model.ok()) << model.message();
  std::filesystem::remove(out);
}

INSTANTIATE_TEST_SUITE_P(Files, SameAsLlamaQuantize,
                         ::testing::Values(LlamaFile{"stories260K", "f16"}, LlamaFile{"stories260K", "bf16"},
                                           LlamaFile{"stories260K", "q8_0"}, LlamaFile{"stories260K", "q4_0"},
                                           LlamaFile{"stories260K", "q4_1"}, LlamaFile{"stories260K", "q5_0"},
                                           LlamaFile{"stories260K", "q5_1"}, LlamaFile{"kq256.f16", "q8_0"},
                                           LlamaFile{"kq256.f16", "q6_k"}, LlamaFile{"kq256.f16", "q5_k_m"},
                                           LlamaFile{"kq256.f16", "q4_k_m"}, LlamaFile{"kq256.f16", "q4_k_s"},
                                           LlamaFile{"kq256.f16", "q3_k_m"}, LlamaFile{"kq256.f16", "q2_k"}),
                         [](const auto& info) {
                           std::string s = std::string(info.param.input) + "_" + info.param.type;
                           for (char& c : s) c = std::isalnum(static_cast<unsigned char>(c)) ? c : '_';
                           return s;
                         });

std::map<std::string, std::string> planned_types(const std::string& in, const std::string& type,
                                                 std::vector<TensorTypeOverride> overrides = {}) {
  auto file = gguf::GgufFile::open(in);
  EXPECT_TRUE(file.ok());
  auto plans = plan_quantization(*file, {*gguf::find_file_type(type), std::move(overrides), false});
  EXPECT_TRUE(plans.ok()) << plans.message();
  std::map<std::string, std::string> out;
  for (const TensorPlan& p : *plans) out[p.tensor->name] = gguf::type_info(p.target).name;
  return out;
}

// stories260K: 64-wide rows fit no 256-block, 172-wide ffn_down fits no block at all.
TEST(QuantMix, FallbackForRowsThatFitNoBlock) {
  auto t = planned_types(kModels + "stories260K.gguf", "q4_k_m");
  EXPECT_EQ(t["output.weight"], "q8_0");
  EXPECT_EQ(t["blk.0.ffn_down.weight"], "f16");
  EXPECT_EQ(t["blk.0.attn_q.weight"], "q5_0");  // Q4_K -> Q5_0
  EXPECT_EQ(t["blk.0.attn_norm.weight"], "f32");
  t = planned_types(kModels + "stories260K.gguf", "q2_k");
  EXPECT_EQ(t["blk.0.attn_q.weight"], "q4_0");
  EXPECT_EQ(t["blk.0.attn_v.weight"], "q4_0");  // Q3_K -> Q4_0
  t = planned_types(kModels + "stories260K.gguf", "q6_k");
  EXPECT_EQ(t["blk.3.ffn_up.weight"], "q8_0");
}

TEST(QuantMix, TensorTypeOverride) {
  auto o = parse_tensor_type_override("ffn_(up|gate)=q8_0");
  ASSERT_TRUE(o.ok()) << o.message();
  std::vector<TensorTypeOverride> overrides;
  overrides.push_back(*o);
  auto t = planned_types(kModels + "kq256.f16.gguf", "q4_k_m", overrides);
  EXPECT_EQ(t["blk.1.ffn_up.weight"], "q8_0");
  EXPECT_EQ(t["blk.0.ffn_gate.weight"], "q8_0");
  EXPECT_EQ(t["blk.1.ffn_down.weight"], "q6_k");
  EXPECT_FALSE(parse_tensor_type_override("noequals").ok());
  EXPECT_FALSE(parse_tensor_type_override("a=q9_9").ok());
  EXPECT_FALSE(parse_tensor_type_override("([=q4_0").ok());
}

TEST(Quantize, EveryPresetLoadsAndDryRunWritesNothing) {
  for (const gguf::FileTypeInfo& p : gguf::file_types()) {
    const std::string out = temp_path(std::string("all.") + std::string(p.name) + ".gguf");
    auto dry = quantize_model({.input = kModels + "stories260K.gguf", .output = out, .preset = p, .dry_run = true});
    ASSERT_TRUE(dry.ok()) << dry.message();
    EXPECT_FALSE(std::filesystem::exists(out));
    ASSERT_EQ(dry->plans.size(), 48u);  // the plans stay readable after the call
    EXPECT_EQ(dry->plans.front().tensor->name, "output.weight");
    quantize(kModels + "stories260K.gguf", out, std::string(p.name), 1);
    auto model = model::load_model(out);
    EXPECT_TRUE(model.ok()) << p.name << ": " << model.message();
    std::filesystem::remove(out);
  }
}

// Q8_0 input is dequantized and requantized; a same-type tensor is copied as is.
TEST(Quantize, QuantizedInputNeedsAllowRequantize) {
  const std::string out = temp_path("refused.q4_k_m.gguf");
  auto s = quantize_model({.input = kModels + "kq256.q8_0.gguf", .output = out, .preset = *gguf::find_file_type("q4_k_m")});
  ASSERT_FALSE(s.ok());
  EXPECT_NE(s.message().find("is q8_0 already; requantizing loses quality (allow it with --allow-requantize)"),
            std::string::npos) << s.message();
  EXPECT_FALSE(std::filesystem::exists(out));
}

TEST(Quantize, FromQ8_0Input) {
  const std::string out = temp_path("from_q8.q4_0.gguf");
  auto s = quantize(kModels + "kq256.q8_0.gguf", out, "q4_k_m");
  auto file = gguf::GgufFile::open(out);
  ASSERT_TRUE(file.ok());
  EXPECT_EQ(file->find_tensor("blk.1.ffn_down.weight")->type, gguf::TensorType::Q6_K);
  std::filesystem::remove(out);
  const std::string same = temp_path("from_q8.q8_0.gguf");
  quantize(kModels + "kq256.q8_0.gguf", same, "q8_0");
  EXPECT_TRUE(read_bytes(same) == read_bytes(kModels + "kq256.q8_0.gguf"));
  std::filesystem::remove(same);
}

TEST(Quantize, ErrorsNameTheFile) {
  auto s = quantize_model({.input = "/nonexistent/model.gguf", .output = temp_path("x.gguf"), .preset = *gguf::find_file_type("q8_0")});
  ASSERT_FALSE(s.ok());
  EXPECT_NE(s.message().find("/nonexistent/model.gguf"), std::string::npos) << s.message();
}

}  // namespace
}  // namespace owl::quantize
