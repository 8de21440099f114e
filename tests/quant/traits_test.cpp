// The format-traits table: one row per GGUF type of gguf's size table, and the roles it gives
// each type agree with the functions it holds.
#include "quant/traits.h"

#include <gtest/gtest.h>

#include <set>
#include <string>

#include "quant/quant.h"
#include "quant/weighted.h"

namespace owl::quant {
namespace {

using gguf::TensorType;

TEST(FormatTraits, OneRowPerGgufType) {
  std::set<TensorType> seen;
  for (const FormatTraits& t : all_format_traits()) {
    EXPECT_TRUE(seen.insert(t.type).second) << t.info().name;
    EXPECT_EQ(&format_traits(t.type), &t);
  }
  for (const gguf::TensorTypeInfo& info : gguf::kTensorTypes) EXPECT_TRUE(seen.count(info.type)) << info.name;
  EXPECT_EQ(seen.size(), gguf::kTensorTypes.size());
  EXPECT_EQ(find_format_traits(static_cast<TensorType>(4)), nullptr);  // Q4_2, retired by ggml
  EXPECT_EQ(find_format_traits(static_cast<TensorType>(1000)), nullptr);
}

TEST(FormatTraits, RolesNeedTheirFunctions) {
  std::string weights;
  for (const FormatTraits& t : all_format_traits()) {
    const std::string name(t.info().name);
    if (t.weight) {
      weights += (weights.empty() ? "" : " ") + name;
      EXPECT_NE(t.quantize, nullptr) << name;
      EXPECT_TRUE(t.quantize_input) << name;
    }
    if (t.quantize_input) {
      EXPECT_NE(t.dequantize, nullptr) << name;
    }
    if (t.quantize_block_weighted) {
      EXPECT_TRUE(t.weight && t.info().quantized) << name;
    }
  }
  EXPECT_EQ(weights, "f32 f16 bf16 q8_0 q4_0 q4_1 q5_0 q5_1 q2_k q3_k q4_k q5_k q6_k");
  EXPECT_TRUE(format_traits(TensorType::Q8_1).quantize_input);
  EXPECT_FALSE(format_traits(TensorType::Q8_K).quantize_input);
}

// quantize_row_weighted exists exactly where the table has a weighted fit.
TEST(FormatTraits, WeightedQuantizerFollowsTheTable) {
  float x[256], importance[256];
  for (int i = 0; i < 256; ++i) {
    x[i] = static_cast<float>((i * 37) % 101 - 50) * 0.01f;
    importance[i] = 1.0f + static_cast<float>(i % 7);
  }
  uint8_t out[512];
  for (const FormatTraits& t : all_format_traits()) {
    if (t.info().block_size > 256) continue;
    const bool has = quantize_row_weighted(t.type, x, out, 256, importance);
    EXPECT_EQ(has, t.quantize_block_weighted != nullptr) << t.info().name;
  }
}

}  // namespace
}  // namespace owl::quant
