// owl inspect's figures are the runtime's: the configuration load_config gives, the KV cache a
// Context makes and the activation buffers it allocates.
#include "model/model_info.h"

#include <gtest/gtest.h>

#include "model/forward.h"

namespace owl::model {
namespace {

const std::string kSynthetic = std::string(OWL_SHARED_DIR) + "/reference/synthetic/";

TEST(ModelInfo, MemoryEstimateIsWhatAContextAllocates) {
  for (const char* name : {"llama-gqa.q8_0", "qwen3.q4_0", "gemma2.f32", "phi3.q8_0"}) {
    auto model = load_model(kSynthetic + name + ".gguf");
    ASSERT_TRUE(model.ok()) << model.message();
    const ModelInfo info = describe_model((*model)->file);
    ASSERT_TRUE(info.config.has_value()) << info.config_error;
    EXPECT_EQ(info.config->n_embd_kv(), (*model)->config.n_embd_kv()) << name;
    const int64_t n_ctx = 96;
    const MemoryEstimate m = estimate_memory(info, n_ctx);
    auto ctx = make_context(**model, {.n_ctx = n_ctx, .n_seq = 1, .n_threads = 1});
    ASSERT_TRUE(ctx.ok()) << ctx.message();
    const Context& c = **ctx;
    EXPECT_EQ(m.kv_cache, c.kv.bytes()) << name;
    const size_t floats = c.x.size() + c.cur.size() + c.qkv.size() + c.attn.size() + c.ffn.size();
    EXPECT_EQ(m.activations, (floats + static_cast<size_t>(info.vocab_size)) * sizeof(float)) << name;
    EXPECT_EQ(m.weights, info.tensor_bytes);
  }
}

TEST(ModelInfo, UnsupportedArchitectureKeepsTheHeaderFacts) {
  auto file = gguf::GgufFile::open(std::string(OWL_SHARED_DIR) + "/vocab/ggml-vocab-gpt-2.gguf");
  ASSERT_TRUE(file.ok()) << file.message();
  const ModelInfo info = describe_model(*file);
  EXPECT_FALSE(info.config.has_value());
  EXPECT_NE(info.config_error.find("architecture 'gpt2' is not supported"), std::string::npos) << info.config_error;
  EXPECT_EQ(info.architecture, "gpt2");
  EXPECT_GT(info.vocab_size, 0);
  const MemoryEstimate m = estimate_memory(info, 512);
  EXPECT_EQ(m.kv_cache, 0u);
  EXPECT_EQ(m.activations, static_cast<uint64_t>(info.vocab_size) * sizeof(float));
}

}  // namespace
}  // namespace owl::model
